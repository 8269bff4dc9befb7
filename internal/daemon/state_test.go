package daemon

import (
	"testing"
	"time"

	"github.com/kustode/kustode/internal/audit"
	"github.com/kustode/kustode/internal/detect"
	"github.com/kustode/kustode/internal/store"
)

func secretRead(user, ns string, at time.Time) *audit.Event {
	return &audit.Event{
		AuditID: user + ns + at.String(), Stage: audit.StageResponseComplete, Verb: "get",
		User:           audit.UserInfo{Username: user},
		ObjectRef:      audit.ObjectReference{Resource: "secrets", Namespace: ns, Name: "db", APIVersion: "v1"},
		ResponseStatus: audit.ResponseStatus{Code: 200}, StageTimestamp: at, RequestReceivedTimestamp: at,
	}
}

// What the engine learned survives serve's restart through the store: a
// key learned before the restart does not alert after it; a new one does.
func TestDetectStateSurvivesRestart(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	st, err := store.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	e1, err := detect.NewEngine(detect.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	e1.Evaluate(secretRead("alice", "shop", t0))                  // learned during the learning period
	e1.Evaluate(secretRead("bob", "other", t0.Add(25*time.Hour))) // after it: alerts, and is learned
	if err := saveDetectState(ctx, st, e1); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st, err = store.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e2, err := detect.NewEngine(detect.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := loadDetectState(ctx, st, e2); err != nil {
		t.Fatal(err)
	}
	firstTime := func(e *detect.Engine, ev *audit.Event) bool {
		for _, a := range e.Evaluate(ev) {
			if a.Rule == "secret-read-first-time" {
				return true
			}
		}
		return false
	}
	later := t0.Add(30 * time.Hour)
	if firstTime(e2, secretRead("alice", "shop", later)) || firstTime(e2, secretRead("bob", "other", later)) {
		t.Error("keys learned before the restart alerted again after it")
	}
	if !firstTime(e2, secretRead("mallory", "shop", later)) {
		t.Error("a new identity reading Secrets did not alert after the restart (learning period restarted?)")
	}
}

// The follower's position round-trips through the store.
func TestStoreOffsets(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	o := &storeOffsets{store: st, key: "audit.follower:/var/log/audit.log"}
	if _, ok, err := o.Load(ctx); ok || err != nil {
		t.Fatalf("empty store: ok=%v err=%v", ok, err)
	}
	want := audit.Position{Path: "/var/log/audit.log", Device: 1, Inode: 2, Offset: 4096, Line: 12, FingerprintLen: 10, Fingerprint: "ab"}
	if err := o.Save(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := o.Load(ctx)
	if err != nil || !ok || got != want {
		t.Fatalf("Load = %+v %v %v, want %+v", got, ok, err, want)
	}
}
