package detect

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kustode/kustode/internal/audit"
)

// TestFile holds rule tests, like promtool's rule unit tests:
//
//	apiVersion: kustode.io/v1alpha1
//	kind: RuleTests
//	lists: {allowed_registries: [ghcr.io]}  # optional: as Options.Lists, for every test of the file
//	tests:
//	- name: exec into a pod is seen
//	  interval: 1s           # time between events (default 1s)
//	  lists: {name: [...]}   # optional: on top of the file's lists, for this test
//	  events: [ {audit event}, ... ]   # partial events; stage defaults to ResponseComplete
//	  alerts: [pod-exec]     # the rule IDs that must fire, in order; [] expects silence
//
// Lists set the named lists of the rule files under test as Options.Lists
// does (a configured allow-list, say) on top of the engine's own options;
// a list no rule file declares fails the test.
type TestFile struct {
	APIVersion string              `yaml:"apiVersion"`
	Kind       string              `yaml:"kind"`
	Lists      map[string][]string `yaml:"lists"`
	Tests      []RuleTest          `yaml:"tests"`
}

// RuleTest is one test: events in, alerts (by rule ID, in order) out.
type RuleTest struct {
	Name     string              `yaml:"name"`
	Interval time.Duration       `yaml:"interval"`
	Lists    map[string][]string `yaml:"lists"`
	Events   []yaml.Node         `yaml:"events"`
	Alerts   []string            `yaml:"alerts"`
	line     int
}

// TestResult is the outcome of one rule test.
type TestResult struct {
	File, Name string
	Line       int
	// Err is nil when the test passed.
	Err error
}

// testEpoch is the time of a test's first event.
var testEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// RunTests runs every *_test.yaml under root in fsys. Each test gets a fresh
// engine, so state never leaks between tests: one built by newEngine, or,
// for a test that sets lists, one built with the options newEngine uses
// plus those lists (so newEngine must build alike on every call).
func RunTests(fsys fs.FS, root string, newEngine func() (*Engine, error)) ([]TestResult, error) {
	var names []string
	err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, "_test.yaml") {
			names = append(names, p)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var results []TestResult
	for _, n := range names {
		data, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		tf, err := parseTests(data)
		if err != nil {
			results = append(results, TestResult{File: n, Err: err})
			continue
		}
		var base *Options // the options newEngine builds with, for tests that set lists
		for _, t := range tf.Tests {
			res := TestResult{File: n, Name: t.Name, Line: t.line}
			lists := t.lists(tf)
			var engine *Engine
			if base == nil || len(lists) == 0 {
				if engine, err = newEngine(); err != nil {
					return nil, err
				}
				base = &engine.opts
			}
			if len(lists) > 0 {
				if engine, err = NewEngine(base.withLists(lists)); err != nil {
					res.Err = fmt.Errorf("lists: %w", err) // a list no rule file declares
					results = append(results, res)
					continue
				}
			}
			res.Err = t.run(engine)
			results = append(results, res)
		}
	}
	return results, nil
}

// RunTestsDir runs the tests of a directory on disk.
func RunTestsDir(dir string, newEngine func() (*Engine, error)) ([]TestResult, error) {
	res, err := RunTests(os.DirFS(dir), ".", newEngine)
	for i := range res {
		res[i].File = path.Join(dir, res[i].File)
	}
	return res, err
}

// DefaultTests runs the embedded default pack's tests (every
// rules/*_test.yaml: the audit rules' and the Kubernetes Event rules').
func DefaultTests() ([]TestResult, error) {
	res, err := RunTests(defaultRules, "rules", func() (*Engine, error) { return NewEngine(Options{}) })
	return res, err
}

func parseTests(data []byte) (*TestFile, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	var tf TestFile
	if err := doc.Decode(&tf); err != nil {
		return nil, err
	}
	if tf.APIVersion != "kustode.io/v1alpha1" || tf.Kind != "RuleTests" {
		return nil, fmt.Errorf("want apiVersion kustode.io/v1alpha1 and kind RuleTests")
	}
	// Record each test's line.
	if len(doc.Content) > 0 {
		m := doc.Content[0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == "tests" {
				for j, item := range m.Content[i+1].Content {
					if j < len(tf.Tests) {
						tf.Tests[j].line = item.Line
					}
				}
			}
		}
	}
	return &tf, nil
}

// lists returns the list overrides of a test: its file's, then its own.
func (t *RuleTest) lists(tf *TestFile) map[string][]string {
	if len(t.Lists) == 0 {
		return tf.Lists
	}
	out := maps.Clone(tf.Lists)
	if out == nil {
		out = map[string][]string{}
	}
	maps.Copy(out, t.Lists)
	return out
}

func (t *RuleTest) run(engine *Engine) error {
	got, _, err := t.evaluate(engine)
	if err != nil {
		return err
	}
	want := t.Alerts
	if want == nil {
		want = []string{}
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("alerts %v, want %v", got, want)
	}
	return nil
}

// evaluate feeds the test's events to engine and returns the rule IDs that
// alerted, in order, and the rules that were candidates for some event
// (their match selected it) whether or not they alerted.
func (t *RuleTest) evaluate(engine *Engine) (got []string, candidates map[string]bool, err error) {
	interval := t.Interval
	if interval == 0 {
		interval = time.Second
	}
	got = []string{}
	candidates = map[string]bool{}
	for i, node := range t.Events {
		var generic any
		if err := node.Decode(&generic); err != nil {
			return nil, nil, fmt.Errorf("event %d: %w", i+1, err)
		}
		raw, err := json.Marshal(generic)
		if err != nil {
			return nil, nil, fmt.Errorf("event %d: %w", i+1, err)
		}
		var ev audit.Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			return nil, nil, fmt.Errorf("event %d (line %d): %w", i+1, node.Line, err)
		}
		if ev.Stage == "" {
			ev.Stage = "ResponseComplete"
		}
		if ev.AuditID == "" {
			ev.AuditID = fmt.Sprintf("test-%d", i+1)
		}
		if ev.StageTimestamp.IsZero() {
			ev.StageTimestamp = testEpoch.Add(time.Duration(i) * interval)
		}
		for _, c := range engine.candidates(&ev) {
			candidates[c.ID] = true
		}
		for _, a := range engine.Evaluate(&ev) {
			got = append(got, a.Rule)
		}
	}
	return got, candidates, nil
}
