package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kustode/kustode/internal/audit"
	"github.com/kustode/kustode/internal/detect"
	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/store"
)

// AlertStore is what detection needs of the store.
type AlertStore interface {
	AddAlerts(ctx context.Context, alerts []finding.Alert) ([]store.Alert, error)
}

// StateStore keeps opaque state across restarts.
type StateStore interface {
	GetState(ctx context.Context, key string) ([]byte, bool, error)
	PutState(ctx context.Context, key string, value []byte) error
}

// detector is the audit.Sink behind every event source: it evaluates the
// rules and stores the alerts before accepting a batch, so that an alert is
// never lost: if the store refuses, the intake offers the batch again (the
// webhook answers 503 and the API server retries; the follower keeps its
// offset).
type detector struct {
	engine  *detect.Engine
	store   AlertStore
	metrics *metrics
	log     *slog.Logger
	source  string
	// last is the time the last event arrived (unix nanoseconds), for the
	// silent-feed coverage check.
	last *atomic.Int64
}

var _ audit.Sink = (*detector)(nil)

// Receive implements audit.Sink.
func (d *detector) Receive(ctx context.Context, events []audit.Event) error {
	now := time.Now()
	var alerts []finding.Alert
	for i := range events {
		ev := &events[i]
		if !ev.StageTimestamp.IsZero() {
			d.metrics.auditLag.Observe(now.Sub(ev.StageTimestamp).Seconds())
		}
		raised := d.engine.Evaluate(ev)
		if len(raised) > 0 && ev.Annotations[EventSourceAnnotation] != "" {
			aboutInvolvedObject(raised, ev)
		}
		alerts = append(alerts, raised...)
	}
	if len(alerts) > 0 {
		if _, err := d.store.AddAlerts(ctx, alerts); err != nil {
			d.metrics.storeErrors.Inc()
			d.metrics.eventsDropped.WithLabelValues(d.source, "store").Add(float64(len(events)))
			return fmt.Errorf("store alerts: %w", err)
		}
		for _, a := range alerts {
			d.metrics.alerts.WithLabelValues(a.Rule, a.Severity.String()).Inc()
			d.log.Info("alert", "rule", a.Rule, "severity", a.Severity.String(), "user", a.User,
				"namespace", a.Namespace, "object", a.Object, "source", d.source)
		}
	}
	d.metrics.eventsReceived.WithLabelValues(d.source).Add(float64(len(events)))
	if d.last != nil {
		d.last.Store(now.UnixNano())
	}
	return nil
}

// storeOffsets persists an audit Follower's position in the store.
type storeOffsets struct {
	store StateStore
	key   string
}

var _ audit.OffsetStore = (*storeOffsets)(nil)

func (o *storeOffsets) Load(ctx context.Context) (audit.Position, bool, error) {
	b, ok, err := o.store.GetState(ctx, o.key)
	if err != nil || !ok {
		return audit.Position{}, false, err
	}
	var p audit.Position
	if err := json.Unmarshal(b, &p); err != nil {
		return audit.Position{}, false, fmt.Errorf("decode %s: %w", o.key, err)
	}
	return p, true, nil
}

func (o *storeOffsets) Save(ctx context.Context, p audit.Position) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return o.store.PutState(ctx, o.key, b)
}

// detectStateKey is where the engine's learned state (thresholds in
// progress, first-seen keys) is kept.
const detectStateKey = "detect.state"

// loadDetectState restores the engine's learned state, if any was saved.
func loadDetectState(ctx context.Context, st StateStore, e *detect.Engine) error {
	b, ok, err := st.GetState(ctx, detectStateKey)
	if err != nil || !ok {
		return err
	}
	return e.LoadState(bytes.NewReader(b))
}

// saveDetectState persists the engine's learned state.
func saveDetectState(ctx context.Context, st StateStore, e *detect.Engine) error {
	var buf bytes.Buffer
	if err := e.SaveState(&buf); err != nil {
		return err
	}
	return st.PutState(ctx, detectStateKey, buf.Bytes())
}

// aboutInvolvedObject makes the alerts of a Kubernetes Event name the object
// the Event is about ("pod web-7d9f"), not the Event itself.
func aboutInvolvedObject(alerts []finding.Alert, ev *audit.Event) {
	var e struct {
		InvolvedObject struct {
			Kind, Namespace, Name string
		} `json:"involvedObject"`
	}
	if json.Unmarshal(ev.RequestObject, &e) != nil || e.InvolvedObject.Name == "" {
		return
	}
	for i := range alerts {
		alerts[i].Object = strings.ToLower(e.InvolvedObject.Kind) + " " + e.InvolvedObject.Name
		if e.InvolvedObject.Namespace != "" {
			alerts[i].Namespace = e.InvolvedObject.Namespace
		}
	}
}
