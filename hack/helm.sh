#!/usr/bin/env bash
# helm.sh builds the Helm CLI that renders kustode's chart (deploy/helm/kustode)
# into the plain manifests (make deploy-manifests) and that the deploy tests
# run (go test ./deploy/). It is built from the module pinned in hack/helm
# through the Go module proxy, never downloaded as a prebuilt binary, into
#   ${XDG_CACHE_HOME:-~/.cache}/kustode/helm/<version>/helm
# and that path is printed on stdout as the last line. Progress goes to stderr.
#
# Idempotent: when the cached binary exists nothing is built. The version comes
# from hack/helm/go.mod, so changing it there builds into a fresh directory.
#
# When KUSTODE_HELM is set, nothing is built: the script checks that it names
# an executable and prints it.
#
# Usage: hack/helm.sh [--print-path]
#   --print-path   print the path that would be used and exit
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
moddir="$root/hack/helm"

log() { printf 'helm: %s\n' "$*" >&2; }

if [[ -n "${KUSTODE_HELM:-}" ]]; then
  if [[ ! -x "$KUSTODE_HELM" ]]; then
    log "KUSTODE_HELM=$KUSTODE_HELM is not an executable file"
    log "unset KUSTODE_HELM to build helm, or point it at one"
    exit 1
  fi
  echo "$KUSTODE_HELM"
  exit 0
fi

# The pinned version, read from go.mod without running the go command so that
# the cached case costs nothing.
version=$(awk '$1 == "require" && $2 == "helm.sh/helm/v3" { print $3; exit }
                $1 == "helm.sh/helm/v3" { print $2; exit }' "$moddir/go.mod")
if [[ -z "$version" ]]; then
  log "cannot find 'require helm.sh/helm/v3 VERSION' in $moddir/go.mod"
  exit 1
fi
dir="${XDG_CACHE_HOME:-$HOME/.cache}/kustode/helm/$version"
bin="$dir/helm"

if [[ "${1:-}" == "--print-path" ]]; then
  echo "$bin"
  exit 0
fi

if [[ -x "$bin" ]]; then
  log "helm $version present at $bin"
  echo "$bin"
  exit 0
fi

mkdir -p "$dir"
# The same -X flags as Helm's own Makefile: the version `helm version` prints,
# and the Kubernetes version that `helm template` and `helm lint` assume
# (.Capabilities.KubeVersion, deprecation checks), taken from client-go.
clientgo=$(cd "$moddir" && go list -m -f '{{.Version}}' k8s.io/client-go)
k8sminor=$(cut -d. -f2 <<<"${clientgo#v}")
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8sminor"
done

log "building helm $version (Kubernetes 1.$k8sminor API) into $dir"
log "a cold build takes several minutes on 2 cores; later runs take no time"
tmp=$(mktemp -d "$dir/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
(
  cd "$moddir"
  # -v lists each package as it is compiled: that is the progress.
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/helm" -v helm.sh/helm/v3/cmd/helm 2>&1 |
    awk -v start="$(date +%s)" '
      /^(go: |#|.*\.go:[0-9]+)/ { print > "/dev/stderr"; next }  # errors and downloads as they are
      { n++; if (n % 100 == 0) { printf "helm: %d packages compiled (%ds)\n", n, systime() - start > "/dev/stderr"; fflush("/dev/stderr") } }'
  exit "${PIPESTATUS[0]}"
)
if [[ ! -x "$tmp/helm" ]]; then
  log "build did not produce helm"
  exit 1
fi
mv -f "$tmp/helm" "$bin"
log "built helm $version in $((SECONDS - start))s: $("$bin" version --short)"
echo "$bin"
