package daemon

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"
	"unique"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/kustode/kustode/internal/finding"
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

// Permission is one RBAC permission the inventory needs, as a ClusterRole
// rule grants it.
type Permission struct {
	Group    string
	Resource string
	Verbs    []string
}

// kindSource is how the inventory reads a kind.
type kindSource int

const (
	// typedSource: a built-in kind, through client-go's typed API in
	// protobuf, decoded several times faster than JSON and with a fraction
	// of the garbage.
	typedSource kindSource = iota
	// dynamicSource: a kind the typed API does not know (a CRD such as
	// Istio's PeerAuthentication), as JSON into unstructured objects.
	dynamicSource
	// metadataSource: PartialObjectMetadata only, never the data (Secrets).
	metadataSource
)

// watchedKind is one kind the inventory watches.
type watchedKind struct {
	gvk        schema.GroupVersionKind
	apiVersion string
	resource   schema.GroupVersionResource
	source     kindSource
	// context: other objects' findings depend on this kind (contextKinds),
	// so every evaluation reads all of its objects: they are kept ready to
	// judge rather than encoded.
	context bool
}

// watchedKinds are the kinds the posture checks need (kube.ListedKinds,
// kube.MetadataOnlyKinds).
func watchedKinds() []*watchedKind {
	var out []*watchedKind
	add := func(gvk schema.GroupVersionKind, src kindSource) {
		if src == typedSource && !scheme.Scheme.Recognizes(gvk) {
			src = dynamicSource
		}
		out = append(out, &watchedKind{
			gvk: gvk, apiVersion: gvk.GroupVersion().String(), resource: kube.ResourceFor(gvk),
			source: src, context: slices.Contains(contextKinds, gvk.Kind),
		})
	}
	for _, gvk := range kube.MetadataOnlyKinds {
		add(gvk, metadataSource)
	}
	for _, gvk := range kube.ListedKinds {
		add(gvk, typedSource)
	}
	return out
}

// entry is what an informer's cache holds for one object the checks judge:
// its name and the object in one of two forms. Objects of the kinds other
// objects' findings depend on (watchedKind.context), which every
// evaluation reads, are kept ready to judge (obj). Every other object is
// kept as its protobuf encoding without status, managed fields,
// resourceVersion and admission's additions (see trimObject), stored as its
// difference (diff) from a reference object of its kind and namespace (base;
// see reference), and decoded only while it is judged: a pod's 4 KB of JSON
// (10 KB decoded) is kept in a few hundred bytes, with no copy of its
// labels and annotations.
//
// Objects the checks do not judge (controlled by a listed workload, such as
// a Deployment's ReplicaSets and Pods, or outside the configured
// namespaces) are kept as their cache key only (a cache.ExplicitKey), so
// that 10,000 such pods cost little.
type entry struct {
	kind            *watchedKind
	namespace, name string
	obj             *kube.Object
	base            *reference
	diff            []byte
}

// GetObjectMeta gives the informer's cache the name it keys the entry by.
func (e *entry) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Namespace: e.namespace, Name: e.name}
}

func (e *entry) objectRef() finding.ObjectRef {
	return finding.ObjectRef{APIVersion: e.kind.apiVersion, Kind: e.kind.gvk.Kind, Namespace: e.namespace, Name: e.name}
}

func (e *entry) key() objKey {
	return objKey{Kind: e.kind.gvk.Kind, Namespace: e.namespace, Name: e.name}
}

// same reports whether two entries of one object hold the same content:
// an update that changed only what the inventory drops (status,
// resourceVersion, managed fields) changes no finding.
func (e *entry) same(o *entry) bool {
	if e.obj != nil || o.obj != nil {
		return e.obj != nil && o.obj != nil && bytes.Equal(e.obj.Raw, o.obj.Raw)
	}
	return e.base == o.base && bytes.Equal(e.diff, o.diff)
}

// object returns the entry's object ready to judge. Encoded entries are
// decoded anew on each call: the caller keeps the result only while it
// judges it.
func (e *entry) object() (kube.Object, error) {
	if e.obj != nil {
		return *e.obj, nil
	}
	gvk := e.kind.gvk
	raw, err := e.base.decode(e.diff)
	if err != nil {
		return kube.Object{}, fmt.Errorf("decode %s %s/%s: %w", gvk.Kind, e.namespace, e.name, err)
	}
	if e.kind.source == metadataSource {
		var m metav1.PartialObjectMetadata
		if err := m.Unmarshal(raw); err != nil {
			return kube.Object{}, fmt.Errorf("decode %s %s/%s: %w", gvk.Kind, e.namespace, e.name, err)
		}
		return kube.FromMetadata(gvk, &m)
	}
	o, err := scheme.Scheme.New(gvk)
	if err != nil {
		return kube.Object{}, err
	}
	typed, ok1 := o.(kube.TypedObject)
	pb, ok2 := o.(protoObject)
	if !ok1 || !ok2 {
		return kube.Object{}, fmt.Errorf("inventory: %T is not a protobuf API object", o)
	}
	if err := pb.Unmarshal(raw); err != nil {
		return kube.Object{}, fmt.Errorf("decode %s %s/%s: %w", gvk.Kind, e.namespace, e.name, err)
	}
	obj, err := kube.FromTyped(gvk, typed)
	// The engine reads a workload's template from the typed object rather
	// than decoding it again from the JSON (half of judging a pod).
	obj.Template = kube.TypedPodTemplate(typed)
	return obj, err
}

// protoObject is an API type's generated protobuf encoding.
type protoObject interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
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
// one informer per kind with trimmed caches (no managed fields, no status,
// Secrets as metadata only, objects the checks do not judge as names only;
// see entry). It reports every add, update and delete that can change a
// finding to onChange.
type Inventory struct {
	client     kubernetes.Interface
	dyn        dynamic.Interface
	meta       metadata.Interface
	disc       discovery.DiscoveryInterface
	namespaces []string
	log        *slog.Logger
	onChange   func(objKey)

	refs references

	mu        sync.Mutex
	informers map[string]cache.SharedIndexInformer
	status    map[string]*KindStatus
}

// NewInventory prepares informers; Start runs them. client reads the
// built-in kinds and should speak protobuf (see ProtobufConfig); dyn the
// kinds client does not know (CRDs); meta the metadata-only kinds.
// namespaces, when not empty, limits the judged objects to those namespaces
// (cluster-scoped kinds are always kept).
func NewInventory(client kubernetes.Interface, dyn dynamic.Interface, meta metadata.Interface, disc discovery.DiscoveryInterface, namespaces []string, log *slog.Logger, onChange func(objKey)) *Inventory {
	return &Inventory{
		client: client, dyn: dyn, meta: meta, disc: disc, namespaces: namespaces, log: log, onChange: onChange,
		informers: map[string]cache.SharedIndexInformer{}, status: map[string]*KindStatus{},
	}
}

// ProtobufConfig returns a copy of c that asks the API server for protobuf,
// falling back to JSON: for typed clients of built-in kinds (the dynamic
// and metadata clients choose their own encodings).
func ProtobufConfig(c *rest.Config) *rest.Config {
	c = rest.CopyConfig(c)
	c.ContentType = runtime.ContentTypeProtobuf
	c.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	return c
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
	// The initial lists are serve's largest burst of short-lived memory
	// (every object decoded whole, then trimmed), and what they keep is
	// most of what serve keeps: the lowest GC goal until they are done.
	endBurst := gcBurst(listBurst)
	for _, k := range watchedKinds() {
		st := &KindStatus{Kind: k.gvk.Kind}
		inv.mu.Lock()
		inv.status[k.gvk.Kind] = st
		inv.mu.Unlock()
		if kube.IsOptional(k.gvk.Kind) && !inv.served(k.resource) {
			inv.setStatus(k.gvk.Kind, func(s *KindStatus) { s.Absent, s.Synced = true, true })
			continue
		}
		inf, handler, err := inv.newInformer(k)
		if err != nil {
			endBurst()
			return err
		}
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
	wg.Go(func() {
		inv.WaitForSync(ctx)
		endBurst()
	})
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

// restClient returns the typed client's REST client for a built-in group
// version.
func (inv *Inventory) restClient(gv schema.GroupVersion) (rest.Interface, error) {
	switch gv.String() {
	case "v1":
		return inv.client.CoreV1().RESTClient(), nil
	case "apps/v1":
		return inv.client.AppsV1().RESTClient(), nil
	case "batch/v1":
		return inv.client.BatchV1().RESTClient(), nil
	case "networking.k8s.io/v1":
		return inv.client.NetworkingV1().RESTClient(), nil
	case "rbac.authorization.k8s.io/v1":
		return inv.client.RbacV1().RESTClient(), nil
	case "node.k8s.io/v1":
		return inv.client.NodeV1().RESTClient(), nil
	}
	return nil, fmt.Errorf("inventory: no typed client for %s", gv)
}

func (inv *Inventory) newInformer(k *watchedKind) (cache.SharedIndexInformer, cache.ResourceEventHandlerRegistration, error) {
	var lw cache.ListerWatcher
	var example runtime.Object
	switch k.source {
	case typedSource:
		rc, err := inv.restClient(k.gvk.GroupVersion())
		if err != nil {
			return nil, nil, err
		}
		lw = cache.NewFilteredListWatchFromClient(rc, k.resource.Resource, metav1.NamespaceAll, func(*metav1.ListOptions) {})
		if example, err = scheme.Scheme.New(k.gvk); err != nil {
			return nil, nil, err
		}
	case metadataSource:
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
	default:
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
	handler, err := inf.AddEventHandler(inv.handlers(kind))
	return inf, handler, err
}

// handlers are the event handlers of kind's informer.
func (inv *Inventory) handlers(kind string) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { inv.changed(kind, o) },
		UpdateFunc: func(old, o any) {
			e, _ := o.(*entry)
			p, _ := old.(*entry)
			if e != nil && p != nil && e.same(p) {
				// A resync, or a change of what no check reads (a pod's
				// status): nothing to judge. Still a sign of a working
				// watch.
				inv.changed(kind, nil)
				return
			}
			if e == nil {
				o = old // no longer judged: its findings resolve
			}
			inv.changed(kind, o)
		},
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			inv.changed(kind, o)
		},
	}
}

// changed reports an event of kind to onChange when it concerns an object
// the checks judge (an entry): the others have no findings and no finding
// depends on them.
func (inv *Inventory) changed(kind string, o any) {
	// A successful event means the kind is readable again.
	inv.setStatus(kind, func(s *KindStatus) { s.Forbidden, s.Error = false, "" })
	if e, ok := o.(*entry); ok && inv.onChange != nil {
		inv.onChange(e.key())
	}
}

// trim turns what the API server sent into what the cache keeps: an entry,
// or a cache.ExplicitKey for an object the checks do not judge.
func (inv *Inventory) trim(k *watchedKind, o any) (any, error) {
	switch o := o.(type) {
	case *entry, cache.ExplicitKey, cache.DeletedFinalStateUnknown:
		return o, nil // already trimmed
	case *unstructured.Unstructured:
		if !inv.judged(k, o) {
			return keyOnly(o), nil
		}
		e := inv.newEntry(k, o)
		o.SetResourceVersion("")
		unstructured.RemoveNestedField(o.Object, "status")
		obj, err := kube.FromUnstructured(k.gvk, o)
		if err != nil {
			return nil, err
		}
		e.obj = &obj
		return e, nil
	case *metav1.PartialObjectMetadata:
		if !inv.judged(k, o) {
			return keyOnly(o), nil
		}
		e := inv.newEntry(k, o)
		o.ResourceVersion = ""
		if k.context {
			obj, err := kube.FromMetadata(k.gvk, o)
			if err != nil {
				return nil, err
			}
			e.obj = &obj
			return e, nil
		}
		o.ManagedFields = nil
		delete(o.Annotations, kube.LastAppliedAnnotation)
		pb, err := o.Marshal()
		if err != nil {
			return nil, fmt.Errorf("encode %s %s/%s: %w", k.gvk.Kind, o.Namespace, o.Name, err)
		}
		inv.encode(e, pb)
		return e, nil
	case kube.TypedObject:
		if !inv.judged(k, o) {
			return keyOnly(o), nil
		}
		e := inv.newEntry(k, o)
		o.SetResourceVersion("")
		trimObject(o)
		if k.context {
			obj, err := kube.FromTyped(k.gvk, o)
			if err != nil {
				return nil, err
			}
			e.obj = &obj
			return e, nil
		}
		pb, ok := o.(protoObject)
		if !ok {
			return nil, fmt.Errorf("inventory: %T is not a protobuf API object", o)
		}
		o.SetManagedFields(nil)
		delete(o.GetAnnotations(), kube.LastAppliedAnnotation)
		b, err := pb.Marshal()
		if err != nil {
			return nil, fmt.Errorf("encode %s %s/%s: %w", k.gvk.Kind, o.GetNamespace(), o.GetName(), err)
		}
		inv.encode(e, b)
		return e, nil
	default:
		return nil, fmt.Errorf("inventory: unexpected %T for %s", o, k.gvk.Kind)
	}
}

// judged reports whether the checks judge o: every Namespace; other objects
// in scope unless a listed workload controls them (they are judged at that
// owner, the object a person edits).
func (inv *Inventory) judged(k *watchedKind, o metav1.Object) bool {
	return k.gvk.Kind == "Namespace" || (inv.inScope(o.GetNamespace()) && !kube.ControlledByListedKind(o.GetOwnerReferences()))
}

// encode stores pb, an object's protobuf encoding, in e as its difference
// from its kind and namespace's reference.
func (inv *Inventory) encode(e *entry, pb []byte) {
	e.base = inv.refs.get(e.kind, e.namespace, pb)
	e.diff = bytes.Clone(e.base.encode(pb))
}

func (inv *Inventory) newEntry(k *watchedKind, o metav1.Object) *entry {
	// Namespace names repeat across thousands of objects: one copy each.
	return &entry{kind: k, namespace: unique.Make(o.GetNamespace()).Value(), name: o.GetName()}
}

// keyOnly is what the cache keeps of an object the checks do not judge: the
// key the informer files it under, nothing else.
func keyOnly(o metav1.Object) cache.ExplicitKey {
	return cache.ExplicitKey(cache.ObjectName{Namespace: o.GetNamespace(), Name: o.GetName()}.String())
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

// snapshot returns the entries of every object the checks judge, in a
// stable order (kind, namespace, name).
func (inv *Inventory) snapshot() []*entry {
	inv.mu.Lock()
	infs := make([]cache.SharedIndexInformer, 0, len(inv.informers))
	for _, inf := range inv.informers {
		infs = append(infs, inf)
	}
	inv.mu.Unlock()
	var out []*entry
	for _, inf := range infs {
		for _, o := range inf.GetStore().List() {
			if e, ok := o.(*entry); ok {
				out = append(out, e)
			}
		}
	}
	sortEntries(out)
	return out
}

// sortEntries sorts by kind, namespace and name.
func sortEntries(es []*entry) {
	slices.SortFunc(es, func(a, b *entry) int {
		return cmp.Or(cmp.Compare(a.kind.gvk.Kind, b.kind.gvk.Kind), cmp.Compare(a.namespace, b.namespace), cmp.Compare(a.name, b.name))
	})
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
