//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kustode/kustode/internal/cli"
	"github.com/kustode/kustode/internal/controlplane"
	"github.com/kustode/kustode/internal/kube"
)

// TestScanCluster runs `kustode scan --cluster` against the real API server
// as a service account holding only a read-only role: each problem is found
// once on the object a person edits (the Deployment, not its ReplicaSet or
// Pods), and a kind the role may not list is reported while the rest is
// still scanned.
func TestScanCluster(t *testing.T) {
	ctx := t.Context()
	admin := clientFor(t, cp.Config(controlplane.AdminUser))
	const ns = "scan-cluster"
	if err := cp.EnsureNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "priv"}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "priv", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "c", Image: "registry.example/app:1",
					SecurityContext: &corev1.SecurityContext{Privileged: ptr(true)},
				}}},
			},
		},
	}
	if _, err := admin.AppsV1().Deployments(ns).Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "open-egress", Namespace: ns},
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress:      []networkingv1.NetworkPolicyEgressRule{{}},
		},
	}
	if _, err := admin.NetworkingV1().NetworkPolicies(ns).Create(ctx, np, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The controller-manager makes the ReplicaSet and its Pods; wait for them
	// so the test proves they are left out, not merely absent.
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=priv"})
		return err == nil && len(pods.Items) == 2, err
	})
	if err != nil {
		t.Fatalf("deployment pods never created: %v", err)
	}

	// A legacy token Secret, and a Secret whose value must never appear.
	const secretValue = "kustode-e2e-value-that-must-not-leak"
	legacy := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "old-token", Namespace: ns, Annotations: map[string]string{"kubernetes.io/service-account.name": "default"}},
		Type:       corev1.SecretTypeServiceAccountToken,
	}
	opaque := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns}, StringData: map[string]string{"password": secretValue}}
	for _, sec := range []*corev1.Secret{legacy, opaque} {
		if _, err := admin.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// A read-only role over what scan lists.
	var rules []rbacv1.PolicyRule
	for _, gvk := range append(slices.Clone(kube.ListedKinds), kube.MetadataOnlyKinds...) {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{gvk.Group}, Resources: []string{kube.ResourceFor(gvk).Resource}, Verbs: []string{"list"}})
	}
	full := scannerKubeconfig(t, admin, ns, "scanner", rules)
	withoutConfigMaps := scannerKubeconfig(t, admin, ns, "scanner-no-cm", slices.DeleteFunc(slices.Clone(rules), func(r rbacv1.PolicyRule) bool {
		return r.Resources[0] == "configmaps"
	}))

	code, report, stderr := runScan(t, "--cluster", "--kubeconfig", full, "-n", ns, "-o", "json")
	if code != cli.ExitOK || len(report.Errors) != 0 {
		t.Fatalf("scan as read-only scanner: exit %d, errors %v, stderr %s", code, report.Errors, stderr)
	}
	var privOn []string
	for _, f := range report.Findings {
		// Cluster-scoped objects (Namespaces, ClusterRoles and their
		// bindings) are read whatever -n says: they decide what happens in
		// the namespace too.
		if f.Object.Namespace != ns && f.Object.Namespace != "" {
			t.Errorf("finding outside namespace %s: %+v", ns, f.Object)
		}
		if f.CheckID == "pss-privileged" {
			privOn = append(privOn, f.Object.Kind+"/"+f.Object.Name)
		}
	}
	if strings.Join(privOn, ",") != "Deployment/priv" {
		t.Errorf("pss-privileged reported on %v, want only Deployment/priv (not its ReplicaSet or Pods)", privOn)
	}
	if !hasFinding(report, "netpol-allow-all", "NetworkPolicy", "open-egress") {
		t.Error("open egress policy not flagged netpol-allow-all")
	}
	if !hasFinding(report, "netpol-namespace-no-default-deny", "Namespace", ns) {
		t.Error("namespace without default-deny not flagged")
	}
	if !hasFinding(report, "rbac-secrets-read", "ClusterRoleBinding", "scanner") {
		t.Error("the scanner's own cluster-wide list on secrets is not flagged rbac-secrets-read")
	}
	if !hasFinding(report, "secret-legacy-sa-token", "Secret", "old-token") {
		t.Error("legacy service-account token Secret (listed as metadata only) not flagged")
	}
	var out, errb strings.Builder
	cli.Run(ctx, []string{"scan", "--cluster", "--kubeconfig", full, "-n", ns, "-o", "json"}, strings.NewReader(""), &out, &errb)
	if strings.Contains(out.String(), secretValue) || strings.Contains(errb.String(), secretValue) {
		t.Error("a Secret's value appears in the scan output")
	}

	// who-can reads the same cluster: the scanner's list on secrets comes
	// from its ClusterRoleBinding.
	var wout, werr strings.Builder
	if code := cli.Run(ctx, []string{"who-can", "list", "secrets", "-n", ns, "--cluster", "--kubeconfig", full, "-o", "json"},
		strings.NewReader(""), &wout, &werr); code != cli.ExitOK {
		t.Fatalf("who-can --cluster: exit %d: %s", code, werr.String())
	}
	var grants []struct {
		Subject struct{ Kind, Name, Namespace string } `json:"subject"`
		Binding struct{ Kind, Name string }            `json:"binding"`
	}
	if err := json.Unmarshal([]byte(wout.String()), &grants); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(grants, func(g struct {
		Subject struct{ Kind, Name, Namespace string } `json:"subject"`
		Binding struct{ Kind, Name string }            `json:"binding"`
	}) bool {
		return g.Subject.Kind == "ServiceAccount" && g.Subject.Name == "scanner" && g.Binding.Name == "scanner"
	}) {
		t.Errorf("who-can list secrets -n %s: scanner not among %+v", ns, grants)
	}

	code, report, stderr = runScan(t, "--cluster", "--kubeconfig", withoutConfigMaps, "-n", ns, "-o", "json")
	if code != cli.ExitUsage {
		t.Errorf("scan without configmaps permission: exit %d, want %d", code, cli.ExitUsage)
	}
	if len(report.Errors) != 1 || !strings.Contains(report.Errors[0].Message, "cannot list ConfigMap") || !strings.Contains(stderr, "forbidden") {
		t.Errorf("errors %v, stderr %q: want one 'cannot list ConfigMap ... forbidden'", report.Errors, stderr)
	}
	if !hasFinding(report, "pss-privileged", "Deployment", "priv") {
		t.Error("a forbidden kind stopped the rest of the scan")
	}
}

// scannerKubeconfig makes a service account bound cluster-wide to rules and
// writes a kubeconfig with a token for it.
func scannerKubeconfig(t *testing.T, admin *kubernetes.Clientset, ns, name string, rules []rbacv1.PolicyRule) string {
	t.Helper()
	ctx := t.Context()
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: cp.URL, CertificateAuthorityData: cp.CACert}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	cfg.CurrentContext = "c"
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	// RBAC changes reach the authorizer through an informer: wait until the
	// role's first rule is in effect for the new token.
	check, err := kubernetes.NewForConfig(mustConfig(t, path))
	if err != nil {
		t.Fatal(err)
	}
	first := rules[0]
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: first.Verbs[0], Group: first.APIGroups[0], Resource: first.Resources[0]},
	}}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		res, err := check.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		return err == nil && res.Status.Allowed, nil
	})
	if err != nil {
		t.Fatalf("role for %s never took effect: %v", name, err)
	}
	return path
}

func mustConfig(t *testing.T, path string) *rest.Config {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

type scanResult struct {
	Findings []struct {
		CheckID string `json:"checkID"`
		Object  struct {
			Kind, Namespace, Name string
		} `json:"object"`
	} `json:"findings"`
	Errors []struct {
		Message string `json:"message"`
	} `json:"errors"`
}

func runScan(t *testing.T, args ...string) (int, scanResult, string) {
	t.Helper()
	var out, errb strings.Builder
	code := cli.Run(t.Context(), append([]string{"scan"}, args...), strings.NewReader(""), &out, &errb)
	var r scanResult
	if err := json.Unmarshal([]byte(out.String()), &r); err != nil {
		t.Fatalf("scan output is not JSON (exit %d): %v\n%s\nstderr: %s", code, err, out.String(), errb.String())
	}
	return code, r, errb.String()
}

func hasFinding(r scanResult, check, kind, name string) bool {
	for _, f := range r.Findings {
		if f.CheckID == check && f.Object.Kind == kind && f.Object.Name == name {
			return true
		}
	}
	return false
}
