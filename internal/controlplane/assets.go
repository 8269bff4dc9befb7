package controlplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Binary names, as they appear in an assets directory.
const (
	Etcd              = "etcd"
	KubeAPIServer     = "kube-apiserver"
	ControllerManager = "kube-controller-manager"
	Scheduler         = "kube-scheduler"
	Kubectl           = "kubectl"
	Kwok              = "kwok"
)

// AllBinaries lists every binary hack/k8s-assets.sh builds.
var AllBinaries = []string{Etcd, KubeAPIServer, ControllerManager, Scheduler, Kubectl, Kwok}

// assetsScript is the build script, relative to the repository root.
const assetsScript = "hack/k8s-assets.sh"

// AssetsDir returns the directory holding the control-plane binaries.
//
// It is $KUBEBUILDER_ASSETS when set. Otherwise it runs the repository's
// hack/k8s-assets.sh (found by walking up from the working directory), which
// builds whatever is missing into the cache and prints the directory; its
// progress goes to progress. The first build takes minutes; later calls take
// seconds. It fails when neither is available.
func AssetsDir(ctx context.Context, progress io.Writer) (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	root, err := findRepoRoot()
	if err != nil {
		return "", fmt.Errorf("controlplane: find binaries: KUBEBUILDER_ASSETS is not set and %w; "+
			"set KUBEBUILDER_ASSETS to a directory with %s, or run from a kustode checkout",
			err, strings.Join(AllBinaries, ", "))
	}
	if progress == nil {
		progress = io.Discard
	}
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, assetsScript)) //nolint:gosec // the repository's own build script
	cmd.Dir = root
	cmd.Stdout = &stdout
	cmd.Stderr = progress
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("controlplane: build binaries with %s: %w", assetsScript, err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	return lines[len(lines)-1], nil
}

// CheckAssets reports every binary in names that is missing from dir or not
// executable, in one error.
func CheckAssets(dir string, names ...string) error {
	var errs []error
	for _, name := range names {
		path := filepath.Join(dir, name)
		fi, err := os.Stat(path)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		case fi.IsDir() || fi.Mode()&0o111 == 0:
			errs = append(errs, fmt.Errorf("%s: %s is not an executable file", name, path))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("controlplane: missing binaries in %s (run hack/k8s-assets.sh to build them): %w",
			dir, errors.Join(errs...))
	}
	return nil
}

// findRepoRoot walks up from the working directory to the directory holding
// hack/k8s-assets.sh.
func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, assetsScript)); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no %s above the working directory", assetsScript)
		}
		dir = parent
	}
}
