package web

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/store"
)

// BenchmarkFindings measures an authenticated GET /api/v1/findings of 100
// findings once TokenReview and SubjectAccessReview answers are cached: the
// cost of the API layer itself (auth cache, query parsing, JSON, metrics).
func BenchmarkFindings(b *testing.B) {
	c := newFakeCluster()
	fs := newFakeStore()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	fs.findings = nil
	for i := range 100 {
		fs.findings = append(fs.findings, store.Finding{
			Finding: finding.Finding{
				CheckID: "pss-privileged", Severity: finding.High, Title: "Privileged container",
				Message:     fmt.Sprintf("container %q runs privileged", "app"),
				Object:      finding.ObjectRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: fmt.Sprintf("web-%d", i)},
				Remediation: "Remove securityContext.privileged.",
				Frameworks:  finding.Frameworks{PSS: "baseline", CIS: []string{"5.2.1"}},
			},
			Key: fmt.Sprint(i), Status: store.StatusOpen, FirstSeen: t0, LastSeen: t0,
		})
	}
	s, err := New(Options{Listen: ":0", Store: fs, Auth: []Auth{KubernetesAuth(c, KubernetesOptions{CacheTTL: time.Hour})}})
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	serve := func() {
		r := httptest.NewRequestWithContext(b.Context(), http.MethodGet, "/api/v1/findings?severity=high,critical&namespace=shop&limit=100", nil)
		r.Header.Set("Authorization", "Bearer alice-sa-token")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	serve() // fill the caches
	b.ReportAllocs()
	for b.Loop() {
		serve()
	}
	if n := c.tokenReviews.Load() + c.accessReviews.Load(); n != 2 {
		b.Fatalf("%d reviews, want 2: the caches missed", n)
	}
}
