package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/kustode/kustode/internal/detect"
	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/store"
)

func (s *Server) getFindings(w http.ResponseWriter, r *http.Request, u User) {
	f, err := findingFilter(r)
	if err != nil {
		s.fail(w, r, u, err)
		return
	}
	res, err := s.opts.Store.Findings(r.Context(), f)
	if err != nil {
		s.fail(w, r, u, fmt.Errorf("findings: %w", err))
		return
	}
	s.reply(w, r, u, http.StatusOK, struct {
		Findings []store.Finding `json:"findings"`
	}{nonNil(res)})
}

func findingFilter(r *http.Request) (store.FindingFilter, error) {
	var f store.FindingFilter
	q, err := parseQuery(r, "namespace", "severity", "checkID", "status", "limit")
	if err != nil {
		return f, err
	}
	if f.Namespace, err = q.str("namespace"); err != nil {
		return f, err
	}
	if f.Severities, err = q.severities("severity"); err != nil {
		return f, err
	}
	if f.CheckID, err = q.str("checkID"); err != nil {
		return f, err
	}
	status, err := q.oneOf("status", string(store.StatusOpen), string(store.StatusResolved))
	if err != nil {
		return f, err
	}
	f.Status = store.Status(status)
	f.Limit, err = q.limit()
	return f, err
}

func (s *Server) getPosture(w http.ResponseWriter, r *http.Request, u User) {
	if _, err := parseQuery(r); err != nil {
		s.fail(w, r, u, err)
		return
	}
	p, err := s.opts.Store.Summary(r.Context(), s.now())
	if err != nil {
		s.fail(w, r, u, fmt.Errorf("posture summary: %w", err))
		return
	}
	s.reply(w, r, u, http.StatusOK, struct {
		Summary store.PosturePoint `json:"summary"`
	}{p})
}

func (s *Server) getPostureHistory(w http.ResponseWriter, r *http.Request, u User) {
	since, limit, err := s.historyParams(r)
	if err != nil {
		s.fail(w, r, u, err)
		return
	}
	res, err := s.opts.Store.PostureHistory(r.Context(), since, limit)
	if err != nil {
		s.fail(w, r, u, fmt.Errorf("posture history: %w", err))
		return
	}
	s.reply(w, r, u, http.StatusOK, struct {
		History []store.PosturePoint `json:"history"`
	}{nonNil(res)})
}

func (s *Server) historyParams(r *http.Request) (time.Time, int, error) {
	q, err := parseQuery(r, "since", "limit")
	if err != nil {
		return time.Time{}, 0, err
	}
	since, err := q.since("since", s.now())
	if err != nil {
		return time.Time{}, 0, err
	}
	limit, err := q.limit()
	return since, limit, err
}

func (s *Server) getAlerts(w http.ResponseWriter, r *http.Request, u User) {
	f, err := s.alertFilter(r)
	if err != nil {
		s.fail(w, r, u, err)
		return
	}
	res, err := s.opts.Store.Alerts(r.Context(), f)
	if err != nil {
		s.fail(w, r, u, fmt.Errorf("alerts: %w", err))
		return
	}
	s.reply(w, r, u, http.StatusOK, struct {
		Alerts []store.Alert `json:"alerts"`
	}{nonNil(res)})
}

func (s *Server) alertFilter(r *http.Request) (store.AlertFilter, error) {
	var f store.AlertFilter
	q, err := parseQuery(r, "rule", "namespace", "severity", "status", "since", "limit")
	if err != nil {
		return f, err
	}
	if f.Rule, err = q.str("rule"); err != nil {
		return f, err
	}
	if f.Namespace, err = q.str("namespace"); err != nil {
		return f, err
	}
	if f.Severities, err = q.severities("severity"); err != nil {
		return f, err
	}
	status, err := q.oneOf("status", string(store.AlertOpen), string(store.AlertAcknowledged))
	if err != nil {
		return f, err
	}
	f.Status = store.AlertStatus(status)
	if f.Since, err = q.since("since", s.now()); err != nil {
		return f, err
	}
	f.Limit, err = q.limit()
	return f, err
}

func (s *Server) getAlert(w http.ResponseWriter, r *http.Request, u User) {
	id, err := idOnly(r)
	if err != nil {
		s.fail(w, r, u, err)
		return
	}
	a, err := s.opts.Store.Alert(r.Context(), id)
	if err != nil {
		s.fail(w, r, u, fmt.Errorf("alert %d: %w", id, lookupError(err, fmt.Sprintf("alert %d", id))))
		return
	}
	s.reply(w, r, u, http.StatusOK, a)
}

func (s *Server) ackAlert(w http.ResponseWriter, r *http.Request, u User) {
	id, err := idOnly(r)
	if err != nil {
		s.fail(w, r, u, err)
		return
	}
	a, err := s.opts.Store.AckAlert(r.Context(), id, u.Name, s.now())
	if err != nil {
		s.fail(w, r, u, fmt.Errorf("acknowledge alert %d: %w", id, lookupError(err, fmt.Sprintf("alert %d", id))))
		return
	}
	s.reply(w, r, u, http.StatusOK, a)
}

// idOnly parses the {id} of a request that takes no query parameters.
func idOnly(r *http.Request) (int64, error) {
	if _, err := parseQuery(r); err != nil {
		return 0, err
	}
	return pathID(r)
}

func (s *Server) getExceptions(w http.ResponseWriter, r *http.Request, u User) {
	q, err := parseQuery(r, "all")
	if err != nil {
		s.fail(w, r, u, err)
		return
	}
	all, err := q.boolean("all")
	if err != nil {
		s.fail(w, r, u, err)
		return
	}
	res, err := s.opts.Store.Exceptions(r.Context(), all, s.now())
	if err != nil {
		s.fail(w, r, u, fmt.Errorf("exceptions: %w", err))
		return
	}
	s.reply(w, r, u, http.StatusOK, struct {
		Exceptions []store.Exception `json:"exceptions"`
	}{nonNil(res)})
}

// exceptionRequest is the body of POST /api/v1/exceptions. Expires is a
// string so that a bad time gets an error naming the field.
type exceptionRequest struct {
	Checks    []string          `json:"checks"`
	Kind      string            `json:"kind"`
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels"`
	Reason    string            `json:"reason"`
	Owner     string            `json:"owner"`
	Expires   string            `json:"expires"`
}

func (s *Server) createException(w http.ResponseWriter, r *http.Request, u User) {
	if _, err := parseQuery(r); err != nil {
		s.fail(w, r, u, err)
		return
	}
	var req exceptionRequest
	if err := decodeBody(r, &req); err != nil {
		s.fail(w, r, u, err)
		return
	}
	now := s.now()
	e, err := s.exception(req, now)
	if err != nil {
		s.fail(w, r, u, err)
		return
	}
	e.CreatedBy = u.Name
	e.CreatedAt = now
	e, err = s.opts.Store.AddException(r.Context(), e)
	if err != nil {
		s.fail(w, r, u, fmt.Errorf("add exception: %w", err))
		return
	}
	s.exceptionsChanged()
	s.reply(w, r, u, http.StatusCreated, e)
}

// exception validates a request into an exception.
func (s *Server) exception(req exceptionRequest, now time.Time) (store.Exception, error) {
	e := store.Exception{
		Checks:    req.Checks,
		Kind:      strings.TrimSpace(req.Kind),
		Namespace: strings.TrimSpace(req.Namespace),
		Name:      strings.TrimSpace(req.Name),
		Labels:    req.Labels,
		Reason:    strings.TrimSpace(req.Reason),
		Owner:     strings.TrimSpace(req.Owner),
	}
	if len(e.Checks) == 0 {
		return e, fieldError("checks", `required: list check IDs, or "*" for every check`)
	}
	for _, c := range e.Checks {
		if c != "*" && !s.checkIDs[c] {
			return e, fieldError("checks", `unknown check %q (see GET /api/v1/checks; "*" means every check)`, c)
		}
	}
	for _, g := range [...]struct{ field, glob string }{{"kind", e.Kind}, {"namespace", e.Namespace}, {"name", e.Name}} {
		if _, err := path.Match(g.glob, ""); err != nil {
			return e, fieldError(g.field, "%q is not a valid shell pattern", g.glob)
		}
	}
	for k := range e.Labels {
		if strings.TrimSpace(k) == "" {
			return e, fieldError("labels", "empty label key")
		}
	}
	if e.Reason == "" {
		return e, fieldError("reason", "required: say why the exception is acceptable")
	}
	if e.Owner == "" {
		return e, fieldError("owner", "required: say who answers for the exception")
	}
	if req.Expires == "" {
		return e, fieldError("expires", "required: an RFC 3339 time at most a year ahead")
	}
	exp, err := time.Parse(time.RFC3339, req.Expires)
	if err != nil {
		return e, fieldError("expires", "%q is not an RFC 3339 time (2026-01-02T15:04:05Z)", req.Expires)
	}
	switch {
	case !exp.After(now):
		return e, fieldError("expires", "%s is not in the future", req.Expires)
	case exp.After(now.AddDate(1, 0, 0)):
		return e, fieldError("expires", "%s is more than a year ahead; renew exceptions instead", req.Expires)
	}
	e.Expires = exp
	return e, nil
}

func (s *Server) expireException(w http.ResponseWriter, r *http.Request, u User) {
	id, err := idOnly(r)
	if err != nil {
		s.fail(w, r, u, err)
		return
	}
	e, err := s.opts.Store.ExpireException(r.Context(), id, s.now())
	if err != nil {
		s.fail(w, r, u, fmt.Errorf("expire exception %d: %w", id, lookupError(err, fmt.Sprintf("exception %d", id))))
		return
	}
	s.exceptionsChanged()
	s.reply(w, r, u, http.StatusOK, e)
}

func (s *Server) exceptionsChanged() {
	if s.opts.OnExceptionsChanged != nil {
		s.opts.OnExceptionsChanged()
	}
}

// decodeBody decodes a required JSON object body into v, strictly: unknown
// fields and trailing data are errors.
func decodeBody(r *http.Request, v any) error {
	if r.ContentLength == 0 {
		return &badRequest{msg: "request body required: a JSON object"}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var (
			tooBig  *http.MaxBytesError
			typeErr *json.UnmarshalTypeError
		)
		switch {
		case errors.As(err, &tooBig):
			return err
		case errors.As(err, &typeErr) && typeErr.Field != "":
			return fieldError(typeErr.Field, "must be %s, not %s", jsonType(typeErr.Type.Kind().String()), typeErr.Value)
		case errors.Is(err, io.EOF):
			return &badRequest{msg: "request body required: a JSON object"}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return fieldError(name, "unknown field")
		}
		return &badRequest{msg: "request body is not valid JSON: " + err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &badRequest{msg: "request body has data after the JSON object"}
	}
	return nil
}

func jsonType(kind string) string {
	switch kind {
	case "slice":
		return "an array"
	case "map", "struct":
		return "an object"
	case "string":
		return "a string"
	}
	return "a " + kind
}

func (s *Server) getRules(w http.ResponseWriter, r *http.Request, u User) {
	if _, err := parseQuery(r); err != nil {
		s.fail(w, r, u, err)
		return
	}
	var rules []detect.RuleInfo
	if s.opts.Rules != nil {
		rules = s.opts.Rules()
	}
	s.reply(w, r, u, http.StatusOK, struct {
		Rules []detect.RuleInfo `json:"rules"`
	}{nonNil(rules)})
}

// checkInfo is a check's documentation, as GET /api/v1/checks lists it.
type checkInfo struct {
	ID          string             `json:"id"`
	Title       string             `json:"title"`
	Severity    string             `json:"severity"`
	Description string             `json:"description"`
	Remediation string             `json:"remediation"`
	Frameworks  finding.Frameworks `json:"frameworks"`
}

func (s *Server) getChecks(w http.ResponseWriter, r *http.Request, u User) {
	if _, err := parseQuery(r); err != nil {
		s.fail(w, r, u, err)
		return
	}
	s.reply(w, r, u, http.StatusOK, struct {
		Checks []checkInfo `json:"checks"`
	}{nonNil(s.checks)})
}

// getReadyz answers the status code to anyone, and the conditions to a
// caller authorized to get readyz. Kubelet probes carry no token, so a
// request without Authorization gets the status and "ok" or "not ready";
// a request with one is authenticated like any API request.
func (s *Server) getReadyz(w http.ResponseWriter, r *http.Request) (string, int) {
	var conds []Condition
	if s.opts.Readiness != nil {
		conds = s.opts.Readiness.Ready()
	}
	ready := true
	for _, c := range conds {
		ready = ready && (c.OK || c.Advisory)
	}
	code := http.StatusOK
	if !ready {
		code = http.StatusServiceUnavailable
	}
	if len(r.Header.Values("Authorization")) == 0 {
		if ready {
			return "", writeText(w, code, "ok")
		}
		return "", writeText(w, code, "not ready")
	}
	u, status, ok := s.authenticate(w, r, "GET /readyz", Attributes{Verb: "get", Resource: "readyz"})
	if !ok {
		return u.Name, status
	}
	s.reply(w, r, u, code, struct {
		Ready      bool        `json:"ready"`
		Conditions []Condition `json:"conditions"`
	}{ready, nonNil(conds)})
	return u.Name, code
}

// nonNil makes an empty result encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
