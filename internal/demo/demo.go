package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/kustode/kustode/examples"
	"github.com/kustode/kustode/internal/config"
	"github.com/kustode/kustode/internal/controlplane"
	"github.com/kustode/kustode/internal/daemon"
	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/manifest"
	"github.com/kustode/kustode/internal/store"
)

// Options configures Run.
type Options struct {
	// Listen is serve's API address.
	Listen string
	// Dir keeps the demo's files (control plane, store, token); empty means
	// a temporary directory removed at the end.
	Dir string
	// Exit stops after the summary instead of serving until ctx is done.
	Exit bool
	// Out receives the story; Progress the step-by-step detail.
	Out, Progress io.Writer
}

// Run plays the demo and, unless opts.Exit, keeps serving until ctx is done.
// It returns an error when a step fails; every process it started is
// stopped before it returns.
func Run(ctx context.Context, opts Options) (err error) {
	out := opts.Out
	say := func(format string, args ...any) { _, _ = fmt.Fprintf(out, format+"\n", args...) }
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "kustode-demo-"); err != nil {
			return err
		}
		defer func() { _ = os.RemoveAll(dir) }()
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}

	say("1/5 Building and starting a local Kubernetes control plane (first run builds it: several minutes)...")
	tls, err := newWebhookTLS(dir)
	if err != nil {
		return err
	}
	hookToken, apiToken := randomToken(), randomToken()
	for f, v := range map[string]string{"webhook-token": hookToken, "api-token": apiToken} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(v+"\n"), 0o600); err != nil {
			return err
		}
	}
	hookAddr, err := freeAddr(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	cp, err := controlplane.Start(ctx, controlplane.Options{
		Dir:               filepath.Join(dir, "controlplane"),
		AuditWebhookURL:   "https://" + hookAddr + "/",
		AuditWebhookToken: hookToken,
		AuditWebhookCA:    tls.caPEM,
		ControllerManager: true,
		Progress:          opts.Progress,
	})
	if err != nil {
		return fmt.Errorf("start control plane: %w", err)
	}
	defer func() {
		if stopErr := cp.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
	}()
	kubeconfig, err := cp.WriteKubeconfig(controlplane.AdminUser)
	if err != nil {
		return err
	}
	say("    control plane up in %s: %s (kubeconfig %s)", time.Since(start).Round(time.Second), cp.URL, kubeconfig)

	say("2/5 Starting kustode serve, wired to the API server's audit webhook...")
	cfg := config.Default()
	cfg.Listen = opts.Listen
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.API.TokenFile = filepath.Join(dir, "api-token")
	cfg.Audit.WebhookListen = hookAddr
	cfg.Audit.WebhookTokenFile = filepath.Join(dir, "webhook-token")
	cfg.Audit.WebhookTLSCertFile, cfg.Audit.WebhookTLSKeyFile = tls.certFile, tls.keyFile
	cfg.Posture.HistoryInterval = 10 * time.Second
	if err := cfg.Validate(); err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(dir, "serve.log")) //nolint:gosec // the demo's own directory
	if err != nil {
		return err
	}
	defer func() { _ = logFile.Close() }()
	log := slog.New(slog.NewTextHandler(logFile, nil))
	admin := cp.Config(controlplane.AdminUser)
	// serve runs as it does when installed: service account kustode/kustode
	// with the install's read-only ClusterRole.
	self, err := serviceAccountConfig(ctx, cp)
	if err != nil {
		return fmt.Errorf("kustode's service account: %w", err)
	}
	d, err := daemon.New(ctx, cfg, self, log)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	serveCtx, stopServe := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- d.Start(serveCtx) }()
	defer func() {
		stopServe()
		if serveErr := <-served; serveErr != nil {
			err = errors.Join(err, serveErr)
		}
	}()
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return !d.FirstFullPosture().IsZero(), nil
	}); err != nil {
		return fmt.Errorf("serve did not evaluate the cluster within a minute (log: %s): %w", logFile.Name(), err)
	}
	say("    serve ready: API on http://%s, log %s", d.APIAddr(), logFile.Name())

	say("3/5 Applying a shop with known misconfigurations (examples/insecure-shop)...")
	n, err := apply(ctx, admin, dir)
	if err != nil {
		return err
	}
	say("    %d objects applied", n)

	say("4/5 Playing an attack: a stolen service-account token, a privileged pod, a cluster-admin binding, an exec...")
	if err := attack(ctx, cp, out); err != nil {
		return err
	}
	// Let the audit webhook (1 s batches) and the posture debounce catch up.
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(4 * time.Second):
	}

	say("5/5 What kustode found:")
	if err := summary(ctx, d.Store(), out); err != nil {
		return err
	}
	say("\nLook around (the API needs the token):")
	say("  export KUSTODE_TOKEN=$(cat %s)", filepath.Join(dir, "api-token"))
	say("  curl -H \"Authorization: Bearer $KUSTODE_TOKEN\" 'http://%s/api/v1/findings?severity=critical,high&status=open'", d.APIAddr())
	say("  curl -H \"Authorization: Bearer $KUSTODE_TOKEN\" http://%s/api/v1/alerts", d.APIAddr())
	say("  curl -H \"Authorization: Bearer $KUSTODE_TOKEN\" http://%s/api/v1/posture", d.APIAddr())
	say("  KUBECONFIG=%s kubectl get pods -A   # the demo cluster, if you have kubectl", kubeconfig)
	if opts.Exit {
		return nil
	}
	say("\nServing until Ctrl-C; then every process the demo started is stopped.")
	<-ctx.Done()
	say("Stopping...")
	return nil
}

// apply creates the example shop's objects as the admin.
func apply(ctx context.Context, cfg *rest.Config, dir string) (int, error) {
	mdir := filepath.Join(dir, "manifests")
	if err := os.MkdirAll(mdir, 0o700); err != nil {
		return 0, err
	}
	err := fs.WalkDir(examples.InsecureShop, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := fs.ReadFile(examples.InsecureShop, p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(mdir, filepath.Base(p)), b, 0o600)
	})
	if err != nil {
		return 0, err
	}
	objs, errs := manifest.Load([]string{mdir}, nil)
	if len(errs) > 0 {
		return 0, errors.Join(errs...)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return 0, err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return 0, err
	}
	// Namespaces first.
	sort.SliceStable(objs, func(i, j int) bool { return objs[i].Ref.Kind == "Namespace" && objs[j].Ref.Kind != "Namespace" })
	for _, o := range objs {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(o.Raw); err != nil {
			return 0, fmt.Errorf("%s: %w", o.Source, err)
		}
		modernize(u)
		gvk := u.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			// The examples keep some retired apiVersions (batch/v1beta1
			// CronJob) because scans meet them in old manifests; the
			// cluster takes them at the version it serves.
			if m, err = mapper.RESTMapping(gvk.GroupKind()); err != nil {
				return 0, fmt.Errorf("%s: %w", o.Source, err)
			}
			u.SetAPIVersion(m.GroupVersionKind.GroupVersion().String())
		}
		_, err = dyn.Resource(m.Resource).Namespace(u.GetNamespace()).Create(ctx, u, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return 0, fmt.Errorf("%s: create %s: %w", o.Source, o.Ref, err)
		}
	}
	return len(objs), nil
}

// serviceAccountConfig creates kustode's namespace, service account and
// ClusterRole (daemon.PolicyRules, what deploy/ installs) and returns a
// client configuration with that account's token.
func serviceAccountConfig(ctx context.Context, cp *controlplane.ControlPlane) (*rest.Config, error) {
	admin, err := kubernetes.NewForConfig(cp.Config(controlplane.AdminUser))
	if err != nil {
		return nil, err
	}
	const ns, name = "kustode", "kustode"
	if err := cp.EnsureNamespace(ctx, ns); err != nil {
		return nil, err
	}
	create := func(err error) error {
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	}
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}, metav1.CreateOptions{}); create(err) != nil {
		return nil, err
	}
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: daemon.PolicyRules()}, metav1.CreateOptions{}); create(err) != nil {
		return nil, err
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); create(err) != nil {
		return nil, err
	}
	tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(24 * 3600))},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	cfg := cp.AnonymousConfig()
	cfg.BearerToken = tr.Status.Token
	return cfg, nil
}

// modernize moves workloads of the retired extensions group to apps/v1,
// which requires the selector extensions defaulted from the template labels.
func modernize(u *unstructured.Unstructured) {
	if u.GroupVersionKind().Group != "extensions" && !strings.HasPrefix(u.GetAPIVersion(), "apps/v1beta") {
		return
	}
	u.SetAPIVersion("apps/v1")
	if _, ok, _ := unstructured.NestedMap(u.Object, "spec", "selector"); !ok {
		labels, _, _ := unstructured.NestedStringMap(u.Object, "spec", "template", "metadata", "labels")
		m := map[string]any{}
		for k, v := range labels {
			m[k] = v
		}
		_ = unstructured.SetNestedMap(u.Object, map[string]any{"matchLabels": m}, "spec", "selector")
	}
}

// attack plays what an intruder does after stealing a workload's token.
func attack(ctx context.Context, cp *controlplane.ControlPlane, out io.Writer) error {
	admin, err := kubernetes.NewForConfig(cp.Config(controlplane.AdminUser))
	if err != nil {
		return err
	}
	const ns = "shop"
	// What the thief is after: the shop's key for its payment provider.
	key := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "payment-provider", Namespace: ns},
		StringData: map[string]string{"api-key": "demo-" + randomToken()},
	}
	if _, err := admin.CoreV1().Secrets(ns).Create(ctx, key, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	// A workload account that can list Secrets (a common over-grant).
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reporting", Namespace: ns}}
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "reporting-read"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets", "pods"}, Verbs: []string{"get", "list"}}},
	}
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	rb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "reporting-read"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "reporting", Namespace: ns}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "reporting-read"},
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, rb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "reporting", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	stolen := cp.AnonymousConfig()
	stolen.BearerToken = tr.Status.Token
	stolen.UserAgent = "curl/8.5.0"
	thief, err := kubernetes.NewForConfig(stolen)
	if err != nil {
		return err
	}
	// RBAC takes a moment to reach the authorizer's cache.
	var secrets *corev1.SecretList
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		secrets, err = thief.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("stolen token could not list secrets: %w", err)
	}
	noun := "Secrets"
	if len(secrets.Items) == 1 {
		noun = "Secret"
	}
	_, _ = fmt.Fprintf(out, "    - with the stolen token of shop/reporting and curl's user agent, listed %d %s cluster-wide\n", len(secrets.Items), noun)

	priv := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "node-shell", Namespace: ns},
		Spec: corev1.PodSpec{
			HostPID: true,
			Containers: []corev1.Container{{Name: "shell", Image: "alpine:3.20", Command: []string{"nsenter", "-t", "1", "-m", "-u", "-i", "-n", "sh"},
				SecurityContext: &corev1.SecurityContext{Privileged: ptr(true)}}},
			Volumes: []corev1.Volume{{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}},
		},
	}
	if _, err := admin.CoreV1().Pods(ns).Create(ctx, priv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	_, _ = fmt.Fprintln(out, "    - created a privileged pod with hostPID and the node's / mounted (shop/node-shell)")

	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "backdoor-admin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "mallory"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	_, _ = fmt.Fprintln(out, "    - bound cluster-admin to user mallory (backdoor-admin)")

	// An exec into the pod: the API server records the attempt; with no
	// kubelet behind this demo node it cannot connect, which the audit
	// event shows as a failed request.
	execErr := admin.CoreV1().RESTClient().Post().Namespace(ns).Resource("pods").Name("node-shell").SubResource("exec").
		Param("command", "id").Param("container", "shell").Param("stdout", "true").Do(ctx).Error()
	_, _ = fmt.Fprintf(out, "    - tried to exec into shop/node-shell (%s)\n", describeExec(execErr))
	return nil
}

func describeExec(err error) string {
	if err == nil {
		return "succeeded"
	}
	msg := err.Error()
	if len(msg) > 80 {
		msg = msg[:80] + "..."
	}
	return "refused by the demo cluster, which runs no kubelet: " + msg
}

// summary prints the open findings by severity, the worst ones, and the
// alerts.
func summary(ctx context.Context, st *store.Store, out io.Writer) error {
	pt, err := st.Summary(ctx, time.Now())
	if err != nil {
		return err
	}
	var sev []string
	for i := len(finding.Severities()) - 1; i >= 0; i-- {
		s := finding.Severities()[i]
		if n := pt.BySeverity[s.String()]; n > 0 {
			sev = append(sev, fmt.Sprintf("%d %s", n, s))
		}
	}
	_, _ = fmt.Fprintf(out, "  Posture: %d open findings (%s)\n", pt.Open, strings.Join(sev, ", "))
	fs, err := st.Findings(ctx, store.FindingFilter{Status: store.StatusOpen, Severities: []finding.Severity{finding.Critical, finding.High}, Namespace: "shop"})
	if err != nil {
		return err
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].Severity > fs[j].Severity })
	for i, f := range fs {
		if i == 8 {
			_, _ = fmt.Fprintf(out, "    ... and %d more critical and high findings in shop\n", len(fs)-i)
			break
		}
		_, _ = fmt.Fprintf(out, "    %-8s %-32s %s: %s\n", f.Severity, f.CheckID, f.Object, f.Message)
	}
	as, err := st.Alerts(ctx, store.AlertFilter{})
	if err != nil {
		return err
	}
	// One line per rule, the most severe first, with its latest message.
	type group struct {
		a store.Alert
		n int
	}
	byRule := map[string]*group{}
	var rules []string
	for _, a := range as {
		if g, ok := byRule[a.Rule]; ok {
			g.n++
			continue
		}
		byRule[a.Rule] = &group{a: a, n: 1}
		rules = append(rules, a.Rule)
	}
	sort.SliceStable(rules, func(i, j int) bool { return byRule[rules[i]].a.Severity > byRule[rules[j]].a.Severity })
	_, _ = fmt.Fprintf(out, "  Detection: %d alerts from %d rules\n", len(as), len(rules))
	for _, r := range rules {
		g := byRule[r]
		_, _ = fmt.Fprintf(out, "    %-8s %-32s %3dx  %s\n", g.a.Severity, r, g.n, g.a.Message)
	}
	return nil
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// freeAddr picks a free loopback port for the audit webhook, which the API
// server must know before serve starts.
func freeAddr(ctx context.Context) (string, error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String(), nil
}

func ptr[T any](v T) *T { return &v }
