package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"

	"github.com/kustode/kustode/internal/kube"
)

// objKey names one object in the inventory.
type objKey struct {
	Kind, Namespace, Name string
}

func (k objKey) String() string {
	if k.Namespace == "" {
		return k.Kind + "/" + k.Name
	}
	return k.Kind + "/" + k.Namespace + "/" + k.Name
}

// entry is what an informer cache holds for one object: its name and, for
// objects the checks judge, the trimmed object. Objects controlled by a
// listed workload (a Deployment's ReplicaSets and Pods) are judged at their
// owner and keep only their name, so that 10,000 such pods cost little.
type entry struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	Obj *kube.Object
}

func (e *entry) DeepCopyObject() runtime.Object { c := *e; return &c }

// Permission is one RBAC permission the inventory needs, as a ClusterRole
// rule grants it.
type Permission struct {
	Group    string
	Resource string
	Verbs    []string
}

// watchedKind is one kind the inventory watches.
type watchedKind struct {
	gvk      schema.GroupVersionKind
	resource schema.GroupVersionResource
	metadata bool // read as PartialObjectMetadata: never the data (Secrets)
}

// watchedKinds are the kinds the posture checks need (kube.ListedKinds,
// kube.MetadataOnlyKinds).
func watchedKinds() []watchedKind {
	var out []watchedKind
	for _, gvk := range kube.MetadataOnlyKinds {
		out = append(out, watchedKind{gvk: gvk, resource: kube.ResourceFor(gvk), metadata: true})
	}
	for _, gvk := range kube.ListedKinds {
		out = append(out, watchedKind{gvk: gvk, resource: kube.ResourceFor(gvk)})
	}
	return out
}

// KindStatus is the state of one watched kind, for /readyz and /metrics.
type KindStatus struct {
	Kind   string `json:"kind"`
	Synced bool   `json:"synced"`
	// Absent: an optional add-on kind the cluster does not serve.
	Absent bool `json:"absent,omitempty"`
	// Forbidden: the API server refused to list or watch it (RBAC).
	Forbidden bool   `json:"forbidden,omitempty"`
	Error     string `json:"error,omitempty"`
	Objects   int    `json:"objects"`
}

// Inventory keeps the cluster's objects that posture checks read, through
// one informer per kind with trimmed caches (no managed fields, no status of
// pods, Secrets as metadata only, controlled objects as names only). It
// reports every add, update and delete to onChange.
type Inventory struct {
	dyn        dynamic.Interface
	meta       metadata.Interface
	disc       discovery.DiscoveryInterface
	namespaces []string
	log        *slog.Logger
	onChange   func(objKey)

	mu        sync.Mutex
	informers map[string]cache.SharedIndexInformer
	status    map[string]*KindStatus
}

// NewInventory prepares informers; Start runs them. namespaces, when not
// empty, limits the judged objects to those namespaces (cluster-scoped
// kinds are always kept).
func NewInventory(dyn dynamic.Interface, meta metadata.Interface, disc discovery.DiscoveryInterface, namespaces []string, log *slog.Logger, onChange func(objKey)) *Inventory {
	return &Inventory{
		dyn: dyn, meta: meta, disc: disc, namespaces: namespaces, log: log, onChange: onChange,
		informers: map[string]cache.SharedIndexInformer{}, status: map[string]*KindStatus{},
	}
}

// RequiredPermissions are the RBAC permissions the inventory needs: list and
// watch on every watched kind. deploy/ grants exactly these.
func RequiredPermissions() []Permission {
	byGroup := map[string][]string{}
	for _, k := range watchedKinds() {
		byGroup[k.resource.Group] = append(byGroup[k.resource.Group], k.resource.Resource)
	}
	// Kubernetes Events, read by the event source.
	byGroup[""] = append(byGroup[""], "events")
	var out []Permission
	for g, rs := range byGroup {
		for _, r := range rs {
			out = append(out, Permission{Group: g, Resource: r, Verbs: []string{"list", "watch"}})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Group != out[j].Group {
			return out[i].Group < out[j].Group
		}
		return out[i].Resource < out[j].Resource
	})
	return out
}

// Start runs every informer until ctx is done; it blocks.
func (inv *Inventory) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, k := range watchedKinds() {
		st := &KindStatus{Kind: k.gvk.Kind}
		inv.mu.Lock()
		inv.status[k.gvk.Kind] = st
		inv.mu.Unlock()
		if kube.IsOptional(k.gvk.Kind) && !inv.served(k.resource) {
			inv.setStatus(k.gvk.Kind, func(s *KindStatus) { s.Absent, s.Synced = true, true })
			continue
		}
		inf, handler := inv.newInformer(k)
		inv.mu.Lock()
		inv.informers[k.gvk.Kind] = inf
		inv.mu.Unlock()
		wg.Go(func() { inf.RunWithContext(ctx) })
		wg.Go(func() {
			// The handler's own sync, not only the cache's: the initial adds
			// must all have reached the posture's change set before the
			// first full evaluation, or they arrive during it and make the
			// objects look changed again.
			if cache.WaitForCacheSync(ctx.Done(), inf.HasSynced, handler.HasSynced) {
				inv.setStatus(k.gvk.Kind, func(s *KindStatus) { s.Synced = true })
				inv.log.Debug("informer synced", "kind", k.gvk.Kind)
			}
		})
	}
	wg.Wait()
	return nil
}

// served reports whether the API server serves the resource.
func (inv *Inventory) served(gvr schema.GroupVersionResource) bool {
	if inv.disc == nil {
		return true
	}
	list, err := inv.disc.ServerResourcesForGroupVersion(gvr.GroupVersion().String())
	if err != nil {
		return false
	}
	for _, r := range list.APIResources {
		if r.Name == gvr.Resource {
			return true
		}
	}
	return false
}

func (inv *Inventory) setStatus(kind string, f func(*KindStatus)) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if s := inv.status[kind]; s != nil {
		f(s)
	}
}

func (inv *Inventory) newInformer(k watchedKind) (cache.SharedIndexInformer, cache.ResourceEventHandlerRegistration) {
	var lw cache.ListerWatcher
	var example runtime.Object
	if k.metadata {
		res := inv.meta.Resource(k.resource)
		lw = &cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return res.List(ctx, o)
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return res.Watch(ctx, o)
			},
		}
		example = &metav1.PartialObjectMetadata{}
	} else {
		res := inv.dyn.Resource(k.resource)
		lw = &cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return res.List(ctx, o)
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return res.Watch(ctx, o)
			},
		}
		example = &unstructured.Unstructured{}
	}
	inf := cache.NewSharedIndexInformerWithOptions(lw, example, cache.SharedIndexInformerOptions{
		ObjectDescription: k.gvk.Kind,
	})
	kind := k.gvk.Kind
	_ = inf.SetTransform(func(o any) (any, error) { return inv.trim(k, o) })
	_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		forbidden := apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err)
		inv.setStatus(kind, func(s *KindStatus) { s.Forbidden, s.Error = forbidden, err.Error() })
		if forbidden {
			inv.log.Error("cannot watch kind: grant list and watch to kustode's service account", "kind", kind, "err", err)
		} else if !errors.Is(err, context.Canceled) {
			inv.log.Warn("watch error, retrying", "kind", kind, "err", err)
		}
	})
	handler, _ := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { inv.changed(kind, o) },
		UpdateFunc: func(old, o any) {
			if e, ok := o.(*entry); ok {
				if p, ok := old.(*entry); ok && p.ResourceVersion == e.ResourceVersion {
					return // a resync, nothing changed
				}
			}
			inv.changed(kind, o)
		},
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			inv.changed(kind, o)
		},
	})
	return inf, handler
}

func (inv *Inventory) changed(kind string, o any) {
	e, ok := o.(*entry)
	if !ok || inv.onChange == nil {
		return
	}
	// A successful event means the kind is readable again.
	inv.setStatus(kind, func(s *KindStatus) { s.Forbidden, s.Error = false, "" })
	inv.onChange(objKey{Kind: kind, Namespace: e.Namespace, Name: e.Name})
}

// trim turns what the API server sent into an entry.
func (inv *Inventory) trim(k watchedKind, o any) (any, error) {
	switch o := o.(type) {
	case *entry, cache.DeletedFinalStateUnknown:
		return o, nil
	case *metav1.PartialObjectMetadata:
		e := &entry{ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace, ResourceVersion: o.ResourceVersion, UID: o.UID}}
		if inv.inScope(o.Namespace) {
			obj, err := kube.FromMetadata(k.gvk, o)
			if err != nil {
				return nil, err
			}
			e.Obj = &obj
		}
		return e, nil
	case *unstructured.Unstructured:
		e := &entry{ObjectMeta: metav1.ObjectMeta{Name: o.GetName(), Namespace: o.GetNamespace(), ResourceVersion: o.GetResourceVersion(), UID: o.GetUID()}}
		if k.gvk.Kind == "Namespace" || (inv.inScope(o.GetNamespace()) && !kube.ControlledByListedKind(o.GetOwnerReferences())) {
			if k.gvk.Kind == "Pod" {
				// Pod status (conditions, container states) is bulk no
				// check reads.
				unstructured.RemoveNestedField(o.Object, "status")
			}
			obj, err := kube.FromUnstructured(k.gvk, o)
			if err != nil {
				return nil, err
			}
			e.Obj = &obj
		}
		return e, nil
	default:
		return nil, fmt.Errorf("inventory: unexpected %T for %s", o, k.gvk.Kind)
	}
}

func (inv *Inventory) inScope(ns string) bool {
	return ns == "" || len(inv.namespaces) == 0 || slices.Contains(inv.namespaces, ns)
}

// Synced reports whether every kind has synced (absent optional kinds
// count as synced).
func (inv *Inventory) Synced() bool {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if len(inv.status) == 0 {
		return false
	}
	for _, s := range inv.status {
		if !s.Synced {
			return false
		}
	}
	return true
}

// WaitForSync blocks until every kind synced or ctx is done.
func (inv *Inventory) WaitForSync(ctx context.Context) bool {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !inv.Synced() {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// Status returns each kind's state, sorted by kind.
func (inv *Inventory) Status() []KindStatus {
	inv.mu.Lock()
	out := make([]KindStatus, 0, len(inv.status))
	for kind, s := range inv.status {
		c := *s
		if inf := inv.informers[kind]; inf != nil {
			c.Objects = len(inf.GetStore().ListKeys())
		}
		out = append(out, c)
	}
	inv.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out
}

// Snapshot returns every object the checks judge, in a stable order.
func (inv *Inventory) Snapshot() []kube.Object {
	inv.mu.Lock()
	infs := make([]cache.SharedIndexInformer, 0, len(inv.informers))
	for _, inf := range inv.informers {
		infs = append(infs, inf)
	}
	inv.mu.Unlock()
	var out []kube.Object
	for _, inf := range infs {
		for _, o := range inf.GetStore().List() {
			if e, ok := o.(*entry); ok && e.Obj != nil {
				out = append(out, *e.Obj)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Ref, out[j].Ref
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return out
}

// PolicyRules are the RBAC rules serve needs, as a ClusterRole grants them:
// RequiredPermissions grouped by API group, plus TokenReview and
// SubjectAccessReview for authenticating API users. deploy/ ships exactly
// these (an end-to-end test compares), and `kustode demo` runs serve with
// them.
func PolicyRules() []rbacv1.PolicyRule {
	var rules []rbacv1.PolicyRule
	for _, p := range RequiredPermissions() {
		if n := len(rules); n > 0 && rules[n-1].APIGroups[0] == p.Group {
			rules[n-1].Resources = append(rules[n-1].Resources, p.Resource)
			continue
		}
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{p.Group}, Resources: []string{p.Resource}, Verbs: p.Verbs})
	}
	return append(rules,
		rbacv1.PolicyRule{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
	)
}
