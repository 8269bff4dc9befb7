package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kustode/kustode/internal/testutil"
)

const execEvent = `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"e1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/shop/pods/web-1/exec","verb":"create","user":{"username":"alice","groups":["system:authenticated"]},"sourceIPs":["203.0.113.7"],"userAgent":"kubectl/v1.37.2","objectRef":{"resource":"pods","namespace":"shop","name":"web-1","subresource":"exec","apiVersion":"v1"},"responseStatus":{"code":101},"requestReceivedTimestamp":"2026-11-26T10:00:00.000000Z","stageTimestamp":"2026-11-26T10:00:01.000000Z"}`

func TestAuditReplayJSON(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "audit.log")
	if err := os.WriteFile(file, []byte(execEvent+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run(t, "audit", "replay", "-o", "json", file)
	if code != ExitFindings {
		t.Fatalf("exit %d, want %d (alerts raised): %s", code, ExitFindings, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one alert line, got %d:\n%s", len(lines), out)
	}
	var a map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &a); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"rule", "severity", "mitre", "auditIDs", "time", "user", "namespace", "object", "message"} {
		if _, ok := a[key]; !ok {
			t.Errorf("alert lacks %q: %s", key, lines[0])
		}
	}
	if a["rule"] != "pod-exec" || a["user"] != "alice" || a["namespace"] != "shop" || a["object"] != "pods/exec web-1" ||
		a["time"] != "2026-11-26T10:00:01Z" {
		t.Errorf("alert = %s", lines[0])
	}
}

func TestAuditReplayMalformedLineIsSkippedAndReported(t *testing.T) {
	input := "not json\n" + execEvent + "\n"
	var out, errb strings.Builder
	code := Run(t.Context(), []string{"audit", "replay", "-"}, strings.NewReader(input), &out, &errb)
	if code != ExitUsage {
		t.Errorf("exit %d, want %d for malformed input", code, ExitUsage)
	}
	if !strings.Contains(out.String(), "pod-exec") || !strings.Contains(out.String(), "1 events read, 1 alerts") {
		t.Errorf("the good event after the bad line was not evaluated:\n%s", out.String())
	}
	if !strings.Contains(errb.String(), "-:1") {
		t.Errorf("stderr does not locate the bad line: %q", errb.String())
	}
}

func TestRulesTest(t *testing.T) {
	code, out, _ := run(t, "rules", "test")
	if code != ExitOK || !strings.Contains(out, " passed, 0 failed") {
		t.Errorf("default pack tests: exit %d\n%s", code, out)
	}

	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("mine.yaml", `apiVersion: kustode.io/v1alpha1
kind: RuleSet
rules:
- id: configmap-deleted
  title: ConfigMap deleted
  severity: low
  mitre: [T1485]
  match: {verbs: [delete], resources: [configmaps]}
  condition: responseStatus.code < 400
  output: "{user} deleted ConfigMap {namespace}/{name}"
`)
	write("mine_test.yaml", `apiVersion: kustode.io/v1alpha1
kind: RuleTests
tests:
- name: delete is seen
  events: [{verb: delete, user: {username: bob}, objectRef: {resource: configmaps, namespace: a, name: b}, responseStatus: {code: 200}}]
  alerts: [configmap-deleted]
- name: wrong expectation
  events: [{verb: get, user: {username: bob}, objectRef: {resource: configmaps, namespace: a, name: b}, responseStatus: {code: 200}}]
  alerts: [configmap-deleted]
`)
	code, out, _ = run(t, "rules", "test", dir)
	if code != ExitFindings {
		t.Errorf("exit %d, want %d for a failing test", code, ExitFindings)
	}
	if !strings.Contains(out, "mine_test.yaml:7 wrong expectation: alerts [], want [configmap-deleted]") || !strings.Contains(out, "1 passed, 1 failed") {
		t.Errorf("output:\n%s", out)
	}
}

// --state carries what firstSeen rules learned from one replay to the next.
func TestAuditReplayState(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state.json")
	event := func(ns, at string) string {
		return `{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"` + ns + at + `","stage":"ResponseComplete","verb":"get","user":{"username":"ci"},"objectRef":{"resource":"secrets","namespace":"` + ns + `","name":"s"},"responseStatus":{"code":200},"stageTimestamp":"` + at + `"}` + "\n"
	}
	replay := func(input string) string {
		var out, errb strings.Builder
		Run(t.Context(), []string{"audit", "replay", "--state", state, "-o", "json", "-"}, strings.NewReader(input), &out, &errb)
		return out.String()
	}
	// Day 1 and 2: learning, then a known namespace.
	if out := replay(event("build", "2026-01-01T00:00:00Z") + event("build", "2026-01-02T01:00:00Z")); out != "" {
		t.Fatalf("alerts while learning: %s", out)
	}
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("state not written: %v", err)
	}
	// A later run remembers both the learning start and the known key.
	out := replay(event("build", "2026-01-03T00:00:00Z") + event("payments", "2026-01-03T00:00:01Z"))
	if strings.Count(out, "secret-read-first-time") != 1 || !strings.Contains(out, `"namespace":"payments"`) {
		t.Errorf("second run: %s", out)
	}
}

// --cluster-cidr sets where service-account tokens belong: the same request
// from 10.1.2.3 is inside the default private ranges, and outside a cluster
// whose networks are 10.244.0.0/16 and 10.0.0.0/20.
func TestAuditReplayClusterCIDR(t *testing.T) {
	const saEvent = `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"s1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/shop/configmaps","verb":"list","user":{"username":"system:serviceaccount:shop:web","groups":["system:serviceaccounts","system:authenticated"]},"sourceIPs":["10.1.2.3"],"userAgent":"web/1.0","objectRef":{"resource":"configmaps","namespace":"shop","apiVersion":"v1"},"responseStatus":{"code":200},"stageTimestamp":"2026-11-26T10:00:01.000000Z"}`
	file := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(file, []byte(saEvent+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := run(t, "audit", "replay", "-o", "json", file); code != ExitOK {
		t.Errorf("default ranges: exit %d, want %d (no alert)\n%s%s", code, ExitOK, out, stderr)
	}
	code, out, stderr := run(t, "audit", "replay", "-o", "json", "--cluster-cidr", "10.244.0.0/16,10.0.0.0/20", file)
	if code != ExitFindings || !strings.Contains(out, `"rule":"service-account-token-outside-cluster"`) {
		t.Errorf("--cluster-cidr: exit %d, want %d and service-account-token-outside-cluster\n%s%s", code, ExitFindings, out, stderr)
	}
	code, _, stderr = run(t, "audit", "replay", "--cluster-cidr", "10.244.0.0", file)
	if code != ExitUsage || !strings.Contains(stderr, `--cluster-cidr "10.244.0.0" is not a CIDR`) {
		t.Errorf("bad CIDR: exit %d, want %d and a message naming it; stderr %q", code, ExitUsage, stderr)
	}
}

// The example rules directory of docs/rules/writing.md loads on top of the
// default pack and its tests pass, so the guide's example stays true.
func TestRulesTestDocsExample(t *testing.T) {
	code, out, stderr := run(t, "rules", "test", filepath.Join("..", "..", "docs", "rules", "example"))
	if code != ExitOK || !strings.Contains(out, "7 passed, 0 failed") {
		t.Errorf("docs/rules/example: exit %d\n%s%s", code, out, stderr)
	}
}

// Replay's progress line counts what the sink saw every interval and is
// cleared at the end; a nil one does nothing; a buffer is no terminal.
func TestReplayProgress(t *testing.T) {
	var w testutil.SyncBuffer
	p := startReplayProgress(&w, 5*time.Millisecond)
	p.add(1200, 0)
	p.add(0, 3)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(w.String(), "1200 events read, 3 alerts") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	p.finish()
	p.finish()
	out := w.String()
	if !strings.Contains(out, "\r\x1b[Kkustode: 1200 events read, 3 alerts (") || !strings.HasSuffix(out, "\r\x1b[K") {
		t.Errorf("progress output %q", out)
	}
	var none *replayProgress
	none.add(1, 1)
	none.finish()
	if isTerminal(&w) {
		t.Error("a buffer taken for a terminal")
	}
}
