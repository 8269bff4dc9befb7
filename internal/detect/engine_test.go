package detect

import (
	"bytes"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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
		dir + "/bad.yaml:4: rule Bad_ID: id must be kebab-case", // the path, as the user named the directory
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
	names, err := fs.Glob(defaultRules, "rules/*_test.yaml")
	if err != nil || len(names) == 0 {
		t.Fatalf("no rule test files: %v", err)
	}
	base, err := NewEngine(Options{})
	if err != nil {
		t.Fatal(err)
	}
	fired, silent := map[string]bool{}, map[string]bool{}
	for _, name := range names {
		data, err := defaultRules.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		tf, err := parseTests(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, rt := range tf.Tests {
			e, err := NewEngine(Options{Lists: rt.lists(tf)})
			if err != nil {
				t.Fatalf("%s: %s: %v", name, rt.Name, err)
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
	}
	for _, id := range base.Rules() {
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

// allowListRules is a rule file with a list meant to be set from
// configuration, empty by default.
const allowListRules = `apiVersion: kustode.io/v1alpha1
kind: RuleSet
lists:
  watched_users: []
rules:
- id: watched-user
  title: t
  severity: low
  mitre: [T1078]
  condition: 'user.username in lists.watched_users'
  output: "{user}"
`

// Options.Lists replaces a list every loaded file declaring it; a name no
// file declares is an error, not a silently ignored setting.
func TestOptionsListsReplaceDeclaredLists(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/mine.yaml", allowListRules)
	ev := &audit.Event{AuditID: "1", Stage: "ResponseComplete", Verb: "get", User: audit.UserInfo{Username: "alice"}}
	for _, tc := range []struct {
		name  string
		lists map[string][]string
		want  int
	}{
		{"declared default", nil, 0},
		{"set", map[string][]string{"watched_users": {"bob", "alice"}}, 1},
		{"set empty", map[string][]string{"watched_users": {}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewEngine(Options{Dirs: []string{dir}, Lists: tc.lists})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(e.Evaluate(ev)); got != tc.want {
				t.Errorf("%d alerts, want %d", got, tc.want)
			}
		})
	}
	// The default pack declares allowed_registries.
	if _, err := NewEngine(Options{Lists: map[string][]string{"allowed_registries": {"ghcr.io"}}}); err != nil {
		t.Errorf("allowed_registries: %v", err)
	}
	_, err := NewEngine(Options{Dirs: []string{dir}, Lists: map[string][]string{"watched_user": {"alice"}}})
	if want := "detect: list watched_user set in options is not declared by any rule file"; err == nil || err.Error() != want {
		t.Errorf("undeclared list: error %v, want %q", err, want)
	}
}

// Output placeholders name fields of the recorded object; values are
// inserted as they are, never expanded again.
func TestOutputObjectFields(t *testing.T) {
	// engine has one rule that fires on every event, with this output.
	engine := func(output string) *Engine {
		dir := t.TempDir()
		writeFile(t, dir+"/out.yaml", `apiVersion: kustode.io/v1alpha1
kind: RuleSet
rules:
- id: out
  title: t
  severity: low
  mitre: [T1078]
  condition: "true"
  output: "`+output+`"
`)
		e, err := NewEngine(Options{NoDefaults: true, Dirs: []string{dir}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := engine("{user}: {requestObject.involvedObject.kind} {requestObject.involvedObject.name}, count {requestObject.count}, {requestObject.missing.field}, {requestObject.message} {unknown}")
	ev := &audit.Event{
		AuditID: "1", Stage: "ResponseComplete", Verb: "create", User: audit.UserInfo{Username: "kubelet"},
		RequestObject: []byte(`{"involvedObject": {"kind": "Pod", "name": "web-1"}, "count": 3, "message": "{user} {requestObject.count}"}`),
	}
	as := e.Evaluate(ev)
	if len(as) != 1 {
		t.Fatalf("%d alerts, want 1", len(as))
	}
	if want := "kubelet: Pod web-1, count 3, , {user} {requestObject.count} {unknown}"; as[0].Message != want {
		t.Errorf("message %q, want %q", as[0].Message, want)
	}
	// "{namespace}/{name}" drops the '/' when either is empty.
	e = engine("{user} wrote {resource} {namespace}/{name} ({namespace})")
	for _, tc := range []struct{ ns, name, want string }{
		{"", "view", "alice wrote clusterroles view ()"},
		{"shop", "view", "alice wrote clusterroles shop/view (shop)"},
		{"shop", "", "alice wrote clusterroles shop (shop)"}, // a list or a create posted to the collection
	} {
		ev := &audit.Event{AuditID: "ns-" + tc.ns + tc.name, Stage: "ResponseComplete", Verb: "create", User: audit.UserInfo{Username: "alice"},
			ObjectRef: audit.ObjectReference{Resource: "clusterroles", Namespace: tc.ns, Name: tc.name}}
		if as := e.Evaluate(ev); len(as) != 1 || as[0].Message != tc.want {
			t.Errorf("namespace %q: alerts %+v, want the message %q", tc.ns, as, tc.want)
		}
	}

	long := strings.Repeat("é", maxFieldLen)
	if got := fieldString(map[string]any{"m": long}, "m"); len(got) > maxFieldLen+len("…") || !strings.HasSuffix(got, "…") || !utf8.ValidString(got) {
		t.Errorf("a long field is not cut at a rune boundary: %d bytes", len(got))
	}
}

// A rule test file's lists, and a test's own, configure the engine its
// tests run on; a list no rule file declares fails the test.
func TestRuleTestLists(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/mine.yaml", allowListRules)
	writeFile(t, dir+"/mine_test.yaml", `apiVersion: kustode.io/v1alpha1
kind: RuleTests
lists:
  watched_users: [alice]
tests:
- name: file lists
  events:
  - {verb: get, user: {username: alice}}
  alerts: [watched-user]
- name: the test's lists go on top
  lists: {watched_users: []}
  events:
  - {verb: get, user: {username: alice}}
  alerts: []
- name: undeclared list
  lists: {watched_user: [bob]}
  events:
  - {verb: get, user: {username: bob}}
  alerts: []
`)
	results, err := RunTestsDir(dir, func() (*Engine, error) { return NewEngine(Options{Dirs: []string{dir}}) })
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 3 {
		t.Fatalf("%d results, want 3", len(results))
	}
	for _, r := range results[:2] {
		if r.Err != nil {
			t.Errorf("%s: %v", r.Name, r.Err)
		}
	}
	if err := results[2].Err; err == nil || !strings.Contains(err.Error(), "list watched_user set in options is not declared") {
		t.Errorf("undeclared list in a test: %v", err)
	}
}
