// Package scale holds kustode's scale benchmark: `kustode serve`, run as its
// own process, against a real control plane with thousands of pods on kwok
// nodes. It measures serve's resident memory per watched pod and the time to
// its first full posture, and asserts only that serve works at that scale
// (ready, findings found, a clean exit), never timings or memory.
//
// It is built only with the scale build tag and is not part of `make test`:
// run it with `make bench-scale` (10,000 pods per population; a smaller
// number with KUSTODE_SCALE_PODS). The results are recorded in
// docs/performance.md.
package scale
