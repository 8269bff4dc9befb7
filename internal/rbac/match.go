package rbac

import (
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
)

// ruleAllows reports whether rule allows req. It is RuleAllows of the API
// server's RBAC authorizer, with the helpers of
// pkg/apis/rbac/v1/evaluation_helpers.go inlined; keep it literal.
func ruleAllows(rule *rbacv1.PolicyRule, req *Request) bool {
	if !verbMatches(rule, req.Verb) {
		return false
	}
	if req.isNonResource() {
		return nonResourceURLMatches(rule, req.NonResourceURL)
	}
	combined := req.Resource
	if req.Subresource != "" {
		combined = req.Resource + "/" + req.Subresource
	}
	return apiGroupMatches(rule, req.APIGroup) &&
		resourceMatches(rule, combined, req.Subresource) &&
		resourceNameMatches(rule, req.Name)
}

func verbMatches(rule *rbacv1.PolicyRule, verb string) bool {
	for _, v := range rule.Verbs {
		if v == rbacv1.VerbAll || v == verb {
			return true
		}
	}
	return false
}

func apiGroupMatches(rule *rbacv1.PolicyRule, group string) bool {
	for _, g := range rule.APIGroups {
		if g == rbacv1.APIGroupAll || g == group {
			return true
		}
	}
	return false
}

// resourceMatches matches "*", the exact "resource" or "resource/subresource",
// and "*/subresource" for that subresource of any resource. There is no
// "resource/*": such a rule matches only a request whose subresource is
// literally "*".
func resourceMatches(rule *rbacv1.PolicyRule, combined, subresource string) bool {
	for _, r := range rule.Resources {
		if r == rbacv1.ResourceAll || r == combined {
			return true
		}
		if subresource == "" {
			continue
		}
		if len(r) == len(subresource)+2 && strings.HasPrefix(r, "*/") && strings.HasSuffix(r, subresource) {
			return true
		}
	}
	return false
}

// resourceNameMatches: a rule without resourceNames matches any name; a rule
// with them matches only a request naming one of them, so never a list,
// watch or create of the collection, whose name is empty.
func resourceNameMatches(rule *rbacv1.PolicyRule, name string) bool {
	if len(rule.ResourceNames) == 0 {
		return true
	}
	for _, n := range rule.ResourceNames {
		if n == name {
			return true
		}
	}
	return false
}

// nonResourceURLMatches matches "*", the exact path, and a trailing "*" as a
// prefix match ("/healthz/*" matches "/healthz/etcd", and "/healthz*"
// matches "/healthzzz" too: the API server trims the stars and compares
// prefixes, not path segments).
func nonResourceURLMatches(rule *rbacv1.PolicyRule, path string) bool {
	for _, u := range rule.NonResourceURLs {
		if u == rbacv1.NonResourceAll || u == path {
			return true
		}
		if strings.HasSuffix(u, "*") && strings.HasPrefix(path, strings.TrimRight(u, "*")) {
			return true
		}
	}
	return false
}
