// Package kube owns kustode's view of Kubernetes objects that is shared by
// every source (manifests and the live cluster): today, the one accessor
// that finds the pod template inside every workload kind, at any apiVersion.
package kube
