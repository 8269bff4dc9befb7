// Package controlplane runs a real, local Kubernetes control plane: etcd and
// kube-apiserver, and optionally kube-controller-manager, kube-scheduler and
// kwok (fake nodes whose pods "run" and report CPU and memory usage). It is
// what kustode's end-to-end tests run against and what `kustode demo` starts.
//
// Everything listens on 127.0.0.1 on free ports. The API server is configured
// as a production cluster is in the ways that matter to a security monitor:
// TLS with its own CA, static-token users with groups, service-account token
// signing (TokenRequest works), Node,RBAC authorization, an audit policy,
// an audit log file and an audit webhook to a URL the caller chooses.
//
// Binaries come from a directory laid out like KUBEBUILDER_ASSETS (see
// AssetsDir and hack/k8s-assets.sh). A missing binary is an error, never a
// silent skip. Processes are stopped by PID, the API server before etcd.
package controlplane
