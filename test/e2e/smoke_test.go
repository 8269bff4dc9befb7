//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kustode/kustode/internal/controlplane"
)

func clientFor(t *testing.T, cfg *rest.Config) *kubernetes.Clientset {
	t.Helper()
	cfg.WarningHandler = rest.NoWarnings{}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSmokeRBACAndAudit proves the harness end to end: RBAC decides, and the
// audit log file and the audit webhook both record who did what with which
// result.
func TestSmokeRBACAndAudit(t *testing.T) {
	ctx := t.Context()
	admin := clientFor(t, cp.Config(controlplane.AdminUser))
	dev := clientFor(t, cp.Config(alice))
	const ns = "smoke"

	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("admin create namespace: %v", err)
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-reader", Namespace: ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}}},
	}
	if _, err := admin.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("admin create role: %v", err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "alice-reads-pods", Namespace: ns},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: alice}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pod-reader"},
	}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("admin create rolebinding: %v", err)
	}

	// RBAC changes are visible to the authorizer through an informer; poll
	// until alice's grant is in effect.
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := dev.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if apierrors.IsForbidden(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		t.Fatalf("alice list pods in %s (allowed by her RoleBinding): %v", ns, err)
	}
	if _, err := dev.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("alice list secrets in %s: err = %v, want 403 Forbidden", ns, err)
	}
	if _, err := dev.CoreV1().Pods(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("alice list pods in default (no binding there): err = %v, want 403 Forbidden", err)
	}

	netpol := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "default-deny", Namespace: ns},
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
	}
	if _, err := admin.NetworkingV1().NetworkPolicies(ns).Create(ctx, netpol, metav1.CreateOptions{}); err != nil {
		t.Fatalf("admin create networkpolicy: %v", err)
	}

	// Service-account tokens are signed and accepted: TokenRequest works.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "robot", Namespace: ns}}
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatalf("admin create serviceaccount: %v", err)
	}
	tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "robot", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(600))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for robot: %v", err)
	}
	robotCfg := cp.AnonymousConfig()
	robotCfg.BearerToken = tr.Status.Token
	robot := clientFor(t, robotCfg)
	if _, err := robot.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("robot service account list secrets: err = %v, want 403 Forbidden", err)
	}

	// Every one of these requests must be in both audit streams.
	want := []struct {
		user, verb, resource, namespace string
		code                            int
	}{
		{controlplane.AdminUser, "create", "namespaces", "", http.StatusCreated},
		{controlplane.AdminUser, "create", "roles", ns, http.StatusCreated},
		{controlplane.AdminUser, "create", "rolebindings", ns, http.StatusCreated},
		{alice, "list", "pods", ns, http.StatusOK},
		{alice, "list", "secrets", ns, http.StatusForbidden},
		{alice, "list", "pods", metav1.NamespaceDefault, http.StatusForbidden},
		{controlplane.AdminUser, "create", "networkpolicies", ns, http.StatusCreated},
		{"system:serviceaccount:smoke:robot", "list", "secrets", ns, http.StatusForbidden},
	}
	sources := map[string]func(t *testing.T) []auditEvent{
		"webhook":  func(*testing.T) []auditEvent { return audit.snapshot() },
		"log file": readAuditLog,
	}
	for name, events := range sources {
		t.Run("audit "+name, func(t *testing.T) {
			for _, w := range want {
				desc := fmt.Sprintf("%s %s %s in %q → %d", w.user, w.verb, w.resource, w.namespace, w.code)
				var found bool
				// The webhook batches for up to a second; the log is written
				// as events complete. Poll both.
				err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
					for _, e := range events(t) {
						if e.Stage == "ResponseComplete" && e.User.Username == w.user && e.Verb == w.verb &&
							e.ObjectRef != nil && e.ObjectRef.Resource == w.resource && e.ObjectRef.Namespace == w.namespace &&
							e.ResponseStatus != nil && e.ResponseStatus.Code == w.code {
							found = true
							return true, nil
						}
					}
					return false, nil
				})
				if err != nil || !found {
					t.Errorf("no audit event in the %s for %s", name, desc)
				}
			}
		})
	}
}

// readAuditLog reads the API server's JSON-lines audit log.
func readAuditLog(t *testing.T) []auditEvent {
	t.Helper()
	f, err := os.Open(cp.AuditLogPath)
	if err != nil {
		t.Fatalf("open audit log: %v", err)
	}
	defer f.Close()
	var events []auditEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		var e auditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// The API server may be mid-write on the last line.
			continue
		}
		events = append(events, e)
	}
	return events
}

// TestSmokeKwokWorkloadAndMetrics proves the kwok part of the harness: a
// Deployment's pods run on a fake node, and a CPU and memory usage change
// made through pod annotations shows in a later kubelet-style metrics scrape.
func TestSmokeKwokWorkloadAndMetrics(t *testing.T) {
	ctx := t.Context()
	admin := clientFor(t, cp.Config(controlplane.AdminUser))
	const (
		ns       = "workloads"
		nodeName = "kwok-node-0"
	)
	if err := cp.EnsureNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        nodeName,
			Labels:      map[string]string{"type": "kwok", "kubernetes.io/hostname": nodeName},
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
		},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "kwok.x-k8s.io/node", Value: "fake", Effect: corev1.TaintEffectNoSchedule}}},
	}
	if _, err := admin.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node: %v", err)
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		n, err := admin.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("node %s never became Ready: %v", nodeName, err)
	}

	labels := map[string]string{"app": "web"}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels: labels,
					Annotations: map[string]string{
						"kwok.x-k8s.io/usage-cpu":    "100m",
						"kwok.x-k8s.io/usage-memory": "64Mi",
					},
				},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{"type": "kwok"},
					Tolerations:  []corev1.Toleration{{Key: "kwok.x-k8s.io/node", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
					Containers:   []corev1.Container{{Name: "web", Image: "registry.example/web:1.0"}},
				},
			},
		},
	}
	if _, err := admin.AppsV1().Deployments(ns).Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	var pods []corev1.Pod
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err
		}
		running := 0
		for _, p := range list.Items {
			if p.Status.Phase == corev1.PodRunning && p.Spec.NodeName == nodeName && p.Status.PodIP != "" {
				running++
			}
		}
		pods = list.Items
		return running == 2, nil
	})
	if err != nil {
		t.Fatalf("deployment pods not Running on %s: %v (pods: %s; events: %s; nodes: %s)%s", nodeName, err, podSummary(pods),
			eventSummary(admin, ns), nodeSummary(admin), cp.Report(4000, controlplane.Scheduler, controlplane.ControllerManager, controlplane.Kwok))
	}

	pod := pods[0].Name
	scrape := func() (cpuSeconds, memBytes float64, ok bool) {
		samples, err := scrapeMetrics(ctx, cp.KwokMetricsURL(nodeName))
		if err != nil {
			t.Logf("scrape: %v", err)
			return 0, 0, false
		}
		series := fmt.Sprintf(`{namespace=%q,pod=%q}`, ns, pod)
		cpu, okC := samples["pod_cpu_usage_seconds_total"+series]
		mem, okM := samples["pod_memory_working_set_bytes"+series]
		return cpu, mem, okC && okM
	}

	// kwok's first scrape after start can lack pod series: poll.
	var cpu0, mem0 float64
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		var ok bool
		cpu0, mem0, ok = scrape()
		return ok && mem0 == 64*1024*1024, nil
	})
	if err != nil {
		t.Fatalf("pod %s: no memory series of 64Mi in kwok's metrics (last: %v bytes): %v", pod, mem0, err)
	}

	patch := []byte(`{"metadata":{"annotations":{"kwok.x-k8s.io/usage-cpu":"4","kwok.x-k8s.io/usage-memory":"256Mi"}}}`)
	if _, err := admin.CoreV1().Pods(ns).Patch(ctx, pod, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("annotate pod: %v", err)
	}
	// Memory is a gauge: it must equal the new annotation. CPU is a counter
	// of core-seconds: its rate must follow the new annotation.
	var cpu1, mem1 float64
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		var ok bool
		cpu1, mem1, ok = scrape()
		return ok && mem1 == 256*1024*1024, nil
	})
	if err != nil {
		t.Fatalf("pod %s: memory series never showed the new 256Mi usage (last %v): %v", pod, mem1, err)
	}
	// The CPU counter's rate over a second of wall clock: 4 cores now,
	// against 0.1 before. The bound of 1 core leaves room on both sides.
	start := time.Now()
	select {
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	case <-time.After(time.Second):
	}
	cpu2, _, ok := scrape()
	elapsed := time.Since(start).Seconds()
	if rate := (cpu2 - cpu1) / elapsed; !ok || rate <= 1 {
		t.Errorf("pod %s: CPU usage rate after usage-cpu=4 is %.2f cores (counter %.3f → %.3f over %.2fs; %.3f at 100m), want > 1",
			pod, rate, cpu1, cpu2, elapsed, cpu0)
	}
}

func podSummary(pods []corev1.Pod) string {
	var b bytes.Buffer
	for _, p := range pods {
		fmt.Fprintf(&b, "%s phase=%s node=%q ip=%q; ", p.Name, p.Status.Phase, p.Spec.NodeName, p.Status.PodIP)
	}
	return b.String()
}

// eventSummary lists the namespace's Events (a FailedScheduling says why a
// pod has no node), for a failure message.
func eventSummary(c kubernetes.Interface, ns string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b bytes.Buffer
	for _, e := range list.Items {
		fmt.Fprintf(&b, "%s/%s %s: %s (x%d); ", e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message, e.Count)
	}
	return b.String()
}

// nodeSummary lists the nodes with their readiness, labels and taints, for a
// failure message.
func nodeSummary(c kubernetes.Interface) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b bytes.Buffer
	for _, n := range list.Items {
		ready := "unknown"
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				ready = string(cond.Status)
			}
		}
		fmt.Fprintf(&b, "%s ready=%s unschedulable=%v labels=%v taints=%v; ", n.Name, ready, n.Spec.Unschedulable, n.Labels, n.Spec.Taints)
	}
	return b.String()
}

// sampleLine matches a Prometheus text-format sample with labels.
var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)`)

// scrapeMetrics returns "name{labels}" → value for every sample, with labels
// as the server printed them.
func scrapeMetrics(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	out := map[string]float64{}
	for _, line := range bytes.Split(body, []byte("\n")) {
		m := sampleLine.FindSubmatch(line)
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(string(m[3]), 64)
		if err != nil {
			continue
		}
		out[string(m[1])+string(m[2])] = v
	}
	return out, nil
}

func ptr[T any](v T) *T { return &v }
