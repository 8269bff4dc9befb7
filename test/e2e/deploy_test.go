//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"

	kaudit "github.com/kustode/kustode/internal/audit"
	"github.com/kustode/kustode/internal/controlplane"
	"github.com/kustode/kustode/internal/manifest"
)

// deployDir is the repository's deploy/ folder, seen from test/e2e.
const deployDir = "../../deploy"

// deployManifests reads deploy/kubernetes/kustode.yaml as kustode scan does
// and returns its objects as unstructured, in file order.
func deployManifests(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	objs, errs := manifest.Load([]string{filepath.Join(deployDir, "kubernetes", "kustode.yaml")}, nil)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	var out []*unstructured.Unstructured
	for _, o := range objs {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(o.Raw); err != nil {
			t.Fatalf("%s: %v", o.Ref, err)
		}
		out = append(out, u)
	}
	return out
}

// warningRecorder collects the API server's Warning headers (PodSecurity warns
// about a pod that breaks the namespace's warn level, even when admitted).
type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	w.msgs = append(w.msgs, text)
	w.mu.Unlock()
}

func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.msgs
	w.msgs = nil
	return m
}

// TestDeployManifests applies deploy/kubernetes/kustode.yaml to the real API
// server, as kubectl apply --server-side would, and proves what it promises:
// every object is accepted; the namespace enforces Pod Security "restricted"
// and the monitor's pod passes it (while a privileged one is refused); the
// monitor's service account may list and watch what serve reads and nothing
// more; kustode-viewer and kustode-editor grant what the API's
// SubjectAccessReviews ask. It deletes everything it created.
func TestDeployManifests(t *testing.T) {
	ctx := t.Context()
	cfg := cp.Config(controlplane.AdminUser)
	warn := &warningRecorder{}
	cfg.WarningHandler = warn
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))
	admin := clientFor(t, cp.Config(controlplane.AdminUser))

	objs := deployManifests(t)
	resource := func(u *unstructured.Unstructured) dynamic.ResourceInterface {
		t.Helper()
		gvk := u.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s %s: %v", gvk, u.GetName(), err)
		}
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			return dyn.Resource(m.Resource).Namespace(u.GetNamespace())
		}
		return dyn.Resource(m.Resource)
	}

	var ns string
	t.Cleanup(func() {
		// Reverse order: bindings and roles before the namespace. The
		// namespace controller then empties and removes the namespace.
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		for _, u := range slices.Backward(objs) {
			err := resource(u).Delete(ctx, u.GetName(), metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("delete %s %s: %v", u.GetKind(), u.GetName(), err)
			}
		}
		if ns == "" {
			return
		}
		err := wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			_, err := admin.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		if err != nil {
			t.Logf("namespace %s still terminating after 90 s", ns)
		}
	})

	var (
		deployment  *appsv1.Deployment
		monitorRole *rbacv1.ClusterRole
		saName      string
	)
	for _, u := range objs {
		// Server-side apply, as `kubectl apply --server-side -f` does.
		applied, err := resource(u).Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: "kustode-e2e"})
		if err != nil {
			t.Fatalf("apply %s %s: %v", u.GetKind(), u.GetName(), err)
		}
		got, err := resource(u).Get(ctx, u.GetName(), metav1.GetOptions{})
		if err != nil || got.GetUID() == "" || got.GetUID() != applied.GetUID() {
			t.Fatalf("%s %s not created: %v", u.GetKind(), u.GetName(), err)
		}
		switch u.GetKind() {
		case "Namespace":
			ns = u.GetName()
		case "Deployment":
			deployment = &appsv1.Deployment{}
			if err := json.Unmarshal(unstructuredJSON(t, got), deployment); err != nil {
				t.Fatal(err)
			}
		case "ClusterRole":
			if u.GetName() == "kustode" {
				monitorRole = &rbacv1.ClusterRole{}
				if err := json.Unmarshal(unstructuredJSON(t, got), monitorRole); err != nil {
					t.Fatal(err)
				}
			}
		case "ServiceAccount":
			saName = u.GetName()
		}
		t.Logf("applied %s %s", u.GetKind(), u.GetName())
	}
	if ns == "" || deployment == nil || monitorRole == nil || saName == "" {
		t.Fatalf("the manifests lack a Namespace, the Deployment, the kustode ClusterRole or the ServiceAccount")
	}
	if w := warn.take(); len(w) > 0 {
		t.Errorf("the API server warned while applying: %q", w)
	}

	// The namespace enforces "restricted".
	nsObj, err := admin.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := nsObj.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Errorf("namespace %s enforces %q, want restricted", ns, got)
	}

	// The monitor's pod, as the Deployment would create it: dry-run, so
	// nothing is stored, but admission (PodSecurity included) judges it.
	podsClient := clientFor(t, cfg).CoreV1().Pods(ns)
	tmpl := deployment.Spec.Template
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "kustode-dry-run", Namespace: ns, Labels: tmpl.Labels, Annotations: tmpl.Annotations},
		Spec:       *tmpl.Spec.DeepCopy(),
	}
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	if _, err := podsClient.Create(ctx, pod, dryRun); err != nil {
		t.Errorf("the Deployment's pod is not admitted in namespace %s: %v", ns, err)
	}
	if w := warn.take(); len(w) > 0 {
		t.Errorf("PodSecurity warned about the Deployment's pod: %q", w)
	}
	if _, err := podsClient.Get(ctx, pod.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("dry-run stored the pod (get: %v)", err)
	}
	// The same pod made privileged is refused: enforcement is on.
	priv := pod.DeepCopy()
	priv.Name = "kustode-dry-run-privileged"
	sc := priv.Spec.Containers[0].SecurityContext
	sc.Privileged, sc.AllowPrivilegeEscalation = ptr(true), nil
	_, err = podsClient.Create(ctx, priv, dryRun)
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "violates PodSecurity") {
		t.Errorf("a privileged pod in namespace %s: got %v, want a PodSecurity refusal", ns, err)
	}
	warn.take()

	// The monitor's service account: every rule granted, nothing else.
	sa := saSubject(ns, saName)
	for _, r := range monitorRole.Rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					wantSAR(t, admin, sa, authorizationv1.ResourceAttributes{Verb: v, Group: g, Resource: res}, true)
				}
			}
		}
	}
	for _, ra := range []authorizationv1.ResourceAttributes{
		{Verb: "get", Resource: "secrets", Namespace: "kube-system"},
		{Verb: "get", Resource: "pods"},
		{Verb: "create", Resource: "pods", Namespace: ns},
		{Verb: "delete", Group: "apps", Resource: "deployments", Namespace: ns},
		{Verb: "update", Resource: "configmaps", Namespace: ns},
		{Verb: "create", Resource: "serviceaccounts", Subresource: "token", Namespace: ns},
		{Verb: "create", Resource: "pods", Subresource: "exec", Namespace: ns},
		{Verb: "list", Resource: "nodes"},
		{Verb: "escalate", Group: "rbac.authorization.k8s.io", Resource: "clusterroles"},
	} {
		wantSAR(t, admin, sa, ra, false)
	}

	// kustode-viewer and kustode-editor, bound to people, answer the API's
	// SubjectAccessReviews on kustode.io.
	for _, role := range []string{"kustode-viewer", "kustode-editor"} {
		user := "deploy-" + role
		crb := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: user},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		}
		if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = admin.RbacV1().ClusterRoleBindings().Delete(context.Background(), crb.Name, metav1.DeleteOptions{})
		})
		person := sarSubject{user: user, groups: []string{"system:authenticated"}}
		editor := role == "kustode-editor"
		for _, c := range []struct {
			verb, resource string
			want           bool
		}{
			{"list", "findings", true}, {"get", "alerts", true}, {"get", "readyz", true}, {"list", "exceptions", true},
			{"update", "alerts", editor}, {"update", "exceptions", editor}, {"create", "exceptions", editor},
			{"delete", "exceptions", false}, {"create", "rules", false}, {"update", "findings", false},
		} {
			wantSAR(t, admin, person, authorizationv1.ResourceAttributes{Verb: c.verb, Group: "kustode.io", Resource: c.resource}, c.want)
		}
	}
}

func unstructuredJSON(t *testing.T, u *unstructured.Unstructured) []byte {
	t.Helper()
	b, err := u.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type sarSubject struct {
	user   string
	groups []string
}

func saSubject(ns, name string) sarSubject {
	return sarSubject{
		user:   "system:serviceaccount:" + ns + ":" + name,
		groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
}

// wantSAR asks the API server (SubjectAccessReview) whether s may do ra.
// RBAC reaches the authorizer through an informer, so a grant is polled
// for; callers ask for denials after grants of the same binding have shown.
func wantSAR(t *testing.T, admin *kubernetes.Clientset, s sarSubject, ra authorizationv1.ResourceAttributes, want bool) {
	t.Helper()
	var allowed bool
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		sar, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: s.user, Groups: s.groups, ResourceAttributes: &ra},
		}, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		allowed = sar.Status.Allowed
		return allowed || !want, nil
	})
	if err != nil && !wait.Interrupted(err) {
		t.Fatalf("SubjectAccessReview: %v", err)
	}
	if allowed != want {
		t.Errorf("%s may %s %s/%s %s (namespace %q): %v, want %v", s.user, ra.Verb, ra.Group, ra.Resource, ra.Subresource, ra.Namespace, allowed, want)
	}
}

// TestDeployAuditPolicy starts a second kube-apiserver configured as
// deploy/audit/README.md says: --audit-policy-file with
// deploy/audit/audit-policy.yaml and --audit-webhook-config-file with
// deploy/audit/webhook-kubeconfig.yaml, its placeholders filled in. The API
// server must accept both, authenticate to kustode's real audit receiver with
// the token, and record each request at the level the policy promises,
// never a Secret value or a reviewed token.
func TestDeployAuditPolicy(t *testing.T) {
	ctx := t.Context()
	policy, err := os.ReadFile(filepath.Join(deployDir, "audit", "audit-policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile(filepath.Join(deployDir, "audit", "webhook-kubeconfig.yaml"))
	if err != nil {
		t.Fatal(err)
	}

	const token = "deploy-e2e-webhook-token"
	var (
		mu     sync.Mutex
		bodies [][]byte
		events []kaudit.Event
	)
	auth, err := kaudit.NewTokenAuthenticator(token)
	if err != nil {
		t.Fatal(err)
	}
	receiver, err := kaudit.NewWebhookHandler(kaudit.SinkFunc(func(_ context.Context, evs []kaudit.Event) error {
		mu.Lock()
		events = append(events, evs...)
		mu.Unlock()
		return nil
	}), kaudit.WebhookOptions{Authenticator: auth})
	if err != nil {
		t.Fatal(err)
	}
	hook := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		bodies = append(bodies, body)
		mu.Unlock()
		r2 := r.Clone(r.Context())
		r2.Body = io.NopCloser(bytes.NewReader(body))
		receiver.ServeHTTP(w, r2)
	}))
	defer hook.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hook.Certificate().Raw})

	kubeconfig := string(tmpl)
	for _, r := range [][2]string{
		{"https://kustode.kustode.svc:8443", hook.URL},
		{"<base64 CA certificate>", base64.StdEncoding.EncodeToString(ca)},
		{"<token from the Secret>", token},
	} {
		if n := strings.Count(kubeconfig, r[0]); n != 1 {
			t.Fatalf("webhook-kubeconfig.yaml holds %q %d times, want once", r[0], n)
		}
		kubeconfig = strings.Replace(kubeconfig, r[0], r[1], 1)
	}
	hookFile := filepath.Join(t.TempDir(), "kustode-webhook.yaml")
	if err := os.WriteFile(hookFile, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	cp2, err := controlplane.Start(ctx, controlplane.Options{
		AuditPolicy: policy,
		APIServerArgs: []string{
			"--audit-webhook-config-file=" + hookFile,
			"--audit-webhook-mode=batch",
			"--audit-webhook-batch-max-wait=1s",
		},
	})
	if err != nil {
		t.Fatalf("kube-apiserver with deploy/audit's policy and webhook configuration: %v", err)
	}
	defer func() {
		if err := cp2.Stop(); err != nil {
			t.Error(err)
		}
	}()
	t.Logf("second API server ready in %s", time.Since(start).Round(time.Millisecond))

	admin := clientFor(t, cp2.Config(controlplane.AdminUser))
	const ns = "audit-policy"
	secretValue := fmt.Sprintf("secret-value-%d", time.Now().UnixNano())
	reviewed := fmt.Sprintf("reviewed-token-%d", time.Now().UnixNano())
	if err := cp2.EnsureNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		StringData: map[string]string{"password": secretValue},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "settings"},
		Data:       map[string]string{"greeting": "hello-from-the-configmap"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: reviewed},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().Secrets(ns).Get(ctx, "db", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := admin.Discovery().RESTClient().Get().AbsPath("/healthz").Do(ctx).Error(); err != nil {
		t.Fatal(err)
	}

	type key struct{ verb, resource, name string }
	want := map[key]kaudit.Level{
		{"create", "secrets", ""}:      kaudit.LevelMetadata,
		{"get", "secrets", "db"}:       kaudit.LevelMetadata,
		{"create", "configmaps", ""}:   kaudit.LevelRequest,
		{"create", "pods", ""}:         kaudit.LevelRequest,
		{"create", "tokenreviews", ""}: kaudit.LevelMetadata,
		{"create", "namespaces", ""}:   kaudit.LevelRequest,
	}
	seen := map[key]*kaudit.Event{}
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		for i := range events {
			ev := &events[i]
			if ev.User.Username != controlplane.AdminUser ||
				(ev.ObjectRef.Namespace != ns && ev.ObjectRef.Resource != "namespaces" && ev.ObjectRef.Resource != "tokenreviews") {
				continue
			}
			k := key{ev.Verb, ev.ObjectRef.Resource, ev.ObjectRef.Name}
			if ev.Verb == "create" {
				k.name = "" // a create's objectRef may lack the name
			}
			if _, ok := want[k]; ok {
				seen[k] = ev
			}
		}
		return len(seen) == len(want), nil
	})
	if err != nil {
		t.Fatalf("audit events through the webhook within 30 s: have %v of %v (receiver %+v)", mapKeys(seen), mapKeys(want), receiver.Stats())
	}
	for k, level := range want {
		ev := seen[k]
		if ev.Level != level {
			t.Errorf("%s %s %s: level %s, want %s", k.verb, k.resource, k.name, ev.Level, level)
		}
		if (level == kaudit.LevelRequest) != (len(ev.RequestObject) > 0) {
			t.Errorf("%s %s: level %s with requestObject %q", k.verb, k.resource, ev.Level, ev.RequestObject)
		}
		if len(ev.ResponseObject) > 0 {
			t.Errorf("%s %s: a response body was recorded", k.verb, k.resource)
		}
	}
	if cm := seen[key{"create", "configmaps", ""}]; !bytes.Contains(cm.RequestObject, []byte("hello-from-the-configmap")) {
		t.Errorf("configmap create: the request body lacks the data the credential rule reads: %s", cm.RequestObject)
	}

	mu.Lock()
	defer mu.Unlock()
	for _, ev := range events {
		if strings.HasPrefix(ev.RequestURI, "/healthz") || strings.HasPrefix(ev.RequestURI, "/readyz") || strings.HasPrefix(ev.RequestURI, "/livez") {
			t.Errorf("health probe recorded: %s %s", ev.Verb, ev.RequestURI)
		}
		if ev.Stage == "RequestReceived" {
			t.Errorf("stage RequestReceived recorded (omitStages): %s %s", ev.Verb, ev.RequestURI)
		}
	}
	for _, b := range bodies {
		for _, s := range []string{secretValue, base64.StdEncoding.EncodeToString([]byte(secretValue)), reviewed} {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("a webhook batch holds a secret value or a reviewed token (%q)", s)
			}
		}
	}
	if st := receiver.Stats(); st.Malformed != 0 || st.Received == 0 {
		t.Errorf("receiver stats %+v", st)
	}
	t.Logf("%d audit events in %d batches through the webhook", len(events), len(bodies))
}

func mapKeys[K comparable, V any](m map[K]V) []K {
	var out []K
	for k := range m {
		out = append(out, k)
	}
	return out
}
