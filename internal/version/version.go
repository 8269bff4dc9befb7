package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	// Linked so that the binary's module list always names client-go, whose
	// version is the Kubernetes release kustode speaks to (see Get).
	_ "k8s.io/client-go/pkg/version"
)

// Set at link time with -ldflags "-X github.com/kustode/kustode/internal/version.version=…".
// The defaults describe a build made with plain "go build".
var (
	version = "dev"
	commit  = "unknown"
)

// clientGoModule is the module whose version says which Kubernetes release the
// binary speaks to: client-go v0.X.Y is Kubernetes 1.X.Y.
const clientGoModule = "k8s.io/client-go"

// Info describes a kustode build. Its JSON form is stable: fields are only
// ever added.
type Info struct {
	Version    string `json:"version"`
	Commit     string `json:"commit"`
	GoVersion  string `json:"goVersion"`
	Platform   string `json:"platform"`
	Kubernetes string `json:"kubernetes"`
}

// Get returns the running binary's build information.
func Get() Info {
	info := Info{
		Version:    version,
		Commit:     commit,
		GoVersion:  runtime.Version(),
		Platform:   runtime.GOOS + "/" + runtime.GOARCH,
		Kubernetes: "unknown",
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	if info.Commit == "unknown" {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				info.Commit = s.Value
			}
		}
	}
	for _, dep := range bi.Deps {
		if dep.Path != clientGoModule {
			continue
		}
		v := dep.Version
		if dep.Replace != nil {
			v = dep.Replace.Version
		}
		if minor, err := KubernetesMinor(v); err == nil {
			info.Kubernetes = minor
		}
	}
	return info
}

// KubernetesMinor maps a Kubernetes staging module version (v0.37.2) to the
// Kubernetes minor release it belongs to (1.37).
func KubernetesMinor(stagingVersion string) (string, error) {
	parts := strings.SplitN(strings.TrimPrefix(stagingVersion, "v"), ".", 3)
	if len(parts) < 2 || parts[0] != "0" || parts[1] == "" {
		return "", fmt.Errorf("version: %q is not a Kubernetes staging module version (want v0.MINOR.PATCH)", stagingVersion)
	}
	return "1." + parts[1], nil
}

// String renders Info for people, one field per line.
func (i Info) String() string {
	return fmt.Sprintf("kustode %s\n  commit:     %s\n  go:         %s\n  platform:   %s\n  kubernetes: %s\n",
		i.Version, i.Commit, i.GoVersion, i.Platform, i.Kubernetes)
}
