// Package posture runs posture checks over Kubernetes objects and collects
// their findings. A check is a value (see Check): a stable ID, its
// documentation and framework mappings, and a pure Run function. The same
// checks serve manifests and a live cluster. The checks themselves live in
// posture/checks.
package posture
