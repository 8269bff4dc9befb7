package web

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/store"
)

// fakeStore records the arguments of its calls and answers with canned
// results. err, when set, is returned by every method.
type fakeStore struct {
	mu  sync.Mutex
	err error

	findings   []store.Finding
	summary    store.PosturePoint
	history    []store.PosturePoint
	alerts     map[int64]store.Alert
	exceptions map[int64]store.Exception
	nextID     int64

	findingFilter store.FindingFilter
	alertFilter   store.AlertFilter
	since         time.Time
	limit         int
	includeAll    bool
	now           time.Time
	calls         []string
}

var _ Store = (*fakeStore)(nil)

func newFakeStore() *fakeStore {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	return &fakeStore{
		findings: []store.Finding{{
			Finding: finding.Finding{
				CheckID: "pss-privileged", Severity: finding.High, Title: "Privileged container",
				Message: `container "app" runs privileged`,
				Object:  finding.ObjectRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: "web"},
			},
			Key: "k1", Status: store.StatusOpen, FirstSeen: t0, LastSeen: t0,
		}},
		summary: store.PosturePoint{Time: t0, Open: 1, BySeverity: map[string]int{"high": 1}},
		history: []store.PosturePoint{{Time: t0, Open: 1}},
		alerts: map[int64]store.Alert{7: {
			Alert: finding.Alert{Rule: "exec-into-pod", Title: "Exec into pod", Severity: finding.High, Time: t0, User: "mallory", Namespace: "shop"},
			ID:    7, Status: store.AlertOpen,
		}},
		exceptions: map[int64]store.Exception{3: {ID: 3, Checks: []string{"*"}, Namespace: "kube-system", Reason: "r", Owner: "o", Expires: t0.AddDate(0, 3, 0)}},
		nextID:     10,
	}
}

func (f *fakeStore) record(call string) error {
	f.calls = append(f.calls, call)
	return f.err
}

func (f *fakeStore) Findings(_ context.Context, flt store.FindingFilter) ([]store.Finding, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.findingFilter = flt
	return f.findings, f.record("Findings")
}

func (f *fakeStore) Summary(_ context.Context, now time.Time) (store.PosturePoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = now
	return f.summary, f.record("Summary")
}

func (f *fakeStore) PostureHistory(_ context.Context, since time.Time, limit int) ([]store.PosturePoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.since, f.limit = since, limit
	return f.history, f.record("PostureHistory")
}

func (f *fakeStore) Alerts(_ context.Context, flt store.AlertFilter) ([]store.Alert, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.alertFilter = flt
	var out []store.Alert
	for _, a := range f.alerts {
		out = append(out, a)
	}
	return out, f.record("Alerts")
}

func (f *fakeStore) Alert(_ context.Context, id int64) (store.Alert, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Alert"); err != nil {
		return store.Alert{}, err
	}
	a, ok := f.alerts[id]
	if !ok {
		return store.Alert{}, fmt.Errorf("alert %d: %w", id, store.ErrNotFound)
	}
	return a, nil
}

func (f *fakeStore) AckAlert(_ context.Context, id int64, by string, now time.Time) (store.Alert, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("AckAlert"); err != nil {
		return store.Alert{}, err
	}
	a, ok := f.alerts[id]
	if !ok {
		return store.Alert{}, fmt.Errorf("alert %d: %w", id, store.ErrNotFound)
	}
	a.Status, a.AckedBy, a.AckedAt = store.AlertAcknowledged, by, &now
	f.alerts[id] = a
	return a, nil
}

func (f *fakeStore) AddException(_ context.Context, e store.Exception) (store.Exception, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("AddException"); err != nil {
		return store.Exception{}, err
	}
	e.ID = f.nextID
	f.nextID++
	f.exceptions[e.ID] = e
	return e, nil
}

func (f *fakeStore) Exceptions(_ context.Context, includeInactive bool, now time.Time) ([]store.Exception, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.includeAll, f.now = includeInactive, now
	var out []store.Exception
	for _, e := range f.exceptions {
		out = append(out, e)
	}
	return out, f.record("Exceptions")
}

func (f *fakeStore) ExpireException(_ context.Context, id int64, now time.Time) (store.Exception, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("ExpireException"); err != nil {
		return store.Exception{}, err
	}
	e, ok := f.exceptions[id]
	if !ok {
		return store.Exception{}, fmt.Errorf("exception %d: %w", id, store.ErrNotFound)
	}
	e.ExpiredAt = &now
	f.exceptions[id] = e
	return e, nil
}
