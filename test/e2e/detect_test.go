//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"

	kaudit "github.com/kustode/kustode/internal/audit"
	"github.com/kustode/kustode/internal/controlplane"
	"github.com/kustode/kustode/internal/detect"
	"github.com/kustode/kustode/internal/finding"
)

// webhookToken is what the API server presents to kustode's receiver.
const webhookToken = "e2e-audit-webhook-token"

// detector is kustode's audit pipeline as serve will run it: the webhook
// receiver, authenticated, feeding the default rules.
type detector struct {
	handler *kaudit.WebhookHandler
	mu      sync.Mutex
	alerts  []finding.Alert
}

func newDetector() (*detector, error) {
	engine, err := detect.NewEngine(detect.Options{})
	if err != nil {
		return nil, err
	}
	auth, err := kaudit.NewTokenAuthenticator(webhookToken)
	if err != nil {
		return nil, err
	}
	d := &detector{}
	d.handler, err = kaudit.NewWebhookHandler(kaudit.SinkFunc(func(_ context.Context, events []kaudit.Event) error {
		for i := range events {
			if as := engine.Evaluate(&events[i]); len(as) > 0 {
				d.mu.Lock()
				d.alerts = append(d.alerts, as...)
				d.mu.Unlock()
			}
		}
		return nil
	}), kaudit.WebhookOptions{Authenticator: auth})
	return d, err
}

func (d *detector) snapshot() []finding.Alert {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.alerts)
}

var detections *detector

// TestDetectAttacks performs attacks against the real API server as
// different identities; the audit webhook carries them to kustode's
// receiver and rules, which must raise the expected alerts within seconds,
// while the control plane's own background work raises none.
func TestDetectAttacks(t *testing.T) {
	ctx := t.Context()
	admin := clientFor(t, cp.Config(controlplane.AdminUser))
	dev := clientFor(t, cp.Config(alice))
	const ns = "attack"
	if err := cp.EnsureNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}

	// 1. A privileged pod mounting the node's root.
	priv := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "breakout", Namespace: ns},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36", SecurityContext: &corev1.SecurityContext{Privileged: ptr(true)}}},
			Volumes:    []corev1.Volume{{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}},
		},
	}
	if _, err := admin.CoreV1().Pods(ns).Create(ctx, priv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// 2. cluster-admin handed out.
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "mallory-admin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "mallory"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// 3. A stolen service-account token, used with curl to list every Secret.
	thief := scannerKubeconfigConfig(t, ns, "thief", []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"list"}}})
	thief.UserAgent = "curl/8.5.0"
	if _, err := clientFor(t, thief).CoreV1().Secrets("").List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("thief list secrets: %v", err)
	}
	// 4. A user with a client certificate (unknown to the token file)
	// writes a wildcard ClusterRole.
	writer := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "role-writer"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterroles"}, Verbs: []string{"create", "escalate"}}},
	}
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, writer, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "ops-role-writer"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "ops"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "role-writer"},
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, wb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	carolCfg, err := cp.CertConfig("carol", "ops")
	if err != nil {
		t.Fatal(err)
	}
	carol := clientFor(t, carolCfg)
	wild := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "everything"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}},
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := carol.RbacV1().ClusterRoles().Create(ctx, wild, metav1.CreateOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("carol (client certificate, group ops) could not create a ClusterRole: %v", err)
	}

	// 5. Reconnaissance: alice probes what she may do.
	for _, res := range []string{"secrets", "configmaps", "serviceaccounts", "roles", "pods"} {
		_ = dev.CoreV1().RESTClient().Get().Namespace("kube-system").Resource(res).Do(ctx).Error()
	}

	want := map[string]string{ // rule → user
		"privileged-pod-created":         controlplane.AdminUser,
		"sensitive-hostpath-pod-created": controlplane.AdminUser,
		"cluster-admin-bound":            controlplane.AdminUser,
		"token-created-by-person":        controlplane.AdminUser, // the thief's token, minted below
		"secrets-listed-cluster-wide":    "system:serviceaccount:attack:thief",
		"service-account-unusual-client": "system:serviceaccount:attack:thief",
		"forbidden-burst":                alice,
		"wildcard-role-written":          "carol",
	}
	var missing []string
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		missing = missing[:0]
		alerts := detections.snapshot()
		for rule, user := range want {
			if !slices.ContainsFunc(alerts, func(a finding.Alert) bool { return a.Rule == rule && a.User == user && len(a.AuditIDs) > 0 }) {
				missing = append(missing, rule+" by "+user)
			}
		}
		return len(missing) == 0, nil
	})
	if err != nil {
		t.Errorf("alerts not raised within 30 s: %v\nraised: %s", missing, describeAlerts(detections.snapshot()))
	}

	// The controllers, scheduler and kwok have been working all along.
	for _, a := range detections.snapshot() {
		if component(a.User) {
			t.Errorf("the control plane's own work raised an alert: %s %s: %s", a.Rule, a.User, a.Message)
		}
	}
	if st := detections.handler.Stats(); st.Received == 0 || st.Malformed != 0 {
		t.Errorf("receiver stats %+v: want events received and none malformed", st)
	}
}

func component(user string) bool {
	return strings.HasPrefix(user, "system:kube-") || strings.HasPrefix(user, "system:node:") ||
		strings.HasPrefix(user, "system:serviceaccount:kube-system:") || user == controlplane.KwokUser ||
		user == "system:apiserver"
}

func describeAlerts(as []finding.Alert) string {
	var b strings.Builder
	for _, a := range as {
		fmt.Fprintf(&b, "\n  %s by %s: %s", a.Rule, a.User, a.Message)
	}
	return b.String()
}

// scannerKubeconfigConfig makes a service account with rules and returns a
// client configuration holding a token for it, as a thief would have.
func scannerKubeconfigConfig(t *testing.T, ns, name string, rules []rbacv1.PolicyRule) *rest.Config {
	t.Helper()
	ctx := t.Context()
	admin := clientFor(t, cp.Config(controlplane.AdminUser))
	scannerKubeconfig(t, admin, ns, name, rules) // creates the account, role and binding; waits for them
	tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := cp.AnonymousConfig()
	cfg.BearerToken = tr.Status.Token
	return cfg
}
