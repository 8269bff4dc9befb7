package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kustode/kustode/internal/audit"
	"github.com/kustode/kustode/internal/config"
	"github.com/kustode/kustode/internal/detect"
	"github.com/kustode/kustode/internal/kube"
	"github.com/kustode/kustode/internal/posture"
	"github.com/kustode/kustode/internal/posture/checks"
	"github.com/kustode/kustode/internal/store"
	"github.com/kustode/kustode/internal/version"
	"github.com/kustode/kustode/internal/web"
)

// Daemon is `kustode serve`: continuous posture over informers, live
// detection over the audit feed and Kubernetes Events, the store, the API,
// and the coverage self-check, built from one Config.
type Daemon struct {
	cfg   config.Config
	log   *slog.Logger
	store *store.Store
	reg   *prometheus.Registry
	m     *metrics

	inv      *Inventory
	posture  *Posture
	kubelet  *KubeletConfigs // nil unless kubelet.readConfig
	events   *Events
	coverage *Coverage
	engine   *detect.Engine
	checks   []*posture.Check
	api      *web.Server

	webhook        *http.Server
	webhookHandler *audit.WebhookHandler
	webhookLn      net.Listener
	follower       *audit.Follower
	lastAudit      atomic.Int64
	exceptions     atomic.Pointer[posture.Exceptions]
	fileExc        *posture.Exceptions
	baseEngine     *posture.Engine
}

// RESTConfig resolves how serve reaches the API server: the kubeconfig
// file when given, else in-cluster, else $KUBECONFIG or ~/.kube/config.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		if c, err := rest.InClusterConfig(); err == nil {
			return c, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	c, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w (not in a cluster either; set --kubeconfig)", err)
	}
	return c, nil
}

// New builds every component from cfg (which has passed Validate) and opens
// the store. It does not start anything; Start does.
func New(ctx context.Context, cfg config.Config, restCfg *rest.Config, log *slog.Logger) (_ *Daemon, err error) {
	d := &Daemon{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.m = newMetrics(d.reg)

	restCfg = rest.CopyConfig(restCfg)
	restCfg.UserAgent = "kustode/" + version.Get().Version
	restCfg.QPS, restCfg.Burst = 50, 100
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	// The informers and the event source read the built-in kinds in
	// protobuf: decoding JSON was most of serve's start-up.
	watchClient, err := kubernetes.NewForConfig(ProtobufConfig(restCfg))
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(restCfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	meta, err := metadata.NewForConfig(restCfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(restCfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}

	d.store, err = store.Open(ctx, cfg.Store, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = d.store.Close()
		}
	}()

	// Posture.
	d.checks, err = checks.All(checks.Options{PSSVersion: cfg.Posture.PSSVersion, SecretMaxAge: cfg.Posture.SecretMaxAge})
	if err != nil {
		return nil, fmt.Errorf("posture checks: %w", err)
	}
	d.baseEngine, err = posture.NewEngine(d.checks)
	if err != nil {
		return nil, err
	}
	if cfg.Posture.ExceptionsFile != "" {
		known := func(id string) bool {
			return slices.ContainsFunc(d.checks, func(c *posture.Check) bool { return c.ID == id })
		}
		if d.fileExc, err = posture.LoadExceptions(cfg.Posture.ExceptionsFile, time.Now(), known); err != nil {
			return nil, err
		}
	}
	exc, err := d.loadExceptions(ctx)
	if err != nil {
		return nil, err
	}
	d.exceptions.Store(exc)
	d.inv = NewInventory(watchClient, dyn, meta, disc, cfg.Posture.Namespaces, log.With("component", "inventory"), nil)
	d.posture = NewPosture(d.inv, d.baseEngine.WithExceptions(exc), d.store, d.m, log.With("component", "posture"))
	d.inv.onChange = d.posture.Changed
	if cfg.Kubelet.ReadConfig {
		// Each node's running kubelet configuration, judged beside the
		// inventory's objects: the posture's snapshot holds them too.
		// Read with the JSON client: /configz is JSON.
		read := func(ctx context.Context, node string) (kube.Object, error) {
			return kube.KubeletConfig(ctx, client, node)
		}
		d.kubelet = NewKubeletConfigs(watchClient, read, d.posture.Changed, log.With("component", "kubelet-config"))
		if cfg.Kubelet.ConfigInterval > 0 {
			d.kubelet.Interval = cfg.Kubelet.ConfigInterval
		}
		inventory := d.posture.snapshot
		d.posture.snapshot = func() []*entry { return d.kubelet.withKubelet(inventory()) }
	}
	if cfg.Posture.Resync > 0 {
		d.posture.Resync = cfg.Posture.Resync
	}
	if cfg.Posture.HistoryInterval > 0 {
		d.posture.HistoryInterval = cfg.Posture.HistoryInterval
	}

	// Detection.
	opts := detect.Options{Dirs: cfg.Audit.RulesDirs, Lists: map[string][]string{}}
	if len(cfg.Events.RegistryAllowList) > 0 {
		opts.Lists["allowed_registries"] = cfg.Events.RegistryAllowList
	}
	if len(cfg.Audit.ClusterCIDRs) > 0 {
		opts.Lists["cluster_cidrs"] = cfg.Audit.ClusterCIDRs
	}
	if d.engine, err = detect.NewEngine(opts); err != nil {
		return nil, err
	}
	if err := loadDetectState(ctx, d.store, d.engine); err != nil {
		log.Warn("detection state not restored; learning anew", "err", err)
	}
	if cfg.Events.Enabled {
		sink := d.sink("kubernetes-events", nil)
		d.events = NewEvents(watchClient, sink, d.store, log.With("component", "events"), func(n int) {
			d.m.eventsDropped.WithLabelValues("kubernetes-events", "queue").Add(float64(n))
		})
	}
	if cfg.Audit.LogPath != "" {
		d.follower, err = audit.NewFollower(cfg.Audit.LogPath, d.sink("file", &d.lastAudit), audit.FollowerOptions{
			Offsets:    &storeOffsets{store: d.store, key: "audit.follower:" + cfg.Audit.LogPath},
			StartAtEnd: cfg.Audit.StartAtEnd,
			Logger:     log.With("component", "audit-follower"),
		})
		if err != nil {
			return nil, err
		}
	}
	if cfg.Audit.WebhookListen != "" {
		if err := d.newWebhook(ctx); err != nil {
			return nil, err
		}
	}
	d.registerIntakeStats()
	d.coverage = &Coverage{
		inv: d.inv, events: d.events, kubelet: d.kubelet, ping: d.store.Ping, alerts: d.store, metrics: d.m,
		log: log.With("component", "coverage"), Interval: 5 * time.Second, lastAudit: &d.lastAudit,
	}
	if cfg.Audit.LogPath != "" || cfg.Audit.WebhookListen != "" {
		d.coverage.AuditSilence = cfg.Audit.SilenceAlert
	}

	// API.
	auth, err := d.apiAuth(client)
	if err != nil {
		return nil, err
	}
	d.api, err = web.New(web.Options{
		Listen:      cfg.Listen,
		TLSCertFile: cfg.API.TLSCertFile, TLSKeyFile: cfg.API.TLSKeyFile,
		Store:     d.store,
		Rules:     d.engine.Describe,
		Checks:    d.checks,
		Readiness: web.ReadinessFunc(d.ready),
		Auth:      auth,
		Registry:  d.reg,
		// The hook must not block the request: re-evaluating happens in
		// the posture loop; reading the exceptions in a goroutine.
		OnExceptionsChanged: func() { go d.exceptionsChanged() },
		Logger:              log.With("component", "api"),
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// registerIntakeStats exports the audit intakes' own counters: records
// that could not be decoded and webhook requests refused before decoding.
func (d *Daemon) registerIntakeStats() {
	type statser interface{ Stats() audit.Stats }
	add := func(source string, s statser) {
		d.reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "kustode_audit_malformed_total", Help: "Audit records skipped because they could not be decoded, by intake.",
				ConstLabels: prometheus.Labels{"source": source},
			}, func() float64 { return float64(s.Stats().Malformed) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "kustode_audit_rejected_total", Help: "Audit webhook requests refused before decoding (authentication, size, encoding), by intake.",
				ConstLabels: prometheus.Labels{"source": source},
			}, func() float64 { return float64(s.Stats().Rejected) }),
		)
	}
	if d.follower != nil {
		add("file", d.follower)
	}
	if d.webhookHandler != nil {
		add("webhook", d.webhookHandler)
	}
}

// sink returns the detector for one source.
func (d *Daemon) sink(source string, last *atomic.Int64) *detector {
	return &detector{engine: d.engine, store: d.store, metrics: d.m, log: d.log.With("component", "detect"), source: source, last: last}
}

func (d *Daemon) apiAuth(client kubernetes.Interface) ([]web.Auth, error) {
	var auth []web.Auth
	if d.cfg.API.TokenFile != "" {
		tok, err := config.ReadTokenFile(d.cfg.API.TokenFile)
		if err != nil {
			return nil, err
		}
		a, err := web.StaticTokenAuth(tok)
		if err != nil {
			return nil, err
		}
		auth = append(auth, a)
	}
	// Kubernetes users are always accepted: cluster RBAC grants the API.
	auth = append(auth, web.Auth{
		Authenticator: web.NewTokenReviewAuthenticator(client, web.KubernetesOptions{}),
		Authorizer:    web.NewSubjectAccessReviewAuthorizer(client, web.KubernetesOptions{}),
	})
	return auth, nil
}

// newWebhook prepares the audit webhook receiver's listener.
func (d *Daemon) newWebhook(ctx context.Context) error {
	var authn []audit.Authenticator
	if d.cfg.Audit.WebhookTokenFile != "" {
		tok, err := config.ReadTokenFile(d.cfg.Audit.WebhookTokenFile)
		if err != nil {
			return err
		}
		a, err := audit.NewTokenAuthenticator(tok)
		if err != nil {
			return err
		}
		authn = append(authn, a)
	}
	var tlsCfg *tls.Config
	if d.cfg.Audit.WebhookTLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(d.cfg.Audit.WebhookTLSCertFile, d.cfg.Audit.WebhookTLSKeyFile)
		if err != nil {
			return fmt.Errorf("audit webhook TLS: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if d.cfg.Audit.WebhookClientCAFile != "" {
		pem, err := os.ReadFile(d.cfg.Audit.WebhookClientCAFile)
		if err != nil {
			return fmt.Errorf("audit webhook client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("audit webhook client CA %s: no PEM certificate", d.cfg.Audit.WebhookClientCAFile)
		}
		if tlsCfg == nil {
			return errors.New("audit.webhookClientCAFile needs audit.webhookTLSCertFile and audit.webhookTLSKeyFile")
		}
		tlsCfg.ClientCAs, tlsCfg.ClientAuth = pool, tls.VerifyClientCertIfGiven
		a, err := audit.NewClientCertAuthenticator("*")
		if err != nil {
			return err
		}
		authn = append(authn, a)
	}
	h, err := audit.NewWebhookHandler(d.sink("webhook", &d.lastAudit), audit.WebhookOptions{
		Authenticator: audit.AnyOf(authn...),
		Logger:        d.log.With("component", "audit-webhook"),
	})
	if err != nil {
		return err
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", d.cfg.Audit.WebhookListen)
	if err != nil {
		return fmt.Errorf("audit webhook: listen: %w", err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	d.webhookLn = ln
	d.webhookHandler = h
	d.webhook = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	return nil
}

// WebhookAddr is where the audit webhook receiver listens (nil when off).
func (d *Daemon) WebhookAddr() net.Addr {
	if d.webhookLn == nil {
		return nil
	}
	return d.webhookLn.Addr()
}

// APIAddr is where the API listens, once Start has begun listening.
func (d *Daemon) APIAddr() net.Addr { return d.api.Addr() }

// Store is the daemon's store (for tests and the demo).
func (d *Daemon) Store() *store.Store { return d.store }

// FirstFullPosture returns when the first full posture was stored (zero
// before).
func (d *Daemon) FirstFullPosture() time.Time { return d.posture.FirstFullAt() }

// Ready reports the coverage conditions.
func (d *Daemon) ready() []web.Condition {
	var out []web.Condition
	for _, c := range d.coverage.Conditions() {
		out = append(out, web.Condition{Name: c.Name, OK: c.OK, Detail: c.Detail, Advisory: c.Advisory()})
	}
	if len(out) == 0 {
		out = append(out, web.Condition{Name: "starting", OK: false, Detail: "first self-check not done yet"})
	}
	if d.posture.FirstFullAt().IsZero() {
		out = append(out, web.Condition{Name: "posture", OK: false, Detail: "first full posture evaluation not done yet"})
	}
	return out
}

// loadExceptions merges the exceptions file's with the API's in force now.
func (d *Daemon) loadExceptions(ctx context.Context) (*posture.Exceptions, error) {
	x := &posture.Exceptions{}
	if d.fileExc != nil {
		x.Active = append(x.Active, d.fileExc.Active...)
	}
	now := time.Now()
	stored, err := d.store.Exceptions(ctx, false, now)
	if err != nil {
		return nil, err
	}
	for _, e := range stored {
		x.Active = append(x.Active, posture.Exception{
			Checks:  e.Checks,
			Objects: posture.ObjectSelector{Kind: e.Kind, Namespace: e.Namespace, Name: e.Name, Labels: e.Labels},
			Reason:  e.Reason, Owner: e.Owner, Expires: e.Expires.UTC().Format(time.DateOnly),
		})
	}
	return x, nil
}

func (d *Daemon) exceptionsChanged() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.refreshExceptions(ctx); err != nil {
		d.log.Error("reload exceptions", "err", err)
	}
}

// refreshExceptions reloads the exceptions in force and, when they changed,
// re-evaluates the posture.
func (d *Daemon) refreshExceptions(ctx context.Context) error {
	x, err := d.loadExceptions(ctx)
	if err != nil {
		return err
	}
	if old := d.exceptions.Load(); old != nil && exceptionsEqual(old, x) {
		return nil
	}
	d.exceptions.Store(x)
	d.posture.SetEngine(d.baseEngine.WithExceptions(x))
	return nil
}

func exceptionsEqual(a, b *posture.Exceptions) bool {
	return fmt.Sprint(a.Active) == fmt.Sprint(b.Active)
}

// Start runs every component until ctx is done, then stops them, saves the
// detection state and closes the store. It blocks. It returns an error when
// a listener cannot serve.
func (d *Daemon) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	run := func(name string, f func(context.Context) error) {
		wg.Go(func() {
			if err := f(ctx); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		})
	}
	run("inventory", d.inv.Start)
	if d.kubelet != nil {
		run("kubelet config", d.kubelet.Start)
	}
	run("posture", func(ctx context.Context) error {
		// The first full posture includes the kubelet configurations:
		// it waits until they were tried once (bounded by FirstWait).
		if d.kubelet != nil && !d.kubelet.WaitFirst(ctx) {
			return nil
		}
		return d.posture.Start(ctx)
	})
	run("coverage", d.coverage.Start)
	run("api", d.api.Start)
	if d.events != nil {
		run("events", d.events.Start)
	}
	if d.follower != nil {
		run("audit follower", d.follower.Start)
	}
	if d.webhook != nil {
		run("audit webhook", func(ctx context.Context) error {
			go func() {
				<-ctx.Done()
				sctx, c := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				defer c()
				_ = d.webhook.Shutdown(sctx)
			}()
			if err := d.webhook.Serve(d.webhookLn); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	run("maintenance", d.maintain)
	d.log.Info("kustode serve started", "version", version.Get().Version, "store", d.store.Backend(),
		"listen", d.cfg.Listen, "audit_webhook", d.cfg.Audit.WebhookListen, "audit_log", d.cfg.Audit.LogPath,
		"kubelet_read_config", d.cfg.Kubelet.ReadConfig)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
	defer c()
	if err := saveDetectState(sctx, d.store, d.engine); err != nil {
		all = append(all, fmt.Errorf("save detection state: %w", err))
	}
	if err := d.store.Close(); err != nil {
		all = append(all, err)
	}
	d.log.Info("kustode serve stopped")
	return errors.Join(all...)
}

// maintain saves learned state, applies retention and picks up exceptions
// that expired by date.
func (d *Daemon) maintain(ctx context.Context) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := saveDetectState(ctx, d.store, d.engine); err != nil && ctx.Err() == nil {
			d.m.storeErrors.Inc()
			d.log.Error("save detection state", "err", err)
		}
		if err := d.refreshExceptions(ctx); err != nil && ctx.Err() == nil {
			d.log.Error("reload exceptions", "err", err)
		}
		r := d.cfg.Retention
		if n, err := d.store.Prune(ctx, store.Retention{Alerts: r.Alerts, ResolvedFindings: r.ResolvedFindings, History: r.History}, time.Now()); err != nil && ctx.Err() == nil {
			d.m.storeErrors.Inc()
			d.log.Error("retention", "err", err)
		} else if n > 0 {
			d.log.Info("retention: pruned old records", "rows", n)
		}
	}
}
