//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kustode/kustode/internal/controlplane"
	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/kube"
	"github.com/kustode/kustode/internal/rbac"
)

const (
	rbacNS      = "rbac-e2e"
	rbacOtherNS = "rbac-e2e-other"
	// rbacAggLabel marks the ClusterRoles rbac-e2e-aggregated aggregates.
	rbacAggLabel = "kustode.dev/rbac-e2e-aggregate"
)

// rbacSet is the RBAC the test creates, as written: before the API server
// defaults anything or the aggregation controller rewrites any rules.
type rbacSet struct {
	clusterRoles        []*rbacv1.ClusterRole
	roles               []*rbacv1.Role
	roleBindings        []*rbacv1.RoleBinding
	clusterRoleBindings []*rbacv1.ClusterRoleBinding
}

func rbacTestSet() *rbacSet {
	rule := func(groups, resources, verbs []string, names ...string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{APIGroups: groups, Resources: resources, Verbs: verbs, ResourceNames: names}
	}
	core := []string{""}
	user := func(name string) rbacv1.Subject {
		return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}
	}
	group := func(name string) rbacv1.Subject {
		return rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: name}
	}
	sa := func(ns, name string) rbacv1.Subject {
		return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}
	}
	ref := func(kind, name string) rbacv1.RoleRef {
		return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: name}
	}
	crb := func(name, role string, subjects ...rbacv1.Subject) *rbacv1.ClusterRoleBinding {
		return &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, Subjects: subjects, RoleRef: ref("ClusterRole", role)}
	}
	rb := func(ns, name, kind, role string, subjects ...rbacv1.Subject) *rbacv1.RoleBinding {
		return &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Subjects: subjects, RoleRef: ref(kind, role)}
	}
	return &rbacSet{
		clusterRoles: []*rbacv1.ClusterRole{
			// Created first so that the aggregation controller has handled
			// it by the time it has filled rbac-e2e-aggregated: it selects
			// nothing, and its own rule must survive.
			{
				ObjectMeta:      metav1.ObjectMeta{Name: "rbac-e2e-aggregated-empty"},
				AggregationRule: &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{rbacAggLabel: "nothing-has-this"}}}},
				Rules:           []rbacv1.PolicyRule{rule(core, []string{"namespaces"}, []string{"get"})},
			},
			{
				ObjectMeta: metav1.ObjectMeta{Name: "rbac-e2e-widgets", Labels: map[string]string{rbacAggLabel: "true"}},
				Rules:      []rbacv1.PolicyRule{rule([]string{"example.com"}, []string{"widgets"}, []string{"get", "list"})},
			},
			{
				ObjectMeta: metav1.ObjectMeta{Name: "rbac-e2e-app-config", Labels: map[string]string{rbacAggLabel: "true"}},
				Rules: []rbacv1.PolicyRule{
					rule(core, []string{"configmaps"}, []string{"get", "watch"}, "app-config"),
					rule([]string{"example.com"}, []string{"widgets"}, []string{"get", "list"}),
				},
			},
			// Its own rule is replaced by the union of the two above.
			{
				ObjectMeta:      metav1.ObjectMeta{Name: "rbac-e2e-aggregated"},
				AggregationRule: &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{rbacAggLabel: "true"}}}},
				Rules:           []rbacv1.PolicyRule{rule(core, []string{"nodes"}, []string{"delete"})},
			},
			{
				ObjectMeta: metav1.ObjectMeta{Name: "rbac-e2e-exec"},
				Rules: []rbacv1.PolicyRule{
					rule(core, []string{"*/exec"}, []string{"create"}),
					rule(core, []string{"pods/*"}, []string{"get"}),
					rule([]string{"apps"}, []string{"deployments/scale"}, []string{"update"}),
				},
			},
			{
				ObjectMeta: metav1.ObjectMeta{Name: "rbac-e2e-urls"},
				Rules: []rbacv1.PolicyRule{
					{NonResourceURLs: []string{"/e2e-probe", "/logs/*", "/version*"}, Verbs: []string{"get"}},
					{NonResourceURLs: []string{"/e2e-hook"}, Verbs: []string{"post"}},
				},
			},
		},
		roles: []*rbacv1.Role{{
			ObjectMeta: metav1.ObjectMeta{Name: "rbac-e2e-config", Namespace: rbacNS},
			Rules: []rbacv1.PolicyRule{
				rule(core, []string{"configmaps"}, []string{"get", "list", "update"}, "app-config"),
				rule(core, []string{"secrets"}, []string{"list"}),
			},
		}},
		roleBindings: []*rbacv1.RoleBinding{
			// A ClusterRole through a RoleBinding: its namespace only, and
			// never its nonResourceURLs.
			rb(rbacNS, "bob-exec", "ClusterRole", "rbac-e2e-exec", user("bob")),
			rb(rbacNS, "bob-urls", "ClusterRole", "rbac-e2e-urls", user("bob")),
			// A ServiceAccount without namespace is the binding's.
			rb(rbacNS, "builder-config", "Role", "rbac-e2e-config", sa("", "builder")),
			// Dangling: there is no rbac-e2e-config Role in the other namespace.
			rb(rbacOtherNS, "bob-dangling", "Role", "rbac-e2e-config", user("bob")),
			rb(rbacNS, "admins", "ClusterRole", "admin", group("e2e-admins")),
			rb(rbacNS, "other-deployer-edits", "ClusterRole", "edit", sa(rbacOtherNS, "deployer")),
			rb(rbacNS, "anonymous-widgets", "ClusterRole", "rbac-e2e-widgets", group("system:unauthenticated")),
		},
		clusterRoleBindings: []*rbacv1.ClusterRoleBinding{
			crb("rbac-e2e-aggregated", "rbac-e2e-aggregated", user("e2e-agg")),
			crb("rbac-e2e-aggregated-empty", "rbac-e2e-aggregated-empty", user("e2e-agg-empty")),
			crb("rbac-e2e-execers", "rbac-e2e-exec", group("e2e-execers")),
			crb("rbac-e2e-prober", "rbac-e2e-urls", user("e2e-prober")),
			crb("rbac-e2e-ns-viewers", "view", group("system:serviceaccounts:"+rbacNS)),
			crb("rbac-e2e-authenticated-config", "rbac-e2e-app-config", group("system:authenticated")),
			crb("rbac-e2e-dangling", "rbac-e2e-missing", user("dave")),
		},
	}
}

// create creates the set as the admin.
func (s *rbacSet) create(ctx context.Context, c kubernetes.Interface) error {
	opts := metav1.CreateOptions{}
	for _, o := range s.clusterRoles {
		if _, err := c.RbacV1().ClusterRoles().Create(ctx, o, opts); err != nil {
			return fmt.Errorf("create ClusterRole %s: %w", o.Name, err)
		}
	}
	for _, o := range s.roles {
		if _, err := c.RbacV1().Roles(o.Namespace).Create(ctx, o, opts); err != nil {
			return fmt.Errorf("create Role %s: %w", o.Name, err)
		}
	}
	for _, o := range s.roleBindings {
		if _, err := c.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, opts); err != nil {
			return fmt.Errorf("create RoleBinding %s: %w", o.Name, err)
		}
	}
	for _, o := range s.clusterRoleBindings {
		if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, o, opts); err != nil {
			return fmt.Errorf("create ClusterRoleBinding %s: %w", o.Name, err)
		}
	}
	return nil
}

// objects returns the set as kube.Objects, as a manifest would give them.
func (s *rbacSet) objects(t *testing.T) []kube.Object {
	var out []kube.Object
	for _, o := range s.clusterRoles {
		out = append(out, rbacKubeObject(t, "ClusterRole", o.DeepCopy()))
	}
	for _, o := range s.roles {
		out = append(out, rbacKubeObject(t, "Role", o.DeepCopy()))
	}
	for _, o := range s.roleBindings {
		out = append(out, rbacKubeObject(t, "RoleBinding", o.DeepCopy()))
	}
	for _, o := range s.clusterRoleBindings {
		out = append(out, rbacKubeObject(t, "ClusterRoleBinding", o.DeepCopy()))
	}
	return out
}

type rbacTyped interface {
	metav1.Object
	runtime.Object
}

// rbacKubeObject marshals o, with apiVersion and kind set, into a
// kube.Object.
func rbacKubeObject(t *testing.T, kind string, o rbacTyped) kube.Object {
	t.Helper()
	gvk := rbacv1.SchemeGroupVersion.WithKind(kind)
	o.GetObjectKind().SetGroupVersionKind(gvk)
	o.SetManagedFields(nil)
	raw, err := json.Marshal(o)
	if err != nil {
		t.Fatalf("marshal %s %s: %v", kind, o.GetName(), err)
	}
	return kube.Object{
		Ref:         finding.ObjectRef{APIVersion: gvk.GroupVersion().String(), Kind: kind, Namespace: o.GetNamespace(), Name: o.GetName()},
		Labels:      o.GetLabels(),
		Annotations: o.GetAnnotations(),
		Raw:         raw,
	}
}

// rbacListAll lists every Role, ClusterRole, RoleBinding and
// ClusterRoleBinding the API server has, bootstrap ones included.
func rbacListAll(ctx context.Context, t *testing.T, c kubernetes.Interface) []kube.Object {
	t.Helper()
	var out []kube.Object
	all := metav1.ListOptions{}
	crs, err := c.RbacV1().ClusterRoles().List(ctx, all)
	if err != nil {
		t.Fatalf("list ClusterRoles: %v", err)
	}
	for i := range crs.Items {
		out = append(out, rbacKubeObject(t, "ClusterRole", &crs.Items[i]))
	}
	roles, err := c.RbacV1().Roles("").List(ctx, all)
	if err != nil {
		t.Fatalf("list Roles: %v", err)
	}
	for i := range roles.Items {
		out = append(out, rbacKubeObject(t, "Role", &roles.Items[i]))
	}
	rbs, err := c.RbacV1().RoleBindings("").List(ctx, all)
	if err != nil {
		t.Fatalf("list RoleBindings: %v", err)
	}
	for i := range rbs.Items {
		out = append(out, rbacKubeObject(t, "RoleBinding", &rbs.Items[i]))
	}
	crbs, err := c.RbacV1().ClusterRoleBindings().List(ctx, all)
	if err != nil {
		t.Fatalf("list ClusterRoleBindings: %v", err)
	}
	for i := range crbs.Items {
		out = append(out, rbacKubeObject(t, "ClusterRoleBinding", &crbs.Items[i]))
	}
	return out
}

type rbacIdentity struct {
	user   string
	groups []string
}

func (id rbacIdentity) String() string { return fmt.Sprintf("%q %q", id.user, id.groups) }

func rbacSA(ns, name string) rbacIdentity {
	return rbacIdentity{rbac.ServiceAccountUser(ns, name), rbac.ServiceAccountGroups(ns)}
}

// rbacIdentities are the users asked about: those of the test set, some
// with no grants at all, bootstrap components and controllers (whose rights
// come from the bootstrap policy), groups alone. No system:node:* user and
// no system:nodes group: the Node authorizer decides for those.
func rbacIdentities() []rbacIdentity {
	auth := []string{rbac.GroupAuthenticated}
	return []rbacIdentity{
		{alice, []string{devGroup, rbac.GroupAuthenticated}},
		{"bob", auth},
		{"carol", []string{"e2e-execers", rbac.GroupAuthenticated}},
		{"dave", auth},
		{"nobody", nil},
		{"e2e-agg", auth},
		{"e2e-agg-empty", auth},
		{"e2e-prober", auth},
		{"e2e-ns-admin", []string{"e2e-admins", rbac.GroupAuthenticated}},
		{rbac.UserAnonymous, []string{rbac.GroupUnauthenticated}},
		{"root", []string{"system:masters", rbac.GroupAuthenticated}},
		{"scraper", []string{"system:monitoring", rbac.GroupAuthenticated}},
		{"system:kube-controller-manager", auth},
		{"system:kube-scheduler", auth},
		{"system:kube-proxy", auth},
		{"", []string{"system:serviceaccounts:" + rbacNS}},
		{rbac.ServiceAccountUser(rbacNS, "builder"), nil},
		rbacSA(rbacNS, "builder"),
		rbacSA(rbacNS, "default"),
		rbacSA(rbacOtherNS, "builder"),
		rbacSA(rbacOtherNS, "deployer"),
		rbacSA("kube-system", "generic-garbage-collector"),
		rbacSA("kube-system", "namespace-controller"),
		rbacSA("kube-system", "replicaset-controller"),
		rbacSA("kube-system", "clusterrole-aggregation-controller"),
		rbacSA("kube-system", "default"),
	}
}

// rbacRequests returns hand-picked requests for every tricky case, a
// seeded sample of the product of verbs, resources, namespaces and names,
// and non-resource requests.
func rbacRequests() []rbac.Request {
	res := func(verb, group, resource, sub, ns, name string) rbac.Request {
		return rbac.Request{Verb: verb, APIGroup: group, Resource: resource, Subresource: sub, Namespace: ns, Name: name}
	}
	reqs := []rbac.Request{
		res("list", "example.com", "widgets", "", "", ""),
		res("get", "example.com", "widgets", "", rbacNS, "w"),
		res("get", "example.com", "widgets", "status", rbacNS, "w"),
		res("delete", "", "nodes", "", "", "n1"),
		res("get", "", "namespaces", "", "", rbacNS),
		res("get", "", "configmaps", "", rbacNS, "app-config"),
		res("watch", "", "configmaps", "", rbacOtherNS, "app-config"),
		res("update", "", "configmaps", "", rbacNS, "app-config"),
		res("update", "", "configmaps", "", rbacOtherNS, "app-config"),
		res("get", "", "configmaps", "", rbacNS, "other"),
		res("list", "", "configmaps", "", rbacNS, ""),
		res("create", "", "configmaps", "", rbacNS, ""),
		res("list", "", "secrets", "", rbacNS, ""),
		res("list", "", "secrets", "", "", ""),
		res("create", "", "pods", "exec", rbacNS, "p"),
		res("create", "", "pods", "exec", rbacOtherNS, "p"),
		res("create", "", "pods", "exec", "", ""),
		res("create", "", "services", "exec", rbacNS, "s"),
		res("create", "apps", "deployments", "exec", rbacNS, "d"),
		res("create", "", "pods", "attach", rbacNS, "p"),
		res("get", "", "pods", "log", rbacNS, "p"),
		res("get", "", "pods", "*", rbacNS, "p"),
		res("get", "", "pods", "", rbacNS, "p"),
		res("update", "apps", "deployments", "scale", rbacNS, "d"),
		res("update", "apps", "deployments", "", rbacNS, "d"),
		res("create", "apps", "deployments", "", rbacNS, ""),
		res("create", "apps", "deployments", "", rbacOtherNS, ""),
		res("get", "", "secrets", "", rbacNS, "s"),
		res("create", "", "serviceaccounts", "token", rbacNS, "default"),
		res("impersonate", "", "users", "", "", "someone"),
		res("impersonate", "", "serviceaccounts", "", rbacNS, "builder"),
		res("escalate", "rbac.authorization.k8s.io", "clusterroles", "", "", "admin"),
		res("bind", "rbac.authorization.k8s.io", "clusterroles", "", "", "admin"),
		res("create", "rbac.authorization.k8s.io", "rolebindings", "", rbacNS, ""),
		res("*", "*", "*", "", "", ""),
		res("*", "", "pods", "", rbacNS, ""),
		res("delete", "", "pods", "", "kube-system", "p"),
		res("deletecollection", "", "pods", "", rbacNS, ""),
		res("list", "", "pods", "", "", ""),
		res("create", "", "pods", "eviction", rbacNS, "p"),
		res("update", "", "namespaces", "finalize", "", rbacNS),
		res("create", "authorization.k8s.io", "selfsubjectaccessreviews", "", "", ""),
		res("create", "authentication.k8s.io", "tokenreviews", "", "", ""),
		res("get", "coordination.k8s.io", "leases", "", "kube-system", "kube-controller-manager"),
	}

	verbs := []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "escalate", "bind", "impersonate", "*"}
	type gr struct{ group, resource, sub string }
	resources := []gr{
		{"", "pods", ""}, {"", "pods", "exec"}, {"", "pods", "log"}, {"", "pods", "attach"}, {"", "pods", "*"},
		{"", "pods", "eviction"}, {"", "secrets", ""}, {"", "configmaps", ""}, {"", "serviceaccounts", ""},
		{"", "serviceaccounts", "token"}, {"", "nodes", ""}, {"", "nodes", "proxy"}, {"", "namespaces", ""},
		{"", "namespaces", "finalize"}, {"", "services", "exec"}, {"", "users", ""}, {"", "events", ""},
		{"apps", "deployments", ""}, {"apps", "deployments", "scale"}, {"apps", "replicasets", ""},
		{"batch", "jobs", ""}, {"events.k8s.io", "events", ""},
		{"rbac.authorization.k8s.io", "clusterroles", ""}, {"rbac.authorization.k8s.io", "rolebindings", ""},
		{"authorization.k8s.io", "selfsubjectaccessreviews", ""}, {"authentication.k8s.io", "tokenreviews", ""},
		{"example.com", "widgets", ""}, {"example.com", "widgets", "status"}, {"*", "*", ""}, {"", "*", ""},
		{"coordination.k8s.io", "leases", ""}, {"discovery.k8s.io", "endpointslices", ""},
	}
	namespaces := []string{rbacNS, rbacOtherNS, "", "kube-system", "default"}
	names := []string{"", "app-config", "other"}
	rng := rand.New(rand.NewPCG(2, 37))
	for range 300 {
		r := resources[rng.IntN(len(resources))]
		reqs = append(reqs, res(verbs[rng.IntN(len(verbs))], r.group, r.resource, r.sub,
			namespaces[rng.IntN(len(namespaces))], names[rng.IntN(len(names))]))
	}

	paths := []string{"/e2e-probe", "/e2e-probe/x", "/e2e-hook", "/logs", "/logs/", "/logs/kube-apiserver.log",
		"/version", "/version/", "/versionx", "/healthz", "/healthz/etcd", "/livez", "/readyz", "/metrics",
		"/api", "/apis/apps/v1", "/openapi/v2", "/.well-known/openid-configuration", "/debug/pprof/"}
	for _, p := range paths {
		for _, v := range []string{"get", "post", "put"} {
			reqs = append(reqs, rbac.Request{Verb: v, NonResourceURL: p})
		}
	}
	return reqs
}

// rbacSAR asks the API server whether id may make req.
func rbacSAR(ctx context.Context, c kubernetes.Interface, id rbacIdentity, req rbac.Request) (*authorizationv1.SubjectAccessReviewStatus, error) {
	spec := authorizationv1.SubjectAccessReviewSpec{User: id.user, Groups: id.groups}
	if req.NonResourceURL != "" {
		spec.NonResourceAttributes = &authorizationv1.NonResourceAttributes{Path: req.NonResourceURL, Verb: req.Verb}
	} else {
		spec.ResourceAttributes = &authorizationv1.ResourceAttributes{
			Namespace: req.Namespace, Verb: req.Verb, Group: req.APIGroup,
			Resource: req.Resource, Subresource: req.Subresource, Name: req.Name,
		}
	}
	sar, err := c.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("SubjectAccessReview %s %s: %w", id, req, err)
	}
	return &sar.Status, nil
}

// TestRBACMatchesSubjectAccessReview creates RBAC objects covering every
// tricky case of RBAC evaluation, lists all RBAC objects of the API server
// (bootstrap policy included), and asks the API server (SubjectAccessReview)
// and kustode's rbac.Index the same questions for a grid of users and
// requests. They must agree on every one, both with the objects as the
// API server serves them and with the test's own objects as written (so
// that ClusterRole aggregation is kustode's, not the controller-manager's).
func TestRBACMatchesSubjectAccessReview(t *testing.T) {
	ctx := t.Context()
	cfg := cp.Config(controlplane.AdminUser)
	cfg.QPS, cfg.Burst = 5000, 5000
	admin := clientFor(t, cfg)
	for _, ns := range []string{rbacNS, rbacOtherNS} {
		if err := cp.EnsureNamespace(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	set := rbacTestSet()
	if err := set.create(ctx, admin); err != nil {
		t.Fatal(err)
	}

	// The controller-manager fills the aggregated ClusterRoles.
	var served []rbacv1.PolicyRule
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		cr, err := admin.RbacV1().ClusterRoles().Get(ctx, "rbac-e2e-aggregated", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		served = cr.Rules
		// rbac-e2e-app-config comes before rbac-e2e-widgets by name, and
		// its widgets rule equals rbac-e2e-widgets': two rules in all.
		return len(served) == 2 && equality.Semantic.DeepEqual(served, set.clusterRoles[2].Rules), nil
	})
	if err != nil {
		t.Fatalf("rbac-e2e-aggregated never got the rules of rbac-e2e-app-config (%v); served: %v", err, served)
	}

	// The RBAC authorizer sees objects through informers: wait until one
	// grant of each kind of binding is in effect.
	sentinels := []struct {
		id  rbacIdentity
		req rbac.Request
	}{
		{rbacIdentity{"bob", nil}, rbac.Request{Verb: "create", Resource: "pods", Subresource: "exec", Namespace: rbacNS, Name: "p"}},
		{rbacIdentity{"e2e-agg", nil}, rbac.Request{Verb: "list", APIGroup: "example.com", Resource: "widgets"}},
		{rbacIdentity{"e2e-prober", nil}, rbac.Request{Verb: "get", NonResourceURL: "/e2e-probe"}},
		{rbacIdentity{rbac.ServiceAccountUser(rbacNS, "builder"), nil}, rbac.Request{Verb: "update", Resource: "configmaps", Namespace: rbacNS, Name: "app-config"}},
		{rbacSA(rbacOtherNS, "deployer"), rbac.Request{Verb: "create", APIGroup: "apps", Resource: "deployments", Namespace: rbacNS}},
		{rbacIdentity{"carol", []string{"e2e-execers"}}, rbac.Request{Verb: "create", Resource: "pods", Subresource: "exec", Namespace: rbacOtherNS, Name: "p"}},
	}
	for _, s := range sentinels {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			st, err := rbacSAR(ctx, admin, s.id, s.req)
			return err == nil && st.Allowed, err
		})
		if err != nil {
			t.Fatalf("%s never allowed to %s: %v", s.id, s.req, err)
		}
	}
	// rbac-e2e-aggregated-empty selects nothing: the controller must have
	// left its own rule alone (it handled it before rbac-e2e-aggregated).
	empty, err := admin.RbacV1().ClusterRoles().Get(ctx, "rbac-e2e-aggregated-empty", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rbac-e2e-aggregated-empty (selects nothing) serves %d rule(s): %v", len(empty.Rules), empty.Rules)

	live := rbacListAll(ctx, t, admin)
	liveIx, errs := rbac.New(live)
	if len(errs) > 0 {
		t.Fatalf("rbac.New(objects listed from the API server): %v", errors.Join(errs...))
	}
	// The same, with the test's objects as written instead of as served.
	mine := set.objects(t)
	written := slices.DeleteFunc(slices.Clone(live), func(o kube.Object) bool {
		return slices.ContainsFunc(mine, func(m kube.Object) bool { return m.Ref == o.Ref })
	})
	written = append(written, mine...)
	writtenIx, errs := rbac.New(written)
	if len(errs) > 0 {
		t.Fatalf("rbac.New(objects as written): %v", errors.Join(errs...))
	}
	t.Logf("%d RBAC objects listed from the API server", len(live))

	ids := rbacIdentities()
	reqs := rbacRequests()
	type cell struct {
		id     rbacIdentity
		req    rbac.Request
		status *authorizationv1.SubjectAccessReviewStatus
		err    error
	}
	cells := make([]cell, 0, len(ids)*len(reqs))
	for _, id := range ids {
		for _, r := range reqs {
			cells = append(cells, cell{id: id, req: r})
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	next := make(chan int)
	for range 32 {
		wg.Go(func() {
			for i := range next {
				cells[i].status, cells[i].err = rbacSAR(ctx, admin, cells[i].id, cells[i].req)
			}
		})
	}
	for i := range cells {
		next <- i
	}
	close(next)
	wg.Wait()
	t.Logf("%d SubjectAccessReviews (%d identities × %d requests) in %s", len(cells), len(ids), len(reqs), time.Since(start).Round(time.Millisecond))

	indexes := []struct {
		name string
		ix   *rbac.Index
	}{{"as served", liveIx}, {"as written", writtenIx}}
	allowed := 0
	for _, c := range cells {
		if c.err != nil {
			t.Fatal(c.err)
		}
		if c.status.Allowed {
			allowed++
		}
	}
	for _, x := range indexes {
		var diffs []string
		for _, c := range cells {
			if got := x.ix.Allowed(c.id.user, c.id.groups, c.req); got != c.status.Allowed {
				diffs = append(diffs, fmt.Sprintf("%s %s: kustode %v, API server %v (reason %q)", c.id, c.req, got, c.status.Allowed, c.status.Reason))
			}
		}
		t.Logf("objects %s: %d comparisons (%d allowed by the API server), %d disagreements", x.name, len(cells), allowed, len(diffs))
		for i, d := range diffs {
			if i == 50 {
				t.Errorf("... and %d more", len(diffs)-50)
				break
			}
			t.Errorf("objects %s: %s", x.name, d)
		}
	}
	if allowed < len(cells)/20 {
		t.Errorf("only %d of %d requests allowed: the grid does not exercise grants", allowed, len(cells))
	}

	t.Run("WhoCan", func(t *testing.T) {
		testRBACWhoCan(t, admin, liveIx)
	})
}

// testRBACWhoCan checks WhoCan against SubjectAccessReview: every subject
// it returns is allowed, the ones expected are among them, and some known
// not to be allowed are neither returned nor allowed.
func testRBACWhoCan(t *testing.T, c kubernetes.Interface, ix *rbac.Index) {
	ctx := t.Context()
	user := func(name string) rbac.Subject { return rbac.Subject{Kind: rbacv1.UserKind, Name: name} }
	group := func(name string) rbac.Subject { return rbac.Subject{Kind: rbacv1.GroupKind, Name: name} }
	sa := func(ns, name string) rbac.Subject {
		return rbac.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}
	}
	tests := []struct {
		req          rbac.Request
		want, denied []rbac.Subject
	}{
		{
			req:    rbac.Request{Verb: "create", Resource: "pods", Subresource: "exec", Namespace: rbacNS, Name: "p"},
			want:   []rbac.Subject{user("bob"), group("e2e-execers"), group("e2e-admins"), group("system:masters")},
			denied: []rbac.Subject{user("dave"), user("e2e-agg"), sa(rbacNS, "builder")},
		},
		{
			req:    rbac.Request{Verb: "create", Resource: "pods", Subresource: "exec", Namespace: rbacOtherNS, Name: "p"},
			want:   []rbac.Subject{group("e2e-execers")},
			denied: []rbac.Subject{user("bob"), group("e2e-admins")},
		},
		{
			req:    rbac.Request{Verb: "list", APIGroup: "example.com", Resource: "widgets"},
			want:   []rbac.Subject{user("e2e-agg"), group("system:authenticated")},
			denied: []rbac.Subject{user("e2e-agg-empty"), group("system:unauthenticated")},
		},
		{
			req:    rbac.Request{Verb: "get", NonResourceURL: "/e2e-probe"},
			want:   []rbac.Subject{user("e2e-prober")},
			denied: []rbac.Subject{user("bob")},
		},
		{
			req:    rbac.Request{Verb: "update", Resource: "configmaps", Namespace: rbacNS, Name: "app-config"},
			want:   []rbac.Subject{sa(rbacNS, "builder"), group("e2e-admins"), sa(rbacOtherNS, "deployer")},
			denied: []rbac.Subject{sa(rbacOtherNS, "builder"), group("system:authenticated")},
		},
		{
			req:    rbac.Request{Verb: "delete", Resource: "nodes", Name: "n1"},
			denied: []rbac.Subject{user("e2e-agg")},
		},
	}
	// sarFor asks about a subject alone: a user or service account without
	// groups, a group through a user named nowhere.
	sarFor := func(s rbac.Subject, req rbac.Request) bool {
		id := rbacIdentity{user: s.Name}
		switch s.Kind {
		case rbacv1.GroupKind:
			id = rbacIdentity{user: "rbac-e2e-group-member", groups: []string{s.Name}}
		case rbacv1.ServiceAccountKind:
			id = rbacIdentity{user: rbac.ServiceAccountUser(s.Namespace, s.Name)}
		}
		st, err := rbacSAR(ctx, c, id, req)
		if err != nil {
			t.Fatal(err)
		}
		return st.Allowed
	}
	for _, tt := range tests {
		t.Run(tt.req.String(), func(t *testing.T) {
			grants := ix.WhoCan(tt.req)
			var got []rbac.Subject
			for _, g := range grants {
				got = append(got, g.Subject)
				if !sarFor(g.Subject, tt.req) {
					t.Errorf("WhoCan returned %s (via %s, %s), but the API server denies it", g.Subject, g.Binding, g.Role)
				}
			}
			for _, s := range tt.want {
				if !slices.Contains(got, s) {
					t.Errorf("WhoCan does not return %s; returned %v", s, got)
				}
			}
			for _, s := range tt.denied {
				if slices.Contains(got, s) {
					t.Errorf("WhoCan returned %s, expected not to", s)
				}
				if sarFor(s, tt.req) {
					t.Errorf("the API server allows %s, which the test expected denied", s)
				}
			}
			t.Logf("%d grant(s), %d subjects checked with SubjectAccessReview", len(grants), len(grants)+len(tt.denied))
		})
	}
}

// TestRBACParseResourceMatchesDiscovery checks ParseResource's table of
// built-in resources against the API server's discovery: every built-in
// resource it serves resolves by plural, singular and short name to its
// group.
func TestRBACParseResourceMatchesDiscovery(t *testing.T) {
	admin := clientFor(t, cp.Config(controlplane.AdminUser))
	_, lists, err := admin.Discovery().ServerGroupsAndResources()
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	builtin := func(group string) bool {
		return group == "" || !strings.Contains(group, ".") || strings.HasSuffix(group, ".k8s.io")
	}
	// name → groups serving it (plural, singular or short name).
	groups := map[string][]string{}
	plural := map[string]string{}
	add := func(name, group, resource string) {
		if name == "" {
			return
		}
		if !slices.Contains(groups[name], group) {
			groups[name] = append(groups[name], group)
		}
		plural[name+"."+group] = resource
	}
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil || !builtin(gv.Group) {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") {
				continue
			}
			add(r.Name, gv.Group, r.Name)
			add(r.SingularName, gv.Group, r.Name)
			for _, s := range r.ShortNames {
				add(s, gv.Group, r.Name)
			}
		}
	}
	checked := 0
	for name, gs := range groups {
		group, resource, _, err := rbac.ParseResource(name)
		if err != nil {
			t.Errorf("ParseResource(%q): %v; the API server serves it in group(s) %q", name, err, gs)
			continue
		}
		checked++
		// Served by several groups (events): the core group wins, as in kubectl.
		want := gs[0]
		if slices.Contains(gs, "") {
			want = ""
		}
		if len(gs) > 1 && !slices.Contains(gs, "") {
			t.Errorf("%q is served by groups %q: decide which ParseResource picks", name, gs)
			continue
		}
		if group != want || resource != plural[name+"."+want] {
			t.Errorf("ParseResource(%q) = %q, %q; the API server serves %q in group %q", name, group, resource, plural[name+"."+want], want)
		}
	}
	t.Logf("%d built-in resource names checked against discovery", checked)
}
