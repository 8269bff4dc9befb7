package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/store"
)

type alertRecorder struct {
	alerts []finding.Alert
	fail   bool
}

func (r *alertRecorder) AddAlerts(_ context.Context, as []finding.Alert) ([]store.Alert, error) {
	if r.fail {
		return nil, errors.New("store down")
	}
	r.alerts = append(r.alerts, as...)
	return nil, nil
}

func (r *alertRecorder) rules() []string {
	var out []string
	for _, a := range r.alerts {
		out = append(out, a.Rule+":"+a.Object)
	}
	return out
}

// Each condition that turns bad raises one alert, once; "not synced yet" only
// after a grace period; alerts raised while the store is down are stored
// when it is back.
func TestCoverage(t *testing.T) {
	inv := NewInventory(nil, nil, nil, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	inv.status = map[string]*KindStatus{
		"Pod":    {Kind: "Pod", Synced: true},
		"Secret": {Kind: "Secret", Forbidden: true, Error: "secrets is forbidden"},
		"Role":   {Kind: "Role"}, // still syncing
	}
	var storeDown atomic.Bool
	rec := &alertRecorder{}
	var last atomic.Int64
	c := &Coverage{
		inv: inv, alerts: rec, metrics: newMetrics(prometheus.NewRegistry()),
		log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		ping: func(context.Context) error {
			if storeDown.Load() {
				return errors.New("database is locked")
			}
			return nil
		},
		AuditSilence: time.Minute, lastAudit: &last, started: time.Now(),
	}
	ctx := t.Context()
	if c.check(ctx) {
		t.Fatal("check reported all OK with a forbidden kind")
	}
	if got := rec.rules(); !slices.Equal(got, []string{"coverage-informer:Secret"}) {
		t.Errorf("alerts %v, want only the forbidden Secret (Role is within its grace, the feed is young)", got)
	}
	c.check(ctx)
	if len(rec.alerts) != 1 {
		t.Errorf("a condition that stays bad alerted again: %v", rec.rules())
	}

	// A minute later: Role still not synced, the audit feed silent, the
	// store down.
	c.started = time.Now().Add(-2 * time.Minute)
	storeDown.Store(true)
	rec.fail = true
	c.check(ctx)
	conds := c.Conditions()
	for _, name := range []string{"informer/Role", "audit-feed", "store"} {
		if i := slices.IndexFunc(conds, func(c Condition) bool { return c.Name == name }); i < 0 || conds[i].OK || conds[i].Detail == "" {
			t.Errorf("condition %s: %+v", name, conds)
		}
	}
	if len(rec.alerts) != 1 {
		t.Errorf("alerts stored while the store is down: %v", rec.rules())
	}
	storeDown.Store(false)
	rec.fail = false
	c.check(ctx)
	want := []string{"coverage-informer:Secret", "coverage-informer:Role", "coverage-audit-feed:audit-feed", "coverage-store:store"}
	if got := rec.rules(); !slices.Equal(got, want) {
		t.Errorf("alerts %v, want %v", got, want)
	}

	// Fixed: events arrive, the kinds sync; nothing new is raised and
	// readiness comes back.
	last.Store(time.Now().UnixNano())
	inv.status["Secret"].Forbidden, inv.status["Role"].Synced = false, true
	inv.status["Secret"].Synced = true
	if !c.check(ctx) {
		t.Errorf("conditions still bad: %+v", c.Conditions())
	}
	if len(rec.alerts) != len(want) {
		t.Errorf("recovery raised alerts: %v", rec.rules())
	}
}
