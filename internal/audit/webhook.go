package audit

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
)

// DefaultMaxBodyBytes is the default limit on a webhook request body, after
// decompression. The API server's batching backend sends at most
// --audit-webhook-batch-max-size events (400 by default) per request; at a
// few KB per event that is well under this limit, while events that carry
// large request and response objects still fit.
const DefaultMaxBodyBytes = 32 << 20

// maxMalformedLogs is how many bad items of one request are logged one by
// one; the rest are counted and summarised.
const maxMalformedLogs = 5

// WebhookOptions configure a WebhookHandler.
type WebhookOptions struct {
	// Authenticator decides who may post events. Required: use
	// NewTokenAuthenticator, NewClientCertAuthenticator or AnyOf of both.
	Authenticator Authenticator
	// MaxBodyBytes limits a request body, compressed and decompressed
	// alike. Zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger receives refused requests and malformed events. Nil discards.
	Logger *slog.Logger
}

// WebhookHandler is the receiving end of the API server's audit webhook
// backend: an http.Handler for POSTed audit.k8s.io/v1 (or v1beta1)
// EventLists, as sent in both batch and blocking mode, optionally with
// Content-Encoding: gzip.
//
// It answers 2xx once the Sink accepted the events, and otherwise:
//
//   - 405 for a method other than POST;
//   - 401 or 403 when the Authenticator refuses the sender;
//   - 415 for a content encoding other than gzip or a non-JSON content type;
//   - 413 when the body, compressed or not, exceeds MaxBodyBytes;
//   - 400 when the body is not a JSON EventList;
//   - 503 when the Sink returns an error, so that the API server retries.
//
// An item of a valid EventList that is not an audit event is counted as
// malformed, logged and skipped; the other items are accepted. The handler
// serves requests concurrently and keeps serving after any refusal.
type WebhookHandler struct {
	sink     Sink
	auth     Authenticator
	maxBytes int64
	log      *slog.Logger
	stats    counters
	bufs     sync.Pool // *bytes.Buffer
	batches  sync.Pool // *[]Event
}

var _ http.Handler = (*WebhookHandler)(nil)

// NewWebhookHandler returns a handler that passes the events it receives to
// sink.
func NewWebhookHandler(sink Sink, opts WebhookOptions) (*WebhookHandler, error) {
	if sink == nil {
		return nil, errors.New("audit webhook: no sink")
	}
	if opts.Authenticator == nil {
		return nil, errors.New("audit webhook: no authenticator")
	}
	if opts.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("audit webhook: negative body limit %d", opts.MaxBodyBytes)
	}
	h := &WebhookHandler{
		sink:     sink,
		auth:     opts.Authenticator,
		maxBytes: opts.MaxBodyBytes,
		log:      opts.Logger,
	}
	if h.maxBytes == 0 {
		h.maxBytes = DefaultMaxBodyBytes
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h, nil
}

// Stats returns the handler's counters. Received and Dropped count events,
// Malformed counts bad EventList items and bodies that are not an
// EventList, Rejected counts requests refused before decoding.
func (h *WebhookHandler) Stats() Stats { return h.stats.snapshot() }

// ServeHTTP handles one POST of an EventList.
func (h *WebhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.refuse(w, r, http.StatusMethodNotAllowed, "method not allowed", nil)
		return
	}
	sender, err := h.auth.Authenticate(r)
	if err != nil {
		if errors.Is(err, ErrForbidden) {
			h.refuse(w, r, http.StatusForbidden, "forbidden", err)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="kustode audit webhook"`)
		h.refuse(w, r, http.StatusUnauthorized, "unauthorized", err)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || !strings.Contains(mt, "json") {
			h.refuse(w, r, http.StatusUnsupportedMediaType, "content type must be application/json", nil)
			return
		}
	}
	if r.ContentLength > h.maxBytes {
		h.refuse(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", h.maxBytes), nil)
		return
	}

	buf := h.getBuffer()
	defer h.putBuffer(buf)
	if status, msg, err := h.readBody(w, r, buf); status != 0 {
		if status == http.StatusBadRequest {
			h.stats.malformed.Add(1)
			h.log.Warn("audit webhook: unreadable body", "remote_addr", r.RemoteAddr, "sender", sender, "error", err)
			http.Error(w, msg, status)
			return
		}
		h.refuse(w, r, status, msg, err)
		return
	}

	events := h.getBatch()
	defer h.putBatch(events)
	bad := 0
	err = decodeEventList(buf.Bytes(),
		func(e *Event) { *events = append(*events, *e) },
		func(i int, err error) {
			bad++
			if bad <= maxMalformedLogs {
				h.log.Warn("audit webhook: skipped malformed event", "remote_addr", r.RemoteAddr, "sender", sender,
					"item", i+1, "error", err)
			}
		})
	if err != nil {
		h.stats.malformed.Add(1)
		h.log.Warn("audit webhook: body is not an EventList", "remote_addr", r.RemoteAddr, "sender", sender,
			"bytes", buf.Len(), "error", err)
		http.Error(w, "body is not an audit EventList: "+err.Error(), http.StatusBadRequest)
		return
	}
	if bad > 0 {
		h.stats.malformed.Add(uint64(bad))
		if bad > maxMalformedLogs {
			h.log.Warn("audit webhook: skipped more malformed events", "remote_addr", r.RemoteAddr, "sender", sender,
				"count", bad-maxMalformedLogs)
		}
	}
	n := uint64(len(*events))
	if n == 0 {
		w.WriteHeader(http.StatusOK)
		return
	}
	if err := h.sink.Receive(r.Context(), *events); err != nil {
		h.stats.dropped.Add(n)
		h.log.Error("audit webhook: sink refused events; the API server will retry", "sender", sender,
			"events", n, "error", err)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "events not accepted, retry", http.StatusServiceUnavailable)
		return
	}
	h.stats.received.Add(n)
	w.WriteHeader(http.StatusOK)
}

// readBody reads the request body, decompressed, into buf within the size
// limit. It returns a non-zero status and message when the body cannot be
// used.
func (h *WebhookHandler) readBody(w http.ResponseWriter, r *http.Request, buf *bytes.Buffer) (int, string, error) {
	body := http.MaxBytesReader(w, r.Body, h.maxBytes)
	var src io.Reader = body
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		if r.ContentLength > 0 {
			buf.Grow(int(r.ContentLength))
		}
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return readError(err, "gzip header")
		}
		defer func() { _ = zr.Close() }()
		// Limit what gzip produces too: a small body can inflate to
		// gigabytes.
		src = io.LimitReader(zr, h.maxBytes+1)
	default:
		return http.StatusUnsupportedMediaType, "unsupported content encoding " + enc, nil
	}
	if _, err := buf.ReadFrom(src); err != nil {
		return readError(err, "body")
	}
	if int64(buf.Len()) > h.maxBytes {
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("decompressed body larger than %d bytes", h.maxBytes), nil
	}
	return 0, "", nil
}

func readError(err error, what string) (int, string, error) {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", tooLarge.Limit), err
	}
	return http.StatusBadRequest, "cannot read " + what + ": " + err.Error(), fmt.Errorf("read %s: %w", what, err)
}

// refuse answers a request refused before its events were decoded.
func (h *WebhookHandler) refuse(w http.ResponseWriter, r *http.Request, status int, msg string, err error) {
	h.stats.rejected.Add(1)
	attrs := []any{"status", status, "method", r.Method, "remote_addr", r.RemoteAddr}
	if err != nil {
		attrs = append(attrs, "error", err)
	}
	h.log.Warn("audit webhook: request refused", attrs...)
	http.Error(w, msg, status)
}

// Buffers and batches are pooled: at thousands of events per second the
// handler would otherwise allocate megabytes per request. Very large ones
// are left to the garbage collector so that one burst does not pin memory.
const maxPooledBuffer = 4 << 20

func (h *WebhookHandler) getBuffer() *bytes.Buffer {
	if b, ok := h.bufs.Get().(*bytes.Buffer); ok {
		return b
	}
	return new(bytes.Buffer)
}

func (h *WebhookHandler) putBuffer(b *bytes.Buffer) {
	if b.Cap() > maxPooledBuffer {
		return
	}
	b.Reset()
	h.bufs.Put(b)
}

func (h *WebhookHandler) getBatch() *[]Event {
	if b, ok := h.batches.Get().(*[]Event); ok {
		return b
	}
	b := make([]Event, 0, 64)
	return &b
}

func (h *WebhookHandler) putBatch(b *[]Event) {
	if cap(*b) > 4096 {
		return
	}
	clear(*b) // drop references to the events the sink may keep
	*b = (*b)[:0]
	h.batches.Put(b)
}
