package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kustode/kustode/internal/finding"
)

// Condition is one thing kustode must be able to see or do, and whether it
// can now. Conditions are served in /readyz's detail and as
// kustode_coverage_ok.
type Condition struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	// syncing: not bad yet, only not ready; an alert after a grace period.
	syncing bool
	// advisory: bad (shown, alerted, counted in kustode_coverage_ok) but no
	// reason to be unready: it hides a part of what kustode judges, not
	// kustode itself (see kubeletCondition).
	advisory bool
}

// Advisory reports whether the condition, when not OK, leaves serve ready.
func (c Condition) Advisory() bool { return c.advisory }

// Coverage is kustode's self-check: it says what kustode cannot see (an
// informer not synced or forbidden, a silent audit feed, a failing store,
// kubelets whose configuration cannot be read)
// instead of showing "0 findings". Each condition that turns bad raises one
// alert (rule coverage-*), and it shows in /readyz and /metrics.
type Coverage struct {
	inv    *Inventory
	events *Events
	// kubelet, when set (kubelet.readConfig), adds the condition
	// kubelet-config.
	kubelet *KubeletConfigs
	ping    func(context.Context) error
	alerts  AlertStore
	metrics *metrics
	log     *slog.Logger
	// Interval is how often conditions are checked.
	Interval time.Duration
	// AuditSilence is how long the audit feed may stay silent; zero
	// disables the check (no audit source configured).
	AuditSilence time.Duration
	lastAudit    *atomic.Int64
	started      time.Time

	mu      sync.Mutex
	conds   []Condition
	bad     map[string]bool
	pending []finding.Alert
}

// Conditions returns the conditions of the last check.
func (c *Coverage) Conditions() []Condition {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Condition(nil), c.conds...)
}

// Start checks every Interval until ctx is done; it blocks.
func (c *Coverage) Start(ctx context.Context) error {
	c.started = time.Now()
	// Until everything is first seen, check often: readiness should not
	// lag the informers by a whole interval.
	fast := time.NewTicker(200 * time.Millisecond)
	for !c.check(ctx) && time.Since(c.started) < time.Minute {
		select {
		case <-ctx.Done():
			fast.Stop()
			return nil
		case <-fast.C:
		}
	}
	fast.Stop()
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_ = c.check(ctx)
		}
	}
}

// check evaluates every condition and reports whether all are OK (advisory
// ones aside).
func (c *Coverage) check(ctx context.Context) bool {
	now := time.Now()
	var conds []Condition
	for _, k := range c.inv.Status() {
		cond := Condition{Name: "informer/" + k.Kind, OK: k.Synced && !k.Forbidden}
		switch {
		case k.Forbidden:
			cond.Detail = fmt.Sprintf("forbidden: grant list and watch on %s to kustode's service account: %s", k.Kind, k.Error)
		case !k.Synced && k.Error != "":
			cond.Detail, cond.syncing = "not synced: "+k.Error, true
		case !k.Synced:
			cond.Detail, cond.syncing = "not synced yet", true
		case k.Absent:
			cond.Detail = "not served by this cluster (add-on not installed)"
		}
		c.metrics.informerSynced.WithLabelValues(k.Kind).Set(b2f(k.Synced))
		c.metrics.informerForbidden.WithLabelValues(k.Kind).Set(b2f(k.Forbidden))
		conds = append(conds, cond)
	}
	if c.events != nil {
		cond := Condition{Name: "events", OK: c.events.Synced()}
		if !cond.OK {
			cond.Detail, cond.syncing = "Kubernetes Events informer not synced (list and watch on events needed)", true
		}
		conds = append(conds, cond)
	}
	if c.kubelet != nil {
		st := c.kubelet.Status()
		forbidden := 0
		for _, f := range st.Failures {
			if rbacForbidden(f.Err) {
				forbidden++
			}
		}
		c.metrics.kubeletNodes.WithLabelValues("read").Set(float64(st.Read))
		c.metrics.kubeletNodes.WithLabelValues("failed").Set(float64(len(st.Failures) - forbidden))
		c.metrics.kubeletNodes.WithLabelValues("forbidden").Set(float64(forbidden))
		conds = append(conds, kubeletCondition(st))
	}
	if c.AuditSilence > 0 {
		last := c.started
		if n := c.lastAudit.Load(); n != 0 {
			last = time.Unix(0, n)
		}
		cond := Condition{Name: "audit-feed", OK: now.Sub(last) < c.AuditSilence}
		if !cond.OK {
			cond.Detail = fmt.Sprintf("no audit event for %s (limit %s): check the API server's audit webhook or log configuration",
				now.Sub(last).Round(time.Second), c.AuditSilence)
		}
		conds = append(conds, cond)
	}
	storeCond := Condition{Name: "store", OK: true}
	if err := c.ping(ctx); err != nil {
		storeCond = Condition{Name: "store", OK: false, Detail: "store unreachable: " + err.Error()}
	}
	conds = append(conds, storeCond)

	c.mu.Lock()
	if c.bad == nil {
		c.bad = map[string]bool{}
	}
	for _, cond := range conds {
		c.metrics.coverageOK.WithLabelValues(cond.Name).Set(b2f(cond.OK))
		if !cond.OK && !c.bad[cond.Name] && c.due(cond, now) {
			c.pending = append(c.pending, coverageAlert(cond, now))
			c.log.Warn("coverage: kustode cannot see something", "condition", cond.Name, "detail", cond.Detail)
		}
		c.bad[cond.Name] = !cond.OK && (c.bad[cond.Name] || c.due(cond, now))
	}
	c.conds = conds
	pending := c.pending
	c.mu.Unlock()
	allOK := !slices.ContainsFunc(conds, func(c Condition) bool { return !c.OK && !c.advisory })
	if len(pending) == 0 || !storeCond.OK {
		return allOK
	}
	if _, err := c.alerts.AddAlerts(ctx, pending); err != nil {
		c.log.Error("coverage: store alerts", "err", err)
		return allOK
	}
	c.mu.Lock()
	c.pending = c.pending[len(pending):]
	c.mu.Unlock()
	return allOK
}

// due reports whether a bad condition deserves an alert yet: informers get
// a minute to sync after start before "not synced" is a problem; a
// forbidden kind, a silent feed or a store error is one at once.
func (c *Coverage) due(cond Condition, now time.Time) bool {
	if cond.OK {
		return false
	}
	if cond.syncing {
		return now.Sub(c.started) > time.Minute
	}
	return true
}

func coverageAlert(cond Condition, now time.Time) finding.Alert {
	rule := "coverage-" + cond.Name
	if kind, ok := strings.CutPrefix(cond.Name, "informer/"); ok {
		rule, cond.Name = "coverage-informer", kind
	}
	return finding.Alert{
		Rule:     rule,
		Title:    "kustode cannot see part of the cluster",
		Severity: finding.High,
		MITRE:    []string{"T1562"},
		Tags:     []string{"coverage"},
		Time:     now.UTC(),
		AuditIDs: []string{},
		User:     "kustode",
		Object:   cond.Name,
		Message:  cond.Name + ": " + cond.Detail,
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
