package posture

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
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
// object, severity (most severe first) and check, plus one ObjectError per
// object it could not check. Work is linear in the number of objects.
func (e *Engine) Run(objs []kube.Object) ([]finding.Finding, []error) {
	ix := NewIndex(objs)
	// Checks are pure, so objects are checked in parallel on every CPU.
	type result struct {
		reported []reported
		err      error
	}
	results := make([]result, len(objs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(len(objs), 1)) {
		wg.Go(func() {
			var buf []reported
			for {
				i := int(next.Add(1)) - 1
				if i >= len(objs) {
					return
				}
				buf, results[i].err = e.check(buf[:0], &objs[i], ix)
				results[i].reported = slices.Clone(buf)
			}
		})
	}
	wg.Wait()

	// Sort references to the findings rather than the findings themselves,
	// which are large, then build each finding once, in its place. The
	// object names the order compares are rendered once per object.
	type ref struct{ obj, n int32 }
	var refs []ref
	var errs []error
	names := make([]string, len(objs))
	for i, r := range results {
		for n := range r.reported {
			refs = append(refs, ref{int32(i), int32(n)})
		}
		if len(r.reported) > 0 {
			names[i] = objs[i].Ref.String()
		}
		if r.err != nil {
			errs = append(errs, r.err)
		}
	}
	sort.SliceStable(refs, func(i, j int) bool {
		a, b := refs[i], refs[j]
		oa, ob := &objs[a.obj], &objs[b.obj]
		if oa.Source.File != ob.Source.File {
			return oa.Source.File < ob.Source.File
		}
		if oa.Source.Line != ob.Source.Line {
			return oa.Source.Line < ob.Source.Line
		}
		if oa.Ref != ob.Ref {
			return names[a.obj] < names[b.obj]
		}
		ca, cb := results[a.obj].reported[a.n].check, results[b.obj].reported[b.n].check
		if ca.Severity != cb.Severity {
			return ca.Severity > cb.Severity
		}
		return ca.ID < cb.ID
	})
	findings := make([]finding.Finding, len(refs))
	for k, r := range refs {
		findings[k] = results[r.obj].reported[r.n].finding(&objs[r.obj])
	}
	return findings, errs
}

// RunObject checks one object; ix holds the objects cross-object checks
// compare it with (nil means none: an index of obj alone).
func (e *Engine) RunObject(obj *kube.Object, ix *Index) ([]finding.Finding, error) {
	if ix == nil {
		ix = NewIndex([]kube.Object{*obj})
	}
	rs, err := e.check(nil, obj, ix)
	var findings []finding.Finding
	for i := range rs {
		findings = append(findings, rs[i].finding(obj))
	}
	return findings, err
}

// check runs the checks that apply to obj and appends what they report to
// dst.
func (e *Engine) check(dst []reported, obj *kube.Object, ix *Index) ([]reported, error) {
	exempt := exemptions(obj.Annotations)
	pass := Pass{Object: obj, Index: ix, reported: &dst}
	var errs []error
	// A workload's pod template is decoded once, for workload checks and
	// for checks of its kind alike (the kube-apiserver checks read a Pod's).
	if kube.IsWorkload(obj.Ref.Kind) && (len(e.workload) > 0 || len(e.byKind[obj.Ref.Kind]) > 0) {
		tmpl, err := obj.Template, error(nil)
		if tmpl == nil {
			tmpl, _, err = kube.PodTemplate(obj.Ref.Kind, obj.Raw)
		}
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
	return dst, errors.Join(errs...)
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
