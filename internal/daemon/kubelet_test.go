package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/kube"
	"github.com/kustode/kustode/internal/store"
)

// fakeKubelets answers reads of kubelet configurations from a table: a
// node's configz (the kubeletconfig object's JSON) or its error.
type fakeKubelets struct {
	mu      sync.Mutex
	configs map[string]string
	errs    map[string]error
}

func (f *fakeKubelets) set(node, cfg string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.configs == nil {
		f.configs, f.errs = map[string]string{}, map[string]error{}
	}
	f.configs[node], f.errs[node] = cfg, err
}

func (f *fakeKubelets) read(_ context.Context, node string) (kube.Object, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs[node]; err != nil {
		return kube.Object{}, err
	}
	cfg, ok := f.configs[node]
	if !ok {
		return kube.Object{}, errors.New("the server could not find the requested resource")
	}
	raw := fmt.Sprintf(`{"apiVersion":%q,"kind":%q,"metadata":{"name":%q},%s}`, kube.KubeletConfigAPIVersion, kube.KubeletConfigKind, node, cfg)
	return kube.Object{
		Ref: finding.ObjectRef{APIVersion: kube.KubeletConfigAPIVersion, Kind: kube.KubeletConfigKind, Name: node},
		Raw: []byte(raw),
	}, nil
}

// changeLog records onChange calls.
type changeLog struct {
	mu   sync.Mutex
	keys []string
}

func (c *changeLog) add(k objKey) {
	c.mu.Lock()
	c.keys = append(c.keys, k.String())
	c.mu.Unlock()
}

func (c *changeLog) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.keys
	c.keys = nil
	slices.Sort(out)
	return out
}

func node(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func kubeletNames(k *KubeletConfigs) []string {
	var out []string
	for _, e := range k.withKubelet(nil) {
		out = append(out, e.name)
	}
	return out
}

// apiForbidden is the API server refusing nodes/proxy to kustode.
func apiForbidden(node string) error {
	return apierrors.NewForbidden(schema.GroupResource{Resource: "nodes"}, node,
		errors.New(`User "system:serviceaccount:kustode:kustode" cannot get resource "nodes/proxy" in API group "" at the cluster scope`))
}

const (
	anonymousKubelet = `"authentication":{"anonymous":{"enabled":true}},"readOnlyPort":10255`
	hardenedKubelet  = `"authentication":{"anonymous":{"enabled":false},"webhook":{"enabled":true}},"authorization":{"mode":"Webhook"},"readOnlyPort":0`
)

// TestKubeletConfigs: every node is read before the first posture, read
// again each round (only changes are reported), read when it joins and
// forgotten when deleted; failures keep the last configuration and show in
// the coverage condition, forbidden naming the permission.
func TestKubeletConfigs(t *testing.T) {
	ctx := t.Context()
	client := fake.NewClientset(node("n1"), node("n2"), node("n3"))
	kubelets := &fakeKubelets{}
	kubelets.set("n1", anonymousKubelet, nil)
	kubelets.set("n2", hardenedKubelet, nil)
	kubelets.set("n3", "", errors.New("error trying to reach service: dial tcp 10.0.0.3:10250: connect: connection refused"))
	changes := &changeLog{}
	k := NewKubeletConfigs(client, kubelets.read, changes.add, slog.New(slog.NewTextHandler(io.Discard, nil)))
	k.Interval = time.Hour // rounds are called by the test

	if c := kubeletCondition(k.Status()); c.OK || c.advisory {
		t.Errorf("before the first round: %+v, want not OK and not advisory (not ready)", c)
	}
	startKubelets(t, k)
	if !k.WaitFirst(ctx) {
		t.Fatal("WaitFirst returned false")
	}
	if got := kubeletNames(k); !slices.Equal(got, []string{"n1", "n2"}) {
		t.Errorf("after the first round: configurations %v, want n1 and n2", got)
	}
	if got, want := changes.take(), []string{"KubeletConfiguration/n1", "KubeletConfiguration/n2"}; !slices.Equal(got, want) {
		t.Errorf("changes %v, want %v", got, want)
	}
	c := kubeletCondition(k.Status())
	if c.OK || !c.advisory || !strings.Contains(c.Detail, "1 of 3 nodes") || !strings.Contains(c.Detail, "n3: error trying to reach service") {
		t.Errorf("one kubelet unreachable: %+v, want not OK, advisory, naming n3 and why", c)
	}

	// A round: only n1's change is reported.
	kubelets.set("n1", hardenedKubelet, nil)
	k.round(ctx)
	if got := changes.take(); !slices.Equal(got, []string{"KubeletConfiguration/n1"}) {
		t.Errorf("changes %v, want n1's only", got)
	}

	// A node joins: read at once, without waiting for the round.
	kubelets.set("n4", anonymousKubelet, nil)
	if _, err := client.CoreV1().Nodes().Create(ctx, node("n4"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "n4 read", func() bool { return slices.Contains(kubeletNames(k), "n4") })
	if got := changes.take(); !slices.Equal(got, []string{"KubeletConfiguration/n4"}) {
		t.Errorf("changes %v, want n4's", got)
	}

	// A node is deleted: its configuration goes, and the posture hears it.
	if err := client.CoreV1().Nodes().Delete(ctx, "n2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "n2 dropped", func() bool { return !slices.Contains(kubeletNames(k), "n2") })
	if got := changes.take(); !slices.Equal(got, []string{"KubeletConfiguration/n2"}) {
		t.Errorf("changes %v, want n2's", got)
	}

	// n3 comes back; then the permission is revoked: the configurations
	// read stay, and the condition names the permission and the fix.
	kubelets.set("n3", hardenedKubelet, nil)
	k.round(ctx)
	if c := kubeletCondition(k.Status()); !c.OK {
		t.Errorf("every kubelet read: %+v", c)
	}
	changes.take()
	for _, n := range []string{"n1", "n3", "n4"} {
		kubelets.set(n, "", fmt.Errorf("get configz: %w", apiForbidden(n)))
	}
	k.round(ctx)
	if got := kubeletNames(k); !slices.Equal(got, []string{"n1", "n3", "n4"}) {
		t.Errorf("after failed reads: configurations %v, want the last read of n1, n3, n4", got)
	}
	if got := changes.take(); len(got) != 0 {
		t.Errorf("failed reads reported changes %v", got)
	}
	c = kubeletCondition(k.Status())
	if c.OK || !c.advisory || !strings.HasPrefix(c.Detail, "forbidden: ") || !strings.Contains(c.Detail, "get on nodes/proxy") ||
		!strings.Contains(c.Detail, "kubelet.readConfig") || !strings.Contains(c.Detail, "3 of 3 nodes") {
		t.Errorf("forbidden: %+v, want the permission, the Helm value and the count", c)
	}
}

// A forbidden node list ends the start-up wait and says what to grant.
func TestKubeletConfigsNodesForbidden(t *testing.T) {
	ctx := t.Context()
	client := fake.NewClientset()
	client.PrependReactor("list", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "nodes"}, "", errors.New(`cannot list resource "nodes"`))
	})
	k := NewKubeletConfigs(client, (&fakeKubelets{}).read, func(objKey) {}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	startKubelets(t, k)
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if !k.WaitFirst(wait) {
		t.Fatal("WaitFirst did not return after the node list was refused")
	}
	c := kubeletCondition(k.Status())
	if c.OK || !c.advisory || !strings.HasPrefix(c.Detail, "forbidden: grant list and watch on nodes and get on nodes/proxy") {
		t.Errorf("condition %+v, want forbidden naming both permissions", c)
	}
}

// Only the API server's RBAC refusal is kustode's missing permission; a
// kubelet refusing the API server's proxy request is the kubelet's problem.
func TestRBACForbidden(t *testing.T) {
	kubelet403 := apierrors.NewGenericServerResponse(403, "get", schema.GroupResource{}, "",
		"Forbidden (user=kube-apiserver-kubelet-client, verb=get, resource=nodes, subresource=configz)", 0, true)
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"API server RBAC", apiForbidden("n1"), true},
		{"wrapped", fmt.Errorf("configz: %w", apiForbidden("n1")), true},
		{"kubelet's own 403", kubelet403, false},
		{"unreachable", apierrors.NewServiceUnavailable("connection refused"), false},
		{"plain", errors.New("forbidden"), false},
	} {
		if got := rbacForbidden(tc.err); got != tc.want {
			t.Errorf("%s: rbacForbidden = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// withKubelet keeps the snapshot in sortEntries order.
func TestWithKubelet(t *testing.T) {
	kinds := map[string]*watchedKind{}
	for _, k := range watchedKinds() {
		kinds[k.gvk.Kind] = k
	}
	var inv []*entry
	for _, e := range []struct{ kind, ns, name string }{
		{"ClusterRole", "", "admin"}, {"Job", "a", "j"}, {"Namespace", "", "a"}, {"Pod", "a", "p"}, {"Secret", "a", "s"},
	} {
		inv = append(inv, &entry{kind: kinds[e.kind], namespace: e.ns, name: e.name})
	}
	sortEntries(inv)
	k := NewKubeletConfigs(nil, nil, func(objKey) {}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	kubelets := &fakeKubelets{}
	for _, n := range []string{"zeta", "alpha"} {
		kubelets.set(n, hardenedKubelet, nil)
		o, _ := kubelets.read(t.Context(), n)
		k.apply(n, o, nil)
	}
	got := k.withKubelet(slices.Clone(inv))
	var names []string
	for _, e := range got {
		names = append(names, e.key().String())
	}
	want := []string{"ClusterRole/admin", "Job/a/j", "KubeletConfiguration/alpha", "KubeletConfiguration/zeta", "Namespace/a", "Pod/a/p", "Secret/a/s"}
	if !slices.Equal(names, want) {
		t.Errorf("snapshot %v, want %v", names, want)
	}
	if e := got[2]; e.obj == nil || e.objectRef().APIVersion != kube.KubeletConfigAPIVersion {
		t.Errorf("kubelet entry not ready to judge: %+v", e)
	}
}

// The posture judges the kubelet configurations in its snapshot: findings
// open on the first full evaluation, follow a changed configuration, and
// resolve when the node goes.
func TestPostureJudgesKubeletConfigs(t *testing.T) {
	ctx := t.Context()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	inv := NewInventory(nil, nil, nil, nil, nil, log, nil)
	p := NewPosture(inv, checksEngine(t), st, newMetrics(prometheus.NewRegistry()), log)
	kubelets := &fakeKubelets{}
	k := NewKubeletConfigs(nil, kubelets.read, p.Changed, log)
	p.snapshot = func() []*entry { return k.withKubelet(nil) }
	read := func(n, cfg string) {
		kubelets.set(n, cfg, nil)
		o, err := kubelets.read(ctx, n)
		k.apply(n, o, err)
	}
	open := func(check string) []string {
		t.Helper()
		fs, err := st.Findings(ctx, store.FindingFilter{Status: store.StatusOpen, CheckID: check})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, f := range fs {
			out = append(out, f.Object.Kind+"/"+f.Object.Name)
		}
		slices.Sort(out)
		return out
	}

	read("n1", anonymousKubelet)
	read("n2", hardenedKubelet)
	p.full = true
	p.evaluate(ctx)
	if got := open("kubelet-anonymous-auth"); !slices.Equal(got, []string{"KubeletConfiguration/n1"}) {
		t.Errorf("after the first evaluation: open %v, want n1's", got)
	}
	read("n2", anonymousKubelet)
	p.evaluate(ctx)
	if got := open("kubelet-anonymous-auth"); !slices.Equal(got, []string{"KubeletConfiguration/n1", "KubeletConfiguration/n2"}) {
		t.Errorf("after n2 changed: open %v, want n1's and n2's", got)
	}
	k.drop("n1")
	p.evaluate(ctx)
	if got := open("kubelet-anonymous-auth"); !slices.Equal(got, []string{"KubeletConfiguration/n2"}) {
		t.Errorf("after n1 was deleted: open %v, want n2's only", got)
	}
}

// An unreachable kubelet raises one coverage alert but leaves serve ready;
// before the first round, serve is not ready.
func TestCoverageKubelet(t *testing.T) {
	inv := NewInventory(nil, nil, nil, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	inv.status = map[string]*KindStatus{"Pod": {Kind: "Pod", Synced: true}}
	k := NewKubeletConfigs(fake.NewClientset(node("n1")), (&fakeKubelets{}).read, func(objKey) {}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	rec := &alertRecorder{}
	c := &Coverage{
		inv: inv, kubelet: k, alerts: rec, metrics: newMetrics(prometheus.NewRegistry()),
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), ping: func(context.Context) error { return nil },
		started: time.Now(),
	}
	ctx := t.Context()
	if c.check(ctx) {
		t.Error("ready before the kubelets were tried once")
	}
	startKubelets(t, k)
	k.WaitFirst(ctx)
	if !c.check(ctx) {
		t.Errorf("an unreachable kubelet made serve unready: %+v", c.Conditions())
	}
	c.check(ctx)
	if got := rec.rules(); !slices.Equal(got, []string{"coverage-kubelet-config:kubelet-config"}) {
		t.Errorf("alerts %v, want one kubelet-config alert", got)
	}
	i := slices.IndexFunc(c.Conditions(), func(c Condition) bool { return c.Name == "kubelet-config" })
	if i < 0 || c.Conditions()[i].OK || !c.Conditions()[i].Advisory() {
		t.Errorf("conditions %+v, want kubelet-config not OK and advisory", c.Conditions())
	}
}

// KubeletPolicyRules grants exactly KubeletPermissions, read-only, and
// nothing PolicyRules already grants.
func TestKubeletPolicyRules(t *testing.T) {
	rules := KubeletPolicyRules()
	perms := KubeletPermissions()
	if len(rules) != len(perms) {
		t.Fatalf("rules %v for permissions %v", rules, perms)
	}
	for i, r := range rules {
		p := perms[i]
		if !slices.Equal(r.APIGroups, []string{p.Group}) || !slices.Equal(r.Resources, []string{p.Resource}) || !slices.Equal(r.Verbs, p.Verbs) {
			t.Errorf("rule %v, want %+v", r, p)
		}
		for _, v := range r.Verbs {
			if v != "get" && v != "list" && v != "watch" {
				t.Errorf("rule %v: %s is not read-only", r, v)
			}
		}
	}
	for _, p := range RequiredPermissions() {
		if strings.HasPrefix(p.Resource, "nodes") {
			t.Errorf("RequiredPermissions holds %s: the default role must not", p.Resource)
		}
	}
}

// startKubelets runs k until the test ends.
func startKubelets(t *testing.T, k *KubeletConfigs) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Start(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}
