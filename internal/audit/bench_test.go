package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kustode/kustode/internal/audit/audittest"
)

// benchEvents is 1,000 sample events (about 1.7 KB each), one per element.
func benchEvents(b *testing.B) ([][]byte, int64) {
	b.Helper()
	events := make([][]byte, 1000)
	var total int64
	for i := range events {
		events[i] = audittest.SampleEvent(i)
		total += int64(len(events[i]))
	}
	return events, total
}

// BenchmarkDecodeEvent decodes one ~1.7 KB event per operation with
// DecodeEvent; events/s is 1e9 / ns/op.
func BenchmarkDecodeEvent(b *testing.B) {
	events, total := benchEvents(b)
	b.SetBytes(total / int64(len(events)))
	b.ReportAllocs()
	var e Event
	i := 0
	for b.Loop() {
		if err := DecodeEvent(events[i%len(events)], &e); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// stdEvent is Event without its methods: what encoding/json alone does.
type stdEvent Event

// BenchmarkDecodeEventEncodingJSON is the baseline: encoding/json into the
// same struct (without Event's UnmarshalJSON).
func BenchmarkDecodeEventEncodingJSON(b *testing.B) {
	events, total := benchEvents(b)
	b.SetBytes(total / int64(len(events)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		var e stdEvent
		if err := json.Unmarshal(events[i%len(events)], &e); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// discardSink accepts everything.
var discardSink = SinkFunc(func(context.Context, []Event) error { return nil })

// BenchmarkWebhook500 posts one 500-event EventList (about 850 KB) per
// operation to the handler, without the network: authentication, body
// reading, decoding, the sink call.
func BenchmarkWebhook500(b *testing.B) {
	for _, gz := range []bool{false, true} {
		name := "identity"
		if gz {
			name = "gzip"
		}
		b.Run(name, func(b *testing.B) {
			body := audittest.SampleEventList(500)
			raw := len(body)
			if gz {
				body = gzipBytes(b, body)
			}
			auth, _ := NewTokenAuthenticator(testToken)
			h, err := NewWebhookHandler(discardSink, WebhookOptions{Authenticator: auth})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(raw))
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/audit", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+testToken)
				req.Header.Set("Content-Type", "application/json")
				if gz {
					req.Header.Set("Content-Encoding", "gzip")
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
			b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkFollower follows a 20,000-event log (about 34 MB) from start to
// end per operation: reading, splitting lines, decoding, batches of 500 to
// the sink and, with offsets, an atomic fsync'ed position file per batch.
func BenchmarkFollower(b *testing.B) {
	const n = 20000
	dir := b.TempDir()
	path := filepath.Join(dir, "audit.log")
	data := audittest.SampleLines(n)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	for _, withOffsets := range []bool{false, true} {
		name := "no-offsets"
		if withOffsets {
			name = "file-offsets"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				opts := FollowerOptions{PollInterval: time.Millisecond}
				if withOffsets {
					store := filepath.Join(dir, "offset.json")
					_ = os.Remove(store)
					opts.Offsets = NewFileOffsetStore(store)
				}
				ctx, cancel := context.WithCancel(b.Context())
				got := 0
				sink := SinkFunc(func(_ context.Context, events []Event) error {
					if got += len(events); got == n {
						cancel()
					}
					return nil
				})
				f, err := NewFollower(path, sink, opts)
				if err != nil {
					b.Fatal(err)
				}
				if err := f.Start(ctx); err != nil {
					b.Fatal(err)
				}
				cancel()
				if got != n {
					b.Fatalf("followed %d events, want %d", got, n)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkRead replays 10,000 events as JSON lines per operation.
func BenchmarkRead(b *testing.B) {
	const n = 10000
	data := audittest.SampleLines(n)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		res, err := Read(b.Context(), bytes.NewReader(data), discardSink, ReadOptions{})
		if err != nil || res.Events != n {
			b.Fatalf("Read() = %d events, %v", res.Events, err)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
}
