package rbac

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/kube"
	"github.com/kustode/kustode/internal/manifest"
)

// load builds an Index from one fixture, failing on any error.
func load(t *testing.T, name string) *Index {
	t.Helper()
	ix, errs := loadWithErrors(t, name)
	if len(errs) > 0 {
		t.Fatalf("New(%s): %v", name, errors.Join(errs...))
	}
	return ix
}

func loadWithErrors(t *testing.T, name string) (*Index, []error) {
	t.Helper()
	objs, errs := manifest.Load([]string{filepath.Join("testdata", name)}, nil)
	if len(errs) > 0 {
		t.Fatalf("load %s: %v", name, errors.Join(errs...))
	}
	return New(objs)
}

// rq is a resource request; resource is RESOURCE[.GROUP][/SUBRESOURCE]
// with the group always spelled out (none for core).
func rq(verb, resource, namespace, name string) Request {
	res, sub, _ := strings.Cut(resource, "/")
	res, group, _ := strings.Cut(res, ".")
	return Request{Verb: verb, APIGroup: group, Resource: res, Subresource: sub, Namespace: namespace, Name: name}
}

func url(verb, path string) Request { return Request{Verb: verb, NonResourceURL: path} }

var (
	authenticated = []string{GroupAuthenticated}
	anonymous     = []string{GroupUnauthenticated}
)

func saUser(ns, name string) (string, []string) {
	return ServiceAccountUser(ns, name), ServiceAccountGroups(ns)
}

type allowedCase struct {
	user   string
	groups []string
	req    Request
	want   bool
}

func runAllowed(t *testing.T, ix *Index, cases []allowedCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s %v %s", c.user, c.groups, c.req), func(t *testing.T) {
			if got := ix.Allowed(c.user, c.groups, c.req); got != c.want {
				t.Errorf("Allowed = %v, want %v", got, c.want)
			}
		})
	}
}

func TestAllowedRuleMatching(t *testing.T) {
	ix := load(t, "rules.yaml")
	runAllowed(t, ix, []allowedCase{
		// "*" everywhere: any verb, group, resource and subresource, but not
		// non-resource URLs, which need nonResourceURLs.
		{"everything", nil, rq("get", "pods", "a", "p"), true},
		{"everything", nil, rq("delete", "deployments.apps", "", ""), true},
		{"everything", nil, rq("create", "pods/exec", "a", "p"), true},
		{"everything", nil, rq("impersonate", "users", "", "bob"), true},
		{"everything", nil, rq("get", "widgets.example.com/status", "a", "w"), true},
		{"everything", nil, url("get", "/healthz"), false},

		// "*/exec": the exec subresource of any resource in the rule's
		// groups, nothing else.
		{"exec-any", nil, rq("create", "pods/exec", "a", "p"), true},
		{"exec-any", nil, rq("create", "pods/exec", "", ""), true},
		{"exec-any", nil, rq("create", "foos/exec", "a", "f"), true},
		{"exec-any", nil, rq("create", "deployments.apps/exec", "a", "d"), false},
		{"exec-any", nil, rq("get", "pods/exec", "a", "p"), false},
		{"exec-any", nil, rq("create", "pods", "a", ""), false},
		{"exec-any", nil, rq("create", "pods/attach", "a", "p"), false},
		{"exec-any", nil, rq("create", "pods/execute", "a", "p"), false},

		// "pods/*" is not a wildcard: it matches only the subresource "*".
		{"pods-star", nil, rq("get", "pods/log", "a", "p"), false},
		{"pods-star", nil, rq("create", "pods/exec", "a", "p"), false},
		{"pods-star", nil, rq("get", "pods", "a", "p"), false},
		{"pods-star", nil, rq("get", "pods/*", "a", "p"), true},

		// resources "*" in one group covers that group's subresources.
		{"core-only", nil, rq("get", "secrets", "a", "s"), true},
		{"core-only", nil, rq("get", "pods/log", "a", "p"), true},
		{"core-only", nil, rq("get", "deployments.apps", "a", "d"), false},
		{"core-only", nil, rq("list", "secrets", "a", ""), false},

		// A subresource rule grants the subresource only.
		{"scale-only", nil, rq("update", "deployments.apps/scale", "a", "d"), true},
		{"scale-only", nil, rq("update", "deployments.apps", "a", "d"), false},
		{"scale-only", nil, rq("patch", "statefulsets.apps/scale", "a", "s"), false},

		// resourceNames: the named object only, never the collection.
		{"named-config", nil, rq("get", "configmaps", "a", "app-config"), true},
		{"named-config", nil, rq("watch", "configmaps", "a", "app-config"), true},
		{"named-config", nil, rq("get", "configmaps", "a", "other"), false},
		{"named-config", nil, rq("list", "configmaps", "a", ""), false},
		{"named-config", nil, rq("create", "configmaps", "a", ""), false},

		// nonResourceURLs: exact, or a prefix before a trailing "*".
		{"prober", nil, url("get", "/healthz"), true},
		{"prober", nil, url("get", "/healthz/etcd"), false},
		{"prober", nil, url("get", "/logs/"), true},
		{"prober", nil, url("get", "/logs/kube-apiserver.log"), true},
		{"prober", nil, url("get", "/logs"), false},
		{"prober", nil, url("get", "/metrics"), true},
		{"prober", nil, url("get", "/metricsfoo"), true},
		{"prober", nil, url("post", "/healthz"), false},
		{"prober", nil, rq("get", "pods", "a", "p"), false},
		{"all-urls", nil, url("post", "/anything/at/all"), true},
		{"all-urls", nil, rq("get", "pods", "a", "p"), false},

		{"nobody", authenticated, rq("get", "pods", "a", "p"), false},
	})
}

func TestAllowedBindings(t *testing.T) {
	ix := load(t, "bindings.yaml")
	builder, builderGroups := saUser("team", "builder")
	defaultBuilder, defaultBuilderGroups := saUser("default", "builder")
	monitor, monitorGroups := saUser("ops", "monitor")
	ciBot, ciGroups := saUser("ci", "bot")
	runAllowed(t, ix, []allowedCase{
		// A RoleBinding to a ClusterRole: in its namespace only.
		{"bob", nil, rq("get", "pods", "team", "p"), true},
		{"bob", nil, rq("list", "pods/log", "team", ""), true},
		{"bob", nil, rq("get", "pods", "other", "p"), false},
		{"bob", nil, rq("list", "pods", "", ""), false},
		// ... and never for non-resource URLs.
		{"bob", nil, url("get", "/healthz"), false},
		{"bob", authenticated, url("get", "/healthz"), true},

		// A ServiceAccount subject without namespace is the RoleBinding's.
		{builder, builderGroups, rq("create", "deployments.apps", "team", "d"), true},
		{defaultBuilder, defaultBuilderGroups, rq("create", "deployments.apps", "team", "d"), false},
		{defaultBuilder, defaultBuilderGroups, rq("create", "deployments.apps", "default", "d"), false},
		// In a ClusterRoleBinding it is no one.
		{builder, builderGroups, rq("get", "pods", "team", "p"), false},
		{defaultBuilder, defaultBuilderGroups, rq("get", "pods", "default", "p"), false},

		{monitor, monitorGroups, rq("list", "pods", "", ""), true},
		{"carol", authenticated, rq("list", "pods", "", ""), false},

		// Groups, taken exactly as given.
		{UserAnonymous, anonymous, rq("get", "pods", "public", "p"), true},
		{UserAnonymous, anonymous, rq("get", "pods", "team", "p"), false},
		{UserAnonymous, anonymous, url("get", "/healthz"), false},
		{"alice", []string{"developers", GroupAuthenticated}, rq("create", "deployments.apps", "team", ""), true},
		{"alice", authenticated, rq("create", "deployments.apps", "team", ""), false},
		{"alice", []string{"developers"}, rq("update", "deployments.apps", "other", "d"), false},
		{ciBot, ciGroups, rq("get", "pods", "team", "p"), true},
		{ciBot, nil, rq("get", "pods", "team", "p"), false},
		{"", []string{"developers"}, rq("update", "deployments.apps", "team", "d"), true},

		// Dangling references grant nothing.
		{"dave", nil, rq("get", "pods", "team", "p"), false},
		{"dave", nil, rq("create", "deployments.apps", "other", "d"), false},
		{"dave", nil, rq("create", "deployments.apps", "team", "d"), false},
		{"dave", nil, rq("get", "pods", "", ""), false},

		// Objects without namespace are in "default".
		{"erin", nil, rq("get", "secrets", "default", "s"), true},
		{"erin", nil, rq("get", "secrets", "team", "s"), false},
	})
}

func TestAllowedAggregation(t *testing.T) {
	ix, errs := loadWithErrors(t, "aggregation.yaml")
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "aggregation.yaml:75: ClusterRole/bad-selector: aggregationRule.clusterRoleSelectors[0]") {
		t.Errorf("errors = %v, want one for bad-selector at aggregation.yaml:75", errs)
	}
	runAllowed(t, ix, []allowedCase{
		// The selected roles' rules replace the role's own.
		{"monitoring", nil, rq("list", "widgets.example.com", "", ""), true},
		{"monitoring", nil, rq("get", "gadgets.example.com", "a", "g"), true},
		{"monitoring", nil, rq("delete", "nodes", "", "n"), false},
		// Selectors are ORed, and aggregated roles feed others.
		{"ops", nil, rq("get", "secrets", "a", "s"), true},
		{"ops", nil, rq("list", "widgets.example.com", "a", ""), true},
		{"ops", nil, rq("get", "gadgets.example.com", "a", "g"), true},
		{"ops", nil, rq("delete", "nodes", "", "n"), false},
		// Selecting nothing, or failing to select, keeps the own rules.
		{"selects-nothing", nil, rq("get", "configmaps", "a", "c"), true},
		{"bad-selector", nil, rq("get", "services", "a", "s"), true},
	})
	// The rule both read-widgets and read-gadgets have is kept once.
	if got := ix.Rules(Subject{Kind: "User", Name: "monitoring"}); len(got) != 2 {
		t.Errorf("monitoring has %d rules, want 2 (widgets once, gadgets): %v", len(got), describe(got))
	}
}

func TestNewErrors(t *testing.T) {
	ix, errs := loadWithErrors(t, "errors.yaml")
	want := []string{
		"errors.yaml:2: ClusterRole/broken: decode ClusterRole: json: cannot unmarshal string",
		`errors.yaml:11: RoleBinding/team/future: unsupported apiVersion "rbac.authorization.k8s.io/v2"`,
		"errors.yaml:35: ClusterRoleBinding/reader: duplicate ClusterRoleBinding (first at testdata/errors.yaml:27)",
		"ClusterRole/cycle-",
	}
	if len(errs) < len(want) {
		t.Fatalf("errors = %v, want %d or more", errs, len(want))
	}
	for i, w := range want {
		var oe *ObjectError
		if !errors.As(errs[i], &oe) {
			t.Errorf("error %d %v is not an *ObjectError", i, errs[i])
		}
		if !strings.Contains(errs[i].Error(), w) {
			t.Errorf("error %d = %q, want it to contain %q", i, errs[i], w)
		}
	}
	// Errors for one object leave the others in use.
	runAllowed(t, ix, []allowedCase{
		{"second", nil, rq("get", "pods", "team", "p"), true},
		{"first", nil, rq("get", "pods", "team", "p"), false},
	})
}

func describe(gs []Grant) []string {
	var out []string
	for _, g := range gs {
		out = append(out, fmt.Sprintf("%s via %s → %s %v", g.Subject, g.Binding, g.Role, g.Rule.Resources))
	}
	return out
}

func TestWhoCan(t *testing.T) {
	ix := load(t, "bindings.yaml")
	tests := []struct {
		req  Request
		want []string
	}{
		{rq("create", "deployments.apps", "team", "d"), []string{
			"ServiceAccount team/builder via RoleBinding/team/builder-deploys → Role/team/deployer [deployments]",
			"Group developers via RoleBinding/team/developers-deploy → Role/team/deployer [deployments]",
		}},
		// Cluster-wide: ClusterRoleBindings only; a ServiceAccount without
		// namespace and a lowercase kind are no one.
		{rq("list", "pods", "", ""), []string{
			"ServiceAccount ops/monitor via ClusterRoleBinding/monitor-reads-pods → ClusterRole/pod-reader [pods pods/log]",
		}},
		{rq("get", "pods", "team", "p"), []string{
			"ServiceAccount ops/monitor via ClusterRoleBinding/monitor-reads-pods → ClusterRole/pod-reader [pods pods/log]",
			"User bob via RoleBinding/team/bob-reads-pods → ClusterRole/pod-reader [pods pods/log]",
			"Group system:serviceaccounts:ci via RoleBinding/team/ci-reads-pods → ClusterRole/pod-reader [pods pods/log]",
		}},
		{url("get", "/healthz"), []string{
			"Group system:authenticated via ClusterRoleBinding/authenticated-probes → ClusterRole/prober []",
		}},
		{rq("delete", "nodes", "", "n"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.req.String(), func(t *testing.T) {
			if got := describe(ix.WhoCan(tt.req)); !slices.Equal(got, tt.want) {
				t.Errorf("WhoCan =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestRules(t *testing.T) {
	ix := load(t, "bindings.yaml")
	probes := "Group system:authenticated via ClusterRoleBinding/authenticated-probes → ClusterRole/prober []"
	tests := []struct {
		subject Subject
		want    []string
	}{
		{Subject{Kind: "ServiceAccount", Namespace: "team", Name: "builder"}, []string{
			probes,
			"ServiceAccount team/builder via RoleBinding/team/builder-deploys → Role/team/deployer [deployments]",
		}},
		{Subject{Kind: "User", Name: "bob"}, []string{
			probes,
			"User bob via RoleBinding/team/bob-reads-pods → ClusterRole/pod-reader [pods pods/log]",
			"User bob via RoleBinding/team/bob-probes → ClusterRole/prober []",
		}},
		{Subject{Kind: "ServiceAccount", Namespace: "ci", Name: "bot"}, []string{
			probes,
			"Group system:serviceaccounts:ci via RoleBinding/team/ci-reads-pods → ClusterRole/pod-reader [pods pods/log]",
		}},
		{Subject{Kind: "User", Name: "system:serviceaccount:ci:bot"}, []string{
			probes,
			"Group system:serviceaccounts:ci via RoleBinding/team/ci-reads-pods → ClusterRole/pod-reader [pods pods/log]",
		}},
		{Subject{Kind: "Group", Name: "developers"}, []string{
			"Group developers via RoleBinding/team/developers-deploy → Role/team/deployer [deployments]",
		}},
		{Subject{Kind: "User", Name: UserAnonymous}, []string{
			"Group system:unauthenticated via RoleBinding/public/anonymous-reads-pods → ClusterRole/pod-reader [pods pods/log]",
		}},
		{Subject{Kind: "User", Name: "dave"}, []string{probes}},
		{Subject{Kind: "User", Name: "erin"}, []string{
			probes,
			"User erin via RoleBinding/default/erin-reads-secrets → Role/default/secret-reader [secrets]",
		}},
		{Subject{Kind: "ServiceAccount", Name: "builder"}, nil},
		{Subject{Kind: "user", Name: "bob"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.subject.String(), func(t *testing.T) {
			if got := describe(ix.Rules(tt.subject)); !slices.Equal(got, tt.want) {
				t.Errorf("Rules =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestServiceAccount(t *testing.T) {
	ix := load(t, "bindings.yaml")
	tests := []struct {
		namespace, name string
		want            bool
	}{
		{"team", "builder", true},
		{"", "robot", true},
		{"default", "robot", true},
		{"team", "robot", false},
		{"ops", "monitor", false},
	}
	for _, tt := range tests {
		t.Run(tt.namespace+"/"+tt.name, func(t *testing.T) {
			ref, ok := ix.ServiceAccount(tt.namespace, tt.name)
			if ok != tt.want || (ok && ref.Name != tt.name) {
				t.Errorf("ServiceAccount = %v, %v; want found=%v", ref, ok, tt.want)
			}
		})
	}
}

// The built-in roles parse, and edit (as every cluster serves it) lets its
// holder read Secrets and exec into pods, while view does neither.
func TestWithBuiltinRoles(t *testing.T) {
	objs := WithBuiltinRoles(nil)
	if len(objs) != 4 {
		t.Fatalf("%d built-in roles, want cluster-admin, admin, edit, view", len(objs))
	}
	ix, errs := New(objs)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	rules := func(name string) []rbacv1.PolicyRule {
		info, ok := ix.roleRules(name)
		if !ok {
			t.Fatalf("no ClusterRole %s", name)
		}
		return info
	}
	secrets := Request{Verb: "get", Resource: "secrets", Namespace: "x"}
	exec := Request{Verb: "create", Resource: "pods", Subresource: "exec", Namespace: "x"}
	if !Allows(rules("edit"), secrets) || !Allows(rules("edit"), exec) {
		t.Error("edit should allow get secrets and create pods/exec")
	}
	if Allows(rules("view"), secrets) || Allows(rules("view"), exec) {
		t.Error("view must not allow secrets or exec")
	}
	// A definition in the input wins over the built-in one.
	own := kube.Object{Ref: finding.ObjectRef{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole", Name: "view"}, Raw: []byte(`{"rules":[]}`)}
	if got := WithBuiltinRoles([]kube.Object{own}); len(got) != 4 {
		t.Errorf("with view defined: %d objects, want 4 (own view + 3 built-ins)", len(got))
	}
}
