package deploy

import (
	"os"
	"path"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// auditPolicy mirrors audit.k8s.io/v1 Policy, for a strict decode and for
// levelFor (kustode does not depend on k8s.io/apiserver). The end-to-end
// test TestDeployAuditPolicy has the real kube-apiserver load the file.
type auditPolicy struct {
	APIVersion        string            `json:"apiVersion"`
	Kind              string            `json:"kind"`
	OmitStages        []string          `json:"omitStages"`
	OmitManagedFields bool              `json:"omitManagedFields"`
	Rules             []auditPolicyRule `json:"rules"`
}

type auditPolicyRule struct {
	Level           string           `json:"level"`
	Users           []string         `json:"users"`
	UserGroups      []string         `json:"userGroups"`
	Verbs           []string         `json:"verbs"`
	Resources       []groupResources `json:"resources"`
	Namespaces      []string         `json:"namespaces"`
	NonResourceURLs []string         `json:"nonResourceURLs"`
}

type groupResources struct {
	Group         string   `json:"group"`
	Resources     []string `json:"resources"`
	ResourceNames []string `json:"resourceNames"`
}

// auditRequest is what the policy judges a request by.
type auditRequest struct {
	user        string
	groups      []string
	verb        string
	group       string
	resource    string // "pods" or "pods/exec"
	namespace   string
	name        string
	nonResource string // a URL path instead of a resource
}

var auditLevels = []string{"None", "Metadata", "Request", "RequestResponse"}

func levelRank(l string) int { return slices.Index(auditLevels, l) }

// levelFor is the level the kube-apiserver gives r: that of the first rule
// matching it, as k8s.io/apiserver/pkg/audit/policy's checker decides.
func (p *auditPolicy) levelFor(r auditRequest) string {
	for _, rule := range p.Rules {
		if rule.matches(r) {
			return rule.Level
		}
	}
	return "None"
}

func (rule *auditPolicyRule) matches(r auditRequest) bool {
	if len(rule.Users) > 0 && !slices.Contains(rule.Users, r.user) {
		return false
	}
	if len(rule.UserGroups) > 0 && !slices.ContainsFunc(r.groups, func(g string) bool { return slices.Contains(rule.UserGroups, g) }) {
		return false
	}
	if len(rule.Verbs) > 0 && !slices.Contains(rule.Verbs, r.verb) {
		return false
	}
	if len(rule.Namespaces) > 0 || len(rule.Resources) > 0 {
		if r.nonResource != "" {
			return false
		}
		if len(rule.Namespaces) > 0 && !slices.Contains(rule.Namespaces, r.namespace) {
			return false
		}
		if len(rule.Resources) == 0 {
			return true
		}
		res, sub, _ := strings.Cut(r.resource, "/")
		for _, gr := range rule.Resources {
			if gr.Group != r.group {
				continue
			}
			if len(gr.Resources) == 0 {
				return true
			}
			if len(gr.ResourceNames) > 0 && !slices.Contains(gr.ResourceNames, r.name) {
				continue
			}
			for _, x := range gr.Resources {
				if x == r.resource || x == "*" ||
					(sub != "" && x == "*/"+sub) ||
					(strings.HasSuffix(x, "/*") && res == strings.TrimSuffix(x, "/*")) {
					return true
				}
			}
		}
		return false
	}
	if len(rule.NonResourceURLs) > 0 {
		if r.nonResource == "" {
			return false
		}
		for _, u := range rule.NonResourceURLs {
			if u == "*" || u == r.nonResource || (strings.HasSuffix(u, "*") && strings.HasPrefix(r.nonResource, strings.TrimSuffix(u, "*"))) {
				return true
			}
		}
		return false
	}
	return true
}

func loadAuditPolicy(t *testing.T) *auditPolicy {
	t.Helper()
	data, err := os.ReadFile("audit/audit-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var p auditPolicy
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		t.Fatalf("audit/audit-policy.yaml: %v", err)
	}
	if p.APIVersion != "audit.k8s.io/v1" || p.Kind != "Policy" {
		t.Fatalf("audit/audit-policy.yaml is a %s %s, want audit.k8s.io/v1 Policy", p.APIVersion, p.Kind)
	}
	for i, r := range p.Rules {
		if levelRank(r.Level) < 0 {
			t.Errorf("rule %d: unknown level %q", i, r.Level)
		}
		if r.Level == "RequestResponse" {
			t.Errorf("rule %d: RequestResponse logs response bodies (tokens among them); kustode never needs it", i)
		}
		if len(r.NonResourceURLs) > 0 && (len(r.Resources) > 0 || len(r.Namespaces) > 0) {
			t.Errorf("rule %d: nonResourceURLs with resources or namespaces (the API server refuses it)", i)
		}
	}
	return &p
}

const alice = "alice" // a person: no rule excepts her

var people = []string{"system:authenticated", "developers"}

// TestAuditPolicyLevels pins the decisions deploy/audit/README.md explains.
func TestAuditPolicyLevels(t *testing.T) {
	p := loadAuditPolicy(t)
	if !slices.Contains(p.OmitStages, "RequestReceived") {
		t.Errorf("omitStages lacks RequestReceived")
	}
	node := []string{"system:nodes", "system:authenticated"}
	rsController := "system:serviceaccount:kube-system:replicaset-controller"
	tests := []struct {
		name string
		req  auditRequest
		want string
	}{
		{"secret read", auditRequest{user: alice, groups: people, verb: "get", resource: "secrets", namespace: "prod"}, "Metadata"},
		{"secret written", auditRequest{user: alice, groups: people, verb: "create", resource: "secrets", namespace: "prod"}, "Metadata"},
		{"secret patched by a controller", auditRequest{user: "system:kube-controller-manager", verb: "patch", resource: "secrets", namespace: "kube-system"}, "Metadata"},
		{"token review (its body is a token)", auditRequest{user: "system:serviceaccount:kustode:kustode", verb: "create", group: "authentication.k8s.io", resource: "tokenreviews"}, "Metadata"},
		{"configmap read", auditRequest{user: alice, groups: people, verb: "get", resource: "configmaps", namespace: "prod"}, "Metadata"},
		{"configmap written", auditRequest{user: alice, groups: people, verb: "update", resource: "configmaps", namespace: "prod"}, "Request"},
		{"pod created by a person", auditRequest{user: alice, groups: people, verb: "create", resource: "pods", namespace: "prod"}, "Request"},
		{"pod created by the replicaset controller", auditRequest{user: rsController, verb: "create", resource: "pods", namespace: "prod"}, "Metadata"},
		{"deployment written", auditRequest{user: alice, groups: people, verb: "patch", group: "apps", resource: "deployments", namespace: "prod"}, "Request"},
		{"exec", auditRequest{user: alice, groups: people, verb: "create", resource: "pods/exec", namespace: "prod"}, "Request"},
		{"ephemeral container", auditRequest{user: alice, groups: people, verb: "patch", resource: "pods/ephemeralcontainers", namespace: "prod"}, "Request"},
		{"token requested", auditRequest{user: alice, groups: people, verb: "create", resource: "serviceaccounts/token", namespace: "prod"}, "Request"},
		{"token requested by a kubelet", auditRequest{user: "system:node:n1", groups: node, verb: "create", resource: "serviceaccounts/token", namespace: "prod"}, "Metadata"},
		{"clusterrolebinding", auditRequest{user: alice, groups: people, verb: "create", group: "rbac.authorization.k8s.io", resource: "clusterrolebindings"}, "Request"},
		{"webhook configuration", auditRequest{user: alice, groups: people, verb: "delete", group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations"}, "Request"},
		{"csr approval", auditRequest{user: alice, groups: people, verb: "update", group: "certificates.k8s.io", resource: "certificatesigningrequests/approval"}, "Request"},
		{"nodes/proxy", auditRequest{user: alice, groups: people, verb: "get", resource: "nodes/proxy"}, "Request"},
		{"namespace labels", auditRequest{user: alice, groups: people, verb: "patch", resource: "namespaces"}, "Request"},
		{"custom resource written", auditRequest{user: alice, groups: people, verb: "create", group: "example.com", resource: "widgets", namespace: "prod"}, "Metadata"},
		{"pod list by a person", auditRequest{user: alice, groups: people, verb: "list", resource: "pods"}, "Metadata"},
		{"pod status by a kubelet", auditRequest{user: "system:node:n1", groups: node, verb: "patch", resource: "pods/status", namespace: "prod"}, "Metadata"},
		{"kubelet reads", auditRequest{user: "system:node:n1", groups: node, verb: "watch", resource: "pods"}, "None"},
		{"lease renewal", auditRequest{user: "system:node:n1", groups: node, verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: "kube-node-lease"}, "None"},
		{"event created", auditRequest{user: "system:node:n1", groups: node, verb: "create", resource: "events", namespace: "prod"}, "None"},
		{"events deleted", auditRequest{user: alice, groups: people, verb: "deletecollection", resource: "events", namespace: "prod"}, "Request"},
		{"kube-proxy endpoints watch", auditRequest{user: "system:kube-proxy", verb: "watch", group: "discovery.k8s.io", resource: "endpointslices"}, "None"},
		{"healthz", auditRequest{user: "system:anonymous", verb: "get", nonResource: "/healthz"}, "None"},
		{"readyz verbose", auditRequest{user: "system:anonymous", verb: "get", nonResource: "/readyz?verbose"}, "None"},
		{"anonymous elsewhere", auditRequest{user: "system:anonymous", verb: "get", nonResource: "/api"}, "Metadata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.levelFor(tt.req); got != tt.want {
				t.Errorf("%+v: level %s, want %s", tt.req, got, tt.want)
			}
		})
	}
}

// detectRules is the part of a detection rule file the audit policy serves.
type detectRules struct {
	Macros     map[string]string `json:"macros"`
	Exceptions struct {
		Users           []string `json:"users"`
		Groups          []string `json:"groups"`
		ServiceAccounts []string `json:"serviceAccounts"`
	} `json:"exceptions"`
	Rules []struct {
		ID    string `json:"id"`
		Match struct {
			Verbs     []string `json:"verbs"`
			Resources []string `json:"resources"`
		} `json:"match"`
		Condition string `json:"condition"`
	} `json:"rules"`
}

// resourceGroups names the API groups of the resources kustode's default
// rules match (rules name resources without their group).
var resourceGroups = map[string][]string{
	"pods": {""}, "replicationcontrollers": {""}, "nodes": {""}, "secrets": {""}, "serviceaccounts": {""},
	"services": {""}, "configmaps": {""}, "namespaces": {""}, "endpoints": {""}, "persistentvolumes": {""},
	"events":      {"", "events.k8s.io"},
	"deployments": {"apps"}, "replicasets": {"apps"}, "statefulsets": {"apps"}, "daemonsets": {"apps"},
	"jobs": {"batch"}, "cronjobs": {"batch"},
	"roles": {"rbac.authorization.k8s.io"}, "rolebindings": {"rbac.authorization.k8s.io"},
	"clusterroles": {"rbac.authorization.k8s.io"}, "clusterrolebindings": {"rbac.authorization.k8s.io"},
	"certificatesigningrequests":      {"certificates.k8s.io"},
	"mutatingwebhookconfigurations":   {"admissionregistration.k8s.io"},
	"validatingwebhookconfigurations": {"admissionregistration.k8s.io"},
	"validatingadmissionpolicies":     {"admissionregistration.k8s.io"}, "validatingadmissionpolicybindings": {"admissionregistration.k8s.io"},
	"mutatingadmissionpolicies": {"admissionregistration.k8s.io"}, "mutatingadmissionpolicybindings": {"admissionregistration.k8s.io"},
	"networkpolicies": {"networking.k8s.io"},
	"apiservices":     {"apiregistration.k8s.io"},
	"endpointslices":  {"discovery.k8s.io"},
}

// TestAuditPolicyFeedsDetectionRules holds the policy to kustode's default
// detection rules: every request a rule matches is recorded for a person
// (at least Metadata), with its body (Request) where the rule's condition
// reads requestObject; and the policy lowers the level only for identities
// the rules except anyway.
func TestAuditPolicyFeedsDetectionRules(t *testing.T) {
	p := loadAuditPolicy(t)
	data, err := os.ReadFile("../internal/detect/rules/default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rules detectRules
	if err := yaml.Unmarshal(data, &rules); err != nil {
		t.Fatalf("default rules: %v", err)
	}
	if len(rules.Rules) == 0 {
		t.Fatal("no default rules read")
	}
	readsBody := func(cond string) bool {
		if strings.Contains(cond, "requestObject") {
			return true
		}
		for name, m := range rules.Macros {
			if strings.Contains(cond, "@"+name) && strings.Contains(m, "requestObject") {
				return true
			}
		}
		return false
	}
	allVerbs := []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
	checked := 0
	for _, r := range rules.Rules {
		resources := r.Match.Resources
		if len(resources) == 0 {
			// Rules over every request: a sample of what people do.
			resources = []string{"pods", "secrets", "configmaps", "deployments", "clusterrolebindings"}
		}
		verbs := r.Match.Verbs
		if len(verbs) == 0 {
			verbs = allVerbs
		}
		for _, res := range resources {
			base, _, _ := strings.Cut(res, "/")
			groups, ok := resourceGroups[base]
			if !ok {
				t.Errorf("rule %s matches %s: add its API group to resourceGroups", r.ID, res)
				continue
			}
			for _, g := range groups {
				for _, v := range verbs {
					req := auditRequest{user: alice, groups: people, verb: v, group: g, resource: res, namespace: "prod"}
					want := "Metadata"
					if readsBody(r.Condition) && slices.Contains([]string{"create", "update", "patch"}, v) {
						want = "Request"
					}
					checked++
					if got := p.levelFor(req); levelRank(got) < levelRank(want) {
						t.Errorf("rule %s: %s %s (group %q) is recorded at %s, the rule needs %s", r.ID, v, res, g, got, want)
					}
				}
			}
		}
	}
	t.Logf("%d requests of %d default rules recorded at the level they need", checked, len(rules.Rules))

	exceptedUser := func(u string) bool {
		if slices.Contains(rules.Exceptions.Users, u) {
			return true
		}
		sa, ok := strings.CutPrefix(u, "system:serviceaccount:")
		if !ok {
			return false
		}
		ns, name, _ := strings.Cut(sa, ":")
		return slices.ContainsFunc(rules.Exceptions.ServiceAccounts, func(pat string) bool {
			m, err := path.Match(pat, ns+"/"+name)
			return err == nil && m
		})
	}
	for i, pr := range p.Rules {
		if pr.Level == "Request" {
			continue
		}
		for _, u := range pr.Users {
			if !exceptedUser(u) {
				t.Errorf("policy rule %d lowers %s to %s, but the default rules do not except that user", i, u, pr.Level)
			}
		}
		for _, g := range pr.UserGroups {
			if !slices.Contains(rules.Exceptions.Groups, g) {
				t.Errorf("policy rule %d lowers group %s to %s, but the default rules do not except it", i, g, pr.Level)
			}
		}
	}
}
