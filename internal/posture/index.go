package posture

import (
	"sync"

	"github.com/kustode/kustode/internal/kube"
)

// Index is a read-only view of every object in one scan, for checks that
// judge an object against others (a workload against the NetworkPolicies of
// its namespace, a binding against the roles it names). It is built once per
// Run and shared by all checks; it is safe for concurrent use.
type Index struct {
	byKind map[string][]*kube.Object

	mu      sync.Mutex
	derived map[string]*derivedValue
}

type derivedValue struct {
	once sync.Once
	v    any
}

// NewIndex indexes objs by kind. The objects must not change while the
// index is in use.
func NewIndex(objs []kube.Object) *Index {
	ix := &Index{byKind: map[string][]*kube.Object{}, derived: map[string]*derivedValue{}}
	for i := range objs {
		o := &objs[i]
		ix.byKind[o.Ref.Kind] = append(ix.byKind[o.Ref.Kind], o)
	}
	return ix
}

// Objects returns every object of a kind, in input order.
func (ix *Index) Objects(kind string) []*kube.Object { return ix.byKind[kind] }

// Derived returns the value build computes from the index, computing it at
// most once per key however many checks and goroutines ask. Checks use it
// for per-scan structures such as policies grouped by namespace; the value
// must be treated as read-only.
func (ix *Index) Derived(key string, build func(*Index) any) any {
	ix.mu.Lock()
	d, ok := ix.derived[key]
	if !ok {
		d = &derivedValue{}
		ix.derived[key] = d
	}
	ix.mu.Unlock()
	d.once.Do(func() { d.v = build(ix) })
	return d.v
}

// Namespace returns the namespace an object lives in, treating an empty
// namespace as "default" as kubectl does when applying a manifest.
func Namespace(o *kube.Object) string {
	if o.Ref.Namespace == "" {
		return "default"
	}
	return o.Ref.Namespace
}
