package rbac

import (
	"slices"
	"sync"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kustode/kustode/internal/finding"
)

// BindingInfo is one RoleBinding or ClusterRoleBinding as the index sees
// it, for posture checks that judge what a binding grants to whom.
type BindingInfo struct {
	// Ref names the binding; a RoleBinding's Namespace is its effective
	// namespace ("default" when the manifest had none).
	Ref     finding.ObjectRef
	Source  finding.Source
	RoleRef rbacv1.RoleRef
	// Subjects are the binding's subjects that name someone, normalized (a
	// ServiceAccount's namespace filled in from a RoleBinding).
	Subjects []Subject
	// RoleFound is false when the referenced role is not in the input.
	RoleFound bool
	// Rules are the role's effective rules (after aggregation).
	Rules []rbacv1.PolicyRule
}

// refIndex maps binding references to bindings, built on first use.
type refIndex struct {
	once sync.Once
	m    map[finding.ObjectRef]*binding
}

// Binding returns the binding named kind ("RoleBinding" or
// "ClusterRoleBinding"), namespace and name.
func (ix *Index) Binding(kind, namespace, name string) (BindingInfo, bool) {
	ix.refs.once.Do(func() {
		ix.refs.m = map[finding.ObjectRef]*binding{}
		for _, b := range ix.clusterBindings {
			ix.refs.m[refKey(b.ref)] = b
		}
		for _, bs := range ix.roleBindings {
			for _, b := range bs {
				ix.refs.m[refKey(b.ref)] = b
			}
		}
	})
	if kind == "ClusterRoleBinding" {
		namespace = ""
	} else {
		namespace = defaultNamespace(namespace)
	}
	b, ok := ix.refs.m[finding.ObjectRef{Kind: kind, Namespace: namespace, Name: name}]
	if !ok {
		return BindingInfo{}, false
	}
	info := BindingInfo{Ref: b.ref, Source: b.source, RoleRef: b.roleRef}
	for _, s := range b.subjects {
		if n, ok := normalize(s, b.ref.Namespace); ok {
			info.Subjects = append(info.Subjects, n)
		}
	}
	if r := ix.role(b); r != nil {
		info.RoleFound, info.Rules = true, slices.Clone(r.rules)
	}
	return info, true
}

func refKey(r finding.ObjectRef) finding.ObjectRef {
	return finding.ObjectRef{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}
}

// Allows reports whether any of rules allows req, by the API server's rule
// matching (namespaces and bindings are not considered).
func Allows(rules []rbacv1.PolicyRule, req Request) bool {
	for i := range rules {
		if ruleAllows(&rules[i], &req) {
			return true
		}
	}
	return false
}

// roleRules returns a ClusterRole's effective rules.
func (ix *Index) roleRules(name string) ([]rbacv1.PolicyRule, bool) {
	r, ok := ix.clusterRoles[name]
	if !ok {
		return nil, false
	}
	return r.rules, true
}
