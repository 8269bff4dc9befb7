package detect

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kustode/kustode/internal/audit"
)

// BenchmarkWebhookToAlert measures the latency from the moment the API
// server would start POSTing a batch to the moment every event of it has
// been through the default rules, at 10,000 events/s (batches of 100 every
// 10 ms) through kustode's real webhook handler on loopback. It reports the
// median and 99th percentile per batch; each event's latency is at most its
// batch's. b.N counts batches; run with -benchtime=200x or more.
func BenchmarkWebhookToAlert(b *testing.B) {
	engine, err := NewEngine(Options{})
	if err != nil {
		b.Fatal(err)
	}
	auth, err := audit.NewTokenAuthenticator("bench-token")
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	done := map[string]time.Time{}
	handler, err := audit.NewWebhookHandler(audit.SinkFunc(func(_ context.Context, events []audit.Event) error {
		for i := range events {
			engine.Evaluate(&events[i])
		}
		mu.Lock()
		done[events[0].AuditID] = time.Now()
		mu.Unlock()
		return nil
	}), audit.WebhookOptions{Authenticator: auth})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(handler)
	defer srv.Close()

	pool := benchEvents(1000)
	batch := func(n int) []byte {
		items := make([]audit.Event, 100)
		for i := range items {
			items[i] = pool[(n*100+i)%len(pool)]
			items[i].AuditID = "b" + strconv.Itoa(n) + "-" + strconv.Itoa(i)
		}
		body, _ := json.Marshal(map[string]any{"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items})
		return body
	}
	bodies := make([][]byte, b.N)
	for n := range bodies {
		bodies[n] = batch(n)
	}
	sent := make([]time.Time, b.N)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var wg sync.WaitGroup
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		<-tick.C
		sent[n] = time.Now()
		wg.Add(1)
		go func(body []byte) {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL, bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer bench-token")
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			resp.Body.Close()
		}(bodies[n])
	}
	wg.Wait()
	b.StopTimer()
	lat := make([]time.Duration, 0, b.N)
	for n := range b.N {
		mu.Lock()
		t, ok := done["b"+strconv.Itoa(n)+"-0"]
		mu.Unlock()
		if ok {
			lat = append(lat, t.Sub(sent[n]))
		}
	}
	if len(lat) == 0 {
		b.Fatal("no batch completed")
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
