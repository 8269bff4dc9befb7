package web

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kustode/kustode/internal/detect"
	"github.com/kustode/kustode/internal/posture"
	"github.com/kustode/kustode/internal/store"
)

// Store is what the API reads and writes; *store.Store implements it. Alert,
// AckAlert and ExpireException return an error wrapping store.ErrNotFound
// for an unknown ID. Methods are called concurrently.
type Store interface {
	Findings(ctx context.Context, f store.FindingFilter) ([]store.Finding, error)
	Summary(ctx context.Context, now time.Time) (store.PosturePoint, error)
	PostureHistory(ctx context.Context, since time.Time, limit int) ([]store.PosturePoint, error)
	Alerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error)
	Alert(ctx context.Context, id int64) (store.Alert, error)
	AckAlert(ctx context.Context, id int64, by string, now time.Time) (store.Alert, error)
	AddException(ctx context.Context, e store.Exception) (store.Exception, error)
	Exceptions(ctx context.Context, includeInactive bool, now time.Time) ([]store.Exception, error)
	ExpireException(ctx context.Context, id int64, now time.Time) (store.Exception, error)
}

// Condition is one thing readiness depends on.
type Condition struct {
	// Name says what it is ("informer pods synced", "store reachable").
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	// Advisory: when not OK, shown but no reason to be unready (kustode
	// cannot see a part of what it judges, yet serves and receives).
	Advisory bool `json:"advisory,omitempty"`
}

// Readiness reports whether the monitor is ready to serve. Ready is called
// for every /readyz request, concurrently, and must return quickly without
// I/O: report state that the components keep up to date.
type Readiness interface {
	Ready() []Condition
}

// ReadinessFunc adapts a function to Readiness.
type ReadinessFunc func() []Condition

var _ Readiness = ReadinessFunc(nil)

// Ready calls f.
func (f ReadinessFunc) Ready() []Condition { return f() }

// Request limits.
const (
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes = 1 << 20
	// MaxLimit is the largest limit= a query accepts.
	MaxLimit = 10000

	shutdownTimeout = 10 * time.Second
)

// Options configure a Server. Store and at least one Auth are required.
type Options struct {
	// Listen is the address to listen on (":8443"); ignored when Listener
	// is set.
	Listen string
	// Listener, when set, is served instead of listening on Listen. Start
	// closes it.
	Listener net.Listener
	// TLSCertFile and TLSKeyFile, set together, make the server speak TLS.
	// They are read once, by New.
	TLSCertFile string
	TLSKeyFile  string

	Store Store
	// Rules lists the loaded detection rules; it is called per request, so
	// it may reflect reloads. Nil means none.
	Rules func() []detect.RuleInfo
	// Checks are the posture checks; exceptions may only name their IDs.
	Checks []*posture.Check
	// Readiness feeds /readyz; nil means always ready.
	Readiness Readiness
	// Auth lists the ways to authenticate, tried in order until one accepts
	// the token (put a StaticToken before Kubernetes: it is local and
	// cheap). At least one is required: the API is never open.
	Auth []Auth
	// Registry is served on /metrics and receives the API's own metrics;
	// nil means a registry of the API's metrics only.
	Registry *prometheus.Registry
	// OnExceptionsChanged is called after an exception is created or
	// expired, synchronously in the request, so it must not block (signal a
	// channel). Nil means nothing is called.
	OnExceptionsChanged func()
	// Logger receives errors and, at debug level, an access log (user,
	// route, status; never a token). Nil discards.
	Logger *slog.Logger
}

// Server is the HTTP API of `kustode serve`. Create it with New; its
// Handler is safe for concurrent use.
type Server struct {
	opts     Options
	log      *slog.Logger
	tls      *tls.Config
	mux      *http.ServeMux
	handler  http.Handler
	metrics  *metrics
	checks   []checkInfo
	checkIDs map[string]bool
	// now is the clock; tests replace it.
	now func() time.Time

	mu      sync.Mutex
	addr    net.Addr
	started bool
}

// New validates opts and builds a Server. It registers the API's metrics in
// opts.Registry, so two Servers cannot share a registry.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("web: no store")
	}
	if len(opts.Auth) == 0 {
		return nil, errors.New("web: no authentication method: the API is never open")
	}
	for i, a := range opts.Auth {
		if a.Authenticator == nil || a.Authorizer == nil {
			return nil, fmt.Errorf("web: auth %d: authenticator and authorizer are both required", i)
		}
	}
	if opts.Listener == nil && opts.Listen == "" {
		return nil, errors.New("web: no listen address")
	}
	s := &Server{opts: opts, log: opts.Logger, now: time.Now, mux: http.NewServeMux()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if (opts.TLSCertFile == "") != (opts.TLSKeyFile == "") {
		return nil, errors.New("web: TLS needs both a certificate and a key file")
	}
	if opts.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.TLSCertFile, opts.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("web: load TLS key pair: %w", err)
		}
		s.tls = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	if opts.Registry == nil {
		s.opts.Registry = prometheus.NewRegistry()
	}
	m, err := newMetrics(s.opts.Registry)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	s.metrics = m
	s.checkIDs = make(map[string]bool, len(opts.Checks))
	for _, c := range opts.Checks {
		s.checkIDs[c.ID] = true
		s.checks = append(s.checks, checkInfo{
			ID: c.ID, Title: c.Title, Severity: c.Severity.String(), Description: c.Description,
			Remediation: c.Remediation, Frameworks: c.Frameworks,
		})
	}
	s.routes()
	s.handler = s.mux
	return s, nil
}

// Handler returns the server's routes, for tests and for mounting under
// another server. It enforces authentication like Start does.
func (s *Server) Handler() http.Handler { return s.handler }

// Addr returns the address the server listens on, or nil before Start has
// bound it.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Start listens and serves until ctx is done, then shuts down gracefully:
// it stops accepting, waits up to 10 s for requests in flight, and returns
// nil. It returns an error if it cannot listen or serving fails. It blocks,
// and may be called only once.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("web: server already started")
	}
	s.started = true
	s.mu.Unlock()

	ln := s.opts.Listener
	if ln == nil {
		var err error
		ln, err = (&net.ListenConfig{}).Listen(ctx, "tcp", s.opts.Listen)
		if err != nil {
			return fmt.Errorf("web: listen: %w", err)
		}
	}
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	s.mu.Lock()
	s.addr = ln.Addr()
	s.mu.Unlock()

	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	s.log.Info("api listening", "addr", ln.Addr().String(), "tls", s.tls != nil)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("web: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Requests still running after the timeout are cut off.
		err = errors.Join(err, srv.Close())
		if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		return fmt.Errorf("web: shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("web: serve: %w", err)
	}
	return nil
}

// route is one endpoint: its pattern, and what it does in authorization
// terms. A zero attrs means no authentication (only /healthz).
type route struct {
	pattern string
	attrs   Attributes
	handle  func(w http.ResponseWriter, r *http.Request, u User)
}

func (s *Server) routes() {
	routes := []route{
		{"GET /api/v1/findings", Attributes{"list", "findings"}, s.getFindings},
		{"GET /api/v1/posture", Attributes{"get", "posture"}, s.getPosture},
		{"GET /api/v1/posture/history", Attributes{"list", "posture"}, s.getPostureHistory},
		{"GET /api/v1/alerts", Attributes{"list", "alerts"}, s.getAlerts},
		{"GET /api/v1/alerts/{id}", Attributes{"get", "alerts"}, s.getAlert},
		{"POST /api/v1/alerts/{id}/ack", Attributes{"update", "alerts"}, s.ackAlert},
		{"GET /api/v1/exceptions", Attributes{"list", "exceptions"}, s.getExceptions},
		{"POST /api/v1/exceptions", Attributes{"create", "exceptions"}, s.createException},
		{"POST /api/v1/exceptions/{id}/expire", Attributes{"update", "exceptions"}, s.expireException},
		{"GET /api/v1/rules", Attributes{"list", "rules"}, s.getRules},
		{"GET /api/v1/checks", Attributes{"list", "checks"}, s.getChecks},
		{"GET /metrics", Attributes{"get", "metrics"}, serveHandler(promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{
			ErrorLog: promLogger{s.log}, ErrorHandling: promhttp.ContinueOnError,
		}))},
	}
	s.mux.Handle("GET /healthz", s.instrument("GET /healthz", func(w http.ResponseWriter, _ *http.Request) (string, int) {
		return "", writeText(w, http.StatusOK, "ok")
	}))
	s.mux.Handle("GET /readyz", s.instrument("GET /readyz", s.getReadyz))
	patterns := []string{"GET /healthz", "GET /readyz"}
	for _, rt := range routes {
		s.mux.Handle(rt.pattern, s.endpoint(rt))
		patterns = append(patterns, rt.pattern)
	}
	methods := map[string][]string{}
	var paths []string
	for _, p := range patterns {
		method, path, _ := strings.Cut(p, " ")
		if _, ok := methods[path]; !ok {
			paths = append(paths, path)
		}
		methods[path] = append(methods[path], method)
	}
	// Paths answered with JSON 405 for other methods, and everything else
	// with JSON 404, rather than ServeMux's plain text.
	for _, path := range paths {
		allow := methods[path]
		if slices.Contains(allow, http.MethodGet) {
			allow = append(allow, http.MethodHead)
		}
		s.mux.Handle(path, s.instrument(path, func(w http.ResponseWriter, r *http.Request) (string, int) {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			return "", writeError(w, http.StatusMethodNotAllowed, "method %s not allowed on %s (allowed: %s)", r.Method, path, strings.Join(allow, ", "))
		}))
	}
	s.mux.Handle("/", s.instrument("unmatched", func(w http.ResponseWriter, r *http.Request) (string, int) {
		return "", writeError(w, http.StatusNotFound, "no such endpoint: %s", r.URL.Path)
	}))
}

// instrument wraps a handler that returns the user name and status it
// answered with: it counts, times and access-logs the request.
func (s *Server) instrument(name string, h func(w http.ResponseWriter, r *http.Request) (user string, status int)) http.Handler {
	count := s.metrics.requests.MustCurryWith(prometheus.Labels{"route": name})
	observe := s.metrics.duration.WithLabelValues(name)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		user, status := h(w, r)
		d := time.Since(start)
		count.WithLabelValues(statusText(status)).Inc()
		observe.Observe(d.Seconds())
		if s.log.Enabled(r.Context(), slog.LevelDebug) {
			s.log.LogAttrs(r.Context(), slog.LevelDebug, "api request",
				slog.String("method", r.Method), slog.String("route", name), slog.String("user", user),
				slog.Int("status", status), slog.Duration("duration", d))
		}
	})
}

// endpoint wraps an API route with authentication, authorization and the
// request body rules.
func (s *Server) endpoint(rt route) http.Handler {
	return s.instrument(rt.pattern, func(w http.ResponseWriter, r *http.Request) (string, int) {
		u, status, ok := s.authenticate(w, r, rt.pattern, rt.attrs)
		if !ok {
			return u.Name, status
		}
		if r.Method == http.MethodPost {
			if st, ok := checkBody(w, r); !ok {
				return u.Name, st
			}
		}
		sw := &statusWriter{ResponseWriter: w}
		rt.handle(sw, r, u)
		return u.Name, sw.code()
	})
}

// authenticate finds the user of the request's bearer token and asks the
// authorizer paired with the authenticator that accepted it. When it returns
// false it has answered the request with the returned status.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, route string, attrs Attributes) (User, int, bool) {
	token, ok := bearerToken(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="kustode"`)
		st := writeError(w, http.StatusUnauthorized, "authentication required: send Authorization: Bearer TOKEN")
		return User{}, st, false
	}
	ctx := r.Context()
	var (
		u        User
		authz    Authorizer
		failures []error
	)
	for _, a := range s.opts.Auth {
		var err error
		u, err = a.Authenticator.Authenticate(ctx, token)
		if err == nil && u.Name != "" {
			authz = a.Authorizer
			break
		}
		switch {
		case err == nil:
		case errors.Is(err, ErrUnauthenticated):
			// Authenticators never put the token in their errors.
			s.log.Debug("token not accepted", "route", route, "reason", err)
		default:
			failures = append(failures, err)
		}
	}
	if authz == nil {
		if len(failures) > 0 {
			s.log.Error("authenticate", "route", route, "err", errors.Join(failures...))
			st := writeInternal(w)
			return User{}, st, false
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="kustode", error="invalid_token"`)
		st := writeError(w, http.StatusUnauthorized, "invalid bearer token")
		return User{}, st, false
	}
	allowed, reason, err := authz.Authorize(ctx, u, attrs)
	if err != nil {
		s.log.Error("authorize", "route", route, "user", u.Name, "err", err)
		st := writeInternal(w)
		return u, st, false
	}
	if !allowed {
		if reason == "" {
			reason = fmt.Sprintf("user %q cannot %s", u.Name, attrs)
		}
		st := writeError(w, http.StatusForbidden, "%s", reason)
		return u, st, false
	}
	return u, 0, true
}

// bearerToken returns the token of the request's only Authorization header,
// which must be "Bearer TOKEN".
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Values("Authorization")
	if len(h) != 1 {
		return "", false
	}
	scheme, token, ok := strings.Cut(h[0], " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t") {
		return "", false
	}
	return token, true
}

// checkBody enforces the body rules of a POST: a body, if any, must be JSON
// (a cross-site form cannot send that without a CORS preflight) and at most
// MaxBodyBytes.
func checkBody(w http.ResponseWriter, r *http.Request) (int, bool) {
	if r.ContentLength == 0 {
		return 0, true
	}
	if !isJSON(r.Header.Get("Content-Type")) {
		st := writeError(w, http.StatusUnsupportedMediaType, "request body must have Content-Type application/json")
		return st, false
	}
	if r.ContentLength > MaxBodyBytes {
		st := writeError(w, http.StatusRequestEntityTooLarge, "request body larger than %d bytes", MaxBodyBytes)
		return st, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	return 0, true
}

// statusWriter remembers the status code of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// promLogger sends promhttp's errors to slog.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) { l.log.Error("metrics: " + fmt.Sprint(v...)) }
