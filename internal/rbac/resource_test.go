package rbac

import (
	"strings"
	"testing"
)

func TestParseResource(t *testing.T) {
	tests := []struct {
		in                   string
		group, resource, sub string
		err                  string
	}{
		{in: "pods", group: "", resource: "pods"},
		{in: "pods/exec", group: "", resource: "pods", sub: "exec"},
		{in: "po", group: "", resource: "pods"},
		{in: "pod/log", group: "", resource: "pods", sub: "log"},
		{in: "Pods", group: "", resource: "pods"},
		{in: "deployments", group: "apps", resource: "deployments"},
		{in: "deploy/scale", group: "apps", resource: "deployments", sub: "scale"},
		{in: "deployments.apps", group: "apps", resource: "deployments"},
		{in: "deployments.apps/scale", group: "apps", resource: "deployments", sub: "scale"},
		{in: "deployments.v1.apps", group: "apps", resource: "deployments"},
		{in: "deploy.apps", group: "apps", resource: "deployments"},
		{in: "cronjobs", group: "batch", resource: "cronjobs"},
		{in: "roles", group: "rbac.authorization.k8s.io", resource: "roles"},
		{in: "clusterrolebindings", group: "rbac.authorization.k8s.io", resource: "clusterrolebindings"},
		{in: "netpol", group: "networking.k8s.io", resource: "networkpolicies"},
		{in: "events", group: "", resource: "events"},
		{in: "events.events.k8s.io", group: "events.k8s.io", resource: "events"},
		{in: "ev.events.k8s.io", group: "events.k8s.io", resource: "events"},
		{in: "crd", group: "apiextensions.k8s.io", resource: "customresourcedefinitions"},
		{in: "serviceaccounts/token", group: "", resource: "serviceaccounts", sub: "token"},
		{in: "widgets.example.com", group: "example.com", resource: "widgets"},
		{in: "widgets.example.com/status", group: "example.com", resource: "widgets", sub: "status"},
		{in: "*", group: "*", resource: "*"},
		{in: "*.apps", group: "apps", resource: "*"},
		{in: "*/scale", group: "*", resource: "*", sub: "scale"},
		{in: "widgets", err: "name its API group as RESOURCE.GROUP"},
		{in: "", err: "want RESOURCE"},
		{in: "pods/", err: "want RESOURCE"},
		{in: "pods/exec/x", err: "want RESOURCE"},
		{in: "pods.", err: "want RESOURCE"},
		{in: ".apps", err: "want RESOURCE"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			group, resource, sub, err := ParseResource(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("ParseResource(%q) error = %v, want one containing %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil || group != tt.group || resource != tt.resource || sub != tt.sub {
				t.Errorf("ParseResource(%q) = %q, %q, %q, %v; want %q, %q, %q", tt.in, group, resource, sub, err, tt.group, tt.resource, tt.sub)
			}
		})
	}
}

func TestBuiltinsUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, b := range builtins {
		key := b.resource + "." + b.group
		if seen[key] {
			t.Errorf("%s listed twice", key)
		}
		seen[key] = true
		if b.resource != strings.ToLower(b.resource) {
			t.Errorf("%s: resource names are lowercase", key)
		}
	}
}

func FuzzParseResource(f *testing.F) {
	for _, s := range []string{"pods", "pods/exec", "deployments.v1.apps/scale", "*", "*.apps", "x.y.z/w"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		group, resource, sub, err := ParseResource(s)
		if err != nil {
			return
		}
		if resource == "" || strings.Contains(resource, "/") || strings.Contains(sub, "/") {
			t.Errorf("ParseResource(%q) = %q, %q, %q", s, group, resource, sub)
		}
		// What it returns parses again to the same. The core group is named
		// explicitly (RESOURCE.v1.), since a bare name only parses for
		// built-in resources.
		in := resource + ".v1." + group
		if group == "*" {
			in = resource
		}
		if sub != "" {
			in += "/" + sub
		}
		if resource != "*" && group != "*" {
			if g2, r2, s2, err := ParseResource(in); err != nil || g2 != group || r2 != resource || s2 != sub {
				t.Errorf("ParseResource(%q) = %q, %q, %q, %v; from %q", in, g2, r2, s2, err, s)
			}
		}
	})
}
