// Package testcorpus locates the team's shared corpus of real manifests and
// audit logs for tests. The corpus lives beside the checkout
// (../shared/corpus), never in the repository; KUSTODE_CORPUS points
// elsewhere. Tests that need it skip, saying so, when it is absent.
package testcorpus

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the corpus subfolder sub ("audit", "manifests") or skips the
// test when it is not there.
func Dir(t testing.TB, sub string) string {
	t.Helper()
	root := os.Getenv("KUSTODE_CORPUS")
	if root == "" {
		root = filepath.Join(repoRoot(), "..", "shared", "corpus")
	}
	dir := filepath.Join(root, sub)
	if _, err := os.Stat(dir); err != nil { //nolint:gosec // a test reading the corpus the developer points it at
		t.Skipf("corpus not present at %s (set KUSTODE_CORPUS to the corpus folder to run this test): %v", dir, err)
	}
	return dir
}

// repoRoot walks up from the working directory (a test's package folder)
// to the folder holding go.mod.
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}
