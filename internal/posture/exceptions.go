package posture

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/kube"
)

// Exception exempts objects from checks for a stated reason, owned by
// someone, until a date. It is the reviewed, expiring alternative to
// switching a check off.
type Exception struct {
	// Checks are check IDs; "*" means every check.
	Checks []string `yaml:"checks"`
	// Objects selects the exempted objects; every field set must match.
	Objects ObjectSelector `yaml:"objects"`
	Reason  string         `yaml:"reason"`
	Owner   string         `yaml:"owner"`
	// Expires is the last day (UTC) the exception applies, YYYY-MM-DD.
	Expires string `yaml:"expires"`

	expires time.Time
	// Source is where the exception is written.
	Source finding.Source `yaml:"-"`
}

// ObjectSelector matches objects. Kind, Namespace and Name accept shell
// globs (path.Match: *, ?, [...]); Labels must all be present with equal
// values.
type ObjectSelector struct {
	Kind      string            `yaml:"kind"`
	Namespace string            `yaml:"namespace"`
	Name      string            `yaml:"name"`
	Labels    map[string]string `yaml:"labels"`
}

// ExpiresAt returns the moment the exception stops applying: the end of its
// Expires day, UTC.
func (e *Exception) ExpiresAt() time.Time { return e.expires }

// Exceptions is a loaded exceptions file, split into those in force and
// those past their date (which apply to nothing and should be reported).
type Exceptions struct {
	Active  []Exception
	Expired []Exception
}

// exceptionsFile is the on-disk shape.
type exceptionsFile struct {
	APIVersion string      `yaml:"apiVersion"`
	Kind       string      `yaml:"kind"`
	Exceptions []yaml.Node `yaml:"exceptions"`
}

// LoadExceptions reads an exceptions file:
//
//	apiVersion: kustode.io/v1alpha1
//	kind: ExceptionList
//	exceptions:
//	- checks: [pss-host-namespaces]
//	  objects: {kind: DaemonSet, namespace: monitoring, name: node-exporter}
//	  reason: reads host process metrics
//	  owner: team-observability@example.com
//	  expires: 2027-03-31
//
// Every problem is reported, each with file:line: unknown fields, unknown
// check IDs (known lists the valid ones), missing reason, owner or expiry,
// a malformed date, an empty selector. Exceptions whose date is before now
// go to Expired.
func LoadExceptions(file string, now time.Time, known func(checkID string) bool) (*Exceptions, error) {
	data, err := os.ReadFile(file) //nolint:gosec // the user names the file
	if err != nil {
		return nil, fmt.Errorf("exceptions: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("exceptions: %s: %w", file, err)
	}
	var f exceptionsFile
	if err := doc.Decode(&f); err != nil {
		return nil, fmt.Errorf("exceptions: %s: %w", file, err)
	}
	var errs []error
	at := func(line int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s:%d: %s", file, line, fmt.Sprintf(format, args...)))
	}
	if f.APIVersion != "kustode.io/v1alpha1" || f.Kind != "ExceptionList" {
		at(1, "want apiVersion kustode.io/v1alpha1 and kind ExceptionList, got %q %q", f.APIVersion, f.Kind)
	}
	out := &Exceptions{}
	for i := range f.Exceptions {
		node := &f.Exceptions[i]
		var e Exception
		dec := node
		if err := strictDecode(dec, &e); err != nil {
			at(node.Line, "exception %d: %v", i+1, err)
			continue
		}
		e.Source = finding.Source{File: file, Line: node.Line}
		problems := validateException(&e, known)
		for _, p := range problems {
			at(node.Line, "exception %d: %s", i+1, p)
		}
		if len(problems) > 0 {
			continue
		}
		if now.After(e.expires) {
			out.Expired = append(out.Expired, e)
		} else {
			out.Active = append(out.Active, e)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("exceptions: %w", err)
	}
	return out, nil
}

// strictDecode decodes a node, failing on fields the type does not have.
func strictDecode(n *yaml.Node, v any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	return dec.Decode(v)
}

func validateException(e *Exception, known func(string) bool) []string {
	var p []string
	if len(e.Checks) == 0 {
		p = append(p, `checks is required (check IDs, or "*" for all)`)
	}
	for _, id := range e.Checks {
		if id != "*" && known != nil && !known(id) {
			p = append(p, fmt.Sprintf("unknown check %q (list them with 'kustode checks')", id))
		}
	}
	s := e.Objects
	if s.Kind == "" && s.Namespace == "" && s.Name == "" && len(s.Labels) == 0 {
		p = append(p, "objects selects everything: set kind, namespace, name or labels")
	}
	for _, g := range []string{s.Kind, s.Namespace, s.Name} {
		if _, err := path.Match(g, ""); err != nil {
			p = append(p, fmt.Sprintf("bad pattern %q: %v", g, err))
		}
	}
	if strings.TrimSpace(e.Reason) == "" {
		p = append(p, "reason is required: say why the exception is safe")
	}
	if strings.TrimSpace(e.Owner) == "" {
		p = append(p, "owner is required: who answers for it")
	}
	d, err := time.Parse(time.DateOnly, e.Expires)
	if err != nil {
		p = append(p, fmt.Sprintf("expires %q is not a date YYYY-MM-DD: every exception must end", e.Expires))
	}
	e.expires = d.Add(24*time.Hour - time.Nanosecond)
	return p
}

// Exempts reports whether an active exception exempts obj from checkID.
func (x *Exceptions) Exempts(checkID string, obj *kube.Object) bool {
	if x == nil {
		return false
	}
	for i := range x.Active {
		e := &x.Active[i]
		if (slices.Contains(e.Checks, checkID) || slices.Contains(e.Checks, "*")) && e.Objects.matches(obj) {
			return true
		}
	}
	return false
}

func (s ObjectSelector) matches(o *kube.Object) bool {
	glob := func(pattern, v string) bool {
		if pattern == "" {
			return true
		}
		ok, _ := path.Match(pattern, v)
		return ok
	}
	if !glob(s.Kind, o.Ref.Kind) || !glob(s.Namespace, Namespace(o)) || !glob(s.Name, o.Ref.Name) {
		return false
	}
	for k, v := range s.Labels {
		if got, ok := o.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
