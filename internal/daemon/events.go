package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kustode/kustode/internal/audit"
)

// EventSourceAnnotation marks the synthetic audit events made from
// Kubernetes Events (see internal/detect/rules/events.yaml). Clients cannot
// set audit annotations, so a real audit event never carries it.
const EventSourceAnnotation = "kustode.io/source"

// eventsStateKey is where the event source keeps how far it got.
const eventsStateKey = "events.watermark"

// eventsQueue bounds the events waiting for evaluation.
const eventsQueue = 10000

// Events turns Kubernetes Events into detection signals: Warning events
// (OOM kills, crash loops, failed Secret mounts, PodSecurity and webhook
// rejections, evictions) and image pulls are converted to synthetic audit
// events and evaluated by the same rule engine as the audit feed.
//
// Each event is evaluated once, when it is first seen; repeats of the same
// event (its count going up) are not new alerts. A watermark kept in the
// store makes a restart skip the events already evaluated; on the very first
// start, events older than FirstRunWindow are skipped.
type Events struct {
	client kubernetes.Interface
	sink   audit.Sink
	state  StateStore
	log    *slog.Logger
	drops  func(n int)
	// FirstRunWindow is how far back a first start looks.
	FirstRunWindow time.Duration

	queue  chan *corev1.Event
	synced atomic.Pointer[[]cache.InformerSynced]
}

// NewEvents returns an event source feeding sink.
func NewEvents(client kubernetes.Interface, sink audit.Sink, state StateStore, log *slog.Logger, drops func(int)) *Events {
	return &Events{client: client, sink: sink, state: state, log: log, drops: drops,
		FirstRunWindow: 10 * time.Minute, queue: make(chan *corev1.Event, eventsQueue)}
}

// watermark remembers which events were evaluated, across restarts.
// Events do not arrive in time order (reporters' clocks differ, an event's
// lastTimestamp moves when it repeats), so the time alone cannot decide:
// events older than Time minus watermarkSlack count as evaluated, and the
// newer ones are looked up by UID.
type watermark struct {
	Time time.Time `json:"time"`
	// Recent maps the UIDs of events evaluated within the slack to their
	// times.
	Recent map[string]time.Time `json:"recent,omitempty"`
}

// watermarkSlack is how far out of order events may arrive; watermarkMax
// bounds the UIDs kept.
const (
	watermarkSlack = 10 * time.Minute
	watermarkMax   = 20000
)

func (w *watermark) seen(t time.Time, uid string) bool {
	if t.Before(w.Time.Add(-watermarkSlack)) {
		return true
	}
	_, ok := w.Recent[uid]
	return ok
}

func (w *watermark) add(t time.Time, uid string) {
	if w.Recent == nil {
		w.Recent = map[string]time.Time{}
	}
	w.Recent[uid] = t
	if t.After(w.Time) {
		w.Time = t
	}
	if len(w.Recent) > watermarkMax {
		w.prune()
	}
}

// prune forgets UIDs older than the slack, and the oldest beyond
// watermarkMax.
func (w *watermark) prune() {
	cut := w.Time.Add(-watermarkSlack)
	for uid, t := range w.Recent {
		if t.Before(cut) {
			delete(w.Recent, uid)
		}
	}
	if over := len(w.Recent) - watermarkMax; over > 0 {
		times := make([]time.Time, 0, len(w.Recent))
		for _, t := range w.Recent {
			times = append(times, t)
		}
		slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
		cut = times[over]
		for uid, t := range w.Recent {
			if t.Before(cut) {
				delete(w.Recent, uid)
			}
		}
	}
}

// interesting reports whether an event can matter to a rule.
func interesting(e *corev1.Event) bool {
	return e.Type == corev1.EventTypeWarning || e.Reason == "Pulling" || e.Reason == "Pulled"
}

// eventSelectors are the field selectors of the interesting events, one
// watch each (a field selector cannot express "or"), disjoint so that no
// event arrives twice: the API server filters, and the Normal events of a
// busy cluster (scheduling, container starts, scaling) are neither sent nor
// decoded nor kept.
var eventSelectors = []string{
	"type=" + corev1.EventTypeWarning,
	"type!=" + corev1.EventTypeWarning + ",reason=Pulling",
	"type!=" + corev1.EventTypeWarning + ",reason=Pulled",
}

// eventTime is when an event last happened.
func eventTime(e *corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.UTC()
	case !e.EventTime.IsZero():
		return e.EventTime.UTC()
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.UTC()
	default:
		return e.CreationTimestamp.UTC()
	}
}

// Synced reports whether the events informers have synced.
func (s *Events) Synced() bool {
	fs := s.synced.Load()
	if fs == nil {
		return false
	}
	for _, f := range *fs {
		if !f() {
			return false
		}
	}
	return true
}

// Start watches events and evaluates them until ctx is done; it blocks.
func (s *Events) Start(ctx context.Context) error {
	// On a first start, events older than FirstRunWindow are skipped.
	wm := watermark{Time: time.Now().Add(watermarkSlack - s.FirstRunWindow).UTC()}
	if b, ok, err := s.state.GetState(ctx, eventsStateKey); err != nil {
		return fmt.Errorf("events: load watermark: %w", err)
	} else if ok {
		if err := json.Unmarshal(b, &wm); err != nil {
			s.log.Warn("events: unreadable watermark, starting anew", "err", err)
		}
	}
	res := s.client.CoreV1().Events("")
	var wg sync.WaitGroup
	defer wg.Wait()
	var synced []cache.InformerSynced
	for _, sel := range eventSelectors {
		inf := cache.NewSharedIndexInformerWithOptions(&cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				o.FieldSelector = sel
				return res.List(ctx, o)
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				o.FieldSelector = sel
				return res.Watch(ctx, o)
			},
		}, &corev1.Event{}, cache.SharedIndexInformerOptions{ObjectDescription: "Event " + sel})
		_ = inf.SetTransform(func(o any) (any, error) {
			if e, ok := o.(*corev1.Event); ok {
				e.ManagedFields = nil
			}
			return o, nil
		})
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: func(o any) {
				e, ok := o.(*corev1.Event)
				if !ok || !interesting(e) {
					return
				}
				select {
				case s.queue <- e:
				default:
					s.drops(1)
					s.log.Warn("events: queue full, event not evaluated", "event", e.Namespace+"/"+e.Name, "reason", e.Reason)
				}
			},
		})
		synced = append(synced, inf.HasSynced)
		wg.Go(func() { inf.RunWithContext(ctx) })
	}
	s.synced.Store(&synced)

	batch := make([]audit.Event, 0, 100)
	var pending []*corev1.Event
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-s.queue:
			pending = append(pending[:0], e)
		drain:
			for len(pending) < cap(batch) {
				select {
				case e := <-s.queue:
					pending = append(pending, e)
				default:
					break drain
				}
			}
			batch = batch[:0]
			next := watermark{Time: wm.Time, Recent: maps.Clone(wm.Recent)}
			for _, e := range pending {
				t := eventTime(e)
				if wm.seen(t, string(e.UID)) {
					continue
				}
				ev, err := toAuditEvent(e)
				if err != nil {
					s.drops(1)
					s.log.Warn("events: cannot convert", "event", e.Namespace+"/"+e.Name, "err", err)
					continue
				}
				batch = append(batch, ev)
				next.add(t, string(e.UID))
			}
			if len(batch) == 0 {
				continue
			}
			// The sink stores alerts before accepting; retry until it does
			// so that no signal is lost while the store is unavailable.
			for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 30*time.Second) {
				err := s.sink.Receive(ctx, batch)
				if err == nil {
					break
				}
				s.log.Error("events: evaluation not stored, retrying", "err", err, "retry_in", backoff)
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(backoff):
				}
			}
			s.log.Debug("events evaluated", "events", len(batch))
			wm = next
			wm.prune()
			if b, err := json.Marshal(wm); err == nil {
				if err := s.state.PutState(ctx, eventsStateKey, b); err != nil {
					s.log.Error("events: save watermark", "err", err)
				}
			}
		}
	}
}

// toAuditEvent converts a Kubernetes Event to the synthetic audit event the
// event rules read (the shape is documented in internal/detect).
func toAuditEvent(e *corev1.Event) (audit.Event, error) {
	e.APIVersion, e.Kind = "v1", "Event"
	raw, err := json.Marshal(e)
	if err != nil {
		return audit.Event{}, err
	}
	reporter := e.ReportingController
	if reporter == "" {
		reporter = e.Source.Component
	}
	t := eventTime(e)
	return audit.Event{
		Kind: "Event", APIVersion: "audit.k8s.io/v1",
		Level: audit.LevelRequest, AuditID: "k8s-event:" + string(e.UID),
		Stage: audit.StageResponseComplete, Verb: "create",
		RequestURI: "/api/v1/namespaces/" + e.Namespace + "/events",
		User:       audit.UserInfo{Username: reporter},
		UserAgent:  "kustode/kubernetes-events",
		ObjectRef: audit.ObjectReference{
			APIVersion: "v1", Resource: "events", Namespace: e.Namespace, Name: e.Name,
		},
		ResponseStatus:           audit.ResponseStatus{Code: 201},
		Annotations:              map[string]string{EventSourceAnnotation: "kubernetes-event"},
		RequestObject:            raw,
		RequestReceivedTimestamp: t,
		StageTimestamp:           t,
	}, nil
}
