package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kustode/kustode/internal/store"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/kube"
)

func obj(kind, ns, name string) kube.Object {
	return kube.Object{Ref: finding.ObjectRef{Kind: kind, Namespace: ns, Name: name}}
}

func TestDependants(t *testing.T) {
	objs := []kube.Object{
		obj("Namespace", "", "shop"), obj("Namespace", "", "other"),
		obj("Deployment", "shop", "web"), obj("Pod", "shop", "bare"), obj("NetworkPolicy", "shop", "deny"),
		obj("Deployment", "other", "api"),
		obj("ClusterRole", "", "admin"), obj("RoleBinding", "other", "rb"), obj("ServiceAccount", "shop", "default"),
		obj("RuntimeClass", "", "gvisor"), obj("ConfigMap", "other", "cm"),
	}
	for _, tc := range []struct {
		name    string
		changed []objKey
		want    []string
	}{
		{"a workload alone", []objKey{{"Deployment", "shop", "web"}}, []string{"Deployment/shop/web"}},
		{"a deleted object", []objKey{{"Pod", "shop", "gone"}}, []string{"Pod/shop/gone"}},
		{"a NetworkPolicy: its namespace", []objKey{{"NetworkPolicy", "shop", "deny"}}, []string{
			"Deployment/shop/web", "Namespace/shop", "NetworkPolicy/shop/deny", "Pod/shop/bare", "ServiceAccount/shop/default"}},
		{"a Namespace: its objects", []objKey{{"Namespace", "", "other"}}, []string{
			"ConfigMap/other/cm", "Deployment/other/api", "Namespace/other", "RoleBinding/other/rb"}},
		{"RBAC: all RBAC and service accounts", []objKey{{"ClusterRole", "", "admin"}}, []string{
			"ClusterRole/admin", "RoleBinding/other/rb", "ServiceAccount/shop/default"}},
		{"a RuntimeClass: every workload", []objKey{{"RuntimeClass", "", "gvisor"}}, []string{
			"Deployment/other/api", "Deployment/shop/web", "Pod/shop/bare", "RuntimeClass/gvisor"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changed := map[objKey]struct{}{}
			for _, k := range tc.changed {
				changed[k] = struct{}{}
			}
			var got []string
			for k := range dependants(changed, objs) {
				got = append(got, k.String())
			}
			sort.Strings(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("dependants = %v, want %v", got, tc.want)
			}
		})
	}
}

// PolicyRules grants exactly RequiredPermissions plus the two reviews, one
// rule per API group, read-only.
func TestPolicyRules(t *testing.T) {
	granted := map[string]bool{}
	groups := map[string]bool{}
	for _, r := range PolicyRules() {
		if len(r.APIGroups) != 1 || groups[r.APIGroups[0]] {
			t.Errorf("rule %+v: want one rule per API group", r)
		}
		groups[r.APIGroups[0]] = true
		for _, res := range r.Resources {
			for _, v := range r.Verbs {
				review := res == "tokenreviews" || res == "subjectaccessreviews"
				if v != "list" && v != "watch" && (v != "create" || !review) {
					t.Errorf("verb %s on %s: serve only reads", v, res)
				}
				granted[r.APIGroups[0]+"/"+res+":"+v] = true
			}
		}
	}
	for _, p := range RequiredPermissions() {
		for _, v := range p.Verbs {
			if !granted[p.Group+"/"+p.Resource+":"+v] {
				t.Errorf("%s/%s %s required but not granted", p.Group, p.Resource, v)
			}
		}
	}
	if !granted["/secrets:list"] || !granted["/events:watch"] {
		t.Error("Secrets (metadata) and Events must be readable")
	}
}

// countingStore is a FindingStore that records the scope of every
// SyncFindings call.
type countingStore struct {
	*store.Store
	scopes []int // objects in scope, per call
}

func (c *countingStore) SyncFindings(ctx context.Context, scope store.Scope, current []finding.Finding, now time.Time) (store.SyncResult, error) {
	c.scopes = append(c.scopes, len(scope.Objects))
	return c.Store.SyncFindings(ctx, scope, current, now)
}

// TestEvaluateInChunks: a full evaluation judges and stores the objects
// judgeChunk at a time, and gives what one evaluation of everything gives:
// every current finding open, the findings of deleted objects resolved,
// first-seen times kept. A partial evaluation whose dependants span several
// chunks (a RuntimeClass change) does the same for its objects.
func TestEvaluateInChunks(t *testing.T) {
	ctx := t.Context()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	inv := NewInventory(nil, nil, nil, nil, nil, log, nil)
	const n = 2*judgeChunk + 88
	var entries []*entry
	for i := range n {
		sc := map[bool]string{true: `,"securityContext":{"privileged":true}`}[i%3 == 0]
		e := trimmedPod(t, inv, fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p%04d","namespace":"ns%d"},
			"spec":{"containers":[{"name":"c","image":"nginx:1.%d"%s}]}}`, i, i%4, i, sc))
		entries = append(entries, e.(*entry))
	}
	sortEntries(entries)
	st, err := store.Open(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	cs := &countingStore{Store: st}
	engine := checksEngine(t)
	p := NewPosture(inv, engine, cs, newMetrics(prometheus.NewRegistry()), log)
	current := entries
	p.snapshot = func() []*entry { return current }

	// want: the open findings of one judgement of the current objects.
	want := func() []string {
		objs, ix := indexEntries(current)
		targets := make([]int, len(current))
		for i := range targets {
			targets[i] = i
		}
		var keys []string
		for _, f := range p.judge(engine, ix, current, objs, targets) {
			keys = append(keys, store.FindingKey(f))
		}
		slices.Sort(keys)
		return slices.Compact(keys)
	}
	open := func() map[string]store.Finding {
		fs, err := st.Findings(ctx, store.FindingFilter{Status: store.StatusOpen, Limit: 100000})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]store.Finding{}
		for _, f := range fs {
			out[f.Key] = f
		}
		return out
	}
	check := func(step string) map[string]store.Finding {
		t.Helper()
		got := open()
		keys := slices.Sorted(maps.Keys(got))
		if w := want(); !slices.Equal(keys, w) {
			t.Errorf("%s: %d open findings, want %d", step, len(keys), len(w))
		}
		return got
	}

	p.full = true
	p.evaluate(ctx)
	if !slices.Equal(cs.scopes, []int{judgeChunk, judgeChunk, 88}) {
		t.Errorf("full evaluation stored chunks of %v objects, want %d, %d, 88", cs.scopes, judgeChunk, judgeChunk)
	}
	first := check("first full evaluation")
	if len(first) < n/3 {
		t.Fatalf("%d open findings for %d pods, a third of them privileged", len(first), n)
	}

	// Delete every fifth pod while serve is down: the next full evaluation
	// resolves their findings and keeps the others' first-seen times.
	var deleted []*entry
	current = slices.DeleteFunc(slices.Clone(entries), func(e *entry) bool {
		if strings.HasSuffix(e.name, "0") || strings.HasSuffix(e.name, "5") {
			deleted = append(deleted, e)
			return true
		}
		return false
	})
	time.Sleep(time.Millisecond) // a later evaluation time
	p.full = true
	p.evaluate(ctx)
	second := check("after deletions")
	for k, f := range second {
		if !f.FirstSeen.Equal(first[k].FirstSeen) {
			t.Errorf("%s: first seen %v, was %v", k, f.FirstSeen, first[k].FirstSeen)
		}
	}
	resolved, err := st.Findings(ctx, store.FindingFilter{Status: store.StatusResolved, Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	if len(resolved) != len(first)-len(second) || len(resolved) == 0 {
		t.Errorf("%d resolved findings, want %d", len(resolved), len(first)-len(second))
	}
	for _, f := range resolved {
		if f.Object.Name[len(f.Object.Name)-1] != '0' && f.Object.Name[len(f.Object.Name)-1] != '5' {
			t.Errorf("finding of %s resolved; only deleted pods' should be", f.Object.Name)
		}
	}

	// A partial evaluation over every workload (a RuntimeClass, since
	// deleted, changed) and a pod deleted since: chunks again, then the
	// deleted objects.
	gone := current[0]
	current = current[1:]
	cs.scopes = nil
	p.Changed(objKey{Kind: "RuntimeClass", Name: "gvisor"})
	p.Changed(gone.key())
	p.evaluate(ctx)
	if want := []int{judgeChunk, len(current) - judgeChunk, 2}; !slices.Equal(cs.scopes, want) {
		t.Errorf("partial evaluation stored scopes of %v objects, want %v: two chunks of pods, then the gone pod and RuntimeClass", cs.scopes, want)
	}
	check("after a partial evaluation")
}

// gcBurst lowers GOGC while any burst runs, to the lowest goal of those
// running, and restores it after the last one ends, however they overlap;
// a GOGC that is off stays off.
func TestGCBurst(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	percent := func() int {
		p := debug.SetGCPercent(0)
		debug.SetGCPercent(p)
		return p
	}
	end1 := gcBurst(4)
	if got := percent(); got != 25 {
		t.Errorf("GOGC during a burst /4: %d, want 25", got)
	}
	end2 := gcBurst(10)
	if got := percent(); got != 10 {
		t.Errorf("GOGC during bursts /4 and /10: %d, want 10", got)
	}
	end2()
	end2() // ending twice ends once
	if got := percent(); got != 25 {
		t.Errorf("GOGC after the /10 burst ended: %d, want 25", got)
	}
	end1()
	if got := percent(); got != 100 {
		t.Errorf("GOGC after the bursts %d, want 100", got)
	}
	debug.SetGCPercent(20)
	end := gcBurst(10)
	if got := percent(); got != 5 {
		t.Errorf("GOGC during a burst /10 from 20: %d, want the floor 5", got)
	}
	end()
	if got := percent(); got != 20 {
		t.Errorf("GOGC after a burst from 20: %d", got)
	}
	debug.SetGCPercent(-1)
	end = gcBurst(4)
	if got := percent(); got != -1 {
		t.Errorf("GOGC off became %d during a burst", got)
	}
	end()
}
