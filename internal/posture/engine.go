package posture

import (
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/kube"
)

// ExemptAnnotation on an object lists check IDs (comma-separated) that do not
// apply to it; ExemptReasonAnnotation says why, for the people who review it.
const (
	ExemptAnnotation       = "kustode.io/exempt"
	ExemptReasonAnnotation = "kustode.io/exempt-reason"
)

// Engine runs a fixed set of checks. It is safe for concurrent use.
type Engine struct {
	checks     []*Check
	workload   []*Check
	byKind     map[string][]*Check
	exceptions *Exceptions
}

// NewEngine validates the checks and indexes them by the kinds they run on.
// Duplicate IDs are an error.
func NewEngine(checks []*Check) (*Engine, error) {
	e := &Engine{byKind: map[string][]*Check{}}
	seen := map[string]bool{}
	for _, c := range checks {
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("posture: %w", err)
		}
		if seen[c.ID] {
			return nil, fmt.Errorf("posture: check %s defined twice", c.ID)
		}
		seen[c.ID] = true
		e.checks = append(e.checks, c)
		if c.Workload {
			e.workload = append(e.workload, c)
		}
		for _, k := range c.Kinds {
			e.byKind[k] = append(e.byKind[k], c)
		}
	}
	return e, nil
}

// WithExceptions returns an engine that skips the checks active exceptions
// exempt objects from. The receiver is unchanged.
func (e *Engine) WithExceptions(x *Exceptions) *Engine {
	c := *e
	c.exceptions = x
	return &c
}

// Checks returns the engine's checks in the order given to NewEngine.
func (e *Engine) Checks() []*Check { return e.checks }

// ObjectError is an object the engine could not check (for example a
// workload whose pod template does not decode).
type ObjectError struct {
	Object kube.Object
	Err    error
}

func (e *ObjectError) Error() string {
	loc := e.Object.Source.String()
	if loc != "" {
		loc += ": "
	}
	return fmt.Sprintf("%s%s: %v", loc, e.Object.Ref, e.Err)
}

func (e *ObjectError) Unwrap() error { return e.Err }

// Run checks every object and returns the findings sorted by file, line,
// object, severity (most severe first) and check, plus one ObjectError per object it could not check.
// Work is linear in the number of objects.
func (e *Engine) Run(objs []kube.Object) ([]finding.Finding, []error) {
	ix := NewIndex(objs)
	// Checks are pure, so objects are checked in parallel on every CPU.
	type result struct {
		findings []finding.Finding
		err      error
	}
	results := make([]result, len(objs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(len(objs), 1)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(objs) {
					return
				}
				results[i].findings, results[i].err = e.RunObject(&objs[i], ix)
			}
		})
	}
	wg.Wait()
	var findings []finding.Finding
	var errs []error
	for _, r := range results {
		findings = append(findings, r.findings...)
		if r.err != nil {
			errs = append(errs, r.err)
		}
	}
	sort.SliceStable(findings, func(i, j int) bool {
		a, b := findings[i], findings[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Object != b.Object {
			return a.Object.String() < b.Object.String()
		}
		if a.Severity != b.Severity {
			return a.Severity > b.Severity
		}
		return a.CheckID < b.CheckID
	})
	return findings, errs
}

// RunObject checks one object; ix holds the objects cross-object checks
// compare it with (nil means none: an index of obj alone).
func (e *Engine) RunObject(obj *kube.Object, ix *Index) ([]finding.Finding, error) {
	if ix == nil {
		ix = NewIndex([]kube.Object{*obj})
	}
	var findings []finding.Finding
	exempt := exemptions(obj.Annotations)
	pass := Pass{Object: obj, Index: ix, findings: &findings}
	var errs []error
	// A workload's pod template is decoded once, for workload checks and
	// for checks of its kind alike (the kube-apiserver checks read a Pod's).
	if kube.IsWorkload(obj.Ref.Kind) && (len(e.workload) > 0 || len(e.byKind[obj.Ref.Kind]) > 0) {
		tmpl, _, err := kube.PodTemplate(obj.Ref.Kind, obj.Raw)
		if err != nil {
			errs = append(errs, &ObjectError{Object: *obj, Err: err})
		} else {
			pass.Pod = tmpl
			for _, c := range e.workload {
				if !exempt[c.ID] && !e.exceptions.Exempts(c.ID, obj) {
					pass.check = c
					c.Run(&pass)
				}
			}
		}
	}
	for _, c := range e.byKind[obj.Ref.Kind] {
		if !exempt[c.ID] && !e.exceptions.Exempts(c.ID, obj) {
			pass.check = c
			c.Run(&pass)
		}
	}
	return findings, errors.Join(errs...)
}

func exemptions(annotations map[string]string) map[string]bool {
	v, ok := annotations[ExemptAnnotation]
	if !ok {
		return nil
	}
	m := map[string]bool{}
	for _, id := range strings.Split(v, ",") {
		if id = strings.TrimSpace(id); id != "" {
			m[id] = true
		}
	}
	return m
}
