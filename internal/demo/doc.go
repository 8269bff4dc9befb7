// Package demo runs `kustode demo`: the whole of kustode on a laptop with
// nothing but Go. It starts a local control plane (etcd, kube-apiserver,
// kube-controller-manager; binaries built on first use), starts serve wired
// to the API server's audit webhook, applies a workload set with known
// misconfigurations, plays a scripted attack, and prints what kustode found
// and where to look. Everything it started is stopped by PID on return.
package demo
