package checks

import (
	"encoding/json"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/kube"
	"github.com/kustode/kustode/internal/posture"
	"github.com/kustode/kustode/internal/rbac"
)

// RBAC checks judge bindings by what their role (aggregation resolved, as
// the API server serves it) lets their subjects do, through internal/rbac's
// evaluation, which equals the API server's. Objects of Kubernetes' own
// bootstrap policy (label kubernetes.io/bootstrapping=rbac-defaults) are
// left alone: they are the platform, not a choice someone made.

// rbacIndex builds the scan's RBAC index once.
func rbacIndex(ix *posture.Index) *rbac.Index {
	return ix.Derived("rbac-index", func(ix *posture.Index) any {
		var objs []kube.Object
		for _, kind := range []string{"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "ServiceAccount"} {
			for _, o := range ix.Objects(kind) {
				objs = append(objs, *o)
			}
		}
		// Manifests bind cluster-admin, admin, edit and view without defining
		// them: judge them as every cluster serves them.
		r, _ := rbac.New(rbac.WithBuiltinRoles(objs)) // unreadable objects are reported by the scan's own decoding
		return r
	}).(*rbac.Index)
}

func bootstrap(o *kube.Object) bool {
	return o.Labels["kubernetes.io/bootstrapping"] == "rbac-defaults"
}

// madeBinding returns the binding a check runs on, unless it belongs to
// Kubernetes' bootstrap policy.
func madeBinding(p *posture.Pass) (rbac.BindingInfo, bool) {
	if bootstrap(p.Object) {
		return rbac.BindingInfo{}, false
	}
	return rbacIndex(p.Index).Binding(p.Object.Ref.Kind, p.Object.Ref.Namespace, p.Object.Ref.Name)
}

// bindingPass gives a binding check the binding and its non-system
// subjects (users and groups named system:* are Kubernetes components).
func bindingPass(p *posture.Pass) (rbac.BindingInfo, []rbac.Subject, bool) {
	info, ok := madeBinding(p)
	if !ok || !info.RoleFound {
		return info, nil, false
	}
	var subjects []rbac.Subject
	for _, s := range info.Subjects {
		if component(s) {
			continue
		}
		subjects = append(subjects, s)
	}
	return info, subjects, len(subjects) > 0
}

// component reports subjects that are Kubernetes' own components (users and
// groups named system:*), but not service-account identities, which are
// workloads however they are named.
func component(s rbac.Subject) bool {
	if s.Kind == rbacv1.ServiceAccountKind || !strings.HasPrefix(s.Name, "system:") {
		return false
	}
	return !strings.HasPrefix(s.Name, "system:serviceaccount:") && !strings.HasPrefix(s.Name, rbac.GroupServiceAccounts)
}

func subjectList(ss []rbac.Subject) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.String()
	}
	return strings.Join(out, ", ")
}

// scope says where a binding's grant holds.
func scope(info rbac.BindingInfo) string {
	if info.Ref.Namespace == "" {
		return "cluster-wide"
	}
	return "in namespace " + info.Ref.Namespace
}

var rbacFrameworks = func(cis []string, mitre ...string) finding.Frameworks {
	return finding.Frameworks{CIS: cis, NSA: []string{"Authentication and authorization"}, MITRE: mitre}
}

// capabilityCheck builds a binding check that fires when the binding's role
// allows any of the requests. Requests on cluster-scoped resources (marked
// by creq) count only for ClusterRoleBindings: the API server asks about
// them with no namespace, which a RoleBinding never matches. When all is
// set, every request must be allowed (approving a CSR takes both of its
// permissions).
//
//nolint:unparam // severity is a per-check choice; today's capability checks all happen to be high
func capabilityCheck(id, title string, sev finding.Severity, fw finding.Frameworks, description, remediation string,
	applies func(info rbac.BindingInfo) bool, what string, reqs ...capability) *posture.Check {
	return capabilityCheckAll(id, title, sev, fw, description, remediation, applies, what, false, reqs...)
}

func capabilityCheckAll(id, title string, sev finding.Severity, fw finding.Frameworks, description, remediation string,
	applies func(info rbac.BindingInfo) bool, what string, all bool, reqs ...capability) *posture.Check {
	return &posture.Check{
		ID: id, Title: title, Severity: sev, Frameworks: fw, Description: description, Remediation: remediation,
		Kinds: []string{"RoleBinding", "ClusterRoleBinding"},
		Run: func(p *posture.Pass) {
			info, subjects, ok := bindingPass(p)
			if !ok || (applies != nil && !applies(info)) || clusterAdmin(info.Rules) {
				return // rbac-cluster-admin reports full wildcards once
			}
			// verbs per resource, in request order
			var resources []string
			verbs := map[string][]string{}
			granted := 0
			for _, c := range reqs {
				if c.clusterScoped && info.Ref.Namespace != "" {
					continue
				}
				if r := c.Request; rbac.Allows(info.Rules, r) {
					granted++
					res := resourceString(r)
					if _, seen := verbs[res]; !seen {
						resources = append(resources, res)
					}
					verbs[res] = append(verbs[res], r.Verb)
				}
			}
			if len(resources) == 0 || (all && granted < len(reqs)) {
				return
			}
			parts := make([]string, len(resources))
			for i, res := range resources {
				parts[i] = strings.Join(verbs[res], "/") + " " + res
			}
			p.Reportf("%s %s: %s can %s (%s %s via %s %s)", what, scope(info), subjectList(subjects),
				strings.Join(parts, ", "), info.RoleRef.Kind, info.RoleRef.Name, bindingNoun(info), p.Object.Ref.Name)
		},
	}
}

func bindingNoun(info rbac.BindingInfo) string {
	if info.Ref.Namespace == "" {
		return "ClusterRoleBinding"
	}
	return "RoleBinding"
}

func resourceString(r rbac.Request) string {
	s := r.Resource
	if r.APIGroup != "" {
		s += "." + r.APIGroup
	}
	if r.Subresource != "" {
		s += "/" + r.Subresource
	}
	return s
}

// capability is a request a check looks for.
type capability struct {
	rbac.Request
	clusterScoped bool
}

// req is a request on a namespaced resource, creq on a cluster-scoped one.
func req(verb, group, resource, sub string) capability {
	return capability{Request: rbac.Request{Verb: verb, APIGroup: group, Resource: resource, Subresource: sub}}
}

func creq(verb, group, resource, sub string) capability {
	c := req(verb, group, resource, sub)
	c.clusterScoped = true
	return c
}

// RBACClusterAdmin flags cluster-admin, or anything equivalent, granted to
// people or workloads.
var RBACClusterAdmin = &posture.Check{
	ID:          "rbac-cluster-admin",
	Title:       "cluster-admin (or equivalent) granted",
	Severity:    finding.Critical,
	Description: "The binding grants every verb on every resource: its subjects own the cluster, and so does whoever steals their credentials.",
	Remediation: "Bind a role with only the permissions the subject needs; keep cluster-admin for break-glass accounts outside day-to-day use.",
	Frameworks:  rbacFrameworks([]string{"5.1.1"}, "T1078", "T1098"),
	Kinds:       []string{"RoleBinding", "ClusterRoleBinding"},
	Run: func(p *posture.Pass) {
		info, subjects, ok := bindingPass(p)
		if !ok {
			return
		}
		if clusterAdmin(info.Rules) {
			p.Reportf("every permission %s for %s (%s %s)", scope(info), subjectList(subjects), info.RoleRef.Kind, info.RoleRef.Name)
		}
	},
}

// clusterAdmin reports rules that grant every verb on every resource of
// every API group.
func clusterAdmin(rules []rbacv1.PolicyRule) bool {
	return slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool {
		return slices.Contains(r.Verbs, "*") && slices.Contains(r.APIGroups, "*") && slices.Contains(r.Resources, "*") && len(r.ResourceNames) == 0
	})
}

// Capability checks.
var (
	RBACSecretsRead = capabilityCheck("rbac-secrets-read", "Secrets readable cluster-wide or in kube-system", finding.High,
		rbacFrameworks([]string{"5.1.2"}, "T1552.007"),
		"Reading Secrets everywhere, or in kube-system where the control plane's credentials live, is reading every password, token and key they hold.",
		"Grant get on the specific Secrets (resourceNames) in the namespace that needs them; never list or watch Secrets cluster-wide.",
		func(info rbac.BindingInfo) bool {
			return info.Ref.Namespace == "" || info.Ref.Namespace == "kube-system"
		},
		"Secrets",
		req("get", "", "secrets", ""), req("list", "", "secrets", ""), req("watch", "", "secrets", ""))

	RBACEscalation = capabilityCheck("rbac-escalation-verbs", "Privilege escalation verbs granted", finding.High,
		rbacFrameworks([]string{"5.1.8"}, "T1098", "T1134"),
		"escalate lets a subject write roles granting more than it has; bind lets it bind roles it does not hold; impersonate lets it act as any user, group or service account.",
		"Remove escalate, bind and impersonate from the role, or limit them with resourceNames to the exact roles and identities needed.",
		nil, "escalation",
		creq("escalate", "rbac.authorization.k8s.io", "clusterroles", ""), req("escalate", "rbac.authorization.k8s.io", "roles", ""),
		// bind is checked in the RoleBinding's namespace, ClusterRoles included
		req("bind", "rbac.authorization.k8s.io", "clusterroles", ""), req("bind", "rbac.authorization.k8s.io", "roles", ""),
		creq("impersonate", "", "users", ""), creq("impersonate", "", "groups", ""), req("impersonate", "", "serviceaccounts", ""))

	RBACPodExec = capabilityCheck("rbac-pod-exec", "Command execution in pods or nodes granted", finding.High,
		rbacFrameworks(nil, "T1609", "T1611"),
		"exec, attach and port-forward run commands in or reach into pods, taking their service-account tokens and data; nodes/proxy reaches the kubelet API of every node, which bypasses audit and admission.",
		"Grant exec and port-forward only in namespaces people debug, through a time-limited binding; never grant nodes/proxy to people.",
		nil, "command execution",
		req("create", "", "pods", "exec"), req("get", "", "pods", "exec"), req("create", "", "pods", "attach"),
		req("create", "", "pods", "portforward"), creq("get", "", "nodes", "proxy"), creq("create", "", "nodes", "proxy"))

	RBACTokenCreate = capabilityCheck("rbac-token-create", "Service-account tokens can be minted", finding.High,
		rbacFrameworks(nil, "T1528"),
		"create on serviceaccounts/token mints a token for any service account in scope: the subject becomes every one of them.",
		"Limit serviceaccounts/token create with resourceNames to the service accounts that must be impersonated.",
		nil, "token minting", req("create", "", "serviceaccounts", "token"))

	RBACCSRApproval = capabilityCheckAll("rbac-csr-approval", "Certificate signing requests can be approved", finding.High,
		rbacFrameworks(nil, "T1649"),
		"Approving CSRs (update certificatesigningrequests/approval with approve on a signer) issues client certificates: for the kube-apiserver-client signer, any user name and group, system:masters included.",
		"Leave CSR approval to the controller-manager and dedicated approvers; limit signers with resourceNames.",
		nil, "CSR approval", true,
		creq("update", "certificates.k8s.io", "certificatesigningrequests", "approval"), creq("approve", "certificates.k8s.io", "signers", ""))

	RBACWebhookConfig = capabilityCheck("rbac-admission-webhook-write", "Admission webhook configurations writable", finding.High,
		rbacFrameworks(nil, "T1562.001", "T1554"),
		"Whoever writes admission webhook configurations can intercept every object the API server admits (Secrets included) or switch policy enforcement off.",
		"Keep writes to mutating and validating webhook configurations for cluster administrators and the operators that own them.",
		nil, "admission control",
		webhookWrites()...)

	RBACWorkloadCreateKubeSystem = capabilityCheck("rbac-workload-create-kube-system", "Pods can be created where privileged service accounts live", finding.High,
		rbacFrameworks([]string{"5.1.4"}, "T1610", "T1528"),
		"Creating pods or workloads in kube-system lets a subject run a pod as any service account there, several of which hold cluster-wide power, and read its token.",
		"Do not grant create on pods or workload controllers in kube-system (or cluster-wide) to people or workloads.",
		func(info rbac.BindingInfo) bool {
			return info.Ref.Namespace == "" || info.Ref.Namespace == "kube-system"
		},
		"workload creation",
		req("create", "", "pods", ""), req("create", "apps", "deployments", ""), req("create", "apps", "daemonsets", ""),
		req("create", "apps", "statefulsets", ""), req("create", "apps", "replicasets", ""), req("create", "batch", "jobs", ""),
		req("create", "batch", "cronjobs", ""), req("create", "", "replicationcontrollers", ""))
)

// webhookWrites are the writes to admission webhook configurations.
func webhookWrites() []capability {
	var out []capability
	for _, res := range []string{"mutatingwebhookconfigurations", "validatingwebhookconfigurations"} {
		for _, verb := range []string{"create", "update", "patch", "delete", "deletecollection"} {
			out = append(out, creq(verb, "admissionregistration.k8s.io", res, ""))
		}
	}
	return out
}

// RBACPublicSubject flags bindings to everyone.
var RBACPublicSubject = &posture.Check{
	ID:       "rbac-public-subject",
	Title:    "Permissions granted to anonymous or all users",
	Severity: finding.Critical,
	Description: "system:anonymous and system:unauthenticated are requests without credentials; system:authenticated is every " +
		"identity, every service account of every workload included. Anything bound to them is public.",
	Remediation: "Bind to named users, groups or service accounts instead.",
	Frameworks:  rbacFrameworks(nil, "T1078.001", "T1190"),
	Kinds:       []string{"RoleBinding", "ClusterRoleBinding"},
	Run: func(p *posture.Pass) {
		info, ok := madeBinding(p)
		if !ok {
			return
		}
		for _, s := range info.Subjects {
			public := (s.Kind == rbacv1.UserKind && s.Name == rbac.UserAnonymous) ||
				(s.Kind == rbacv1.GroupKind && (s.Name == rbac.GroupUnauthenticated || s.Name == rbac.GroupAuthenticated))
			if public {
				p.Reportf("binds %s %s to %s", info.RoleRef.Kind, info.RoleRef.Name, s)
			}
		}
	},
}

// wellKnownClusterRoles exist in every cluster without being in manifests.
var wellKnownClusterRoles = []string{"cluster-admin", "admin", "edit", "view"}

// RBACDangling flags bindings whose role or service account is missing.
var RBACDangling = &posture.Check{
	ID:       "rbac-dangling-binding",
	Title:    "Binding to a missing role or service account",
	Severity: finding.Low,
	Description: "The binding names a role, or a service account, that does not exist. It grants nothing today, and " +
		"grants the role's permissions to whoever later creates an object of that name.",
	Remediation: "Delete the binding, or create what it names on purpose.",
	Frameworks:  rbacFrameworks(nil, "T1098"),
	Kinds:       []string{"RoleBinding", "ClusterRoleBinding"},
	Run: func(p *posture.Pass) {
		info, ok := madeBinding(p)
		if !ok {
			return
		}
		knownRole := info.RoleRef.Kind == "ClusterRole" &&
			(slices.Contains(wellKnownClusterRoles, info.RoleRef.Name) || strings.HasPrefix(info.RoleRef.Name, "system:"))
		if !info.RoleFound && !knownRole {
			p.Reportf("%s %s does not exist", info.RoleRef.Kind, info.RoleRef.Name)
		}
		// Service accounts are judged only where the input defines service
		// accounts of that namespace: manifests often bind accounts made
		// elsewhere.
		haveSAs := serviceAccountNamespaces(p.Index)
		for _, s := range info.Subjects {
			if s.Kind != rbacv1.ServiceAccountKind || !haveSAs[s.Namespace] {
				continue
			}
			if _, ok := rbacIndex(p.Index).ServiceAccount(s.Namespace, s.Name); !ok {
				p.Reportf("service account %s/%s does not exist", s.Namespace, s.Name)
			}
		}
	},
}

func serviceAccountNamespaces(ix *posture.Index) map[string]bool {
	return ix.Derived("serviceaccount-namespaces", func(ix *posture.Index) any {
		m := map[string]bool{}
		for _, o := range ix.Objects("ServiceAccount") {
			m[posture.Namespace(o)] = true
		}
		return m
	}).(map[string]bool)
}

// RBACDefaultServiceAccount flags permissions granted to default service
// accounts, which every pod without its own account shares.
var RBACDefaultServiceAccount = &posture.Check{
	ID:          "rbac-default-service-account",
	Title:       "Permissions granted to a default service account",
	Severity:    finding.Medium,
	Description: "Every pod in the namespace that names no service account runs as default, so a grant to it is a grant to all of them.",
	Remediation: "Create a service account for the workload that needs the permission and bind that instead.",
	Frameworks:  rbacFrameworks([]string{"5.1.5"}, "T1078.004"),
	Kinds:       []string{"RoleBinding", "ClusterRoleBinding"},
	Run: func(p *posture.Pass) {
		info, ok := madeBinding(p)
		if !ok {
			return
		}
		for _, s := range info.Subjects {
			ns, name := s.Namespace, s.Name
			if s.Kind == rbacv1.UserKind {
				// system:serviceaccount:NS:NAME is the same identity
				rest, ok := strings.CutPrefix(s.Name, "system:serviceaccount:")
				if !ok {
					continue
				}
				ns, name, _ = strings.Cut(rest, ":")
			} else if s.Kind != rbacv1.ServiceAccountKind {
				continue
			}
			if name == "default" {
				p.Reportf("binds %s %s to service account %s/default", info.RoleRef.Kind, info.RoleRef.Name, ns)
			}
		}
	},
}

// RBACWildcard flags roles with wildcards.
var RBACWildcard = &posture.Check{
	ID:       "rbac-wildcard",
	Title:    "Role with wildcard permissions",
	Severity: finding.Medium,
	Description: "A * in verbs, resources or API groups grants everything that exists now and everything added later " +
		"(new resources, CRDs, subresources such as pods/exec).",
	Remediation: "List the verbs, resources and API groups the subject needs.",
	Frameworks:  rbacFrameworks([]string{"5.1.3"}, "T1078"),
	Kinds:       []string{"Role", "ClusterRole"},
	Run: func(p *posture.Pass) {
		if bootstrap(p.Object) {
			return
		}
		var r struct {
			Rules []rbacv1.PolicyRule `json:"rules"`
		}
		if json.Unmarshal(p.Object.Raw, &r) != nil {
			return
		}
		for i, rule := range r.Rules {
			var fields []string
			for _, f := range []struct {
				name string
				vals []string
			}{{"verbs", rule.Verbs}, {"resources", rule.Resources}, {"apiGroups", rule.APIGroups}, {"nonResourceURLs", rule.NonResourceURLs}} {
				if slices.Contains(f.vals, "*") {
					fields = append(fields, f.name)
				}
			}
			if len(fields) > 0 {
				p.Reportf("rule %d has * in %s", i+1, strings.Join(fields, ", "))
			}
		}
	},
}
