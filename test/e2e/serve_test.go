//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/kustode/kustode/internal/config"
	"github.com/kustode/kustode/internal/controlplane"
	"github.com/kustode/kustode/internal/daemon"
	"github.com/kustode/kustode/internal/manifest"
	"github.com/kustode/kustode/internal/store"
	"github.com/kustode/kustode/internal/web"
)

// serveInstance is one running `kustode serve`, in process.
type serveInstance struct {
	d     *daemon.Daemon
	url   string
	token string
	done  chan error
	stop  context.CancelFunc
}

const serveToken = "e2e-static-token-0123456789abcdef"

// startServe runs serve against the test control plane as restCfg, with its
// data in dataDir, its audit webhook fed a copy of the API server's audit
// traffic, and a static API token.
func startServe(t *testing.T, restCfg *rest.Config, dataDir string, mutate func(*config.Config)) *serveInstance {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "api-token")
	hookTokenFile := filepath.Join(dir, "hook-token")
	const hookToken = "e2e-serve-webhook-token"
	for f, v := range map[string]string{tokenFile: serveToken, hookTokenFile: hookToken} {
		if err := os.WriteFile(f, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = dataDir
	cfg.API.TokenFile = tokenFile
	cfg.Audit.WebhookListen = "127.0.0.1:0"
	cfg.Audit.WebhookTokenFile = hookTokenFile
	cfg.Log.Level = "debug"
	if mutate != nil {
		mutate(&cfg)
	}
	logFile, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	d, err := daemon.New(ctx, cfg, restCfg, log)
	if err != nil {
		cancel()
		t.Fatalf("daemon.New: %v", err)
	}
	s := &serveInstance{d: d, token: serveToken, done: make(chan error, 1), stop: cancel}
	go func() { s.done <- d.Start(ctx) }()
	// The API listens once Start runs.
	if err := wait.PollUntilContextTimeout(t.Context(), 20*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return d.APIAddr() != nil, nil
	}); err != nil {
		t.Fatal("serve API never listened")
	}
	s.url = "http://" + d.APIAddr().String()
	if a := d.WebhookAddr(); a != nil {
		addAuditForward(t, "http://"+a.String()+"/", hookToken)
	}
	t.Cleanup(func() {
		s.shutdown(t)
		_ = logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("serve log (last 8 KiB):\n%s", tail(dropLines(b, "api request"), 8<<10))
		}
	})
	return s
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// shutdown stops serve and waits for it; idempotent.
func (s *serveInstance) shutdown(t *testing.T) {
	t.Helper()
	if s.stop == nil {
		return
	}
	s.stop()
	s.stop = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("serve stopped with error: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("serve did not stop within 30 s")
	}
}

// get calls the API with token ("" for none) and decodes the JSON answer
// into out (may be nil); it returns the status code.
func (s *serveInstance) get(t *testing.T, path, token string, out any) int {
	t.Helper()
	return s.call(t, http.MethodGet, path, token, out)
}

func (s *serveInstance) call(t *testing.T, method, path, token string, out any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, body, err)
		}
	}
	return resp.StatusCode
}

// rawGet returns the body of GET path with the static token, failing
// unless it is 200.
func (s *serveInstance) rawGet(t *testing.T, path string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}

// post sends body (JSON, may be empty) with the static token.
func (s *serveInstance) post(t *testing.T, path, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Logf("POST %s: %d %s", path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

// findings returns the stored findings matching query.
func (s *serveInstance) findings(t *testing.T, query string) []store.Finding {
	t.Helper()
	var out struct {
		Findings []store.Finding `json:"findings"`
	}
	if code := s.get(t, "/api/v1/findings?"+query, s.token, &out); code != http.StatusOK {
		t.Fatalf("GET findings?%s: %d", query, code)
	}
	return out.Findings
}

func (s *serveInstance) alerts(t *testing.T, query string) []store.Alert {
	t.Helper()
	var out struct {
		Alerts []store.Alert `json:"alerts"`
	}
	if code := s.get(t, "/api/v1/alerts?"+query, s.token, &out); code != http.StatusOK {
		t.Fatalf("GET alerts?%s: %d", query, code)
	}
	return out.Alerts
}

// waitReady waits for /readyz to answer 200 and returns how long it took.
func (s *serveInstance) waitReady(t *testing.T) time.Duration {
	const within = 60 * time.Second
	t.Helper()
	start := time.Now()
	var detail json.RawMessage
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, within, true, func(context.Context) (bool, error) {
		detail = nil
		return s.get(t, "/readyz", s.token, &detail) == http.StatusOK, nil
	})
	if err != nil {
		var d any
		s.call(t, http.MethodGet, "/readyz", s.token, &d)
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.url+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+s.token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			t.Fatalf("serve not ready within %s: %s", within, b)
		}
		t.Fatalf("serve not ready within %s", within)
	}
	return time.Since(start)
}

// waitFor polls cond every 200 ms for up to within and fails with what.
func waitFor(t *testing.T, within time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	var last string
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, within, true, func(context.Context) (bool, error) {
		ok, detail := cond()
		last = detail
		return ok, nil
	})
	if err != nil {
		t.Fatalf("%s: not within %s: %s", what, within, last)
	}
	return time.Since(start)
}

func describeStored(fs []store.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "\n  %s %s %s %s", f.Status, f.CheckID, f.Object, f.Message)
	}
	return b.String()
}

// TestServe runs `kustode serve` against the control plane: findings follow
// the cluster, attacks become stored alerts, Warning Events become alerts,
// the API enforces TokenReview and SubjectAccessReview, and a restart keeps
// everything.
func TestServe(t *testing.T) {
	ctx := t.Context()
	admin := clientFor(t, cp.Config(controlplane.AdminUser))
	const ns = "serve-e2e"
	if err := cp.EnsureNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	// The pod and node networks of a real cluster: the test's clients
	// call from 127.0.0.1, outside them (step 4).
	clusterCIDRs := func(c *config.Config) { c.Audit.ClusterCIDRs = []string{"10.244.0.0/16", "10.0.0.0/20"} }
	s := startServe(t, cp.Config(controlplane.AdminUser), dataDir, clusterCIDRs)
	took := s.waitReady(t)
	t.Logf("serve ready (informers synced, first full posture stored) in %s", took.Round(time.Millisecond))

	// 1. A privileged Deployment is found within seconds...
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "web", Image: "nginx:1.27",
					SecurityContext: &corev1.SecurityContext{Privileged: ptr(true)},
				}}},
			},
		},
	}
	if _, err := admin.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	privileged := func(status string) func() (bool, string) {
		return func() (bool, string) {
			fs := s.findings(t, "namespace="+ns+"&checkID=pss-privileged")
			ok := slices.ContainsFunc(fs, func(f store.Finding) bool {
				return f.Object.Kind == "Deployment" && f.Object.Name == "web" && string(f.Status) == status
			})
			return ok, describeStored(fs)
		}
	}
	took = waitFor(t, 15*time.Second, "privileged Deployment finding open", privileged("open"))
	t.Logf("finding open %s after the Deployment was created", took.Round(time.Millisecond))
	// ...and its ReplicaSet and Pods are judged at the Deployment only.
	if fs := s.findings(t, "namespace="+ns+"&checkID=pss-privileged&status=open"); len(fs) != 1 {
		t.Errorf("want the finding once, on the Deployment; got %s", describeStored(fs))
	}

	// 2. Fixing it resolves the finding.
	cur, err := admin.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Spec.Template.Spec.Containers[0].SecurityContext.Privileged = ptr(false)
	if _, err := admin.AppsV1().Deployments(ns).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	took = waitFor(t, 15*time.Second, "finding resolved after the fix", privileged("resolved"))
	t.Logf("finding resolved %s after the fix", took.Round(time.Millisecond))
	fs := s.findings(t, "namespace="+ns+"&checkID=pss-privileged")
	if len(fs) != 1 || fs[0].ResolvedAt == nil || fs[0].FirstSeen.IsZero() || fs[0].LastSeen.Before(fs[0].FirstSeen) {
		t.Errorf("resolved finding lifecycle fields wrong: %+v", fs)
	}

	// 3. A bare privileged pod: found, then deleted, then resolved.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "breakout", Namespace: ns},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36", SecurityContext: &corev1.SecurityContext{Privileged: ptr(true)}}},
			Volumes:    []corev1.Volume{{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}},
		},
	}
	if _, err := admin.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	podFinding := func(status string) func() (bool, string) {
		return func() (bool, string) {
			fs := s.findings(t, "namespace="+ns+"&checkID=hostpath-sensitive")
			return slices.ContainsFunc(fs, func(f store.Finding) bool {
				return f.Object.Name == "breakout" && string(f.Status) == status
			}), describeStored(fs)
		}
	}
	waitFor(t, 15*time.Second, "sensitive hostPath pod finding", podFinding("open"))

	// 4. Attacks through the audit webhook become stored alerts.
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "serve-mallory-admin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "mallory"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = admin.RbacV1().ClusterRoleBindings().Delete(context.Background(), crb.Name, metav1.DeleteOptions{})
	})
	// A service-account token used from outside audit.clusterCIDRs.
	outsider := scannerKubeconfigConfig(t, ns, "outsider", []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"list"}}})
	_, _ = clientFor(t, outsider).CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	for _, rule := range []string{"privileged-pod-created", "sensitive-hostpath-pod-created", "cluster-admin-bound", "service-account-token-outside-cluster"} {
		waitFor(t, 15*time.Second, "alert "+rule+" stored", func() (bool, string) {
			as := s.alerts(t, "rule="+rule)
			return len(as) > 0 && as[0].ID > 0 && as[0].Status == store.AlertOpen && len(as[0].AuditIDs) > 0, fmt.Sprint(len(as), " alerts")
		})
	}
	if as := s.alerts(t, "rule=service-account-token-outside-cluster"); !slices.ContainsFunc(as, func(a store.Alert) bool {
		return a.User == "system:serviceaccount:"+ns+":outsider"
	}) {
		t.Errorf("service-account-token-outside-cluster alerts %+v: none for the outsider", as)
	}
	if err := admin.CoreV1().Pods(ns).Delete(ctx, "breakout", metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "deleted pod's finding resolved", podFinding("resolved"))

	// 5. A Warning Event (a PodSecurity rejection) becomes an alert.
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "web-rs.rejected", Namespace: ns},
		InvolvedObject: corev1.ObjectReference{Kind: "ReplicaSet", Namespace: ns, Name: "web-rs"},
		Type:           corev1.EventTypeWarning,
		Reason:         "FailedCreate",
		Message:        `Error creating: pods "web-rs-x" is forbidden: violates PodSecurity "restricted:latest": privileged (container "c" must not set securityContext.privileged=true)`,
		Source:         corev1.EventSource{Component: "replicaset-controller"},
		FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now(), Count: 1,
	}
	if _, err := admin.CoreV1().Events(ns).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "Warning Event alert", func() (bool, string) {
		as := s.alerts(t, "rule=event-podsecurity-rejected&namespace="+ns)
		return len(as) == 1, fmt.Sprint(len(as), " alerts")
	})

	// 6. Exceptions through the API change the posture; alerts are
	// acknowledged by a named user; /metrics tells the state.
	noDigest := func(status string) func() (bool, string) {
		return func() (bool, string) {
			fs := s.findings(t, "namespace="+ns+"&checkID=image-no-digest")
			return slices.ContainsFunc(fs, func(f store.Finding) bool {
				return f.Object.Name == "web" && string(f.Status) == status
			}), describeStored(fs)
		}
	}
	waitFor(t, 15*time.Second, "image-no-digest finding on web", noDigest("open"))
	exc := fmt.Sprintf(`{"checks":["image-no-digest"],"kind":"Deployment","namespace":%q,"name":"web","reason":"pinned by the release pipeline","owner":"platform@example.com","expires":%q}`,
		ns, time.Now().Add(30*24*time.Hour).UTC().Format(time.RFC3339))
	if code := s.post(t, "/api/v1/exceptions", exc); code != http.StatusCreated {
		t.Fatalf("create exception: %d", code)
	}
	waitFor(t, 15*time.Second, "finding resolved by the API exception", noDigest("resolved"))
	first := s.alerts(t, "rule=cluster-admin-bound")[0]
	if code := s.post(t, fmt.Sprintf("/api/v1/alerts/%d/ack", first.ID), ""); code != http.StatusOK {
		t.Errorf("ack: %d", code)
	}
	if as := s.alerts(t, "status=acknowledged"); len(as) != 1 || as[0].ID != first.ID || as[0].AckedBy == "" {
		t.Errorf("acknowledged alerts: %+v", as)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metricsText, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	for _, m := range []string{`kustode_findings_open{severity="critical"}`, `kustode_alerts_total{rule="cluster-admin-bound"`,
		`kustode_informer_synced{kind="Pod"} 1`, `kustode_events_received_total{source="webhook"}`, "kustode_audit_lag_seconds_count",
		`kustode_coverage_ok{check="store"} 1`, "kustode_store_errors_total 0", "kustode_api_requests_total"} {
		if !strings.Contains(string(metricsText), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}

	// 7. The API: no token 401, a user without RBAC 403, with RBAC 200,
	// through the real TokenReview and SubjectAccessReview.
	if code := s.get(t, "/api/v1/findings", "", nil); code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", code)
	}
	if code := s.get(t, "/api/v1/findings", "not-a-valid-token", nil); code != http.StatusUnauthorized {
		t.Errorf("bad token: %d, want 401", code)
	}
	aliceToken := cp.Token(alice)
	if code := s.get(t, "/api/v1/findings", aliceToken, nil); code != http.StatusForbidden {
		t.Errorf("alice without RBAC: %d, want 403", code)
	}
	viewer := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "serve-e2e-kustode-viewer"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"kustode.io"}, Resources: []string{"findings", "alerts"}, Verbs: []string{"get", "list"}}},
	}
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, viewer, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	vb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "serve-e2e-alice-viewer"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: alice}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: viewer.Name},
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, vb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = admin.RbacV1().ClusterRoleBindings().Delete(context.Background(), vb.Name, metav1.DeleteOptions{})
		_ = admin.RbacV1().ClusterRoles().Delete(context.Background(), viewer.Name, metav1.DeleteOptions{})
	})
	// The authorizer caches decisions for a few seconds.
	waitFor(t, 30*time.Second, "alice with kustode.io RBAC gets 200", func() (bool, string) {
		code := s.get(t, "/api/v1/findings", aliceToken, nil)
		return code == http.StatusOK, fmt.Sprint("status ", code)
	})
	if code := s.call(t, http.MethodPost, "/api/v1/alerts/1/ack", aliceToken, nil); code != http.StatusForbidden {
		t.Errorf("alice acknowledging an alert with a read-only role: %d, want 403", code)
	}

	// 8. A restart keeps findings (with their first-seen time), alerts, and
	// evaluates no Event twice.
	before := s.findings(t, "namespace="+ns)
	alertsBefore := s.alerts(t, "")
	s.shutdown(t)
	s2 := startServe(t, cp.Config(controlplane.AdminUser), dataDir, nil)
	s2.waitReady(t)
	after := s2.findings(t, "namespace="+ns)
	for _, b := range before {
		i := slices.IndexFunc(after, func(a store.Finding) bool { return a.Key == b.Key })
		if i < 0 {
			t.Errorf("finding lost across restart: %s %s", b.CheckID, b.Object)
			continue
		}
		if !after[i].FirstSeen.Equal(b.FirstSeen) || after[i].Status != b.Status {
			t.Errorf("finding %s %s changed across restart: %s/%s → %s/%s", b.CheckID, b.Object,
				b.Status, b.FirstSeen, after[i].Status, after[i].FirstSeen)
		}
	}
	alertsAfter := s2.alerts(t, "")
	for _, a := range alertsBefore {
		if !slices.ContainsFunc(alertsAfter, func(b store.Alert) bool { return b.ID == a.ID && b.Rule == a.Rule }) {
			t.Errorf("alert %d %s lost across restart", a.ID, a.Rule)
		}
	}
	time.Sleep(2 * time.Second) // the events informer has re-listed by now (ready waits for it)
	if as := s2.alerts(t, "rule=event-podsecurity-rejected&namespace="+ns); len(as) != 1 {
		t.Errorf("after restart: %d event alerts, want the one from before (no re-evaluation)", len(as))
	}
}

// dropLines removes the log lines containing s.
func dropLines(b []byte, s string) []byte {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return []byte(strings.Join(out, "\n"))
}

// installRole reads the monitor's ClusterRole from the plain install
// manifests.
func installRole(t *testing.T) *rbacv1.ClusterRole {
	t.Helper()
	objs, errs := manifest.Load([]string{"../../deploy/kubernetes/kustode.yaml"}, nil)
	if len(errs) > 0 {
		t.Fatalf("deploy/kubernetes/kustode.yaml: %v", errs)
	}
	for _, o := range objs {
		if o.Ref.Kind == "ClusterRole" && o.Ref.Name == "kustode" {
			var role rbacv1.ClusterRole
			if err := sigsyaml.Unmarshal(o.Raw, &role); err != nil {
				t.Fatal(err)
			}
			return &role
		}
	}
	t.Fatal("deploy/kubernetes/kustode.yaml has no ClusterRole kustode")
	return nil
}

// startServeAs runs serve as a new service account granted exactly rules
// (a ClusterRole bound to it), deleted when the test ends.
func startServeAs(t *testing.T, name string, rules []rbacv1.PolicyRule, mutate func(*config.Config)) *serveInstance {
	t.Helper()
	ctx := t.Context()
	admin := clientFor(t, cp.Config(controlplane.AdminUser))
	const ns = "kustode-rbac-e2e"
	if err := cp.EnsureNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "e2e-" + name}, Rules: rules}
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-" + name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name},
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		bg := context.Background()
		_ = admin.RbacV1().ClusterRoleBindings().Delete(bg, crb.Name, metav1.DeleteOptions{})
		_ = admin.RbacV1().ClusterRoles().Delete(bg, cr.Name, metav1.DeleteOptions{})
		_ = admin.CoreV1().ServiceAccounts(ns).Delete(bg, name, metav1.DeleteOptions{})
	})
	tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := cp.AnonymousConfig()
	cfg.BearerToken = tr.Status.Token
	return startServe(t, cfg, t.TempDir(), mutate)
}

// TestServeInstallRBAC proves the install's ClusterRole sufficient and
// minimal: it grants exactly what serve says it needs, and serve running as
// a service account with exactly that role syncs every informer. Without one
// permission, serve says what it cannot see.
func TestServeInstallRBAC(t *testing.T) {
	ctx := t.Context()
	role := installRole(t)
	granted := map[string]bool{}
	for _, r := range role.Rules {
		if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
			t.Errorf("install role rule %+v: resourceNames/nonResourceURLs unexpected", r)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					granted[g+"/"+res+":"+v] = true
				}
			}
		}
	}
	needed := map[string]bool{
		"authentication.k8s.io/tokenreviews:create":        true,
		"authorization.k8s.io/subjectaccessreviews:create": true,
	}
	for _, p := range daemon.RequiredPermissions() {
		for _, v := range p.Verbs {
			needed[p.Group+"/"+p.Resource+":"+v] = true
		}
	}
	for p := range granted {
		if !needed[p] {
			t.Errorf("install role grants %s, which serve does not need", p)
		}
	}
	for p := range needed {
		if !granted[p] {
			t.Errorf("install role lacks %s, which serve needs", p)
		}
	}

	run := func(t *testing.T, name string, rules []rbacv1.PolicyRule) *serveInstance {
		return startServeAs(t, name, rules, nil)
	}

	t.Run("exactly the install role", func(t *testing.T) {
		s := run(t, "kustode-exact", role.Rules)
		took := s.waitReady(t)
		t.Logf("every informer synced and first posture stored in %s with the install's permissions", took.Round(time.Millisecond))
		// A Kubernetes user's token is checked with TokenReview and SAR made
		// by serve's own service account: the role allows those too.
		if code := s.get(t, "/api/v1/findings", cp.Token(alice), nil); code != http.StatusForbidden {
			t.Errorf("alice through serve's TokenReview/SAR: %d, want 403", code)
		}
		if as := s.alerts(t, "rule=coverage-informer"); len(as) != 0 {
			t.Errorf("coverage alerts with the full role: %+v", as)
		}
	})

	t.Run("without secrets", func(t *testing.T) {
		var rules []rbacv1.PolicyRule
		for _, r := range role.Rules {
			r = *r.DeepCopy()
			r.Resources = slices.DeleteFunc(r.Resources, func(s string) bool { return s == "secrets" })
			rules = append(rules, r)
		}
		s := run(t, "kustode-no-secrets", rules)
		waitFor(t, 30*time.Second, "coverage alert for the forbidden kind", func() (bool, string) {
			as := s.alerts(t, "rule=coverage-informer")
			return slices.ContainsFunc(as, func(a store.Alert) bool { return a.Object == "Secret" && strings.Contains(a.Message, "forbidden") }),
				fmt.Sprintf("%+v", as)
		})
		var ready readyzBody
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+s.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&ready); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusServiceUnavailable || ready.Ready {
			t.Errorf("readyz %d ready=%v, want 503 not ready", resp.StatusCode, ready.Ready)
		}
		if !slices.ContainsFunc(ready.Conditions, func(c web.Condition) bool {
			return c.Name == "informer/Secret" && !c.OK && strings.Contains(c.Detail, "forbidden")
		}) {
			t.Errorf("readyz conditions do not name the forbidden Secret informer: %+v", ready.Conditions)
		}
	})
}

// TestServeAuditLogRestart follows the API server's audit log file: alerts
// come from it, and after a restart serve resumes at its saved offset,
// evaluating what was written while it was down and nothing twice.
func TestServeAuditLogRestart(t *testing.T) {
	ctx := t.Context()
	admin := clientFor(t, cp.Config(controlplane.AdminUser))
	logOnly := func(c *config.Config) {
		c.Audit.WebhookListen, c.Audit.WebhookTokenFile = "", ""
		c.Audit.LogPath = cp.AuditLogPath
		c.Audit.StartAtEnd = true // the first run skips the log's history
	}
	bind := func(name string) {
		crb := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "mallory"}},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		}
		if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = admin.RbacV1().ClusterRoleBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
		})
	}
	count := func(s *serveInstance, name string) int {
		n := 0
		for _, a := range s.alerts(t, "rule=cluster-admin-bound") {
			if strings.HasSuffix(a.Object, " "+name) {
				n++
			}
		}
		return n
	}
	dataDir := t.TempDir()
	s := startServe(t, cp.Config(controlplane.AdminUser), dataDir, logOnly)
	s.waitReady(t)
	bind("serve-log-backdoor-1")
	waitFor(t, 15*time.Second, "alert from the audit log", func() (bool, string) {
		n := count(s, "serve-log-backdoor-1")
		return n == 1, fmt.Sprint(n, " alerts")
	})
	s.shutdown(t)

	bind("serve-log-backdoor-2") // while serve is down
	s2 := startServe(t, cp.Config(controlplane.AdminUser), dataDir, logOnly)
	s2.waitReady(t)
	waitFor(t, 15*time.Second, "alert for what was logged while serve was down", func() (bool, string) {
		n := count(s2, "serve-log-backdoor-2")
		return n == 1, fmt.Sprint(n, " alerts")
	})
	if n := count(s2, "serve-log-backdoor-1"); n != 1 {
		t.Errorf("the binding made before the restart has %d alerts, want 1 (nothing evaluated twice)", n)
	}
}

// TestServeEventSelectors: serve asks the API server only for the Events a
// rule can match (field selectors), so both kinds must arrive: a Warning,
// and a Normal image pull, which the registry allow-list rule reads.
func TestServeEventSelectors(t *testing.T) {
	ctx := t.Context()
	admin := clientFor(t, cp.Config(controlplane.AdminUser))
	const ns = "serve-events"
	if err := cp.EnsureNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, cp.Config(controlplane.AdminUser), t.TempDir(), func(c *config.Config) {
		c.Events.RegistryAllowList = []string{"registry.k8s.io"}
	})
	s.waitReady(t)
	event := func(name, typ, reason, message string) {
		t.Helper()
		ev := &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: name, Namespace: ns},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "miner-0"},
			Type:           typ, Reason: reason, Message: message,
			Source:         corev1.EventSource{Component: "kubelet", Host: "node-1"},
			FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now(), Count: 1,
		}
		if _, err := admin.CoreV1().Events(ns).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	event("miner-0.started", corev1.EventTypeNormal, "Started", "Started container miner")
	event("miner-0.pulling", corev1.EventTypeNormal, "Pulling", `Pulling image "evil.example.com/miner:1"`)
	event("miner-0.mount", corev1.EventTypeWarning, "FailedMount", `MountVolume.SetUp failed for volume "creds" : secret "aws-creds" not found`)
	for _, rule := range []string{"event-image-untrusted-registry", "event-secret-mount-failed"} {
		waitFor(t, 15*time.Second, "alert "+rule, func() (bool, string) {
			as := s.alerts(t, "rule="+rule+"&namespace="+ns)
			return len(as) == 1, fmt.Sprint(len(as), " alerts")
		})
	}
}

// TestServeSurvivesAPIServerRestart restarts the API server under a running
// serve (its own control plane: the shared one stays up for the other
// tests). Watches break and come back; a change made after the restart is
// judged.
func TestServeSurvivesAPIServerRestart(t *testing.T) {
	ctx := t.Context()
	own, err := controlplane.Start(ctx, controlplane.Options{Progress: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := own.Stop(); err != nil {
			t.Error(err)
		}
	})
	s := startServe(t, own.Config(controlplane.AdminUser), t.TempDir(), func(c *config.Config) {
		c.Audit.WebhookListen, c.Audit.WebhookTokenFile = "", "" // the shared control plane's audit feed is not this one's
	})
	s.waitReady(t)
	start := time.Now()
	if err := own.RestartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("API server restarted in %s", time.Since(start).Round(time.Millisecond))
	admin := clientFor(t, own.Config(controlplane.AdminUser))
	const ns = "after-restart"
	if err := own.EnsureNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "priv", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36",
			SecurityContext: &corev1.SecurityContext{Privileged: ptr(true)}}}},
	}
	if _, err := admin.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, 60*time.Second, "finding for a pod created after the API server restart", func() (bool, string) {
		fs := s.findings(t, "namespace="+ns+"&checkID=pss-privileged&status=open")
		return len(fs) == 1, describeStored(fs)
	})
	t.Logf("finding for the new pod %s after its creation", took.Round(time.Millisecond))
	if code := s.get(t, "/readyz", s.token, nil); code != http.StatusOK {
		t.Errorf("readyz after the restart: %d", code)
	}
}

// readyzBody is serve's /readyz answer.
type readyzBody struct {
	Ready      bool            `json:"ready"`
	Conditions []web.Condition `json:"conditions"`
}
