package detect

import (
	"strings"
	"testing"
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
	ids := strings.Join(e.Rules(), ",")
	if strings.Contains(ids, "pod-exec,") {
		t.Error("disabled rule pod-exec still loaded")
	}
	for _, r := range e.rules {
		if r.ID == "daemonset-created" && r.Output != "ours" {
			t.Error("user rule did not replace the default daemonset-created")
		}
	}
}
