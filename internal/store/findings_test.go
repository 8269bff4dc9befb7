package store

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/kustode/kustode/internal/finding"
)

func TestFindingKey(t *testing.T) {
	f := fnd("privileged", obj("Pod", "ns", "p"), finding.High, "container c is privileged")
	// The key is stored and shared with API clients: it must never change,
	// or every stored finding would reopen as a new one.
	if got, want := FindingKey(f), "4ae9e0811b9f0d6e2d9a2afa671b3ba1"; got != want {
		t.Errorf("FindingKey = %q, want %q", got, want)
	}
	same := []func(*finding.Finding){
		func(f *finding.Finding) { f.Severity = finding.Low },
		func(f *finding.Finding) { f.Title = "other" },
		func(f *finding.Finding) { f.Remediation = "other" },
		func(f *finding.Finding) { f.Object.APIVersion = "v2" },
		func(f *finding.Finding) { f.File, f.Line = "x.yaml", 3 },
		func(f *finding.Finding) { f.Frameworks.CIS = []string{"1"} },
	}
	differs := []func(*finding.Finding){
		func(f *finding.Finding) { f.CheckID = "other" },
		func(f *finding.Finding) { f.Object.Kind = "Deployment" },
		func(f *finding.Finding) { f.Object.Namespace = "other" },
		func(f *finding.Finding) { f.Object.Name = "other" },
		func(f *finding.Finding) { f.Message = "other" },
		// Parts are delimited: moving text between them changes the key.
		func(f *finding.Finding) { f.Object.Namespace, f.Object.Name = "nsp", "" },
	}
	for i, change := range same {
		g := f
		change(&g)
		if FindingKey(g) != FindingKey(f) {
			t.Errorf("same[%d]: key changed", i)
		}
	}
	for i, change := range differs {
		g := f
		change(&g)
		if FindingKey(g) == FindingKey(f) {
			t.Errorf("differs[%d]: key did not change", i)
		}
	}
}

// lifecycle is the expected stored state of one finding.
type lifecycle struct {
	status     Status
	first      time.Time
	last       time.Time
	resolvedAt time.Time // zero: nil
	reopened   int
}

func checkLifecycle(t *testing.T, step string, got Finding, want lifecycle) {
	t.Helper()
	var resolved time.Time
	if got.ResolvedAt != nil {
		resolved = *got.ResolvedAt
		if resolved.IsZero() {
			t.Errorf("%s: %s: ResolvedAt is a zero time, not nil", step, got.Key)
		}
	}
	if got.Status != want.status || !got.FirstSeen.Equal(want.first) || !got.LastSeen.Equal(want.last) ||
		!resolved.Equal(want.resolvedAt) || got.Reopened != want.reopened {
		t.Errorf("%s: %s %s: status %s first %v last %v resolved %v reopened %d; want %s %v %v %v %d",
			step, got.CheckID, got.Message, got.Status, got.FirstSeen, got.LastSeen, resolved, got.Reopened,
			want.status, want.first, want.last, want.resolvedAt, want.reopened)
	}
	for _, tm := range []time.Time{got.FirstSeen, got.LastSeen, resolved} {
		if !tm.IsZero() && tm.Location() != time.UTC {
			t.Errorf("%s: time %v is not UTC", step, tm)
		}
	}
}

func TestSyncFindingsLifecycle(t *testing.T) {
	pod := obj("Pod", "ns", "p")
	a := fnd("privileged", pod, finding.High, "a")
	b := fnd("run-as-root", pod, finding.Medium, "b")
	t0, t1, t2, t3, t4, t5 := at(0), at(time.Minute), at(2*time.Minute), at(3*time.Minute), at(4*time.Minute), at(5*time.Minute)

	steps := []struct {
		name    string
		current []finding.Finding
		now     time.Time
		want    SyncResult
		state   map[string]lifecycle // by check ID
	}{
		{"new findings open", []finding.Finding{a, b}, t0, SyncResult{Opened: 2}, map[string]lifecycle{
			"privileged":  {StatusOpen, t0, t0, time.Time{}, 0},
			"run-as-root": {StatusOpen, t0, t0, time.Time{}, 0},
		}},
		{"missing finding resolves, reported one is kept", []finding.Finding{a}, t1, SyncResult{Kept: 1, Resolved: 1}, map[string]lifecycle{
			"privileged":  {StatusOpen, t0, t1, time.Time{}, 0},
			"run-as-root": {StatusResolved, t0, t0, t1, 0},
		}},
		{"resolved finding reopens", []finding.Finding{a, b}, t2, SyncResult{Kept: 1, Reopened: 1}, map[string]lifecycle{
			"privileged":  {StatusOpen, t0, t2, time.Time{}, 0},
			"run-as-root": {StatusOpen, t0, t2, time.Time{}, 1},
		}},
		{"duplicates count once", []finding.Finding{a, b, a}, t3, SyncResult{Kept: 2}, map[string]lifecycle{
			"privileged":  {StatusOpen, t0, t3, time.Time{}, 0},
			"run-as-root": {StatusOpen, t0, t3, time.Time{}, 1},
		}},
		{"everything resolves", nil, t4, SyncResult{Resolved: 2}, map[string]lifecycle{
			"privileged":  {StatusResolved, t0, t3, t4, 0},
			"run-as-root": {StatusResolved, t0, t3, t4, 1},
		}},
		{"resolved stays resolved", nil, t5, SyncResult{}, map[string]lifecycle{
			"privileged":  {StatusResolved, t0, t3, t4, 0},
			"run-as-root": {StatusResolved, t0, t3, t4, 1},
		}},
	}
	forEachBackend(t, func(t *testing.T, s *Store) {
		for _, st := range steps {
			if got := mustSync(t, s, all, st.now, st.current...); got != st.want {
				t.Errorf("%s: SyncFindings = %+v, want %+v", st.name, got, st.want)
			}
			stored := byKey(t, s)
			if len(stored) != len(st.state) {
				t.Errorf("%s: %d findings stored, want %d", st.name, len(stored), len(st.state))
			}
			for _, f := range stored {
				checkLifecycle(t, st.name, f, st.state[f.CheckID])
			}
		}
	})
}

func TestSyncFindingsScope(t *testing.T) {
	podA, podB, podC := obj("Pod", "ns1", "a"), obj("Pod", "ns1", "b"), obj("Pod", "ns2", "c")
	deploy, node := obj("Deployment", "ns1", "a"), obj("Node", "", "n1")
	a1, a2 := fnd("privileged", podA, finding.High, "a1"), fnd("run-as-root", podA, finding.Medium, "a2")
	b1, c1, c2 := fnd("privileged", podB, finding.High, "b1"), fnd("privileged", podC, finding.High, "c1"), fnd("host-network", podC, finding.High, "c2")
	// Same namespace and name as podA, another kind: a different object.
	d1 := fnd("replicas", deploy, finding.Low, "d1")
	n1 := fnd("node-version", node, finding.Info, "n1")

	steps := []struct {
		name    string
		scope   Scope
		current []finding.Finding
		now     time.Time
		want    SyncResult
		open    []finding.Finding // every open finding afterwards
	}{
		{"full sync", all, []finding.Finding{a1, a2, b1, c1, d1, n1}, at(0), SyncResult{Opened: 6},
			[]finding.Finding{a1, a2, b1, c1, d1, n1}},
		{"one object: only its findings change", Scope{Objects: []finding.ObjectRef{podA}}, []finding.Finding{a1}, at(time.Minute),
			SyncResult{Kept: 1, Resolved: 1}, []finding.Finding{a1, b1, c1, d1, n1}},
		{"deleted object, other apiVersion: its findings resolve",
			Scope{Objects: []finding.ObjectRef{{APIVersion: "v2", Kind: "Pod", Namespace: "ns1", Name: "b"}}}, nil, at(2 * time.Minute),
			SyncResult{Resolved: 1}, []finding.Finding{a1, c1, d1, n1}},
		{"the objects of current findings are in scope", Scope{}, []finding.Finding{c2}, at(3 * time.Minute),
			SyncResult{Opened: 1, Resolved: 1}, []finding.Finding{a1, c2, d1, n1}},
		{"cluster-scoped object", Scope{Objects: []finding.ObjectRef{node}}, nil, at(4 * time.Minute),
			SyncResult{Resolved: 1}, []finding.Finding{a1, c2, d1}},
		{"an object with no findings", Scope{Objects: []finding.ObjectRef{obj("Pod", "ns9", "x")}}, nil, at(5 * time.Minute),
			SyncResult{}, []finding.Finding{a1, c2, d1}},
		{"all: unreported findings of every object resolve", all, []finding.Finding{d1, b1}, at(6 * time.Minute),
			SyncResult{Kept: 1, Reopened: 1, Resolved: 2}, []finding.Finding{d1, b1}},
	}
	forEachBackend(t, func(t *testing.T, s *Store) {
		before := map[string]Finding{}
		for _, st := range steps {
			if got := mustSync(t, s, st.scope, st.now, st.current...); got != st.want {
				t.Errorf("%s: SyncFindings = %+v, want %+v", st.name, got, st.want)
			}
			stored := byKey(t, s)
			var open []string
			for k, f := range stored {
				if f.Status == StatusOpen {
					open = append(open, k)
				}
			}
			var want []string
			for _, f := range st.open {
				want = append(want, FindingKey(f))
			}
			slices.Sort(open)
			slices.Sort(want)
			if !slices.Equal(open, want) {
				t.Errorf("%s: open %v, want %v", st.name, open, want)
			}
			// Findings of objects outside the scope are not touched at all.
			if !st.scope.All {
				inScope := map[objectKey]bool{}
				for _, o := range st.scope.Objects {
					inScope[objectOf(o)] = true
				}
				for _, f := range st.current {
					inScope[objectOf(f.Object)] = true
				}
				for k, f := range stored {
					if prev, ok := before[k]; ok && !inScope[objectOf(f.Object)] && !reflect.DeepEqual(f, prev) {
						t.Errorf("%s: out-of-scope finding changed:\n%+v\nwas\n%+v", st.name, f, prev)
					}
				}
			}
			before = stored
		}
	})
}

// TestResolveUnseen stores a full evaluation in parts, as serve does: each
// part a SyncFindings of some objects, then ResolveUnseen. The outcome is
// the one a single SyncFindings with Scope.All gives.
func TestResolveUnseen(t *testing.T) {
	podA, podB, podC := obj("Pod", "ns1", "a"), obj("Pod", "ns1", "b"), obj("Pod", "ns2", "c")
	a1, a2 := fnd("privileged", podA, finding.High, "a1"), fnd("run-as-root", podA, finding.Medium, "a2")
	b1, c1 := fnd("privileged", podB, finding.High, "b1"), fnd("privileged", podC, finding.High, "c1")
	forEachBackend(t, func(t *testing.T, s *Store) {
		mustSync(t, s, all, at(0), a1, a2, b1, c1)
		// podC resolved earlier; then the next full evaluation: podA lost
		// a2, podB is gone, podC's finding came back.
		mustSync(t, s, Scope{Objects: []finding.ObjectRef{podC}}, at(time.Minute))
		now := at(2 * time.Minute)
		if got := mustSync(t, s, Scope{Objects: []finding.ObjectRef{podA}}, now, a1); got != (SyncResult{Kept: 1, Resolved: 1}) {
			t.Errorf("part 1: %+v", got)
		}
		if got := mustSync(t, s, Scope{Objects: []finding.ObjectRef{podC}}, now, c1); got != (SyncResult{Reopened: 1}) {
			t.Errorf("part 2: %+v", got)
		}
		n, err := s.ResolveUnseen(t.Context(), now)
		if err != nil || n != 1 {
			t.Fatalf("ResolveUnseen = %d, %v; want 1 (b1)", n, err)
		}
		stored := byKey(t, s)
		checkLifecycle(t, "a1", stored[FindingKey(a1)], lifecycle{status: StatusOpen, first: at(0), last: now})
		checkLifecycle(t, "a2", stored[FindingKey(a2)], lifecycle{status: StatusResolved, first: at(0), last: at(0), resolvedAt: now})
		checkLifecycle(t, "b1", stored[FindingKey(b1)], lifecycle{status: StatusResolved, first: at(0), last: at(0), resolvedAt: now})
		checkLifecycle(t, "c1", stored[FindingKey(c1)], lifecycle{status: StatusOpen, first: at(0), last: now, reopened: 1})
		// Again: nothing is left to resolve, and a finding last seen
		// after since (a clock set back) is left alone.
		if n, err := s.ResolveUnseen(t.Context(), at(time.Minute)); err != nil || n != 0 {
			t.Errorf("ResolveUnseen before the last evaluation = %d, %v; want 0", n, err)
		}
		if got := byKey(t, s)[FindingKey(a1)]; got.Status != StatusOpen {
			t.Errorf("a1 is %s after ResolveUnseen with an earlier time", got.Status)
		}
	})
}

func TestSyncFindingsUpdatesFields(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		f := fnd("privileged", obj("Deployment", "ns", "web"), finding.Medium, "container app is privileged")
		mustSync(t, s, all, at(0), f)
		changed := f
		changed.Severity = finding.Critical
		changed.Title = "Privileged container (renamed)"
		changed.Remediation = "Set privileged: false."
		changed.Object.APIVersion = "apps/v2"
		changed.File, changed.Line = "web.yaml", 7
		changed.Frameworks = finding.Frameworks{PSS: "baseline", CIS: []string{"5.2.1"}}
		if res := mustSync(t, s, all, at(time.Minute), changed); res != (SyncResult{Kept: 1}) {
			t.Errorf("SyncFindings = %+v, want one kept", res)
		}
		got := byKey(t, s)[FindingKey(f)]
		if !reflect.DeepEqual(got.Finding, changed) {
			t.Errorf("stored\n%+v\nwant\n%+v", got.Finding, changed)
		}
		if !got.FirstSeen.Equal(at(0)) {
			t.Errorf("FirstSeen %v, want %v", got.FirstSeen, at(0))
		}
	})
}

func TestFindingsFilter(t *testing.T) {
	web, db, node := obj("Deployment", "prod", "web"), obj("StatefulSet", "dev", "db"), obj("Node", "", "n1")
	var (
		webPriv = fnd("privileged", web, finding.High, "web privileged")
		webRoot = fnd("run-as-root", web, finding.Medium, "web root")
		dbPriv  = fnd("privileged", db, finding.High, "db privileged")
		dbLimit = fnd("no-limits", db, finding.Low, "db limits")
		nodeOld = fnd("node-version", node, finding.Critical, "node old")
	)
	forEachBackend(t, func(t *testing.T, s *Store) {
		// LastSeen order, newest first: web (3m), node (2m), db (1m); dbLimit
		// resolved at 4m.
		mustSync(t, s, Scope{Objects: []finding.ObjectRef{db}}, at(time.Minute), dbPriv, dbLimit)
		mustSync(t, s, Scope{Objects: []finding.ObjectRef{node}}, at(2*time.Minute), nodeOld)
		mustSync(t, s, Scope{Objects: []finding.ObjectRef{web}}, at(3*time.Minute), webPriv, webRoot)
		mustSync(t, s, Scope{Objects: []finding.ObjectRef{db}}, at(4*time.Minute), dbPriv)
		// Now db is newest (4m): dbPriv, then webPriv/webRoot (3m, by key), then nodeOld (2m), then dbLimit (1m).
		webTie := []finding.Finding{webPriv, webRoot}
		slices.SortFunc(webTie, func(a, b finding.Finding) int {
			if FindingKey(a) < FindingKey(b) {
				return -1
			}
			return 1
		})
		ordered := []finding.Finding{dbPriv, webTie[0], webTie[1], nodeOld, dbLimit}

		tests := []struct {
			name   string
			filter FindingFilter
			want   []finding.Finding
		}{
			{"everything, newest first", FindingFilter{}, ordered},
			{"namespace", FindingFilter{Namespace: "dev"}, []finding.Finding{dbPriv, dbLimit}},
			{"unknown namespace", FindingFilter{Namespace: "nope"}, nil},
			{"check", FindingFilter{CheckID: "privileged"}, []finding.Finding{dbPriv, webPriv}},
			{"one severity", FindingFilter{Severities: []finding.Severity{finding.High}}, []finding.Finding{dbPriv, webPriv}},
			{"severities", FindingFilter{Severities: []finding.Severity{finding.Critical, finding.Low}}, []finding.Finding{nodeOld, dbLimit}},
			{"open", FindingFilter{Status: StatusOpen}, []finding.Finding{dbPriv, webTie[0], webTie[1], nodeOld}},
			{"resolved", FindingFilter{Status: StatusResolved}, []finding.Finding{dbLimit}},
			{"combined", FindingFilter{Namespace: "dev", CheckID: "no-limits", Severities: []finding.Severity{finding.Low}, Status: StatusResolved},
				[]finding.Finding{dbLimit}},
			{"combined, no match", FindingFilter{Namespace: "prod", CheckID: "no-limits"}, nil},
			{"limit keeps the newest", FindingFilter{Limit: 2}, ordered[:2]},
			{"limit with filter", FindingFilter{Status: StatusOpen, Limit: 1}, []finding.Finding{dbPriv}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.Findings(t.Context(), tt.filter)
				if err != nil {
					t.Fatal(err)
				}
				if got == nil {
					t.Error("Findings returned nil, want an empty slice")
				}
				var gotKeys, wantKeys []string
				for _, f := range got {
					gotKeys = append(gotKeys, f.CheckID+" "+f.Object.String())
				}
				for _, f := range tt.want {
					wantKeys = append(wantKeys, f.CheckID+" "+f.Object.String())
				}
				if !slices.Equal(gotKeys, wantKeys) {
					t.Errorf("got %q\nwant %q", gotKeys, wantKeys)
				}
			})
		}
	})
}

func TestFindingsDefaultLimit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		var many []finding.Finding
		for i := range DefaultLimit + 5 {
			many = append(many, fnd("c", obj("Pod", "ns", "p"), finding.Low, time.Duration(i).String()))
		}
		mustSync(t, s, all, base, many...)
		got, err := s.Findings(t.Context(), FindingFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != DefaultLimit {
			t.Errorf("%d findings, want DefaultLimit (%d)", len(got), DefaultLimit)
		}
	})
}

func TestSummaryAndHistory(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		web, node := obj("Deployment", "prod", "web"), obj("Node", "", "n1")
		mustSync(t, s, all, at(0),
			fnd("privileged", web, finding.High, "1"),
			fnd("privileged", web, finding.High, "2"),
			fnd("run-as-root", web, finding.Medium, "3"),
			fnd("node-version", node, finding.Critical, "4"),
			fnd("gone", web, finding.Low, "5"),
		)
		// "gone" resolves: resolved findings are not counted.
		mustSync(t, s, all, at(time.Minute),
			fnd("privileged", web, finding.High, "1"),
			fnd("privileged", web, finding.High, "2"),
			fnd("run-as-root", web, finding.Medium, "3"),
			fnd("node-version", node, finding.Critical, "4"),
		)
		now := at(2 * time.Minute)
		got, err := s.Summary(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		want := PosturePoint{
			Time:        now,
			Open:        4,
			BySeverity:  map[string]int{"info": 0, "low": 0, "medium": 1, "high": 2, "critical": 1},
			ByCheck:     map[string]int{"privileged": 2, "run-as-root": 1, "node-version": 1},
			ByNamespace: map[string]int{"prod": 3, "": 1},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Summary:\n%+v\nwant\n%+v", got, want)
		}

		empty, err := s.PostureHistory(ctx, time.Time{}, 0)
		if err != nil || empty == nil || len(empty) != 0 {
			t.Errorf("empty history: %v, %v; want an empty slice", empty, err)
		}

		// Points at 0..9 minutes; one recorded with nil maps.
		var points []PosturePoint
		for i := range 10 {
			p := want
			p.Time, p.Open = at(time.Duration(i)*time.Minute), i
			if i == 3 {
				p.BySeverity, p.ByCheck, p.ByNamespace = nil, nil, nil
			}
			if err := s.RecordPosture(ctx, p); err != nil {
				t.Fatal(err)
			}
			if i == 3 {
				p.BySeverity, p.ByCheck, p.ByNamespace = map[string]int{}, map[string]int{}, map[string]int{}
			}
			points = append(points, p)
		}
		tests := []struct {
			name  string
			since time.Time
			limit int
			want  []PosturePoint
		}{
			{"all, oldest first", time.Time{}, 0, points},
			{"since is inclusive", at(7 * time.Minute), 0, points[7:]},
			{"since between points", at(7*time.Minute + time.Nanosecond), 0, points[8:]},
			{"since after the last", at(time.Hour), 0, []PosturePoint{}},
			{"limit keeps the newest", time.Time{}, 3, points[7:]},
			{"limit and since", at(2 * time.Minute), 20, points[2:]},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.PostureHistory(t.Context(), tt.since, tt.limit)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("got %d points %+v\nwant %d %+v", len(got), got, len(tt.want), tt.want)
				}
			})
		}
	})
}
