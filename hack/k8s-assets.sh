#!/usr/bin/env bash
# k8s-assets.sh builds the control-plane binaries that kustode's end-to-end
# tests and demo run: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl and kwok. They are built from the module pinned in
# hack/k8senv (never downloaded as prebuilt binaries) into a cache directory
# laid out like KUBEBUILDER_ASSETS, and the directory is printed on stdout as
# the last line.
#
# Idempotent: a binary already in the cache is not rebuilt. The cache key
# includes a hash of hack/k8senv/go.sum, so changing a pinned version builds
# into a fresh directory.
#
# When KUBEBUILDER_ASSETS is set, nothing is built: the script checks that
# every binary is there and prints that directory.
#
# Usage: hack/k8s-assets.sh [--print-dir]
#   --print-dir   print the directory that would be used and exit
set -euo pipefail

K8S_VERSION=v1.37.2
KWOK_VERSION=v0.8.0
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
envdir="$root/hack/k8senv"

log() { printf 'k8s-assets: %s\n' "$*" >&2; }

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  missing=()
  for b in "${BINARIES[@]}"; do
    [[ -x "$KUBEBUILDER_ASSETS/$b" ]] || missing+=("$b")
  done
  if ((${#missing[@]})); then
    log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks: ${missing[*]}"
    log "unset KUBEBUILDER_ASSETS to build them, or put them there"
    exit 1
  fi
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

hash=$(sha256sum "$envdir/go.sum" | cut -c1-12)
dir="${XDG_CACHE_HOME:-$HOME/.cache}/kustode/k8s/${K8S_VERSION}-${hash}"

if [[ "${1:-}" == "--print-dir" ]]; then
  echo "$dir"
  exit 0
fi

mkdir -p "$dir"
missing=()
for b in "${BINARIES[@]}"; do
  [[ -x "$dir/$b" ]] || missing+=("$b")
done

if ((${#missing[@]} == 0)); then
  log "all ${#BINARIES[@]} binaries present in $dir"
  echo "$dir"
  exit 0
fi

minor=${K8S_VERSION#v1.}
minor=${minor%%.*}
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
ldflags+=" -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}"
ldflags+=" -s -w"

pkgs=()
for b in "${missing[@]}"; do
  case "$b" in
    etcd) pkgs+=(./etcd) ;;
    kwok) pkgs+=(sigs.k8s.io/kwok/cmd/kwok) ;;
    *) pkgs+=("k8s.io/kubernetes/cmd/$b") ;;
  esac
done

log "building ${missing[*]} ($K8S_VERSION, kwok $KWOK_VERSION) into $dir"
log "a cold build takes about 5-11 minutes and ~4 GB of Go build cache; later runs take seconds"
tmp=$(mktemp -d "$dir/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
(
  cd "$envdir"
  # -v lists each package as it is compiled: that is the progress.
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/" -v "${pkgs[@]}" 2>&1 |
    awk -v start="$(date +%s)" '{ n++; if (n % 100 == 0) { printf "k8s-assets: %d packages compiled (%ds)\n", n, systime() - start > "/dev/stderr"; fflush("/dev/stderr") } }'
  exit "${PIPESTATUS[0]}"
)
for b in "${missing[@]}"; do
  if [[ ! -x "$tmp/$b" ]]; then
    log "build did not produce $b"
    exit 1
  fi
  mv -f "$tmp/$b" "$dir/$b"
done
log "built ${missing[*]} in $((SECONDS - start))s"
echo "$dir"
