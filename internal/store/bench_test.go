package store

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/kustode/kustode/internal/finding"
)

// benchBackends runs fn against a fresh store of each backend; PostgreSQL
// only when KUSTODE_TEST_POSTGRES is set (benchmarks never fail for it).
func benchBackends(b *testing.B, fn func(b *testing.B, s *Store)) {
	b.Run("sqlite", func(b *testing.B) {
		fn(b, openStore(b, sqliteURL(b)))
	})
	b.Run("postgres", func(b *testing.B) {
		url := os.Getenv(pgEnv)
		if url == "" {
			b.Skipf("set %s to benchmark PostgreSQL", pgEnv)
		}
		fn(b, openStore(b, postgresSchemaURL(b, url)))
	})
}

// clusterFindings returns n findings spread over n/10 pods in 20
// namespaces, as a posture evaluation of a cluster reports them; variant
// changes every message (so every key).
func clusterFindings(n, variant int) []finding.Finding {
	checks := []string{"privileged", "run-as-root", "no-limits", "host-path", "latest-tag"}
	out := make([]finding.Finding, n)
	for i := range out {
		pod := i / 10
		o := finding.ObjectRef{APIVersion: "v1", Kind: "Pod", Namespace: fmt.Sprintf("ns-%d", pod%20), Name: fmt.Sprintf("pod-%d", pod)}
		f := fnd(checks[i%len(checks)], o, finding.Severity(i%5), fmt.Sprintf("container c%d: problem %d (v%d)", i%10, i, variant))
		f.Frameworks = finding.Frameworks{PSS: "baseline", CIS: []string{"5.2.1"}, MITRE: []string{"T1611"}}
		out[i] = f
	}
	return out
}

// BenchmarkSyncFindings is a full resync (Scope.All) of a cluster's
// findings: "steady" reports the same findings as the previous evaluation
// (every one kept), "churn" alternates between two sets (every finding
// resolved, the other set reopened).
func BenchmarkSyncFindings(b *testing.B) {
	for _, n := range []int{10_000, 50_000} {
		for _, mode := range []string{"steady", "churn"} {
			if n > 10_000 && mode == "churn" {
				continue
			}
			b.Run(fmt.Sprintf("n=%d/%s", n, mode), func(b *testing.B) {
				benchBackends(b, func(b *testing.B, s *Store) {
					sets := [][]finding.Finding{clusterFindings(n, 0), clusterFindings(n, 1)}
					now := base
					for _, set := range sets {
						if _, err := s.SyncFindings(b.Context(), all, set, now); err != nil {
							b.Fatal(err)
						}
					}
					i := 0
					for b.Loop() {
						i++
						now = now.Add(time.Minute)
						set := sets[1]
						if mode == "churn" {
							set = sets[(i+1)%2]
						}
						if _, err := s.SyncFindings(b.Context(), all, set, now); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(i*n), "ns/finding")
				})
			})
		}
	}
}

// BenchmarkAddAlerts stores alerts in batches of 1 (an alert as it fires)
// and of 100 (a burst).
func BenchmarkAddAlerts(b *testing.B) {
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			benchBackends(b, func(b *testing.B, s *Store) {
				batch := make([]finding.Alert, size)
				for i := range batch {
					batch[i] = finding.Alert{
						Rule: "exec-into-pod", Title: "Exec into a pod", Severity: finding.High, MITRE: []string{"T1609"},
						Time: base, AuditIDs: []string{"0b7e6f5c-3a5e-4b8e-9d55-1f0e4b8a2c11"}, User: "alice",
						Groups: []string{"system:authenticated"}, SourceIPs: []string{"10.0.0.1"}, Verb: "create",
						Namespace: "prod", Object: "pods/exec web-1", Message: "alice exec'd into prod/web-1",
					}
				}
				n := 0
				for b.Loop() {
					if _, err := s.AddAlerts(b.Context(), batch); err != nil {
						b.Fatal(err)
					}
					n += size
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "alerts/s")
			})
		})
	}
}

// BenchmarkFindings lists the newest open findings of a 50,000-finding
// store, unfiltered (the dashboard's first page) and by namespace.
func BenchmarkFindings(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *Store) {
		if _, err := s.SyncFindings(b.Context(), all, clusterFindings(50_000, 0), base); err != nil {
			b.Fatal(err)
		}
		for _, tt := range []struct {
			name   string
			filter FindingFilter
		}{
			{"open", FindingFilter{Status: StatusOpen}},
			{"namespace", FindingFilter{Namespace: "ns-7", Status: StatusOpen}},
		} {
			b.Run(tt.name, func(b *testing.B) {
				for b.Loop() {
					if _, err := s.Findings(b.Context(), tt.filter); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	})
}
