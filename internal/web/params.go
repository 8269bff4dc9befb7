package web

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kustode/kustode/internal/finding"
)

// query is a request's query string, checked against the parameters its
// endpoint knows: an unknown parameter is an error rather than silently
// ignored, so that a typo ("serverity=high") does not widen a query.
type query struct{ v url.Values }

func parseQuery(r *http.Request, known ...string) (query, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return query{}, &badRequest{msg: "malformed query string: " + err.Error()}
	}
	names := make([]string, 0, len(v))
	for name := range v {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !slices.Contains(known, name) {
			if len(known) == 0 {
				return query{}, paramError(name, "unknown parameter (this endpoint takes none)")
			}
			return query{}, paramError(name, "unknown parameter (allowed: %s)", strings.Join(known, ", "))
		}
	}
	return query{v: v}, nil
}

// str returns the value of a single-valued parameter, "" when absent.
func (q query) str(name string) (string, error) {
	vs := q.v[name]
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
		return strings.TrimSpace(vs[0]), nil
	}
	return "", paramError(name, "given %d times; give it once", len(vs))
}

// oneOf returns the value of a parameter that must be one of allowed, or "".
func (q query) oneOf(name string, allowed ...string) (string, error) {
	s, err := q.str(name)
	if err != nil || s == "" {
		return "", err
	}
	if !slices.Contains(allowed, s) {
		return "", paramError(name, "unknown value %q (allowed: %s)", s, strings.Join(allowed, ", "))
	}
	return s, nil
}

// severities parses a comma-separated list of severity names; the parameter
// may also be repeated. Absent means nil: every severity.
func (q query) severities(name string) ([]finding.Severity, error) {
	var out []finding.Severity
	for _, v := range q.v[name] {
		if strings.TrimSpace(v) == "" {
			continue
		}
		for part := range strings.SplitSeq(v, ",") {
			part = strings.TrimSpace(part)
			sev, err := finding.ParseSeverity(part)
			if err != nil || part == "" {
				return nil, paramError(name, "unknown severity %q (allowed: %s)", part, severityNames())
			}
			if !slices.Contains(out, sev) {
				out = append(out, sev)
			}
		}
	}
	return out, nil
}

func severityNames() string {
	var names []string
	for _, s := range finding.Severities() {
		names = append(names, s.String())
	}
	return strings.Join(names, ", ")
}

// limit parses limit=; absent means 0, the store's default.
func (q query) limit() (int, error) {
	s, err := q.str("limit")
	if err != nil || s == "" {
		return 0, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, paramError("limit", "%q is not an integer from 1 to %d", s, MaxLimit)
	}
	return n, nil
}

// since parses a point in time given as RFC 3339 ("2026-01-02T15:04:05Z")
// or as a duration before now ("24h", "90m"). Absent means the zero time:
// no lower bound.
func (q query) since(name string, now time.Time) (time.Time, error) {
	s, err := q.str(name)
	if err != nil || s == "" {
		return time.Time{}, err
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, paramError(name, "%q is neither an RFC 3339 time (2026-01-02T15:04:05Z) nor a positive duration (24h, 90m)", s)
}

// boolean parses a true/false parameter; absent means false.
func (q query) boolean(name string) (bool, error) {
	s, err := q.str(name)
	if err != nil || s == "" {
		return false, err
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, paramError(name, "%q is not a boolean (allowed: true, false)", s)
	}
	return b, nil
}

// pathID parses the {id} path segment.
func pathID(r *http.Request) (int64, error) {
	s := r.PathValue("id")
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 {
		return 0, paramError("id", "%q is not a positive integer", s)
	}
	return id, nil
}
