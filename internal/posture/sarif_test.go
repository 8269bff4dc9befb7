package posture

import "testing"

// Artifact locations are URI references: relative paths as they are (with
// what a URI cannot hold escaped), absolute ones as file: URIs, which is
// what SARIF validators and code-scanning services accept.
func TestSARIFURI(t *testing.T) {
	for file, want := range map[string]string{
		"":                        "cluster",
		"<stdin>":                 "stdin",
		"./deploy/app.yaml":       "deploy/app.yaml",
		"../x/../y/app.yaml":      "../y/app.yaml",
		"deploy/my app#1.yaml":    "deploy/my%20app%231.yaml",
		"/tmp/k3000.yaml":         "file:///tmp/k3000.yaml",
		"/srv/manifests/a b.yaml": "file:///srv/manifests/a%20b.yaml",
	} {
		if got := sarifURI(file); got != want {
			t.Errorf("sarifURI(%q) = %q, want %q", file, got, want)
		}
	}
}
