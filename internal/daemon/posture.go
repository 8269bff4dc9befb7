package daemon

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/kube"
	"github.com/kustode/kustode/internal/posture"
	"github.com/kustode/kustode/internal/store"
)

// FindingStore is what continuous posture needs of the store.
type FindingStore interface {
	SyncFindings(ctx context.Context, scope store.Scope, current []finding.Finding, now time.Time) (store.SyncResult, error)
	ResolveUnseen(ctx context.Context, since time.Time) (int, error)
	Summary(ctx context.Context, now time.Time) (store.PosturePoint, error)
	RecordPosture(ctx context.Context, p store.PosturePoint) error
}

// Posture re-evaluates posture continuously: a full evaluation once the
// inventory has synced and every Resync after, and in between only the
// objects that changed and the objects whose findings depend on them (see
// dependants). Findings go to the store, whose lifecycle (open, resolved,
// reopened) follows from the evaluations. Objects are judged and their
// findings stored judgeChunk objects at a time, so a full evaluation of a
// large cluster holds a few thousand findings at once, not all of them.
type Posture struct {
	inv *Inventory
	// snapshot returns the objects to judge: inv.snapshot.
	snapshot func() []*entry
	store    FindingStore
	log      *slog.Logger
	metrics  *metrics
	// Debounce collects changes for this long before evaluating them.
	Debounce        time.Duration
	Resync          time.Duration
	HistoryInterval time.Duration

	engine atomic.Pointer[posture.Engine]

	mu      sync.Mutex
	dirty   map[objKey]struct{}
	full    bool
	wake    chan struct{}
	firstAt atomic.Pointer[time.Time]
	evals   atomic.Int64
}

// NewPosture returns a Posture over inv that judges with engine.
func NewPosture(inv *Inventory, engine *posture.Engine, st FindingStore, m *metrics, log *slog.Logger) *Posture {
	p := &Posture{
		inv: inv, snapshot: inv.snapshot, store: st, log: log, metrics: m,
		Debounce: 300 * time.Millisecond, Resync: 10 * time.Minute, HistoryInterval: 5 * time.Minute,
		dirty: map[objKey]struct{}{}, wake: make(chan struct{}, 1),
		// The first evaluation, once the inventory has synced, is full.
		full: true,
	}
	p.engine.Store(engine)
	return p
}

// Changed marks an object for re-evaluation. It never blocks. While a full
// evaluation is pending (not yet begun: above all, during the informers'
// initial lists, one call per object) the change is covered by it and not
// recorded.
func (p *Posture) Changed(k objKey) {
	p.mu.Lock()
	if p.full {
		p.mu.Unlock()
		return
	}
	p.dirty[k] = struct{}{}
	p.mu.Unlock()
	p.poke()
}

// SetEngine replaces the engine (new exceptions) and schedules a full
// evaluation.
func (p *Posture) SetEngine(e *posture.Engine) {
	p.engine.Store(e)
	p.mu.Lock()
	p.full = true
	p.mu.Unlock()
	p.poke()
}

func (p *Posture) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// FirstFullAt returns when the first full evaluation was stored (zero
// before).
func (p *Posture) FirstFullAt() time.Time {
	if t := p.firstAt.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

// Start evaluates until ctx is done; it blocks. It waits for the inventory
// to sync first.
func (p *Posture) Start(ctx context.Context) error {
	if !p.inv.WaitForSync(ctx) {
		return nil
	}
	resync := time.NewTicker(p.Resync)
	defer resync.Stop()
	history := time.NewTicker(p.HistoryInterval)
	defer history.Stop()
	p.evaluate(ctx)
	p.recordHistory(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-resync.C:
			p.mu.Lock()
			p.full = true
			p.mu.Unlock()
			p.evaluate(ctx)
		case <-history.C:
			p.recordHistory(ctx)
		case <-p.wake:
			// Let a burst of changes (a rollout, a namespace apply)
			// arrive before evaluating them together.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(p.Debounce):
			}
			p.evaluate(ctx)
		}
	}
}

func (p *Posture) recordHistory(ctx context.Context) {
	now := time.Now().UTC()
	pt, err := p.store.Summary(ctx, now)
	if err == nil {
		err = p.store.RecordPosture(ctx, pt)
	}
	if err != nil {
		p.metrics.storeErrors.Inc()
		p.log.Error("record posture history", "err", err)
		return
	}
	p.metrics.setOpenFindings(pt.BySeverity)
}

// evaluate judges the dirty objects (or all of them) and stores the result.
func (p *Posture) evaluate(ctx context.Context) {
	p.mu.Lock()
	full, dirty := p.full, p.dirty
	p.full, p.dirty = false, map[objKey]struct{}{}
	p.mu.Unlock()
	if !full && len(dirty) == 0 {
		return
	}
	if full {
		defer gcBurst(evaluationBurst)()
	}
	start := time.Now()
	entries := p.snapshot()
	objs, ix := indexEntries(entries)
	engine := p.engine.Load()

	var targets []int
	var gone []finding.ObjectRef // affected objects that no longer exist
	if full {
		targets = make([]int, len(entries))
		for i := range targets {
			targets[i] = i
		}
	} else {
		affected := dependants(dirty, objs)
		for i := range objs {
			k := keyOf(&objs[i])
			if _, ok := affected[k]; ok {
				targets = append(targets, i)
				delete(affected, k)
			}
		}
		// Deleted objects are in scope too: their findings resolve.
		for k := range affected {
			gone = append(gone, finding.ObjectRef{Kind: k.Kind, Namespace: k.Namespace, Name: k.Name})
		}
	}
	now := time.Now().UTC()
	res, found, err := p.judgeAndStore(ctx, engine, ix, entries, objs, targets, gone, now)
	if err == nil && full {
		// Every finding of a judged object was stored at now: what is
		// still open from before belongs to objects that are gone.
		var n int
		n, err = p.store.ResolveUnseen(ctx, now)
		res.Resolved += n
	}
	if err != nil {
		p.metrics.storeErrors.Inc()
		p.log.Error("store findings", "err", err)
		// Try again: everything evaluated now is still to be stored.
		p.mu.Lock()
		if full {
			p.full = true
		}
		for k := range dirty {
			p.dirty[k] = struct{}{}
		}
		p.mu.Unlock()
		return
	}
	p.evals.Add(1)
	p.metrics.evaluations.WithLabelValues(map[bool]string{true: "full", false: "partial"}[full]).Inc()
	p.metrics.evaluationSeconds.Observe(time.Since(start).Seconds())
	if full && p.firstAt.Load() == nil {
		t := time.Now()
		p.firstAt.Store(&t)
	}
	p.log.Info("posture evaluated", "full", full, "objects", len(targets), "findings", found,
		"opened", res.Opened, "reopened", res.Reopened, "resolved", res.Resolved, "took", time.Since(start).Round(time.Millisecond))
	if pt, err := p.store.Summary(ctx, now); err == nil {
		p.metrics.setOpenFindings(pt.BySeverity)
	}
	if full {
		// A full evaluation (at start-up, after decoding every object; at
		// each resync) decodes and judges every object, with more memory
		// than serve keeps: give it back to the system now rather than as
		// the runtime's scavenger gets to it.
		debug.FreeOSMemory()
	}
}

// The GOGC divisors of the bursts (see gcBurst): 10 while the informers
// list (GOGC=10 by default), 4 while a full evaluation runs (25). Measured
// at 10,000 bare pods (docs/performance.md, "The peak"): with a quarter
// during the lists too, the lists set the peak (about 2 KiB a pod); a
// tenth costs the lists about as much CPU again, a tenth during
// evaluations would cost the first posture more than the 10 s goal allows.
const (
	listBurst       = 10
	evaluationBurst = 4
)

// judgeChunk is how many objects evaluate judges and stores at a time: the
// findings of one chunk (a few thousand at most) are all it holds, so a
// full evaluation of a large cluster needs no more memory than a small one.
const judgeChunk = 256

// judgeAndStore judges the objects at targets (indexes into entries and
// objs) chunk by chunk and stores each chunk's findings as the evaluation
// of its objects (and, last, of the gone objects, which have none), at now.
// The next chunk is judged while the last is stored. It returns what the
// store changed and how many findings there were; after a store error it
// stops judging and returns the error.
func (p *Posture) judgeAndStore(ctx context.Context, engine *posture.Engine, ix *posture.Index, entries []*entry, objs []kube.Object,
	targets []int, gone []finding.ObjectRef, now time.Time,
) (store.SyncResult, int, error) {
	type part struct {
		scope    store.Scope
		findings []finding.Finding
	}
	parts := make(chan part, 1)
	var (
		res     store.SyncResult
		found   int
		err     error
		failed  atomic.Bool
		storing sync.WaitGroup
	)
	storing.Go(func() {
		for pt := range parts {
			if err != nil {
				continue
			}
			r, e := p.store.SyncFindings(ctx, pt.scope, pt.findings, now)
			if e != nil {
				err = e
				failed.Store(true)
				continue
			}
			res.Opened += r.Opened
			res.Reopened += r.Reopened
			res.Resolved += r.Resolved
			res.Kept += r.Kept
			found += len(pt.findings)
		}
	})
	for chunk := range slices.Chunk(targets, judgeChunk) {
		if failed.Load() {
			break
		}
		scope := store.Scope{Objects: make([]finding.ObjectRef, len(chunk))}
		for j, i := range chunk {
			scope.Objects[j] = objs[i].Ref
		}
		parts <- part{scope: scope, findings: p.judge(engine, ix, entries, objs, chunk)}
	}
	if len(gone) > 0 {
		parts <- part{scope: store.Scope{Objects: gone}}
	}
	close(parts)
	storing.Wait()
	return res, found, err
}

// indexEntries returns the objects of entries as the posture index holds
// them, and the index. The index holds every judged object, but only the
// kinds other objects' findings depend on are read through it and only
// those are ready (see entry): the others have their reference only, and
// judge decodes them one by one.
func indexEntries(entries []*entry) ([]kube.Object, *posture.Index) {
	objs := make([]kube.Object, len(entries))
	for i, e := range entries {
		if e.obj != nil {
			objs[i] = *e.obj
		} else {
			objs[i] = kube.Object{Ref: e.objectRef()}
		}
	}
	return objs, posture.NewIndex(objs)
}

// judge runs the engine on the objects at targets (indexes into entries
// and objs), on every CPU, and returns their findings in target order.
// Encoded objects are decoded for the time they are judged.
func (p *Posture) judge(engine *posture.Engine, ix *posture.Index, entries []*entry, objs []kube.Object, targets []int) []finding.Finding {
	results := make([][]finding.Finding, len(targets))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(len(targets), 1)) {
		wg.Go(func() {
			for {
				n := int(next.Add(1)) - 1
				if n >= len(targets) {
					return
				}
				i := targets[n]
				o := &objs[i]
				if entries[i].obj == nil {
					dec, err := entries[i].object()
					if err != nil {
						p.log.Warn("posture: cannot judge object", "object", o.Ref.String(), "err", err)
						continue
					}
					o = &dec
				}
				fs, err := engine.RunObject(o, ix)
				if err != nil {
					p.log.Warn("posture: cannot judge object", "object", o.Ref.String(), "err", err)
				}
				results[n] = fs
			}
		})
	}
	wg.Wait()
	total := 0
	for _, fs := range results {
		total += len(fs)
	}
	current := make([]finding.Finding, 0, total)
	for _, fs := range results {
		current = append(current, fs...)
	}
	return current
}

func keyOf(o *kube.Object) objKey {
	return objKey{Kind: o.Ref.Kind, Namespace: o.Ref.Namespace, Name: o.Ref.Name}
}

// contextKinds are the kinds whose objects other objects' findings depend
// on (see dependants): the RBAC kinds and ServiceAccounts, NetworkPolicies
// and PeerAuthentications, Namespaces and RuntimeClasses. They are the only
// kinds checks read through the posture index (TestContextKinds proves it
// over the checks' fixtures).
var contextKinds = append(slices.Clone(rbacKinds), "NetworkPolicy", "PeerAuthentication", "Namespace", "RuntimeClass")

// rbacKinds are judged together: a binding's findings depend on the roles it
// names and the service accounts it binds, a role's on who it is bound to.
var rbacKinds = []string{"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "ServiceAccount"}

// dependants returns the changed objects and every object whose findings
// may depend on them:
//
//   - an RBAC object or ServiceAccount: every RBAC object and ServiceAccount
//     (aggregation, bindings to missing roles, default accounts with
//     bindings, who can read Secrets);
//   - a NetworkPolicy, PeerAuthentication or Namespace: every object in that
//     namespace (isolation and mTLS of its workloads, default deny);
//   - a RuntimeClass: every workload (sandboxing);
//   - anything else: itself.
func dependants(changed map[objKey]struct{}, objs []kube.Object) map[objKey]struct{} {
	out := make(map[objKey]struct{}, len(changed))
	var rbac, allWorkloads bool
	namespaces := map[string]bool{}
	for k := range changed {
		out[k] = struct{}{}
		switch {
		case slices.Contains(rbacKinds, k.Kind):
			rbac = true
		case k.Kind == "NetworkPolicy" || k.Kind == "PeerAuthentication":
			namespaces[k.Namespace] = true
		case k.Kind == "Namespace":
			namespaces[k.Name] = true
		case k.Kind == "RuntimeClass":
			allWorkloads = true
		}
	}
	if !rbac && !allWorkloads && len(namespaces) == 0 {
		return out
	}
	for i := range objs {
		o := &objs[i]
		if (rbac && slices.Contains(rbacKinds, o.Ref.Kind)) ||
			(allWorkloads && kube.IsWorkload(o.Ref.Kind)) ||
			namespaces[o.Ref.Namespace] ||
			(o.Ref.Kind == "Namespace" && namespaces[o.Ref.Name]) {
			out[keyOf(o)] = struct{}{}
		}
	}
	return out
}

// gcBurst lowers the garbage collector's goal to GOGC/divisor (at least 5;
// unchanged when GOGC is off) until the returned end is called; when bursts
// overlap the lowest goal applies, and GOGC comes back when the last ends.
// It is for the bursts in which serve decodes every object and throws most
// of it away: the informers' initial lists and full evaluations. The
// collector lets the heap grow to (1 + GOGC/100) times what is live before
// it collects, and during a burst what is live is the steady state plus
// the burst's working set, so with the default GOGC=100 these bursts set
// serve's peak resident memory. A lower goal trades collections, only
// during the burst, for a peak close to what serve keeps. GOMEMLIMIT
// applies throughout.
func gcBurst(divisor int) (end func()) {
	gcBursts.mu.Lock()
	defer gcBursts.mu.Unlock()
	if len(gcBursts.active) == 0 {
		gcBursts.restore = debug.SetGCPercent(100)
		debug.SetGCPercent(gcBursts.restore)
	}
	percent := gcBursts.restore
	if percent > 0 {
		percent = min(percent, max(percent/divisor, 5))
	}
	gcBursts.active = append(gcBursts.active, percent)
	debug.SetGCPercent(slices.Min(gcBursts.active))
	var once sync.Once
	return func() {
		once.Do(func() {
			gcBursts.mu.Lock()
			defer gcBursts.mu.Unlock()
			i := slices.Index(gcBursts.active, percent)
			gcBursts.active = slices.Delete(gcBursts.active, i, i+1)
			if len(gcBursts.active) == 0 {
				debug.SetGCPercent(gcBursts.restore)
			} else {
				debug.SetGCPercent(slices.Min(gcBursts.active))
			}
		})
	}
}

var gcBursts struct {
	mu      sync.Mutex
	active  []int // the GC percent of each burst in progress
	restore int   // the GOGC before the first of them
}
