package detect

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kustode/kustode/internal/audit"
)

// The embedded default pack loads and compiles.
func TestDefaultRulesLoad(t *testing.T) {
	e, err := NewEngine(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(e.Rules()); n < 30 {
		t.Errorf("default pack has %d rules, want at least 30", n)
	}
}

// The default pack's rule tests pass.
func TestDefaultRuleTests(t *testing.T) {
	results, err := DefaultTests()
	if err != nil {
		t.Fatal(err)
	}
	if len(results) == 0 {
		t.Fatal("no rule tests")
	}
	for _, r := range results {
		if r.Err != nil {
			t.Errorf("%s:%d %s: %v", r.File, r.Line, r.Name, r.Err)
		}
	}
}

func TestLoadErrorsNameFileLineAndRule(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/bad.yaml", `apiVersion: kustode.io/v1alpha1
kind: RuleSet
rules:
- id: Bad_ID
  title: t
  severity: high
  mitre: [T1]
  condition: "true"
  output: o
- id: bad-cel
  title: t
  severity: urgent
  mitre: [T1]
  condition: "verb == "
  output: o
- id: not-bool
  title: t
  severity: low
  mitre: [T1]
  condition: "verb"
  output: o
- id: no-macro
  title: t
  severity: low
  mitre: [T1]
  condition: "@nope"
  output: o
`)
	_, err := NewEngine(Options{NoDefaults: true, Dirs: []string{dir}})
	if err == nil {
		t.Fatal("bad rules loaded")
	}
	for _, want := range []string{
		"bad.yaml:4: rule Bad_ID: id must be kebab-case",
		`bad.yaml:10: rule bad-cel: unknown severity "urgent"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	// CEL errors surface once the file's static problems are fixed.
	writeFile(t, dir+"/bad.yaml", strings.NewReplacer("Bad_ID", "bad-id", "urgent", "high").Replace(readFile(t, dir+"/bad.yaml")))
	_, err = NewEngine(Options{NoDefaults: true, Dirs: []string{dir}})
	for _, want := range []string{"bad.yaml:10: rule bad-cel: condition:", "bad.yaml:16: rule not-bool: condition: is string, want bool", "bad.yaml:22: rule no-macro: condition: unknown macro @nope"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// A user rule replaces a default one by ID; disabled: true removes it.
func TestUserRulesOverrideDefaults(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/mine.yaml", `apiVersion: kustode.io/v1alpha1
kind: RuleSet
rules:
- id: pod-exec
  disabled: true
- id: daemonset-created
  title: DaemonSet created (ours)
  severity: high
  mitre: [T1610]
  match: {verbs: [create], resources: [daemonsets]}
  condition: "true"
  output: "ours"
`)
	e, err := NewEngine(Options{Dirs: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(e.Rules(), "pod-exec") {
		t.Error("disabled rule pod-exec still loaded")
	}
	for _, r := range e.rules {
		if r.ID == "daemonset-created" && r.Output != "ours" {
			t.Error("user rule did not replace the default daemonset-created")
		}
	}
}

// Every default rule has a test in which it fires and a test in which it
// was a candidate (its match selected an event) but stayed silent.
func TestEveryDefaultRuleIsTestedBothWays(t *testing.T) {
	data, err := defaultRules.ReadFile("rules/default_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tf, err := parseTests(data)
	if err != nil {
		t.Fatal(err)
	}
	fired, silent := map[string]bool{}, map[string]bool{}
	for _, rt := range tf.Tests {
		e, err := NewEngine(Options{})
		if err != nil {
			t.Fatal(err)
		}
		got, candidates, err := rt.evaluate(e)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range got {
			fired[id] = true
		}
		for id := range candidates {
			if !slices.Contains(got, id) {
				silent[id] = true
			}
		}
	}
	e, err := NewEngine(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range e.Rules() {
		if !fired[id] {
			t.Errorf("rule %s has no test in which it fires", id)
		}
		if !silent[id] {
			t.Errorf("rule %s has no test in which it is a candidate and stays silent", id)
		}
	}
}

// What a firstSeen rule learned survives a restart through SaveState and
// LoadState: a known key stays silent, a new one alerts at once.
func TestFirstSeenStatePersists(t *testing.T) {
	read := func(user, ns string, at time.Duration) *audit.Event {
		return &audit.Event{
			AuditID: user + ns + at.String(), Stage: "ResponseComplete", Verb: "get",
			User:           audit.UserInfo{Username: user},
			ObjectRef:      audit.ObjectReference{Resource: "secrets", Namespace: ns, Name: "s"},
			ResponseStatus: audit.ResponseStatus{Code: 200},
			StageTimestamp: testEpoch.Add(at),
		}
	}
	first, err := NewEngine(Options{})
	if err != nil {
		t.Fatal(err)
	}
	first.Evaluate(read("ci", "build", 0))            // learning starts
	first.Evaluate(read("ci", "build", 25*time.Hour)) // learned, silent
	var saved bytes.Buffer
	if err := first.SaveState(&saved); err != nil {
		t.Fatal(err)
	}

	second, err := NewEngine(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := second.LoadState(&saved); err != nil {
		t.Fatal(err)
	}
	if as := second.Evaluate(read("ci", "build", 26*time.Hour)); len(as) != 0 {
		t.Errorf("a key learned before the restart alerted: %+v", as)
	}
	as := second.Evaluate(read("ci", "payments", 27*time.Hour))
	if len(as) != 1 || as[0].Rule != "secret-read-first-time" {
		t.Errorf("a new key after the restart (learning over) gave %+v, want secret-read-first-time", as)
	}
	if err := second.LoadState(strings.NewReader(`{"version": 9}`)); err == nil {
		t.Error("unknown state version accepted")
	}
}
