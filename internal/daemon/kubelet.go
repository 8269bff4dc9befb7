package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kustode/kustode/internal/kube"
)

// kubeletKind is the kind of the kubelet configurations' entries. No
// informer watches it: KubeletConfigs reads the objects and keeps them
// ready to judge.
var kubeletKind = &watchedKind{
	gvk:        schema.GroupVersionKind{Group: "kubelet.config.k8s.io", Version: "v1beta1", Kind: kube.KubeletConfigKind},
	apiVersion: kube.KubeletConfigAPIVersion,
}

// KubeletPermissions are the RBAC permissions reading the kubelet
// configurations needs (kubelet.readConfig): list and watch on nodes, to know
// which to read, and get on nodes/proxy for each node's /configz. They are
// not in RequiredPermissions: nodes/proxy also reaches every kubelet's API
// (exec into any pod, past audit and admission), so the install grants them
// only when the option is on, in a ClusterRole of their own
// (KubeletPolicyRules).
func KubeletPermissions() []Permission {
	return []Permission{
		{Group: "", Resource: "nodes", Verbs: []string{"list", "watch"}},
		{Group: "", Resource: "nodes/proxy", Verbs: []string{"get"}},
	}
}

// KubeletPolicyRules are KubeletPermissions as ClusterRole rules: what the
// chart's kubelet-config ClusterRole grants when kubelet.readConfig is on.
func KubeletPolicyRules() []rbacv1.PolicyRule {
	var rules []rbacv1.PolicyRule
	for _, p := range KubeletPermissions() {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{p.Group}, Resources: []string{p.Resource}, Verbs: p.Verbs})
	}
	return rules
}

// KubeletConfigs keeps every node's running kubelet configuration, read
// through the API server's node proxy (kube.KubeletConfig), as one object per
// node (kind KubeletConfiguration, named after the node) kept ready to judge
// beside the inventory's objects (see withKubelet). It reads every node once
// the nodes are listed, then every Interval, and each node that joins in
// between; it reports each configuration that appeared, changed or went (its
// node deleted, so its findings resolve) to onChange.
//
// A node that cannot be read keeps the configuration last read from it (none
// if never): a kubelet down for a while has most likely not changed, and its
// findings should not resolve and reopen with its availability. Every failure
// shows in Status and the coverage condition kubelet-config.
type KubeletConfigs struct {
	client   kubernetes.Interface
	read     func(ctx context.Context, node string) (kube.Object, error)
	onChange func(objKey)
	log      *slog.Logger
	// Interval is how often every node is read again.
	Interval time.Duration
	// FirstWait bounds how long WaitFirst waits for the first round: on a
	// large cluster with many unreachable kubelets (each read times out
	// after 10 s) the first posture should not wait for all of them.
	FirstWait time.Duration
	// Parallel is how many nodes are read at once.
	Parallel int

	first     chan struct{}
	firstOnce sync.Once
	wake      chan struct{}

	mu       sync.Mutex
	nodes    cache.Store // names of the nodes, from the informer
	synced   func() bool
	listErr  error
	tried    bool
	configs  map[string]*entry
	failures map[string]error
	pending  map[string]struct{}
}

// NewKubeletConfigs returns a KubeletConfigs that lists and watches nodes
// with client and reads one node's configuration with read (in serve,
// kube.KubeletConfig). Start runs it.
func NewKubeletConfigs(client kubernetes.Interface, read func(ctx context.Context, node string) (kube.Object, error), onChange func(objKey), log *slog.Logger) *KubeletConfigs {
	return &KubeletConfigs{
		client: client, read: read, onChange: onChange, log: log,
		Interval: 10 * time.Minute, FirstWait: 2 * time.Minute, Parallel: 16,
		first: make(chan struct{}), wake: make(chan struct{}, 1),
		configs: map[string]*entry{}, failures: map[string]error{}, pending: map[string]struct{}{},
	}
}

// WaitFirst blocks until the first round of reads has been tried (every
// node read or failed, or the nodes could not be listed), or FirstWait has
// passed, or ctx is done; it reports false only in the last case.
func (k *KubeletConfigs) WaitFirst(ctx context.Context) bool {
	select {
	case <-k.first:
		return true
	case <-ctx.Done():
		return false
	}
}

func (k *KubeletConfigs) markFirst() {
	k.firstOnce.Do(func() {
		k.mu.Lock()
		k.tried = true
		k.mu.Unlock()
		close(k.first)
	})
}

// Start watches the nodes and reads their kubelets until ctx is done; it
// blocks. Reads are not retried within a round: the next round (Interval)
// tries again.
func (k *KubeletConfigs) Start(ctx context.Context) error {
	inf := k.newInformer()
	k.mu.Lock()
	k.nodes, k.synced = inf.GetStore(), inf.HasSynced
	k.mu.Unlock()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { inf.RunWithContext(ctx) })
	timer := time.AfterFunc(k.FirstWait, k.markFirst)
	defer timer.Stop()

	// The first round, as soon as the nodes are listed. A list that fails
	// (forbidden) ends the wait: the first posture goes ahead without the
	// kubelets, and the nodes are read as they are listed later (adds).
	poll := time.NewTicker(50 * time.Millisecond)
	for !inf.HasSynced() && k.status().ListErr == nil {
		select {
		case <-ctx.Done():
			poll.Stop()
			return nil
		case <-poll.C:
		}
	}
	poll.Stop()
	if inf.HasSynced() {
		k.round(ctx)
	}
	k.markFirst()

	t := time.NewTicker(k.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			k.round(ctx)
		case <-k.wake:
			k.readPending(ctx)
		}
	}
}

// newInformer watches the nodes and keeps their names only.
func (k *KubeletConfigs) newInformer() cache.SharedIndexInformer {
	nodes := k.client.CoreV1().Nodes()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return nodes.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return nodes.Watch(ctx, o)
		},
	}
	// ToListWatcherWithWatchListSemantics: a client that cannot stream
	// the initial list (a fake in tests) is listed the classic way.
	inf := cache.NewSharedIndexInformerWithOptions(cache.ToListWatcherWithWatchListSemantics(lw, k.client), &corev1.Node{},
		cache.SharedIndexInformerOptions{ObjectDescription: "Node"})
	_ = inf.SetTransform(func(o any) (any, error) {
		if n, ok := o.(*corev1.Node); ok {
			return keyOnly(n), nil
		}
		return o, nil
	})
	_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		if errors.Is(err, context.Canceled) {
			return
		}
		k.mu.Lock()
		k.listErr = err
		k.mu.Unlock()
		if rbacForbidden(err) {
			k.log.Error("cannot list nodes: grant list and watch on nodes to kustode's service account, or turn kubelet.readConfig off", "err", err)
		} else {
			k.log.Warn("node watch error, retrying", "err", err)
		}
	})
	changed := func(o any) {
		if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = t.Obj
		}
		key, ok := o.(cache.ExplicitKey)
		if !ok {
			return
		}
		k.mu.Lock()
		k.listErr = nil // the watch works again
		k.pending[string(key)] = struct{}{}
		k.mu.Unlock()
		select {
		case k.wake <- struct{}{}:
		default:
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    changed,
		DeleteFunc: changed,
	})
	return inf
}

// round reads every node, and drops the configurations of nodes that are
// gone.
func (k *KubeletConfigs) round(ctx context.Context) {
	start := time.Now()
	k.mu.Lock()
	names := k.nodes.ListKeys()
	k.pending = map[string]struct{}{}
	k.mu.Unlock()
	sort.Strings(names)
	changed := k.readNodes(ctx, names)
	exists := make(map[string]bool, len(names))
	for _, n := range names {
		exists[n] = true
	}
	k.mu.Lock()
	var gone []string
	for name := range k.configs {
		if !exists[name] {
			gone = append(gone, name)
		}
	}
	for name := range k.failures {
		if !exists[name] {
			delete(k.failures, name)
		}
	}
	failed := len(k.failures)
	k.mu.Unlock()
	for _, name := range gone {
		k.drop(name)
	}
	if ctx.Err() == nil {
		k.log.Info("kubelet configurations read", "nodes", len(names), "failed", failed, "changed", changed+len(gone),
			"took", time.Since(start).Round(time.Millisecond))
	}
}

// readPending reads the nodes that joined since they were last looked at,
// and drops those deleted.
func (k *KubeletConfigs) readPending(ctx context.Context) {
	k.mu.Lock()
	var read, gone []string
	for name := range k.pending {
		_, exists, _ := k.nodes.GetByKey(name)
		_, known := k.configs[name]
		_, failing := k.failures[name]
		switch {
		case !exists:
			gone = append(gone, name)
		case !known && !failing:
			read = append(read, name)
		}
	}
	k.pending = map[string]struct{}{}
	k.mu.Unlock()
	for _, name := range gone {
		k.drop(name)
	}
	sort.Strings(read)
	k.readNodes(ctx, read)
}

// readNodes reads names, Parallel at a time, and returns how many
// configurations changed.
func (k *KubeletConfigs) readNodes(ctx context.Context, names []string) int {
	sem := make(chan struct{}, max(k.Parallel, 1))
	var mu sync.Mutex
	changed := 0
	var wg sync.WaitGroup
	for _, name := range names {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			obj, err := k.read(ctx, name)
			if ctx.Err() != nil {
				return // stopping: not the kubelet's fault
			}
			if k.apply(name, obj, err) {
				mu.Lock()
				changed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return changed
}

// apply records one read and reports a new or changed configuration to
// onChange; it reports whether there was one.
func (k *KubeletConfigs) apply(name string, obj kube.Object, err error) bool {
	k.mu.Lock()
	if err != nil {
		_, failing := k.failures[name]
		k.failures[name] = err
		k.mu.Unlock()
		if !failing {
			k.log.Warn("kubelet configuration not read", "node", name, "err", err)
		}
		return false
	}
	_, failing := k.failures[name]
	delete(k.failures, name)
	e := &entry{kind: kubeletKind, name: name, obj: &obj}
	old := k.configs[name]
	same := old != nil && old.same(e)
	if !same {
		k.configs[name] = e
	}
	k.mu.Unlock()
	if failing {
		k.log.Info("kubelet configuration read again", "node", name)
	}
	if same {
		return false
	}
	k.onChange(e.key())
	return true
}

// drop forgets a deleted node; its findings resolve.
func (k *KubeletConfigs) drop(name string) {
	k.mu.Lock()
	e := k.configs[name]
	delete(k.configs, name)
	delete(k.failures, name)
	k.mu.Unlock()
	if e != nil {
		k.onChange(e.key())
	}
}

// withKubelet returns entries, the inventory's snapshot (sorted by
// sortEntries), with the kubelet configurations inserted in that order.
func (k *KubeletConfigs) withKubelet(entries []*entry) []*entry {
	k.mu.Lock()
	own := make([]*entry, 0, len(k.configs))
	for _, e := range k.configs {
		own = append(own, e)
	}
	k.mu.Unlock()
	if len(own) == 0 {
		return entries
	}
	sortEntries(own)
	// Every kubelet entry has the same kind and no namespace: they go
	// together after the last entry of a kind that sorts before theirs.
	at := sort.Search(len(entries), func(i int) bool { return entries[i].kind.gvk.Kind > kubeletKind.gvk.Kind })
	return slices.Insert(entries, at, own...)
}

// KubeletStatus is the state of the kubelet configuration reads, for the
// coverage self-check.
type KubeletStatus struct {
	// Tried: the first round was tried (see WaitFirst).
	Tried bool
	// Listed: the nodes have been listed.
	Listed bool
	// ListErr is the last error listing or watching the nodes, nil once
	// the watch works.
	ListErr error
	// Nodes is how many nodes there are; Read how many have a
	// configuration.
	Nodes, Read int
	// Failures are the nodes whose last read failed, sorted by node.
	Failures []KubeletFailure
}

// KubeletFailure is one node whose kubelet configuration was not read.
type KubeletFailure struct {
	Node string
	Err  error
}

func (k *KubeletConfigs) status() KubeletStatus {
	k.mu.Lock()
	defer k.mu.Unlock()
	st := KubeletStatus{Tried: k.tried, ListErr: k.listErr, Read: len(k.configs)}
	if k.nodes != nil {
		st.Nodes = len(k.nodes.ListKeys())
		st.Listed = k.synced()
	}
	for n, err := range k.failures {
		st.Failures = append(st.Failures, KubeletFailure{Node: n, Err: err})
	}
	slices.SortFunc(st.Failures, func(a, b KubeletFailure) int { return strings.Compare(a.Node, b.Node) })
	return st
}

// Status returns the state of the reads; it does no I/O.
func (k *KubeletConfigs) Status() KubeletStatus { return k.status() }

// kubeletFix is what to do about a forbidden read.
const kubeletFix = "grant list and watch on nodes and get on nodes/proxy to kustode's service account " +
	"(Helm: --set kubelet.readConfig=true grants them in the kustode-kubelet-config ClusterRole), or turn kubelet.readConfig off"

// kubeletCondition is the coverage condition kubelet-config. Before the
// first round it is not OK (serve is not ready until the kubelets were
// tried once, so that the first posture includes them). After, a problem
// (forbidden, nodes not listed, kubelets unreachable) is not OK and raises
// a coverage alert, but is advisory: serve stays ready, because an
// unreadable kubelet hides only its own node's configuration, and an
// unready serve would also stop receiving the audit webhook.
func kubeletCondition(st KubeletStatus) Condition {
	c := Condition{Name: "kubelet-config", OK: true, advisory: true}
	switch {
	case !st.Tried:
		c.OK, c.advisory, c.syncing = false, false, true
		c.Detail = "the nodes' kubelet configurations not read yet"
	case st.ListErr != nil && rbacForbidden(st.ListErr):
		c.OK = false
		c.Detail = "forbidden: " + kubeletFix + ": " + st.ListErr.Error()
	case !st.Listed:
		c.OK, c.syncing = false, true
		c.Detail = "nodes not listed yet"
		if st.ListErr != nil {
			c.Detail = "nodes not listed: " + st.ListErr.Error()
		}
	case len(st.Failures) > 0:
		c.OK = false
		i := slices.IndexFunc(st.Failures, func(f KubeletFailure) bool { return rbacForbidden(f.Err) })
		if i >= 0 {
			c.Detail = fmt.Sprintf("forbidden: %s: %d of %d nodes not read: %s: %s",
				kubeletFix, len(st.Failures), st.Nodes, st.Failures[i].Node, truncate(st.Failures[i].Err.Error(), 300))
			break
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%d of %d nodes' kubelet configuration not read (kubelet unreachable, or without /configz); "+
			"their last configuration read, if any, is still judged: ", len(st.Failures), st.Nodes)
		const shown = 3
		for j, f := range st.Failures[:min(len(st.Failures), shown)] {
			if j > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "%s: %s", f.Node, truncate(f.Err.Error(), 200))
		}
		if n := len(st.Failures) - shown; n > 0 {
			fmt.Fprintf(&b, "; and %d more (see the log)", n)
		}
		c.Detail = b.String()
	}
	return c
}

// rbacForbidden reports whether err is the API server refusing kustode
// (RBAC), as opposed to a kubelet refusing the API server through the
// proxy: the API server's Forbidden names the resource (nodes); a proxied
// 403 names none.
func rbacForbidden(err error) bool {
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		return false
	}
	st := se.Status()
	return st.Reason == metav1.StatusReasonForbidden && st.Details != nil && st.Details.Kind != ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
