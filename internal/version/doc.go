// Package version owns what kustode reports about its own build: the release
// version and commit (set at link time by the Makefile), the Go toolchain, and
// the Kubernetes minor version of the client libraries it was built against
// (read from the binary's embedded module information, so it cannot drift
// from go.mod).
package version
