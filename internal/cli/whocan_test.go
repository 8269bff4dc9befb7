package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const rbacFixture = "../rbac/testdata/bindings.yaml"

func TestWhoCan(t *testing.T) {
	code, out, stderr := run(t, "who-can", "get", "pods", "-n", "team", "-f", rbacFixture, "-o", "json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var grants []struct {
		Subject struct{ Kind, Name, Namespace string } `json:"subject"`
		Binding struct{ Kind, Namespace, Name string } `json:"binding"`
		Role    struct{ Kind, Name string }            `json:"role"`
	}
	if err := json.Unmarshal([]byte(out), &grants); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	var bob bool
	for _, g := range grants {
		if g.Subject.Kind == "User" && g.Subject.Name == "bob" && g.Binding.Name == "bob-reads-pods" && g.Role.Name == "pod-reader" {
			bob = true
		}
	}
	if !bob {
		t.Errorf("bob (RoleBinding to ClusterRole pod-reader in team) not listed: %+v", grants)
	}

	// Cluster-wide, bob's namespaced grant does not count.
	_, out, _ = run(t, "who-can", "get", "pods", "-f", rbacFixture)
	if strings.Contains(out, "User bob ") {
		t.Errorf("cluster-wide answer lists bob, whose grant is namespaced:\n%s", out)
	}
	if !strings.Contains(out, "grant(s) allow get pods (cluster-wide)") {
		t.Errorf("table lacks the summary line:\n%s", out)
	}
}

func TestWhoCanUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"who-can", "get", "pods"}, "give -f PATH"},
		{[]string{"who-can", "get", "frobs", "-f", rbacFixture}, "frobs"},
		{[]string{"who-can", "get", "/metrics", "-n", "x", "-f", rbacFixture}, "non-resource URL has no namespace"},
		{[]string{"who-can", "get"}, "accepts 2 arg(s)"},
		{[]string{"access", "bob", "-f", rbacFixture}, "want user:NAME"},
	}
	for _, tt := range tests {
		code, _, stderr := run(t, tt.args...)
		if code != ExitUsage || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tt.args, code, stderr, ExitUsage, tt.want)
		}
	}
}

func TestAccess(t *testing.T) {
	code, out, stderr := run(t, "access", "user:bob", "-f", rbacFixture)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"team", "get,list,watch", "pods,pods/log [core]", "RoleBinding team/bob-reads-pods → ClusterRole pod-reader", "rule(s) apply to User bob"} {
		if !strings.Contains(out, want) {
			t.Errorf("access output lacks %q:\n%s", want, out)
		}
	}
	for _, in := range []string{"sa:ns:name", "serviceaccount:ns:name", "system:serviceaccount:ns:name"} {
		s, err := parseSubject(in)
		if err != nil || s.Kind != "ServiceAccount" || s.Namespace != "ns" || s.Name != "name" {
			t.Errorf("parseSubject(%q) = %+v, %v", in, s, err)
		}
	}
}

// An object given twice (the same binding in two files) is a warning: the
// answer is complete, so the exit code stays 0.
func TestWhoCanDuplicateIsAWarning(t *testing.T) {
	dir := t.TempDir()
	binding := `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: readers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader}
subjects: [{kind: User, apiGroup: rbac.authorization.k8s.io, name: dana}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
`
	for _, f := range []string{"a.yaml", "b.yaml"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(binding), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := run(t, "who-can", "get", "pods", "-f", dir)
	if code != ExitOK || !strings.Contains(out, "dana") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 0 listing dana", code, out, errOut)
	}
	if !strings.Contains(errOut, "warning: ") || !strings.Contains(errOut, "duplicate ClusterRoleBinding") {
		t.Errorf("stderr %q: want a duplicate warning", errOut)
	}
}
