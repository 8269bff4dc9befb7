package web

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "kustode test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestStart(t *testing.T) {
	certFile, keyFile, pool := writeCert(t)
	tests := []struct {
		name   string
		tls    bool
		scheme string
	}{
		{"plain", false, "http"},
		{"tls", true, "https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			static, err := StaticTokenAuth("static-token-0123456789")
			if err != nil {
				t.Fatal(err)
			}
			opts := Options{Listen: "127.0.0.1:0", Store: newFakeStore(), Auth: []Auth{static}}
			client := &http.Client{Timeout: 10 * time.Second}
			if tt.tls {
				opts.TLSCertFile, opts.TLSKeyFile = certFile, keyFile
				client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
			}
			s, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			if s.Addr() != nil {
				t.Errorf("Addr() = %v before Start", s.Addr())
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- s.Start(ctx) }()
			var addr net.Addr
			for deadline := time.Now().Add(10 * time.Second); addr == nil; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("server did not listen")
				}
				addr = s.Addr()
			}
			base := tt.scheme + "://" + addr.String()

			get := func(path, token string) (int, string) {
				req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				res, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				b, _ := io.ReadAll(res.Body)
				return res.StatusCode, string(b)
			}
			if code, body := get("/healthz", ""); code != 200 || body != "ok\n" {
				t.Errorf("/healthz = %d %q", code, body)
			}
			if code, _ := get("/api/v1/alerts", ""); code != 401 {
				t.Errorf("/api/v1/alerts without token = %d", code)
			}
			if code, body := get("/api/v1/alerts", "static-token-0123456789"); code != 200 || !strings.Contains(body, "exec-into-pod") {
				t.Errorf("/api/v1/alerts = %d %s", code, body)
			}
			if err := s.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "already started") {
				t.Errorf("second Start() = %v", err)
			}

			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Start() = %v after cancel, want nil", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("Start did not return after cancel")
			}
			client.CloseIdleConnections()
		})
	}
}

func TestStartListenerAndListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	static, err := StaticTokenAuth("static-token-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	// The address is taken by ln, so listening on it fails.
	s, err := New(Options{Listen: ln.Addr().String(), Store: newFakeStore(), Auth: []Auth{static}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("Start() on a taken address = %v", err)
	}

	// A given listener is served (and closed on shutdown).
	s, err = New(Options{Listener: ln, Store: newFakeStore(), Auth: []Auth{static}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+ln.Addr().String()+"/healthz", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("/healthz = %d", res.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Start() = %v", err)
	}
}
