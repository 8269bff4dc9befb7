package audit

import (
	"context"
	"fmt"
	"sync/atomic"
)

// Defaults shared by the intakes.
const (
	// DefaultBatchSize is the most events handed to a Sink at once.
	DefaultBatchSize = 500
	// DefaultMaxLineBytes bounds one line or record: the API server
	// writes events with request and response objects of up to a few MiB
	// (etcd's object limit is 1.5 MiB, and an event can carry two).
	DefaultMaxLineBytes = 16 << 20
)

// Sink receives decoded events from an intake, in the order they arrived.
//
// A Follower and Read call Receive from one goroutine; a WebhookHandler calls
// it from the goroutine of each request, so concurrently. Receive may keep
// the Event values but not the slice, which the intake reuses once Receive
// returns. An error
// means the batch was not accepted: the webhook answers 503 so that the API
// server sends it again, the follower retries the same batch and does not
// move its offset past it. A Sink that blocks holds back the intake; that is
// the back-pressure the API server and the log file are meant to see.
type Sink interface {
	Receive(ctx context.Context, events []Event) error
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, events []Event) error

var _ Sink = SinkFunc(nil)

// Receive calls f.
func (f SinkFunc) Receive(ctx context.Context, events []Event) error {
	return f(ctx, events)
}

// Stats is a snapshot of an intake's counters since it was created. Each
// intake documents what it counts.
type Stats struct {
	// Received is events a Sink accepted.
	Received uint64
	// Dropped is events decoded but not accepted, because the Sink failed
	// and the intake cannot retry (the webhook: the API server retries).
	Dropped uint64
	// Malformed is records that could not be decoded and were skipped: a
	// line, an EventList item, or a whole webhook body that is not JSON.
	Malformed uint64
	// Rejected is webhook requests refused before decoding: wrong method,
	// authentication, size or content encoding.
	Rejected uint64
}

type counters struct {
	received, dropped, malformed, rejected atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Received:  c.received.Load(),
		Dropped:   c.dropped.Load(),
		Malformed: c.malformed.Load(),
		Rejected:  c.rejected.Load(),
	}
}

// RecordError is a record that was skipped because it is not an audit event,
// with where it was read: Source is a file name (or another name the caller
// gave the input), Line is its 1-based line when known, and Record its
// 1-based index among the records of Source when lines do not identify it
// (a pretty-printed document). Item is the 1-based index within a record
// that holds several events (an EventList, a CloudWatch export), else 0.
type RecordError struct {
	Source string
	Line   int
	Record int
	Item   int
	Err    error
}

func (e *RecordError) Error() string {
	loc := e.Source
	switch {
	case e.Line > 0:
		loc = fmt.Sprintf("%s:%d", loc, e.Line)
	case e.Record > 0:
		loc = fmt.Sprintf("%s: record %d", loc, e.Record)
	}
	if e.Item > 0 {
		loc = fmt.Sprintf("%s: item %d", loc, e.Item)
	}
	return loc + ": " + e.Err.Error()
}

func (e *RecordError) Unwrap() error { return e.Err }
