// Package e2e holds kustode's end-to-end tests. They run against a real
// control plane (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok) started by internal/controlplane, and are built
// only with the e2e build tag: run them with `make e2e`.
package e2e
