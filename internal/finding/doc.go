// Package finding is kustode's core vocabulary: severities, references to
// Kubernetes objects, where an object came from, and the Finding a posture
// check reports. It imports nothing else from kustode, so every other
// package can use it.
package finding
