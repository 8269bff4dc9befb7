//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/kustode/kustode/internal/controlplane"
)

// One control plane serves every test in this package.
var (
	cp    *controlplane.ControlPlane
	audit = &auditSink{}
)

// Test identities. alice is an ordinary developer; her rights come only from
// the RBAC objects the tests create.
const (
	alice    = "alice"
	devGroup = "developers"
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// The API server's audit webhook posts to one TLS endpoint that feeds
	// both the test's own record (auditLog) and kustode's real receiver,
	// which authenticates the API server by bearer token and runs the
	// default detection rules (see detect_test.go).
	receiver, err := newDetector()
	detections = receiver
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	hook := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		audit.record(body)
		forwardAudit(r, body)
		r2 := r.Clone(r.Context())
		r2.Body = io.NopCloser(bytes.NewReader(body))
		receiver.handler.ServeHTTP(w, r2)
	}))
	defer hook.Close()
	hookCA := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hook.Certificate().Raw})

	start := time.Now()
	cp, err = controlplane.Start(ctx, controlplane.Options{
		Users:             []controlplane.User{{Name: alice, Groups: []string{devGroup}}},
		AuditWebhookURL:   hook.URL,
		AuditWebhookToken: webhookToken,
		AuditWebhookCA:    hookCA,
		ControllerManager: true,
		Scheduler:         true,
		Kwok:              true,
		Progress:          os.Stderr,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: start control plane: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: control plane ready in %s at %s (pids %v)\n",
		time.Since(start).Round(time.Millisecond), cp.URL, cp.PIDs())
	code := m.Run()
	if err := cp.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// auditEvent is the part of an audit.k8s.io/v1 Event the smoke test reads.
type auditEvent struct {
	AuditID string `json:"auditID"`
	Stage   string `json:"stage"`
	Verb    string `json:"verb"`
	User    struct {
		Username string   `json:"username"`
		Groups   []string `json:"groups"`
	} `json:"user"`
	ObjectRef *struct {
		Resource  string `json:"resource"`
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
		APIGroup  string `json:"apiGroup"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// auditSink records what the API server's audit webhook posts, decoded
// independently of kustode's receiver.
type auditSink struct {
	mu     sync.Mutex
	events []auditEvent
}

func (s *auditSink) record(body []byte) {
	var list struct {
		Kind  string       `json:"kind"`
		Items []auditEvent `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil || list.Kind != "EventList" {
		fmt.Fprintf(os.Stderr, "e2e: webhook body is not an EventList: %v\n", err)
		return
	}
	s.mu.Lock()
	s.events = append(s.events, list.Items...)
	s.mu.Unlock()
}

func (s *auditSink) snapshot() []auditEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]auditEvent(nil), s.events...)
}

// forwards are further audit webhook receivers (a running kustode serve)
// that get a copy of every batch the API server posts, as the API server
// would send it.
var forwards struct {
	sync.Mutex
	targets map[string]string // URL → bearer token
}

// addAuditForward sends a copy of the audit webhook traffic to url, with
// token as bearer, until the test ends.
func addAuditForward(t *testing.T, url, token string) {
	t.Helper()
	forwards.Lock()
	if forwards.targets == nil {
		forwards.targets = map[string]string{}
	}
	forwards.targets[url] = token
	forwards.Unlock()
	t.Cleanup(func() {
		forwards.Lock()
		delete(forwards.targets, url)
		forwards.Unlock()
	})
}

func forwardAudit(r *http.Request, body []byte) {
	forwards.Lock()
	defer forwards.Unlock()
	for url, token := range forwards.targets {
		req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			continue
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: forward audit batch to %s: %v\n", url, err)
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
}
