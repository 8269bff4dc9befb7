package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kustode/kustode/internal/detect"
	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/posture"
	"github.com/kustode/kustode/internal/store"
	"github.com/kustode/kustode/internal/testutil"
)

var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// Tokens of the fake authenticator.
const (
	aliceToken  = "alice-token-0123456789"  // alice may do everything
	bobToken    = "bob-token-0123456789"    // bob is denied everything
	brokenToken = "broken-token-0123456789" // the authenticator fails
	carolToken  = "carol-token-0123456789"  // the authorizer fails for carol
)

// fakeAuth is an authenticator and authorizer that records what it was
// asked.
type fakeAuth struct {
	mu    sync.Mutex
	attrs []Attributes
}

func (f *fakeAuth) Authenticate(_ context.Context, token string) (User, error) {
	switch token {
	case aliceToken:
		return User{Name: "alice", Groups: []string{"sre"}}, nil
	case bobToken:
		return User{Name: "bob"}, nil
	case carolToken:
		return User{Name: "carol"}, nil
	case brokenToken:
		return User{}, errors.New("token review: connection refused to 10.0.0.1")
	}
	return User{}, fmt.Errorf("fake: %w", ErrUnauthenticated)
}

func (f *fakeAuth) Authorize(_ context.Context, u User, a Attributes) (bool, string, error) {
	f.mu.Lock()
	f.attrs = append(f.attrs, a)
	f.mu.Unlock()
	switch u.Name {
	case "alice":
		return true, "", nil
	case "carol":
		return false, "", errors.New("subject access review: timeout")
	}
	return false, fmt.Sprintf("user %q cannot %s: grant it with a ClusterRole", u.Name, a), nil
}

func (f *fakeAuth) last() Attributes {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.attrs) == 0 {
		return Attributes{}
	}
	return f.attrs[len(f.attrs)-1]
}

type testServer struct {
	*Server
	store   *fakeStore
	auth    *fakeAuth
	reg     *prometheus.Registry
	logs    *testutil.SyncBuffer
	changed int
	ready   []Condition
}

var testChecks = []*posture.Check{
	{ID: "pss-privileged", Title: "Privileged container", Severity: finding.High, Description: "d", Remediation: "r",
		Frameworks: finding.Frameworks{PSS: "baseline", CIS: []string{"5.2.2"}}},
	{ID: "no-network-policy", Title: "No NetworkPolicy", Severity: finding.Medium, Description: "d2", Remediation: "r2"},
}

func newTestServer(t testing.TB) *testServer {
	t.Helper()
	ts := &testServer{store: newFakeStore(), auth: &fakeAuth{}, reg: prometheus.NewRegistry(), logs: &testutil.SyncBuffer{}}
	s, err := New(Options{
		Listen: "127.0.0.1:0",
		Store:  ts.store,
		Rules: func() []detect.RuleInfo {
			return []detect.RuleInfo{{ID: "exec-into-pod", Title: "Exec", Severity: "high"}}
		},
		Checks:              testChecks,
		Readiness:           ReadinessFunc(func() []Condition { return ts.ready }),
		Auth:                []Auth{{Authenticator: ts.auth, Authorizer: ts.auth}},
		Registry:            ts.reg,
		Logger:              slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnExceptionsChanged: func() { ts.changed++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return testNow }
	ts.Server = s
	return ts
}

type req struct {
	method, target, token, body, contentType string
}

func (ts *testServer) do(t testing.TB, r req) *httptest.ResponseRecorder {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr := httptest.NewRequestWithContext(t.Context(), r.method, r.target, body)
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.contentType != "" {
		hr.Header.Set("Content-Type", r.contentType)
	} else if r.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	ts.Handler().ServeHTTP(w, hr)
	return w
}

func (ts *testServer) get(t testing.TB, target string) *httptest.ResponseRecorder {
	t.Helper()
	return ts.do(t, req{target: target, token: aliceToken})
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json; body %s", ct, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %s: %v", w.Body, err)
	}
	return v
}

func wantStatus(t *testing.T, w *httptest.ResponseRecorder, code int) {
	t.Helper()
	if w.Code != code {
		t.Fatalf("status = %d, want %d; body %s", w.Code, code, w.Body)
	}
}

// wantError checks an error answer: its code, JSON body, and that its
// message contains every fragment.
func wantError(t *testing.T, w *httptest.ResponseRecorder, code int, fragments ...string) errorBody {
	t.Helper()
	wantStatus(t, w, code)
	e := decode[errorBody](t, w)
	for _, f := range fragments {
		if !strings.Contains(e.Error, f) {
			t.Errorf("error %q does not contain %q", e.Error, f)
		}
	}
	return e
}

func TestNew(t *testing.T) {
	st := newFakeStore()
	auth := []Auth{{Authenticator: &fakeAuth{}, Authorizer: AllowAll}}
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no store", Options{Listen: ":0", Auth: auth}, "no store"},
		{"no auth", Options{Listen: ":0", Store: st}, "no authentication"},
		{"half auth", Options{Listen: ":0", Store: st, Auth: []Auth{{Authenticator: &fakeAuth{}}}}, "both required"},
		{"no address", Options{Store: st, Auth: auth}, "no listen address"},
		{"cert without key", Options{Listen: ":0", Store: st, Auth: auth, TLSCertFile: "c.pem"}, "both a certificate and a key"},
		{"missing key pair", Options{Listen: ":0", Store: st, Auth: auth, TLSCertFile: "nope.pem", TLSKeyFile: "nope.key"}, "load TLS key pair"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New() error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	t.Run("registry shared twice", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		opts := Options{Listen: ":0", Store: st, Auth: auth, Registry: reg}
		if _, err := New(opts); err != nil {
			t.Fatal(err)
		}
		if _, err := New(opts); err == nil {
			t.Fatal("second New on the same registry succeeded")
		}
	})
}

func TestAuthentication(t *testing.T) {
	ts := newTestServer(t)
	tests := []struct {
		name      string
		header    []string // Authorization values
		code      int
		challenge string // WWW-Authenticate
		fragment  string
	}{
		{"no header", nil, 401, `Bearer realm="kustode"`, "authentication required"},
		{"basic", []string{"Basic YWxpY2U6cHc="}, 401, `Bearer realm="kustode"`, "authentication required"},
		{"bearer without token", []string{"Bearer "}, 401, `Bearer realm="kustode"`, "authentication required"},
		{"two headers", []string{"Bearer " + aliceToken, "Bearer " + aliceToken}, 401, `Bearer realm="kustode"`, "authentication required"},
		{"token with space", []string{"Bearer a b"}, 401, `Bearer realm="kustode"`, "authentication required"},
		{"unknown token", []string{"Bearer nobody-0123456789"}, 401, `error="invalid_token"`, "invalid bearer token"},
		{"lowercase scheme", []string{"bearer " + aliceToken}, 200, "", ""},
		{"authenticator fails", []string{"Bearer " + brokenToken}, 500, "", "internal error"},
		{"denied", []string{"Bearer " + bobToken}, 403, "", `user "bob" cannot list findings.kustode.io: grant it with a ClusterRole`},
		{"authorizer fails", []string{"Bearer " + carolToken}, 500, "", "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/api/v1/findings", nil)
			for _, h := range tt.header {
				r.Header.Add("Authorization", h)
			}
			w := httptest.NewRecorder()
			ts.Handler().ServeHTTP(w, r)
			if tt.code == 200 {
				wantStatus(t, w, 200)
				return
			}
			e := wantError(t, w, tt.code, tt.fragment)
			if got := w.Header().Get("WWW-Authenticate"); !strings.Contains(got, tt.challenge) || (tt.challenge == "") != (got == "") {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.challenge)
			}
			if strings.Contains(e.Error, "10.0.0.1") || strings.Contains(e.Error, "timeout") {
				t.Errorf("error %q leaks internals", e.Error)
			}
		})
	}
	if logs := ts.logs.String(); !strings.Contains(logs, "connection refused to 10.0.0.1") || !strings.Contains(logs, "subject access review: timeout") {
		t.Errorf("internal errors not logged:\n%s", logs)
	}
}

// TestAuthFallThrough: the first Auth that accepts the token decides, and
// its own authorizer is asked.
func TestAuthFallThrough(t *testing.T) {
	static, err := StaticTokenAuth("static-token-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	fa := &fakeAuth{}
	s, err := New(Options{Listen: ":0", Store: newFakeStore(), Auth: []Auth{static, {Authenticator: fa, Authorizer: fa}}})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, auth: fa}
	wantStatus(t, ts.do(t, req{target: "/api/v1/rules", token: "static-token-0123456789"}), 200)
	if len(fa.attrs) != 0 {
		t.Errorf("static token user was authorized by the Kubernetes authorizer: %v", fa.attrs)
	}
	wantStatus(t, ts.do(t, req{target: "/api/v1/rules", token: bobToken}), 403)
	wantStatus(t, ts.do(t, req{target: "/api/v1/rules", token: "wrong-0123456789"}), 401)
	// One authenticator failing while none accepts is an internal error,
	// not a 401 that would make a valid token look invalid.
	wantStatus(t, ts.do(t, req{target: "/api/v1/rules", token: brokenToken}), 500)
}

func TestAuthorizationAttributes(t *testing.T) {
	ts := newTestServer(t)
	exc := `{"checks":["*"],"reason":"r","owner":"o","expires":"2026-07-01T00:00:00Z"}`
	tests := []struct {
		method, target, body string
		want                 Attributes
	}{
		{"GET", "/api/v1/findings", "", Attributes{"list", "findings"}},
		{"GET", "/api/v1/posture", "", Attributes{"get", "posture"}},
		{"GET", "/api/v1/posture/history", "", Attributes{"list", "posture"}},
		{"GET", "/api/v1/alerts", "", Attributes{"list", "alerts"}},
		{"GET", "/api/v1/alerts/7", "", Attributes{"get", "alerts"}},
		{"POST", "/api/v1/alerts/7/ack", "", Attributes{"update", "alerts"}},
		{"GET", "/api/v1/exceptions", "", Attributes{"list", "exceptions"}},
		{"POST", "/api/v1/exceptions", exc, Attributes{"create", "exceptions"}},
		{"POST", "/api/v1/exceptions/3/expire", "", Attributes{"update", "exceptions"}},
		{"GET", "/api/v1/rules", "", Attributes{"list", "rules"}},
		{"GET", "/api/v1/checks", "", Attributes{"list", "checks"}},
		{"GET", "/metrics", "", Attributes{"get", "metrics"}},
		{"GET", "/readyz", "", Attributes{"get", "readyz"}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			w := ts.do(t, req{method: tt.method, target: tt.target, token: aliceToken, body: tt.body})
			if w.Code >= 300 {
				t.Fatalf("status = %d; body %s", w.Code, w.Body)
			}
			if got := ts.auth.last(); got != tt.want {
				t.Errorf("attributes = %+v, want %+v", got, tt.want)
			}
			// Denied with a reason naming the permission.
			w = ts.do(t, req{method: tt.method, target: tt.target, token: bobToken, body: tt.body})
			wantError(t, w, 403, fmt.Sprintf(`user "bob" cannot %s`, tt.want))
		})
	}
}

func TestHealthz(t *testing.T) {
	ts := newTestServer(t)
	w := ts.do(t, req{target: "/healthz"})
	wantStatus(t, w, 200)
	if got := w.Body.String(); got != "ok\n" {
		t.Errorf("body = %q", got)
	}
}

func TestReadyz(t *testing.T) {
	ts := newTestServer(t)
	synced := Condition{Name: "informer pods synced", OK: true}
	forbidden := Condition{Name: "informer secrets synced", OK: false, Detail: "forbidden: list secrets"}
	advisory := Condition{Name: "kubelet-config", OK: false, Detail: "1 of 3 nodes not read", Advisory: true}
	type readyBody struct {
		Ready      bool        `json:"ready"`
		Conditions []Condition `json:"conditions"`
	}
	tests := []struct {
		name      string
		conds     []Condition
		token     string
		code      int
		plain     string     // body without a token
		wantConds *readyBody // body with a token
	}{
		{"no conditions", nil, "", 200, "ok\n", nil},
		{"ready, no token", []Condition{synced}, "", 200, "ok\n", nil},
		{"not ready, no token", []Condition{synced, forbidden}, "", 503, "not ready\n", nil},
		{"ready, token", []Condition{synced}, aliceToken, 200, "", &readyBody{true, []Condition{synced}}},
		{"not ready, token", []Condition{synced, forbidden}, aliceToken, 503, "", &readyBody{false, []Condition{synced, forbidden}}},
		{"no conditions, token", nil, aliceToken, 200, "", &readyBody{true, []Condition{}}},
		{"advisory only, token", []Condition{synced, advisory}, aliceToken, 200, "", &readyBody{true, []Condition{synced, advisory}}},
		{"advisory and not ready", []Condition{advisory, forbidden}, "", 503, "not ready\n", nil},
		{"bad token", []Condition{synced}, "nobody-0123456789", 401, "", nil},
		{"denied", []Condition{synced}, bobToken, 403, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts.ready = tt.conds
			w := ts.do(t, req{target: "/readyz", token: tt.token})
			wantStatus(t, w, tt.code)
			switch {
			case tt.plain != "":
				if w.Body.String() != tt.plain {
					t.Errorf("body = %q, want %q", w.Body, tt.plain)
				}
				if strings.Contains(w.Body.String(), "forbidden") {
					t.Errorf("unauthenticated body reveals detail: %s", w.Body)
				}
			case tt.wantConds != nil:
				if got := decode[readyBody](t, w); !reflect.DeepEqual(got, *tt.wantConds) {
					t.Errorf("body = %+v, want %+v", got, *tt.wantConds)
				}
			}
		})
	}
}

func TestFindings(t *testing.T) {
	ts := newTestServer(t)
	tests := []struct {
		query string
		want  store.FindingFilter
		param string // a 400 naming it when set
		frag  string
	}{
		{query: "", want: store.FindingFilter{}},
		{query: "namespace=shop&checkID=pss-privileged&status=open&limit=50",
			want: store.FindingFilter{Namespace: "shop", CheckID: "pss-privileged", Status: store.StatusOpen, Limit: 50}},
		{query: "severity=high,critical", want: store.FindingFilter{Severities: []finding.Severity{finding.High, finding.Critical}}},
		{query: "severity=HIGH&severity=low", want: store.FindingFilter{Severities: []finding.Severity{finding.High, finding.Low}}},
		{query: "severity=", want: store.FindingFilter{}},
		{query: "status=resolved", want: store.FindingFilter{Status: store.StatusResolved}},
		{query: "severity=high,urgent", param: "severity", frag: `unknown severity "urgent" (allowed: info, low, medium, high, critical)`},
		{query: "severity=high,", param: "severity", frag: "allowed: info, low"},
		{query: "status=closed", param: "status", frag: `unknown value "closed" (allowed: open, resolved)`},
		{query: "limit=0", param: "limit", frag: "integer from 1 to 10000"},
		{query: "limit=ten", param: "limit", frag: "integer from 1 to 10000"},
		{query: "limit=10001", param: "limit", frag: "integer from 1 to 10000"},
		{query: "namespace=a&namespace=b", param: "namespace", frag: "given 2 times"},
		{query: "serverity=high", param: "serverity", frag: "unknown parameter (allowed: namespace, severity, checkID, status, limit)"},
		{query: "namespace=%zz", frag: "malformed query"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			w := ts.get(t, "/api/v1/findings?"+tt.query)
			if tt.frag != "" {
				e := wantError(t, w, 400, tt.frag)
				if e.Parameter != tt.param {
					t.Errorf("parameter = %q, want %q", e.Parameter, tt.param)
				}
				if tt.param != "" && !strings.Contains(e.Error, `parameter "`+tt.param+`"`) {
					t.Errorf("error %q does not name the parameter", e.Error)
				}
				return
			}
			wantStatus(t, w, 200)
			if !reflect.DeepEqual(ts.store.findingFilter, tt.want) {
				t.Errorf("filter = %+v, want %+v", ts.store.findingFilter, tt.want)
			}
			got := decode[struct{ Findings []store.Finding }](t, w)
			if len(got.Findings) != 1 || got.Findings[0].CheckID != "pss-privileged" || got.Findings[0].Status != store.StatusOpen {
				t.Errorf("findings = %+v", got.Findings)
			}
		})
	}
}

// TestEmptyListsAreArrays: clients get [] rather than null.
func TestEmptyListsAreArrays(t *testing.T) {
	ts := newTestServer(t)
	ts.store.findings, ts.store.history = nil, nil
	ts.store.alerts, ts.store.exceptions = map[int64]store.Alert{}, map[int64]store.Exception{}
	for target, want := range map[string]string{
		"/api/v1/findings":        `{"findings":[]}`,
		"/api/v1/posture/history": `{"history":[]}`,
		"/api/v1/alerts":          `{"alerts":[]}`,
		"/api/v1/exceptions":      `{"exceptions":[]}`,
	} {
		w := ts.get(t, target)
		wantStatus(t, w, 200)
		if got := strings.TrimSpace(w.Body.String()); got != want {
			t.Errorf("%s: body = %s, want %s", target, got, want)
		}
	}
}

func TestPosture(t *testing.T) {
	ts := newTestServer(t)
	w := ts.get(t, "/api/v1/posture")
	wantStatus(t, w, 200)
	got := decode[struct{ Summary store.PosturePoint }](t, w)
	if got.Summary.Open != 1 || got.Summary.BySeverity["high"] != 1 {
		t.Errorf("summary = %+v", got.Summary)
	}
	if !ts.store.now.Equal(testNow) {
		t.Errorf("Summary called with now = %v, want %v", ts.store.now, testNow)
	}
	wantError(t, ts.get(t, "/api/v1/posture?x=1"), 400, `parameter "x": unknown parameter (this endpoint takes none)`)
}

func TestPostureHistory(t *testing.T) {
	ts := newTestServer(t)
	tests := []struct {
		query     string
		wantSince time.Time
		wantLimit int
		frag      string
	}{
		{query: ""},
		{query: "since=24h&limit=100", wantSince: testNow.Add(-24 * time.Hour), wantLimit: 100},
		{query: "since=2026-05-01T00:00:00Z", wantSince: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)},
		{query: "since=2026-05-01T02:00:00%2B02:00", wantSince: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)},
		{query: "since=yesterday", frag: `parameter "since": "yesterday" is neither an RFC 3339 time`},
		{query: "since=-5h", frag: `parameter "since"`},
		{query: "limit=-1", frag: `parameter "limit"`},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			w := ts.get(t, "/api/v1/posture/history?"+tt.query)
			if tt.frag != "" {
				wantError(t, w, 400, tt.frag)
				return
			}
			wantStatus(t, w, 200)
			if !ts.store.since.Equal(tt.wantSince) || ts.store.limit != tt.wantLimit {
				t.Errorf("PostureHistory(%v, %d), want (%v, %d)", ts.store.since, ts.store.limit, tt.wantSince, tt.wantLimit)
			}
			if got := decode[struct{ History []store.PosturePoint }](t, w); len(got.History) != 1 {
				t.Errorf("history = %+v", got.History)
			}
		})
	}
}

func TestAlerts(t *testing.T) {
	ts := newTestServer(t)
	tests := []struct {
		query string
		want  store.AlertFilter
		param string
		frag  string
	}{
		{query: "", want: store.AlertFilter{}},
		{query: "rule=exec-into-pod&namespace=shop&severity=critical&status=acknowledged&since=1h&limit=5",
			want: store.AlertFilter{Rule: "exec-into-pod", Namespace: "shop", Severities: []finding.Severity{finding.Critical},
				Status: store.AlertAcknowledged, Since: testNow.Add(-time.Hour), Limit: 5}},
		{query: "status=open", want: store.AlertFilter{Status: store.AlertOpen}},
		{query: "status=resolved", param: "status", frag: "allowed: open, acknowledged"},
		{query: "severity=bad", param: "severity", frag: "allowed: info, low, medium, high, critical"},
		{query: "since=3", param: "since", frag: "positive duration"},
		{query: "user=x", param: "user", frag: "unknown parameter"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			w := ts.get(t, "/api/v1/alerts?"+tt.query)
			if tt.frag != "" {
				if e := wantError(t, w, 400, tt.frag); e.Parameter != tt.param {
					t.Errorf("parameter = %q, want %q", e.Parameter, tt.param)
				}
				return
			}
			wantStatus(t, w, 200)
			if !reflect.DeepEqual(ts.store.alertFilter, tt.want) {
				t.Errorf("filter = %+v, want %+v", ts.store.alertFilter, tt.want)
			}
			got := decode[struct{ Alerts []store.Alert }](t, w)
			if len(got.Alerts) != 1 || got.Alerts[0].ID != 7 || got.Alerts[0].Rule != "exec-into-pod" {
				t.Errorf("alerts = %+v", got.Alerts)
			}
		})
	}
}

func TestAlert(t *testing.T) {
	ts := newTestServer(t)
	w := ts.get(t, "/api/v1/alerts/7")
	wantStatus(t, w, 200)
	if got := decode[store.Alert](t, w); got.ID != 7 || got.User != "mallory" {
		t.Errorf("alert = %+v", got)
	}
	wantError(t, ts.get(t, "/api/v1/alerts/8"), 404, "alert 8 not found")
	if e := wantError(t, ts.get(t, "/api/v1/alerts/x"), 400, `parameter "id": "x" is not a positive integer`); e.Parameter != "id" {
		t.Errorf("parameter = %q", e.Parameter)
	}
	wantError(t, ts.get(t, "/api/v1/alerts/0"), 400, `parameter "id"`)
}

func TestAckAlert(t *testing.T) {
	ts := newTestServer(t)
	w := ts.do(t, req{method: "POST", target: "/api/v1/alerts/7/ack", token: aliceToken})
	wantStatus(t, w, 200)
	got := decode[store.Alert](t, w)
	if got.Status != store.AlertAcknowledged || got.AckedBy != "alice" || got.AckedAt == nil || !got.AckedAt.Equal(testNow) {
		t.Errorf("acked alert = %+v", got)
	}
	wantError(t, ts.do(t, req{method: "POST", target: "/api/v1/alerts/99/ack", token: aliceToken}), 404, "alert 99 not found")
	// A body is not needed, but if sent it must be JSON.
	wantError(t, ts.do(t, req{method: "POST", target: "/api/v1/alerts/7/ack", token: aliceToken, body: "x=1", contentType: "application/x-www-form-urlencoded"}), 415, "application/json")
	wantStatus(t, ts.do(t, req{method: "POST", target: "/api/v1/alerts/7/ack", token: aliceToken, body: "{}"}), 200)
	if ts.changed != 0 {
		t.Errorf("OnExceptionsChanged called %d times by ack", ts.changed)
	}
}

func TestExceptions(t *testing.T) {
	ts := newTestServer(t)
	for _, tt := range []struct {
		query string
		all   bool
		frag  string
	}{
		{"", false, ""},
		{"all=true", true, ""},
		{"all=false", false, ""},
		{"all=yes", false, `parameter "all": "yes" is not a boolean`},
	} {
		t.Run(tt.query, func(t *testing.T) {
			w := ts.get(t, "/api/v1/exceptions?"+tt.query)
			if tt.frag != "" {
				wantError(t, w, 400, tt.frag)
				return
			}
			wantStatus(t, w, 200)
			if ts.store.includeAll != tt.all || !ts.store.now.Equal(testNow) {
				t.Errorf("Exceptions(%v, %v), want (%v, %v)", ts.store.includeAll, ts.store.now, tt.all, testNow)
			}
			if got := decode[struct{ Exceptions []store.Exception }](t, w); len(got.Exceptions) != 1 || got.Exceptions[0].ID != 3 {
				t.Errorf("exceptions = %+v", got.Exceptions)
			}
		})
	}
}

func TestCreateException(t *testing.T) {
	valid := map[string]any{
		"checks": []string{"pss-privileged"}, "kind": "Deployment", "namespace": "shop-*", "name": "web",
		"labels": map[string]string{"team": "shop"}, "reason": "needs host access", "owner": "shop-team",
		"expires": "2026-09-01T00:00:00Z",
	}
	with := func(field string, v any) string {
		m := map[string]any{}
		for k, x := range valid {
			m[k] = x
		}
		if v == nil {
			delete(m, field)
		} else {
			m[field] = v
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name        string
		body        string
		contentType string
		code        int
		field       string
		frag        string
	}{
		{name: "valid", body: with("", nil), code: 201},
		{name: "every check", body: with("checks", []string{"*"}), code: 201},
		{name: "charset", body: with("", nil), contentType: "application/json; charset=utf-8", code: 201},
		{name: "no checks", body: with("checks", nil), code: 400, field: "checks", frag: "required"},
		{name: "empty checks", body: with("checks", []string{}), code: 400, field: "checks", frag: "required"},
		{name: "unknown check", body: with("checks", []string{"pss-privileged", "nope"}), code: 400, field: "checks", frag: `unknown check "nope"`},
		{name: "checks not a list", body: with("checks", "pss-privileged"), code: 400, field: "checks", frag: "must be an array"},
		{name: "no reason", body: with("reason", nil), code: 400, field: "reason", frag: "required"},
		{name: "blank reason", body: with("reason", "  "), code: 400, field: "reason", frag: "required"},
		{name: "no owner", body: with("owner", nil), code: 400, field: "owner", frag: "required"},
		{name: "no expires", body: with("expires", nil), code: 400, field: "expires", frag: "required"},
		{name: "expires not a time", body: with("expires", "next week"), code: 400, field: "expires", frag: "RFC 3339"},
		{name: "expires in the past", body: with("expires", "2026-05-01T00:00:00Z"), code: 400, field: "expires", frag: "not in the future"},
		{name: "expires now", body: with("expires", testNow.Format(time.RFC3339)), code: 400, field: "expires", frag: "not in the future"},
		{name: "expires too late", body: with("expires", "2027-06-01T12:00:01Z"), code: 400, field: "expires", frag: "more than a year ahead"},
		{name: "expires a year ahead", body: with("expires", "2027-06-01T12:00:00Z"), code: 201},
		{name: "bad glob", body: with("name", "web-["), code: 400, field: "name", frag: "not a valid shell pattern"},
		{name: "empty label key", body: with("labels", map[string]string{"": "x"}), code: 400, field: "labels", frag: "empty label key"},
		{name: "unknown field", body: with("createdBy", "mallory"), code: 400, field: "createdBy", frag: "unknown field"},
		{name: "not JSON", body: "{", code: 400, frag: "not valid JSON"},
		{name: "trailing data", body: with("", nil) + "{}", code: 400, frag: "data after the JSON object"},
		{name: "no body", body: "", code: 400, frag: "request body required"},
		{name: "form", body: "checks=*", contentType: "application/x-www-form-urlencoded", code: 415, frag: "application/json"},
		{name: "text", body: with("", nil), contentType: "text/plain", code: 415, frag: "application/json"},
		{name: "too large", body: `{"reason":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, code: 413, frag: "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t)
			w := ts.do(t, req{method: "POST", target: "/api/v1/exceptions", token: aliceToken, body: tt.body, contentType: tt.contentType})
			if tt.code != 201 {
				if e := wantError(t, w, tt.code, tt.frag); e.Field != tt.field {
					t.Errorf("field = %q, want %q", e.Field, tt.field)
				}
				if ts.changed != 0 || slices.Contains(ts.store.calls, "AddException") {
					t.Errorf("rejected exception reached the store or the hook")
				}
				return
			}
			wantStatus(t, w, 201)
			got := decode[store.Exception](t, w)
			if got.ID != 10 || got.CreatedBy != "alice" || !got.CreatedAt.Equal(testNow) || got.Reason == "" {
				t.Errorf("created = %+v", got)
			}
			if stored := ts.store.exceptions[10]; stored.CreatedBy != "alice" || stored.Expires.IsZero() {
				t.Errorf("stored = %+v", stored)
			}
			if ts.changed != 1 {
				t.Errorf("OnExceptionsChanged called %d times, want 1", ts.changed)
			}
		})
	}
}

func TestCreateExceptionStored(t *testing.T) {
	ts := newTestServer(t)
	body := `{"checks":["pss-privileged","*"],"kind":"Deployment","namespace":"shop","name":"web-*",` +
		`"labels":{"app":"web"},"reason":" needs host access ","owner":"shop-team","expires":"2026-09-01T00:00:00Z"}`
	wantStatus(t, ts.do(t, req{method: "POST", target: "/api/v1/exceptions", token: aliceToken, body: body}), 201)
	want := store.Exception{
		ID: 10, Checks: []string{"pss-privileged", "*"}, Kind: "Deployment", Namespace: "shop", Name: "web-*",
		Labels: map[string]string{"app": "web"}, Reason: "needs host access", Owner: "shop-team",
		Expires: time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC), CreatedBy: "alice", CreatedAt: testNow,
	}
	if got := ts.store.exceptions[10]; !reflect.DeepEqual(got, want) {
		t.Errorf("stored\n%+v, want\n%+v", got, want)
	}
}

func TestExpireException(t *testing.T) {
	ts := newTestServer(t)
	w := ts.do(t, req{method: "POST", target: "/api/v1/exceptions/3/expire", token: aliceToken})
	wantStatus(t, w, 200)
	if got := decode[store.Exception](t, w); got.ID != 3 || got.ExpiredAt == nil || !got.ExpiredAt.Equal(testNow) {
		t.Errorf("expired = %+v", got)
	}
	if ts.changed != 1 {
		t.Errorf("OnExceptionsChanged called %d times, want 1", ts.changed)
	}
	wantError(t, ts.do(t, req{method: "POST", target: "/api/v1/exceptions/4/expire", token: aliceToken}), 404, "exception 4 not found")
	wantError(t, ts.do(t, req{method: "POST", target: "/api/v1/exceptions/-4/expire", token: aliceToken}), 400, `parameter "id"`)
	if ts.changed != 1 {
		t.Errorf("OnExceptionsChanged called after failures: %d", ts.changed)
	}
}

func TestRulesAndChecks(t *testing.T) {
	ts := newTestServer(t)
	w := ts.get(t, "/api/v1/rules")
	wantStatus(t, w, 200)
	if got := decode[struct{ Rules []detect.RuleInfo }](t, w); len(got.Rules) != 1 || got.Rules[0].ID != "exec-into-pod" {
		t.Errorf("rules = %+v", got.Rules)
	}
	w = ts.get(t, "/api/v1/checks")
	wantStatus(t, w, 200)
	want := `{"checks":[` +
		`{"id":"pss-privileged","title":"Privileged container","severity":"high","description":"d","remediation":"r","frameworks":{"pss":"baseline","cis":["5.2.2"]}},` +
		`{"id":"no-network-policy","title":"No NetworkPolicy","severity":"medium","description":"d2","remediation":"r2","frameworks":{}}]}`
	if got := strings.TrimSpace(w.Body.String()); got != want {
		t.Errorf("checks =\n%s\nwant\n%s", got, want)
	}
}

func TestMetrics(t *testing.T) {
	ts := newTestServer(t)
	extra := prometheus.NewCounter(prometheus.CounterOpts{Name: "kustode_test_total", Help: "t"})
	ts.reg.MustRegister(extra)
	extra.Inc()
	wantStatus(t, ts.get(t, "/api/v1/findings"), 200)
	wantStatus(t, ts.do(t, req{target: "/api/v1/findings"}), 401)
	wantStatus(t, ts.do(t, req{target: "/metrics"}), 401)
	w := ts.get(t, "/metrics")
	wantStatus(t, w, 200)
	body := w.Body.String()
	for _, want := range []string{
		`kustode_test_total 1`,
		`kustode_api_requests_total{code="200",route="GET /api/v1/findings"} 1`,
		`kustode_api_requests_total{code="401",route="GET /api/v1/findings"} 1`,
		`kustode_api_requests_total{code="401",route="GET /metrics"} 1`,
		`kustode_api_request_duration_seconds_count{route="GET /api/v1/findings"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	ts := newTestServer(t)
	tests := []struct {
		method, target string
		code           int
		allow          string
	}{
		{"GET", "/api/v1/nope", 404, ""},
		{"GET", "/", 404, ""},
		{"DELETE", "/api/v1/findings", 405, "GET, HEAD"},
		{"GET", "/api/v1/alerts/7/ack", 405, "POST"},
		{"PUT", "/api/v1/exceptions", 405, "GET, POST, HEAD"},
		{"POST", "/healthz", 405, "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			w := ts.do(t, req{method: tt.method, target: tt.target, token: aliceToken})
			wantError(t, w, tt.code)
			if got := w.Header().Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
		})
	}
}

// TestInternalErrors: a store failure answers 500 with a generic message;
// the details go to the log only.
func TestInternalErrors(t *testing.T) {
	ts := newTestServer(t)
	ts.store.err = errors.New("sqlite: disk I/O error at /var/lib/kustode/db")
	for _, r := range []req{
		{target: "/api/v1/findings"},
		{target: "/api/v1/posture"},
		{target: "/api/v1/posture/history"},
		{target: "/api/v1/alerts"},
		{target: "/api/v1/alerts/7"},
		{method: "POST", target: "/api/v1/alerts/7/ack"},
		{target: "/api/v1/exceptions"},
		{method: "POST", target: "/api/v1/exceptions", body: `{"checks":["*"],"reason":"r","owner":"o","expires":"2026-07-01T00:00:00Z"}`},
		{method: "POST", target: "/api/v1/exceptions/3/expire"},
	} {
		r.token = aliceToken
		w := ts.do(t, r)
		e := wantError(t, w, 500, "internal error")
		if strings.Contains(e.Error, "sqlite") {
			t.Errorf("%s: 500 body leaks %q", r.target, e.Error)
		}
	}
	if !strings.Contains(ts.logs.String(), "disk I/O error") {
		t.Errorf("store error not logged:\n%s", ts.logs)
	}
	if ts.changed != 0 {
		t.Errorf("OnExceptionsChanged called after failed writes")
	}
}

// TestTokenNeverLogged: the access log names the user, route and status,
// never the token, whatever happens to the request.
func TestTokenNeverLogged(t *testing.T) {
	ts := newTestServer(t)
	ts.store.err = errors.New("boom")
	for _, tok := range []string{aliceToken, bobToken, brokenToken, carolToken, "nobody-0123456789"} {
		ts.do(t, req{target: "/api/v1/findings", token: tok})
		ts.do(t, req{target: "/readyz", token: tok})
	}
	logs := ts.logs.String()
	for _, tok := range []string{aliceToken, bobToken, brokenToken, carolToken, "nobody-0123456789"} {
		if strings.Contains(logs, tok) {
			t.Errorf("log contains token %q:\n%s", tok, logs)
		}
	}
	for _, want := range []string{`msg="api request"`, `route="GET /api/v1/findings"`, "user=alice", "status=403"} {
		if !strings.Contains(logs, want) {
			t.Errorf("access log lacks %s:\n%s", want, logs)
		}
	}
}

func TestStaticToken(t *testing.T) {
	if _, err := NewStaticToken("short"); err == nil {
		t.Error("short token accepted")
	}
	s, err := NewStaticToken("  0123456789abcdef\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		token string
		ok    bool
	}{
		{"0123456789abcdef", true},
		{"0123456789abcdeF", false},
		{"0123456789abcdef0", false},
		{"", false},
	} {
		u, err := s.Authenticate(t.Context(), tt.token)
		if tt.ok && (err != nil || u.Name != StaticTokenUser) {
			t.Errorf("Authenticate(%q) = %+v, %v", tt.token, u, err)
		}
		if !tt.ok && !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("Authenticate(%q) error = %v, want ErrUnauthenticated", tt.token, err)
		}
	}
}

// TestBodyLimitUnknownLength: a body sent without Content-Length (chunked)
// is cut at MaxBodyBytes too.
func TestBodyLimitUnknownLength(t *testing.T) {
	ts := newTestServer(t)
	body := `{"reason":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	r := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/api/v1/exceptions", io.MultiReader(strings.NewReader(body)))
	r.ContentLength = -1
	r.Header.Set("Authorization", "Bearer "+aliceToken)
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	ts.Handler().ServeHTTP(w, r)
	wantError(t, w, http.StatusRequestEntityTooLarge, "larger than 1048576 bytes")
}
