package daemon

import (
	"slices"
	"sort"
	"testing"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/kube"
)

func obj(kind, ns, name string) kube.Object {
	return kube.Object{Ref: finding.ObjectRef{Kind: kind, Namespace: ns, Name: name}}
}

func TestDependants(t *testing.T) {
	objs := []kube.Object{
		obj("Namespace", "", "shop"), obj("Namespace", "", "other"),
		obj("Deployment", "shop", "web"), obj("Pod", "shop", "bare"), obj("NetworkPolicy", "shop", "deny"),
		obj("Deployment", "other", "api"),
		obj("ClusterRole", "", "admin"), obj("RoleBinding", "other", "rb"), obj("ServiceAccount", "shop", "default"),
		obj("RuntimeClass", "", "gvisor"), obj("ConfigMap", "other", "cm"),
	}
	for _, tc := range []struct {
		name    string
		changed []objKey
		want    []string
	}{
		{"a workload alone", []objKey{{"Deployment", "shop", "web"}}, []string{"Deployment/shop/web"}},
		{"a deleted object", []objKey{{"Pod", "shop", "gone"}}, []string{"Pod/shop/gone"}},
		{"a NetworkPolicy: its namespace", []objKey{{"NetworkPolicy", "shop", "deny"}}, []string{
			"Deployment/shop/web", "Namespace/shop", "NetworkPolicy/shop/deny", "Pod/shop/bare", "ServiceAccount/shop/default"}},
		{"a Namespace: its objects", []objKey{{"Namespace", "", "other"}}, []string{
			"ConfigMap/other/cm", "Deployment/other/api", "Namespace/other", "RoleBinding/other/rb"}},
		{"RBAC: all RBAC and service accounts", []objKey{{"ClusterRole", "", "admin"}}, []string{
			"ClusterRole/admin", "RoleBinding/other/rb", "ServiceAccount/shop/default"}},
		{"a RuntimeClass: every workload", []objKey{{"RuntimeClass", "", "gvisor"}}, []string{
			"Deployment/other/api", "Deployment/shop/web", "Pod/shop/bare", "RuntimeClass/gvisor"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changed := map[objKey]struct{}{}
			for _, k := range tc.changed {
				changed[k] = struct{}{}
			}
			var got []string
			for k := range dependants(changed, objs) {
				got = append(got, k.String())
			}
			sort.Strings(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("dependants = %v, want %v", got, tc.want)
			}
		})
	}
}

// PolicyRules grants exactly RequiredPermissions plus the two reviews, one
// rule per API group, read-only.
func TestPolicyRules(t *testing.T) {
	granted := map[string]bool{}
	groups := map[string]bool{}
	for _, r := range PolicyRules() {
		if len(r.APIGroups) != 1 || groups[r.APIGroups[0]] {
			t.Errorf("rule %+v: want one rule per API group", r)
		}
		groups[r.APIGroups[0]] = true
		for _, res := range r.Resources {
			for _, v := range r.Verbs {
				review := res == "tokenreviews" || res == "subjectaccessreviews"
				if v != "list" && v != "watch" && (v != "create" || !review) {
					t.Errorf("verb %s on %s: serve only reads", v, res)
				}
				granted[r.APIGroups[0]+"/"+res+":"+v] = true
			}
		}
	}
	for _, p := range RequiredPermissions() {
		for _, v := range p.Verbs {
			if !granted[p.Group+"/"+p.Resource+":"+v] {
				t.Errorf("%s/%s %s required but not granted", p.Group, p.Resource, v)
			}
		}
	}
	if !granted["/secrets:list"] || !granted["/events:watch"] {
		t.Error("Secrets (metadata) and Events must be readable")
	}
}
