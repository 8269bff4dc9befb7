package detect

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/cel-go/cel"

	"github.com/kustode/kustode/internal/audit"
	"github.com/kustode/kustode/internal/testcorpus"
)

// nativeRulesYAML exercises every construct the Go translation covers, and
// some it leaves to CEL, beside the default pack's rules.
const nativeRulesYAML = `apiVersion: kustode.io/v1alpha1
kind: RuleSet
lists:
  nets: ["10.0.0.0/8", "bad", "::1/128"]
  names: [alice, bob]
rules:
- id: n-ops
  title: t
  severity: low
  mitre: [T1]
  condition: >-
    (verb == "get" || verb != "list") && !(stage == "Panic") && requestURI.startsWith("/api") == true &&
    userAgent.endsWith("/1.0") || userAgent.contains("curl") ||
    responseStatus.code >= 400 && responseStatus.code <= 499 || responseStatus.code > 500 && 600 > responseStatus.code || 201 == responseStatus.code
  output: o
- id: n-fields
  title: t
  severity: low
  mitre: [T1]
  condition: >-
    user.uid == "" && impersonatedUser.uid != "x" && objectRef.apiGroup + "/" + objectRef.apiVersion != "apps/v1" &&
    objectRef.name.glob("web-*") && responseStatus.status == "Failure" || responseStatus.reason == "Forbidden" ||
    responseStatus.message.contains("denied") || impersonatedUser.groups.all(g, g.startsWith("system:"))
  output: o
- id: n-lists
  title: t
  severity: low
  mitre: [T1]
  condition: >-
    user.username in lists.names || size(sourceIPs) > 1 && sourceIPs[1] == "10.0.0.1" ||
    size(sourceIPs) > 0 && inCIDR(sourceIPs[0], lists.nets) || sourceIPs.exists(ip, inCIDR(ip, ["192.168.0.0/16"])) ||
    lists.names.exists(n, user.groups.exists(g, g == n)) || size(user.groups) == 0 && sourceIPs[0] == "::1"
  output: o
- id: n-annotations
  title: t
  severity: low
  mitre: [T1]
  condition: >-
    "a" in annotations && annotations["a"] == "b" || annotations["c"] != "d" ||
    (annotations["e"] == "f" ? user.username == "x" : verb == "y")
  output: o
- id: n-opaque
  title: t
  severity: low
  mitre: [T1]
  condition: >-
    has(user.username) && user.extra.size() >= 0 && requestObject == null ||
    responseObject != null && objectRef.uid == "" || user.username.matches("^sys") ||
    verb.lowerAscii() == "get" || lists.missing.exists(x, x == verb) || sourceIPs[5] == "x" ||
    imageRegistry(userAgent) == "docker.io" && imageRepository(userAgent).endsWith("/curl")
  output: o
- id: n-objects
  title: t
  severity: low
  mitre: [T1]
  condition: 'requestObject == null && verb == "get" || null != responseObject && verb == "list"'
  output: o
- id: n-guards
  title: t
  severity: low
  mitre: [T1]
  condition: >-
    verb != "x" && user.username == "alice" && objectRef.namespace in ["kube-system", "shop"] &&
    "web-1" == objectRef.name && user.username in lists.names
  output: o
- id: n-guard-list
  title: t
  severity: low
  mitre: [T1]
  condition: 'objectRef.namespace in ["kube-system", "shop", "kustode"] && (user.username == "alice" || user.username == "bob")'
  output: o
- id: n-guard-empty
  title: t
  severity: low
  mitre: [T1]
  condition: 'objectRef.name in [] && verb == "get"'
  output: o
- id: n-pods
  title: t
  severity: low
  mitre: [T1]
  condition: >-
    privileged(responseObject) || size(hostNamespaces(responseObject)) == 1 && verb == "get" ||
    hostPaths(responseObject).exists(p, p.startsWith("/var")) || "NET_RAW" in addedCapabilities(responseObject) ||
    !privileged(requestObject) && size(hostPaths(requestObject)) == 0
  output: o
- id: n-threshold
  title: t
  severity: low
  mitre: [T1]
  condition: "true"
  threshold: {count: 2, window: 1m, by: 'impersonatedUser.username != "" ? impersonatedUser.username : user.username + "|" + objectRef.namespace'}
  output: o
- id: n-threshold-opaque
  title: t
  severity: low
  mitre: [T1]
  condition: "true"
  threshold: {count: 2, window: 1m, by: 'annotations["k"] + sourceIPs[0]'}
  output: o
`

// nativeCheckEngines builds, once, the engines whose rules the agreement
// tests compare: the default pack and the rules above.
var nativeCheckEngines = sync.OnceValues(func() ([]*Engine, error) {
	def, err := NewEngine(Options{Lists: map[string][]string{"allowed_registries": {"ghcr.io", "*.example.com", "docker.io/library"}}})
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "native")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "n.yaml"), []byte(nativeRulesYAML), 0o600); err != nil {
		return nil, err
	}
	extra, err := NewEngine(Options{NoDefaults: true, Dirs: []string{dir}})
	if err != nil {
		return nil, err
	}
	return []*Engine{def, extra}, nil
})

// nativeTally counts, per expression, how often Go answered.
type nativeTally struct{ known, total int }

// checkNative compares, on one event, every translated expression of the
// engines' rules with its CEL program: where Go answers, CEL must give the
// same value, without error.
func checkNative(t testing.TB, engines []*Engine, ev *audit.Event, tally map[string]*nativeTally) {
	t.Helper()
	f := &frame{ev: ev}
	for _, e := range engines {
		for _, c := range e.rules {
			act := &activation{ev: ev, lists: c.lists}
			check := func(what string, native boolFn, p cel.Program) {
				if native == nil {
					return
				}
				got := native(f)
				if tally != nil {
					k := c.ID + " " + what
					if tally[k] == nil {
						tally[k] = &nativeTally{}
					}
					tally[k].total++
					if got != triUnknown {
						tally[k].known++
					}
				}
				if got == triUnknown {
					return
				}
				out, _, err := p.Eval(act)
				if err != nil {
					t.Fatalf("rule %s %s: Go says %v, CEL fails: %v\nevent: %s", c.ID, what, got == triTrue, err, eventJSON(ev))
				}
				if b, ok := out.Value().(bool); !ok || b != (got == triTrue) {
					t.Fatalf("rule %s %s: Go says %v, CEL %v\nevent: %s", c.ID, what, got == triTrue, out.Value(), eventJSON(ev))
				}
			}
			check("condition", c.nativeCond, c.condition)
			if c.guarded && !slices.Contains(c.guardValues, c.guard.value(ev)) {
				// The index skips the rule: CEL must not match.
				if out, _, err := c.condition.Eval(act); err == nil && out.Value() == true {
					t.Fatalf("rule %s: guard %d %q skips an event it matches\nevent: %s", c.ID, c.guard, c.guardValues, eventJSON(ev))
				}
			}
			for i, p := range c.exceptCEL {
				check(fmt.Sprintf("exception %d", i), c.nativeExcept[i], p)
			}
			if c.nativeBy != nil {
				if got, ok := c.nativeBy(f); ok {
					out, _, err := c.by.Eval(act)
					if err != nil {
						t.Fatalf("rule %s key: Go says %q, CEL fails: %v\nevent: %s", c.ID, got, err, eventJSON(ev))
					}
					if s, _ := out.Value().(string); s != got {
						t.Fatalf("rule %s key: Go says %q, CEL %v\nevent: %s", c.ID, got, out.Value(), eventJSON(ev))
					}
				}
			}
		}
	}
}

func eventJSON(ev *audit.Event) string {
	b, _ := json.Marshal(ev)
	return string(b)
}

// TestNativeAgreesWithCEL checks the Go translation of every default rule
// (and of rules using every construct it covers) against CEL on the rule
// tests' events, the benchmark's, the shared corpus's when present, and
// thousands of generated ones.
func TestNativeAgreesWithCEL(t *testing.T) {
	engines, err := nativeCheckEngines()
	if err != nil {
		t.Fatal(err)
	}
	events := ruleTestEvents(t)
	events = append(events, benchEvents(20)...)
	events = append(events, corpusEvents(t)...)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		events = append(events, randomEvent(rng))
	}
	tally := map[string]*nativeTally{}
	for i := range events {
		checkNative(t, engines, &events[i], tally)
	}
	// The default pack's conditions should mostly be answered in Go: a
	// rule whose condition never is has lost its translation.
	for _, c := range engines[0].rules {
		if c.nativeCond == nil {
			t.Logf("rule %s: condition not translated", c.ID)
			continue
		}
		x := tally[c.ID+" condition"]
		t.Logf("rule %-40s Go answered %5.1f%% of %d", c.ID, 100*float64(x.known)/float64(x.total), x.total)
	}
	guards := map[string]string{}
	for _, e := range engines {
		for _, c := range e.rules {
			if c.guarded {
				guards[c.ID] = fmt.Sprint(c.guard, c.guardValues)
			}
		}
	}
	t.Logf("guards: %v", guards)
	for id, want := range map[string]string{"n-guards": "0 [alice]", "n-guard-list": "1 [kube-system shop kustode]", "n-guard-empty": "2 []",
		"privileged-token-requested": "1 [kube-system]", "anonymous-request-allowed": "0 [system:anonymous]"} {
		if guards[id] != want {
			t.Errorf("rule %s: guard %q, want %q", id, guards[id], want)
		}
	}
	for _, id := range []string{"pod-exec", "pod-exec-token-read", "anonymous-request-allowed", "forbidden-burst", "service-account-token-outside-cluster",
		"service-account-unusual-client", "impersonation", "system-masters-used", "impersonation-of-system-identity", "workload-in-system-namespace"} {
		if x := tally[id+" condition"]; x == nil || x.known != x.total {
			t.Errorf("rule %s: condition not always answered in Go (%+v)", id, x)
		}
	}
}

// ruleTestEvents returns the events of the default pack's rule tests.
func ruleTestEvents(t *testing.T) []audit.Event {
	t.Helper()
	var out []audit.Event
	err := fs.WalkDir(defaultRules, "rules", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, "_test.yaml") {
			return err
		}
		data, err := fs.ReadFile(defaultRules, p)
		if err != nil {
			return err
		}
		tf, err := parseTests(data)
		if err != nil {
			return err
		}
		for _, test := range tf.Tests {
			for _, node := range test.Events {
				var generic any
				if err := node.Decode(&generic); err != nil {
					return err
				}
				raw, err := json.Marshal(generic)
				if err != nil {
					return err
				}
				var ev audit.Event
				if err := json.Unmarshal(raw, &ev); err != nil {
					return fmt.Errorf("%s:%d: %w", p, node.Line, err)
				}
				out = append(out, ev)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 100 {
		t.Fatalf("only %d rule test events", len(out))
	}
	return out
}

// corpusEvents returns every event of the shared audit corpus, or none
// when it is absent.
func corpusEvents(t *testing.T) []audit.Event {
	t.Helper()
	root := os.Getenv("KUSTODE_CORPUS")
	if root == "" {
		root = filepath.Join("..", "..", "..", "shared", "corpus")
	}
	if _, err := os.Stat(filepath.Join(root, "audit")); err != nil {
		t.Logf("corpus not present: %v", err)
		return nil
	}
	dir := testcorpus.Dir(t, "audit")
	var out []audit.Event
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p) //nolint:gosec // the corpus the test was pointed at
		if err != nil {
			return err
		}
		_, _ = audit.Read(context.Background(), bytes.NewReader(data), audit.SinkFunc(func(_ context.Context, evs []audit.Event) error {
			out = append(out, evs...)
			return nil
		}), audit.ReadOptions{Source: p})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d corpus events", len(out))
	return out
}

// randomEvent combines field values that the default rules and the rules
// above test for, and ones they do not.
func randomEvent(rng *rand.Rand) audit.Event {
	pick := func(vals ...string) string { return vals[rng.IntN(len(vals))] }
	picks := func(vals ...string) []string {
		switch rng.IntN(4) {
		case 0:
			return nil
		case 1:
			return []string{}
		}
		out := make([]string, 1+rng.IntN(3))
		for i := range out {
			out[i] = pick(vals...)
		}
		return out
	}
	users := []string{"", "alice", "bob", "system:anonymous", "system:serviceaccount:shop:web", "system:serviceaccount:kube-system:deployment-controller",
		"system:serviceaccount:kustode:kustode", "system:node:n1", "system:kube-proxy", "system:admin", "system:serviceaccount:", "x"}
	groups := []string{"system:masters", "system:authenticated", "system:nodes", "system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token",
		"alice", "bob", "system:serviceaccounts", ""}
	ev := audit.Event{
		Stage:      audit.Stage(pick("ResponseComplete", "ResponseStarted", "Panic", "")),
		AuditID:    fmt.Sprint(rng.Int()),
		Verb:       pick("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "y", ""),
		RequestURI: pick("/healthz", "/livez", "/version", "/api/v1/pods", "/apis/apps/v1/deployments", "", "/metrics"),
		UserAgent:  pick("", "curl/8.0", "kubectl/v1.31", "web/1.0", "python-requests/2.31", "Go-http-client/1.1", "nginx", "library/curl", "docker.io/x/curl"),
		User:       audit.UserInfo{Username: pick(users...), UID: pick("", "u1"), Groups: picks(groups...)},
		SourceIPs:  picks("10.0.0.1", "8.8.8.8", "::1", "2001:db8::1", "192.168.1.1", "bad", ""),
		ObjectRef: audit.ObjectReference{
			Resource:    pick("pods", "secrets", "configmaps", "deployments", "clusterrolebindings", "roles", "serviceaccounts", "events", "namespaces", ""),
			Subresource: pick("", "", "exec", "attach", "status", "token", "proxy"),
			Namespace:   pick("", "kube-system", "kube-public", "shop", "kustode"),
			Name:        pick("", "web-1", "cluster-admin", "x"),
			APIGroup:    pick("", "apps", "rbac.authorization.k8s.io"),
			APIVersion:  pick("", "v1"),
		},
		ResponseStatus: audit.ResponseStatus{
			Code:    int32([]int{0, 101, 200, 201, 399, 400, 403, 404, 499, 500, 501, 599, 600}[rng.IntN(13)]),
			Status:  pick("", "Failure", "Success"),
			Reason:  pick("", "Forbidden", "NotFound"),
			Message: pick("", "access denied", "ok"),
		},
	}
	if rng.IntN(3) == 0 {
		ev.ImpersonatedUser = &audit.UserInfo{Username: pick(users...), UID: pick("", "x"), Groups: picks(groups...)}
	}
	switch rng.IntN(4) {
	case 0:
		ev.Annotations = map[string]string{"a": pick("b", "c"), "c": pick("d", "e"), "e": pick("f", "g")}
	case 1:
		ev.Annotations = map[string]string{"kustode.io/source": "kubernetes-event"}
	case 2:
		ev.Annotations = map[string]string{}
	}
	objects := []string{
		`{"kind":"Pod","spec":{"hostNetwork":true,"containers":[{"name":"c","image":"nginx","securityContext":{"privileged":true}}]}}`,
		`{"type":"Warning","reason":"BackOff","message":"Back-off restarting failed container"}`,
		`{"kind":"Deployment","spec":{"template":{"spec":{"hostPID":true,"volumes":[{"name":"v","hostPath":{"path":"/etc"}}],` +
			`"initContainers":[{"name":"i","securityContext":{"capabilities":{"add":["cap_sys_admin","NET_RAW"]}}}]}}}}`,
		`{"kind":"CronJob","spec":{"jobTemplate":{"spec":{"template":{"spec":{"hostIPC":true,"volumes":[{"hostPath":{"path":"/var/run/docker.sock"}}]}}}}}}`,
		`{"kind":"Pod","Spec":{"hostNetwork":true},"spec":{"hostPID":false}}`,
		`{"kind":"Pod","spec":{"terminationGracePeriodSeconds":1e2,"containers":[{"securityContext":{"privileged":true}}]}}`,
		`{"kind":"Pod","spec":{"containers":"nope"}}`,
		`{"kind":7,"spec":{}}`, `{"kind":"Pod",`, `null`, `[1,2]`, `"text"`, `{}`,
	}
	if rng.IntN(2) == 0 {
		ev.RequestObject = []byte(objects[rng.IntN(len(objects))])
	}
	if rng.IntN(4) == 0 {
		ev.ResponseObject = []byte(objects[rng.IntN(len(objects))])
	}
	return ev
}

// FuzzNativeAgreesWithCEL checks the Go translation against CEL on
// whatever decodes as an audit event.
func FuzzNativeAgreesWithCEL(f *testing.F) {
	for _, ev := range benchEvents(10) {
		f.Add([]byte(eventJSON(&ev)))
	}
	for _, s := range []string{
		`{"verb":"create","user":{"username":"system:serviceaccount:a:b"},"sourceIPs":["8.8.8.8"],"userAgent":"curl/8"}`,
		`{"impersonatedUser":{"username":"system:admin","groups":["system:masters"]},"responseStatus":{"code":200}}`,
		`{"annotations":{"a":"b","kustode.io/source":"kubernetes-event"},"requestObject":{"type":"Warning"}}`,
		`{"user":{"username":"system:anonymous","groups":null},"requestURI":"/healthz","sourceIPs":[]}`,
	} {
		f.Add([]byte(s))
	}
	engines, err := nativeCheckEngines()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var ev audit.Event
		if audit.DecodeEvent(data, &ev) != nil {
			return
		}
		checkNative(t, engines, &ev, nil)
	})
}
