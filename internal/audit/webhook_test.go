package audit

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kustode/kustode/internal/audit/audittest"
)

const testToken = "s3cr3t-audit-token"

// recordingSink keeps what it receives; fail makes it refuse.
type recordingSink struct {
	mu     sync.Mutex
	events []Event
	calls  int
	fail   error
}

func (s *recordingSink) Receive(_ context.Context, events []Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.fail != nil {
		return s.fail
	}
	s.events = append(s.events, events...)
	return nil
}

func (s *recordingSink) received() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

func (s *recordingSink) setFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

func gzipBytes(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func newTestWebhook(t *testing.T, sink Sink, maxBytes int64) *WebhookHandler {
	t.Helper()
	auth, err := NewTokenAuthenticator(testToken)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewWebhookHandler(sink, WebhookOptions{Authenticator: auth, MaxBodyBytes: maxBytes, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestWebhookHandler(t *testing.T) {
	list := audittest.SampleEventList(3)
	bigButCompressible := []byte(`{"items":[],"metadata":{"pad":"` + strings.Repeat("a", 4096) + `"}}`)
	tests := []struct {
		name       string
		method     string
		token      string
		header     map[string]string
		body       []byte
		chunked    bool // hide the length, as a streaming client would
		sinkErr    error
		maxBytes   int64 // body limit; 0 for the default
		wantStatus int
		wantEvents int
		wantStats  Stats
	}{
		{name: "batch", body: list, wantStatus: 200, wantEvents: 3, wantStats: Stats{Received: 3}},
		{name: "blocking mode: one event", body: audittest.SampleEventList(1), wantStatus: 200, wantEvents: 1, wantStats: Stats{Received: 1}},
		{name: "gzip", body: gzipBytes(t, list), header: map[string]string{"Content-Encoding": "gzip"}, wantStatus: 200, wantEvents: 3, wantStats: Stats{Received: 3}},
		{name: "empty list", body: []byte(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[]}`), wantStatus: 200},
		{name: "v1beta1 list", body: []byte(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1beta1","items":[{"kind":"Event","apiVersion":"audit.k8s.io/v1beta1","timestamp":"2017-09-11T19:55:05Z","verb":"get"}]}`), wantStatus: 200, wantEvents: 1, wantStats: Stats{Received: 1}},
		{name: "bad item skipped", body: []byte(`{"items":[{"verb":"get"},{"verb":["x"]},{"verb":"list"}]}`), wantStatus: 200, wantEvents: 2, wantStats: Stats{Received: 2, Malformed: 1}},
		{name: "GET", method: http.MethodGet, wantStatus: 405, wantStats: Stats{Rejected: 1}},
		{name: "no token", token: "-", body: list, wantStatus: 401, wantStats: Stats{Rejected: 1}},
		{name: "wrong token", token: "guess", body: list, wantStatus: 401, wantStats: Stats{Rejected: 1}},
		{name: "malformed JSON", body: []byte(`{"items":[{"verb":"get"}`), wantStatus: 400, wantStats: Stats{Malformed: 1}},
		{name: "not an EventList", body: []byte(`[{"verb":"get"}]`), wantStatus: 400, wantStats: Stats{Malformed: 1}},
		{name: "corrupt gzip", body: []byte("\x1f\x8bnot gzip"), header: map[string]string{"Content-Encoding": "gzip"}, wantStatus: 400, wantStats: Stats{Malformed: 1}},
		{name: "too large", maxBytes: 1024, body: bytes.Repeat([]byte(" "), 2048), wantStatus: 413, wantStats: Stats{Rejected: 1}},
		{name: "too large, chunked", maxBytes: 1024, body: bytes.Repeat([]byte(" "), 2048), chunked: true, wantStatus: 413, wantStats: Stats{Rejected: 1}},
		{name: "too large once decompressed", maxBytes: 1024, body: gzipBytes(t, bigButCompressible), header: map[string]string{"Content-Encoding": "gzip"}, wantStatus: 413, wantStats: Stats{Rejected: 1}},
		{name: "unknown encoding", body: list, header: map[string]string{"Content-Encoding": "br"}, wantStatus: 415, wantStats: Stats{Rejected: 1}},
		{name: "not JSON", body: list, header: map[string]string{"Content-Type": "application/vnd.kubernetes.protobuf"}, wantStatus: 415, wantStats: Stats{Rejected: 1}},
		{name: "sink fails", body: list, sinkErr: errors.New("queue full"), wantStatus: 503, wantStats: Stats{Dropped: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &recordingSink{fail: tt.sinkErr}
			h := newTestWebhook(t, sink, tt.maxBytes)
			srv := httptest.NewServer(h)
			defer srv.Close()

			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			var body io.Reader = bytes.NewReader(tt.body)
			if tt.chunked {
				body = io.MultiReader(body) // no length known to the client
			}
			req, err := http.NewRequestWithContext(t.Context(), method, srv.URL, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			switch tt.token {
			case "":
				req.Header.Set("Authorization", "Bearer "+testToken)
			case "-":
			default:
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if got := len(sink.received()); got != tt.wantEvents {
				t.Errorf("sink received %d events, want %d", got, tt.wantEvents)
			}
			if got := h.Stats(); got != tt.wantStats {
				t.Errorf("Stats() = %+v, want %+v", got, tt.wantStats)
			}
			if resp.StatusCode == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != "POST" {
				t.Errorf("405 without Allow: POST")
			}
			if resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}

			// Whatever happened, the handler keeps serving.
			sink.setFail(nil)
			if status := postEvents(t, srv.Client(), srv.URL, []byte(`{"items":[{"verb":"get"}]}`)); status != http.StatusOK {
				t.Fatalf("next request: status %d, want 200", status)
			}
		})
	}
}

// postEvents posts body with the test token and returns the status code.
func postEvents(t *testing.T, c *http.Client, url string, body []byte) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestWebhookHandlerConcurrent(t *testing.T) {
	sink := &recordingSink{}
	h := newTestWebhook(t, sink, 0)
	srv := httptest.NewServer(h)
	defer srv.Close()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				if status := postEvents(t, srv.Client(), srv.URL, audittest.SampleEventList(20)); status != http.StatusOK {
					t.Errorf("status %d", status)
				}
			}
		})
	}
	wg.Wait()
	if got := len(sink.received()); got != 8*10*20 {
		t.Fatalf("received %d events, want %d", got, 8*10*20)
	}
	seen := map[string]bool{}
	for _, e := range sink.received() {
		if e.AuditID == "" || e.User.Username == "" {
			t.Fatalf("event decoded incompletely: %+v", e)
		}
		seen[e.AuditID] = true
	}
	if len(seen) != 20 {
		t.Fatalf("%d distinct audit IDs, want 20: pooled batches leaked between requests", len(seen))
	}
}

func TestNewWebhookHandlerErrors(t *testing.T) {
	auth, _ := NewTokenAuthenticator("x")
	sink := SinkFunc(func(context.Context, []Event) error { return nil })
	for name, tc := range map[string]struct {
		sink Sink
		opts WebhookOptions
	}{
		"no sink":          {nil, WebhookOptions{Authenticator: auth}},
		"no authenticator": {sink, WebhookOptions{}},
		"negative limit":   {sink, WebhookOptions{Authenticator: auth, MaxBodyBytes: -1}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewWebhookHandler(tc.sink, tc.opts); err == nil || !strings.HasPrefix(err.Error(), "audit webhook: ") {
				t.Fatalf("NewWebhookHandler() error = %v", err)
			}
		})
	}
}

// testPKI is a CA and the certificates it signs, for client-certificate
// tests over real TLS.
type testPKI struct {
	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
	pool  *x509.CertPool
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &testPKI{ca: ca, caKey: key, pool: pool}
}

func (p *testPKI) clientCert(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestWebhookHandlerClientCertificates(t *testing.T) {
	pki := newTestPKI(t)
	other := newTestPKI(t)
	certAuth, err := NewClientCertAuthenticator("kube-apiserver-audit")
	if err != nil {
		t.Fatal(err)
	}
	tokenAuth, _ := NewTokenAuthenticator(testToken)
	tests := []struct {
		name       string
		auth       Authenticator
		cert       *tls.Certificate
		token      string
		wantStatus int
	}{
		{name: "allowed CN", auth: certAuth, cert: ptr(pki.clientCert(t, "kube-apiserver-audit")), wantStatus: 200},
		{name: "other CN", auth: certAuth, cert: ptr(pki.clientCert(t, "mallory")), wantStatus: 403},
		{name: "no certificate", auth: certAuth, wantStatus: 401},
		{name: "certificate from another CA", auth: certAuth, cert: ptr(other.clientCert(t, "kube-apiserver-audit")), wantStatus: -1},
		{name: "either: token", auth: AnyOf(certAuth, tokenAuth), token: testToken, wantStatus: 200},
		{name: "either: certificate", auth: AnyOf(certAuth, tokenAuth), cert: ptr(pki.clientCert(t, "kube-apiserver-audit")), wantStatus: 200},
		{name: "either: wrong CN and no token is 403", auth: AnyOf(certAuth, tokenAuth), cert: ptr(pki.clientCert(t, "mallory")), wantStatus: 403},
		{name: "either: nothing is 401", auth: AnyOf(certAuth, tokenAuth), wantStatus: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &recordingSink{}
			h, err := NewWebhookHandler(sink, WebhookOptions{Authenticator: tt.auth})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewUnstartedServer(h)
			srv.TLS = &tls.Config{ClientCAs: pki.pool, ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12}
			srv.Config.ErrorLog = log.New(io.Discard, "", 0) // expected handshake failures
			srv.StartTLS()
			defer srv.Close()
			client := srv.Client()
			tr := client.Transport.(*http.Transport).Clone()
			if tt.cert != nil {
				tr.TLSClientConfig.Certificates = []tls.Certificate{*tt.cert}
			}
			client = &http.Client{Transport: tr}
			defer tr.CloseIdleConnections()

			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, bytes.NewReader(audittest.SampleEventList(2)))
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := client.Do(req)
			if tt.wantStatus == -1 {
				// The TLS handshake itself fails: the server never
				// sees the request.
				if err == nil {
					resp.Body.Close()
					t.Fatalf("status %d; want the handshake to fail", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantStatus == 200 && len(sink.received()) != 2 {
				t.Fatalf("sink received %d events, want 2", len(sink.received()))
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestTokenAuthenticator(t *testing.T) {
	a, err := NewTokenAuthenticator("old-token", "new-token")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		header string
		want   error
	}{
		{"Bearer old-token", nil},
		{"Bearer new-token", nil},
		{"bearer new-token", nil},
		{"Bearer new-token2", ErrUnauthenticated},
		{"Bearer ", ErrUnauthenticated},
		{"Basic bmV3LXRva2Vu", ErrUnauthenticated},
		{"", ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			_, err := a.Authenticate(r)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Authenticate() = %v, want %v", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "token2") {
				t.Fatalf("error leaks the token: %v", err)
			}
		})
	}
	for _, bad := range [][]string{nil, {""}, {"ok", " "}} {
		if _, err := NewTokenAuthenticator(bad...); err == nil {
			t.Errorf("NewTokenAuthenticator(%q) accepted", bad)
		}
	}
	if _, err := NewClientCertAuthenticator(); err == nil {
		t.Error("NewClientCertAuthenticator() with no CN accepted")
	}
}

// TestClientCertAuthenticatorUnverified checks that a certificate the
// server did not verify (tls.RequestClientCert) proves nothing.
func TestClientCertAuthenticatorUnverified(t *testing.T) {
	pki := newTestPKI(t)
	cert := pki.clientCert(t, "kube-apiserver-audit")
	parsed, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	a, _ := NewClientCertAuthenticator("kube-apiserver-audit")
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{parsed}}
	if _, err := a.Authenticate(r); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("Authenticate() with an unverified certificate = %v", err)
	}
	r.TLS.VerifiedChains = [][]*x509.Certificate{{parsed, pki.ca}}
	if sender, err := a.Authenticate(r); err != nil || sender != "client certificate kube-apiserver-audit" {
		t.Fatalf("Authenticate() with a verified certificate = %q, %v", sender, err)
	}
}
