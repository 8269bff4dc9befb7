// Package helm pins the Helm CLI that renders kustode's chart into the plain
// manifests (make deploy-manifests) and that the deploy tests lint it with.
// It is a module of its own so that Helm's dependencies never reach kustode's
// go.mod. hack/helm.sh builds the pinned version from the Go module proxy into
// ~/.cache/kustode/helm/<version>/helm; nothing is downloaded as a prebuilt
// binary.
package helm
