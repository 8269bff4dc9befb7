package config

import (
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Config is the configuration of `kustode serve`. The YAML tags are the keys
// of the configuration file; Settings documents each field, with its flag and
// environment variable. A Config from Resolve has passed Validate.
type Config struct {
	// Kubeconfig is the kubeconfig file. Empty means: in-cluster, then
	// $KUBECONFIG, then ~/.kube/config; the caller does that resolution.
	Kubeconfig string `yaml:"kubeconfig"`
	// Listen is the host:port of the API and the dashboard.
	Listen string `yaml:"listen"`
	// DataDir holds the SQLite database (when Store is empty) and local state.
	DataDir string `yaml:"dataDir"`
	// Store selects persistence: "" (SQLite in DataDir), postgres://… or
	// postgresql://… (PostgreSQL; the URL may carry a password, see
	// Redacted), or sqlite:PATH.
	Store     string    `yaml:"store"`
	API       API       `yaml:"api"`
	Audit     Audit     `yaml:"audit"`
	Posture   Posture   `yaml:"posture"`
	Events    Events    `yaml:"events"`
	Kubelet   Kubelet   `yaml:"kubelet"`
	Retention Retention `yaml:"retention"`
	Log       Log       `yaml:"log"`
}

// API configures authentication and TLS of the API and dashboard.
type API struct {
	// TokenFile holds a static bearer token (the trimmed file content, see
	// ReadTokenFile) for local use. Empty: callers are authenticated with
	// Kubernetes TokenReview and authorized with SubjectAccessReview.
	TokenFile string `yaml:"tokenFile"`
	// TLSCertFile and TLSKeyFile are set together or not at all.
	TLSCertFile string `yaml:"tlsCertFile"`
	TLSKeyFile  string `yaml:"tlsKeyFile"`
}

// Audit configures the kube-apiserver audit intake: a log file to follow,
// the webhook backend, or both.
type Audit struct {
	LogPath string `yaml:"logPath"`
	// StartAtEnd skips what the log file already holds at start.
	StartAtEnd bool `yaml:"startAtEnd"`
	// WebhookListen is the host:port of the webhook backend receiver; empty
	// disables it. When set, WebhookTokenFile or WebhookClientCAFile is set.
	WebhookListen       string `yaml:"webhookListen"`
	WebhookTokenFile    string `yaml:"webhookTokenFile"`
	WebhookClientCAFile string `yaml:"webhookClientCAFile"`
	WebhookTLSCertFile  string `yaml:"webhookTLSCertFile"`
	WebhookTLSKeyFile   string `yaml:"webhookTLSKeyFile"`
	// RulesDirs are directories of the user's own detection rules.
	RulesDirs []string `yaml:"rulesDirs"`
	// ClusterCIDRs are the cluster's pod and node networks, where
	// service-account tokens are expected to be used from (the rules' list
	// cluster_cidrs); empty keeps the pack's private ranges.
	ClusterCIDRs []string `yaml:"clusterCIDRs"`
	// SilenceAlert raises a coverage alert when no audit event arrived for
	// this long; 0 disables it.
	SilenceAlert time.Duration `yaml:"silenceAlert"`
}

// Posture configures the posture engine over the live cluster.
type Posture struct {
	Resync          time.Duration `yaml:"resync"`
	HistoryInterval time.Duration `yaml:"historyInterval"`
	ExceptionsFile  string        `yaml:"exceptionsFile"`
	// PSSVersion is "latest" or "v1.N".
	PSSVersion string `yaml:"pssVersion"`
	// SecretMaxAge is the age above which a Secret counts as not rotated; 0
	// disables the check.
	SecretMaxAge time.Duration `yaml:"secretMaxAge"`
	// Namespaces limits the engine to these namespaces; empty means all.
	Namespaces []string `yaml:"namespaces"`
}

// Events configures the Kubernetes Events source.
type Events struct {
	Enabled bool `yaml:"enabled"`
	// RegistryAllowList holds the registries (host, optionally with a path
	// prefix) that images may be pulled from; empty disables the check.
	RegistryAllowList []string `yaml:"registryAllowList"`
}

// Kubelet configures reading each node's running kubelet configuration
// (the kubelet checks), off by default: it needs get on nodes/proxy, which
// also reaches the kubelet API of every node (exec into any pod included).
type Kubelet struct {
	// ReadConfig reads every node's /configz through the API server's node
	// proxy at start-up, every ConfigInterval and when a node joins.
	ReadConfig bool `yaml:"readConfig"`
	// ConfigInterval is how often every node is read again.
	ConfigInterval time.Duration `yaml:"configInterval"`
}

// Retention says how long the store keeps each kind of record; 0 keeps it
// forever.
type Retention struct {
	Alerts           time.Duration `yaml:"alerts"`
	ResolvedFindings time.Duration `yaml:"resolvedFindings"`
	History          time.Duration `yaml:"history"`
}

// Log configures kustode's own logs.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
}

// Default returns the built-in configuration: what `kustode serve` runs with
// when no file, environment variable or flag says otherwise. Each call
// returns a fresh value that the caller may modify.
func Default() Config {
	return Config{
		Listen:  ":8080",
		DataDir: "kustode-data",
		Audit: Audit{
			SilenceAlert: 15 * time.Minute,
		},
		Posture: Posture{
			Resync:          10 * time.Minute,
			HistoryInterval: 5 * time.Minute,
			PSSVersion:      "latest",
			SecretMaxAge:    90 * 24 * time.Hour,
		},
		Events: Events{Enabled: true},
		Kubelet: Kubelet{
			ConfigInterval: 10 * time.Minute,
		},
		Retention: Retention{
			Alerts:           30 * 24 * time.Hour,
			ResolvedFindings: 30 * 24 * time.Hour,
			History:          90 * 24 * time.Hour,
		},
		Log: Log{Level: "info", Format: "text"},
	}
}

// redactedPassword replaces a password, as net/url's URL.Redacted does.
const redactedPassword = "xxxxx"

// Redacted returns a copy of c that is safe to log or print: the password of
// the store URL (user info or a password query parameter) is replaced by
// "xxxxx", and a store value that cannot be parsed is replaced whole. File
// settings hold paths, not secrets, and are kept. The copy shares nothing
// with c.
func (c Config) Redacted() Config {
	c.Store = redactStore(c.Store)
	c.Audit.RulesDirs = slices.Clone(c.Audit.RulesDirs)
	c.Audit.ClusterCIDRs = slices.Clone(c.Audit.ClusterCIDRs)
	c.Posture.Namespaces = slices.Clone(c.Posture.Namespaces)
	c.Events.RegistryAllowList = slices.Clone(c.Events.RegistryAllowList)
	return c
}

// LogValue logs the redacted configuration, so that slog.Any("config", cfg)
// cannot leak the store password.
func (c Config) LogValue() slog.Value {
	type plain Config // without methods: no LogValue recursion
	return slog.AnyValue(plain(c.Redacted()))
}

func redactStore(s string) string {
	if s == "" || strings.HasPrefix(s, "sqlite:") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" {
		// Opaque: "user:secret@host" parses as scheme "user"; the secret
		// would survive in Opaque.
		return redactedPassword
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), redactedPassword)
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", redactedPassword)
		u.RawQuery = q.Encode()
	}
	return u.String()
}
