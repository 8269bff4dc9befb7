package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Setting is one configurable value of Config: its YAML key, flag and
// environment variable. The Settings table drives the file decoder, Bind,
// the environment lookup and docs/config.md, so that the three ways of
// setting a value cannot drift apart.
type Setting struct {
	// Key is the YAML path, dot-separated: "audit.webhookListen".
	Key string
	// Flag is the flag name without dashes: "audit-webhook-listen".
	Flag string
	// Usage is one line for --help and the reference table.
	Usage string
	// Details is optional text for docs/config.md only.
	Details string
	// path: a relative value read from the file is taken relative to the
	// file's directory.
	path bool
	// field returns a pointer to the setting's field in c: *string, *bool,
	// *time.Duration or *[]string.
	field func(c *Config) any
}

// Env returns the environment variable: KUSTODE_ and the flag name in upper
// snake case (--audit-webhook-listen → KUSTODE_AUDIT_WEBHOOK_LISTEN).
func (s Setting) Env() string { return envName(s.Flag) }

func envName(flag string) string {
	return "KUSTODE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Type returns the kind of value: "string", "bool", "duration" or
// "strings" (a list).
func (s Setting) Type() string { return s.value(new(Config)).Type() }

// IsPath reports whether the setting names a file or directory; relative
// paths in the configuration file are relative to the file's directory.
func (s Setting) IsPath() bool { return s.path }

// DefaultYAML returns the default as written in YAML: ":8080" (quoted),
// true, 15m, [].
func (s Setting) DefaultYAML() string {
	d := Default()
	switch p := s.field(&d).(type) {
	case *string:
		return strconv.Quote(*p)
	case *[]string:
		q := make([]string, len(*p))
		for i, v := range *p {
			q[i] = strconv.Quote(v)
		}
		return "[" + strings.Join(q, ", ") + "]"
	default:
		return s.value(&d).String()
	}
}

// value returns a pflag.Value over the setting's field in c.
func (s Setting) value(c *Config) value {
	switch p := s.field(c).(type) {
	case *string:
		return (*stringValue)(p)
	case *bool:
		return (*boolValue)(p)
	case *time.Duration:
		return (*durationValue)(p)
	case *[]string:
		return &listValue{p: p}
	default:
		panic(fmt.Sprintf("config: setting %s: unsupported field type %T", s.Key, p))
	}
}

// copyField sets the setting's field in dst to its value in src.
func (s Setting) copyField(dst, src *Config) {
	switch d := s.field(dst).(type) {
	case *string:
		*d = *s.field(src).(*string)
	case *bool:
		*d = *s.field(src).(*bool)
	case *time.Duration:
		*d = *s.field(src).(*time.Duration)
	case *[]string:
		*d = slices.Clone(*s.field(src).(*[]string))
	}
}

// expandHome expands a leading ~/ in the setting's value(s) in c, for
// path settings.
func (s Setting) expandHome(c *Config) {
	switch p := s.field(c).(type) {
	case *string:
		*p = expandHome(*p)
	case *[]string:
		for i := range *p {
			(*p)[i] = expandHome((*p)[i])
		}
	}
}

// Settings returns every setting of Config in the order of the reference.
// The slice is a copy.
func Settings() []Setting { return slices.Clone(settings) }

// settingByKey indexes settings by YAML key.
var settingByKey = func() map[string]Setting {
	m := make(map[string]Setting, len(settings))
	for _, s := range settings {
		m[s.Key] = s
	}
	return m
}()

var settings = []Setting{
	{
		Key: "kubeconfig", Flag: "kubeconfig", path: true,
		Usage: "kubeconfig file; empty: in-cluster, then $KUBECONFIG, then ~/.kube/config",
		field: func(c *Config) any { return &c.Kubeconfig },
	},
	{
		Key: "listen", Flag: "listen",
		Usage: "host:port of the API and the dashboard",
		field: func(c *Config) any { return &c.Listen },
	},
	{
		Key: "dataDir", Flag: "data-dir", path: true,
		Usage: "directory of the SQLite database and local state; created if missing",
		field: func(c *Config) any { return &c.DataDir },
	},
	{
		Key: "store", Flag: "store",
		Usage: `persistence: empty for SQLite in dataDir, postgres://… (or postgresql://…) for PostgreSQL, sqlite:PATH for SQLite elsewhere`,
		Details: "A PostgreSQL URL may carry a password; `--print-config` and logs show it as `xxxxx`. " +
			"To keep the password out of the configuration, leave it out of the URL and set `PGPASSWORD` or a `~/.pgpass` file.",
		field: func(c *Config) any { return &c.Store },
	},
	{
		Key: "api.tokenFile", Flag: "api-token-file", path: true,
		Usage: "file holding a static bearer token for local use (content trimmed); empty: authenticate with Kubernetes TokenReview and SubjectAccessReview",
		field: func(c *Config) any { return &c.API.TokenFile },
	},
	{
		Key: "api.tlsCertFile", Flag: "tls-cert-file", path: true,
		Usage: "TLS certificate (PEM) of the API and dashboard; set together with api.tlsKeyFile",
		field: func(c *Config) any { return &c.API.TLSCertFile },
	},
	{
		Key: "api.tlsKeyFile", Flag: "tls-key-file", path: true,
		Usage: "TLS private key (PEM) of the API and dashboard; set together with api.tlsCertFile",
		field: func(c *Config) any { return &c.API.TLSKeyFile },
	},
	{
		Key: "audit.logPath", Flag: "audit-log", path: true,
		Usage: "API-server audit log file (JSON lines) to follow; empty: no log file intake",
		field: func(c *Config) any { return &c.Audit.LogPath },
	},
	{
		Key: "audit.startAtEnd", Flag: "audit-log-start-at-end",
		Usage: "follow the audit log from its end, skipping what it already holds",
		field: func(c *Config) any { return &c.Audit.StartAtEnd },
	},
	{
		Key: "audit.webhookListen", Flag: "audit-webhook-listen",
		Usage: `host:port receiving the API server's audit webhook backend (e.g. ":8443"); empty: no webhook`,
		Details: "The webhook must authenticate its sender: set `audit.webhookTokenFile` (a bearer token the " +
			"API server sends, configured in its webhook kubeconfig) or `audit.webhookClientCAFile` (the API " +
			"server presents a client certificate signed by this CA; needs the webhook TLS files). It must " +
			"not share a port with `listen`.",
		field: func(c *Config) any { return &c.Audit.WebhookListen },
	},
	{
		Key: "audit.webhookTokenFile", Flag: "audit-webhook-token-file", path: true,
		Usage: "file holding the bearer token the API server must send to the audit webhook",
		field: func(c *Config) any { return &c.Audit.WebhookTokenFile },
	},
	{
		Key: "audit.webhookClientCAFile", Flag: "audit-webhook-client-ca-file", path: true,
		Usage: "CA bundle (PEM) verifying the API server's client certificate at the audit webhook; needs the webhook TLS files",
		field: func(c *Config) any { return &c.Audit.WebhookClientCAFile },
	},
	{
		Key: "audit.webhookTLSCertFile", Flag: "audit-webhook-tls-cert-file", path: true,
		Usage: "TLS certificate (PEM) of the audit webhook; set together with audit.webhookTLSKeyFile",
		field: func(c *Config) any { return &c.Audit.WebhookTLSCertFile },
	},
	{
		Key: "audit.webhookTLSKeyFile", Flag: "audit-webhook-tls-key-file", path: true,
		Usage: "TLS private key (PEM) of the audit webhook; set together with audit.webhookTLSCertFile",
		field: func(c *Config) any { return &c.Audit.WebhookTLSKeyFile },
	},
	{
		Key: "audit.rulesDirs", Flag: "rules-dir", path: true,
		Usage: "directories of your own detection rules (YAML), added to the built-in pack",
		field: func(c *Config) any { return &c.Audit.RulesDirs },
	},
	{
		Key: "audit.clusterCIDRs", Flag: "cluster-cidr",
		Usage: "the cluster's pod and node networks (CIDRs): service-account tokens used from elsewhere raise service-account-token-outside-cluster; empty: the private ranges",
		field: func(c *Config) any { return &c.Audit.ClusterCIDRs },
	},
	{
		Key: "audit.silenceAlert", Flag: "audit-silence-alert",
		Usage: "raise a coverage alert when no audit event arrived for this long; 0 disables",
		field: func(c *Config) any { return &c.Audit.SilenceAlert },
	},
	{
		Key: "posture.resync", Flag: "posture-resync",
		Usage: "interval of the full re-evaluation of every posture check (changes are evaluated as they happen)",
		field: func(c *Config) any { return &c.Posture.Resync },
	},
	{
		Key: "posture.historyInterval", Flag: "posture-history-interval",
		Usage: "interval of the posture history snapshots (finding counts over time)",
		field: func(c *Config) any { return &c.Posture.HistoryInterval },
	},
	{
		Key: "posture.exceptionsFile", Flag: "exceptions", path: true,
		Usage: "exceptions file: checks waived for selected objects, with reason, owner and expiry (docs/exceptions.md)",
		field: func(c *Config) any { return &c.Posture.ExceptionsFile },
	},
	{
		Key: "posture.pssVersion", Flag: "pss-version",
		Usage: `Pod Security Standards version to judge against: "latest" or "v1.N"`,
		field: func(c *Config) any { return &c.Posture.PSSVersion },
	},
	{
		Key: "posture.secretMaxAge", Flag: "secret-max-age",
		Usage: "age above which a Secret counts as not rotated; 0 disables the check",
		field: func(c *Config) any { return &c.Posture.SecretMaxAge },
	},
	{
		Key: "posture.namespaces", Flag: "namespace",
		Usage: "namespaces to watch; empty: all",
		field: func(c *Config) any { return &c.Posture.Namespaces },
	},
	{
		Key: "events.enabled", Flag: "events",
		Usage: "watch Kubernetes Warning events (OOMKilled, BackOff, FailedMount, image pulls) as signals",
		field: func(c *Config) any { return &c.Events.Enabled },
	},
	{
		Key: "events.registryAllowList", Flag: "registry-allow",
		Usage: "registries images may be pulled from (host, optionally with a path prefix: ghcr.io/acme); empty: no check",
		field: func(c *Config) any { return &c.Events.RegistryAllowList },
	},
	{
		Key: "kubelet.readConfig", Flag: "kubelet-read-config",
		Usage: "judge each node's running kubelet configuration, read through the API server's node proxy (needs list and watch on nodes and get on nodes/proxy)",
		Details: "Off by default: `get` on `nodes/proxy` reaches the kubelet API of every node, which also runs commands in any pod " +
			"(exec) past audit and admission. With it on, serve reads every node's `/configz` before its first posture evaluation, " +
			"every `kubelet.configInterval` and when a node joins, and the kubelet checks judge each as a `KubeletConfiguration` " +
			"named after its node. A node that cannot be read keeps its last configuration read and is reported by the coverage " +
			"self-check (condition `kubelet-config`), without making serve unready. The Helm chart grants the permissions in a " +
			"separate ClusterRole when its value `kubelet.readConfig` is true.",
		field: func(c *Config) any { return &c.Kubelet.ReadConfig },
	},
	{
		Key: "kubelet.configInterval", Flag: "kubelet-config-interval",
		Usage: "how often every node's kubelet configuration is read again, with kubelet.readConfig; at least 30s",
		field: func(c *Config) any { return &c.Kubelet.ConfigInterval },
	},
	{
		Key: "retention.alerts", Flag: "retention-alerts",
		Usage: "how long alerts are kept; 0 keeps them forever",
		field: func(c *Config) any { return &c.Retention.Alerts },
	},
	{
		Key: "retention.resolvedFindings", Flag: "retention-resolved-findings",
		Usage: "how long resolved findings are kept; 0 keeps them forever",
		field: func(c *Config) any { return &c.Retention.ResolvedFindings },
	},
	{
		Key: "retention.history", Flag: "retention-history",
		Usage: "how long posture history is kept; 0 keeps it forever",
		field: func(c *Config) any { return &c.Retention.History },
	},
	{
		Key: "log.level", Flag: "log-level",
		Usage: "log level: debug, info, warn or error",
		field: func(c *Config) any { return &c.Log.Level },
	},
	{
		Key: "log.format", Flag: "log-format",
		Usage: "log format: text or json",
		field: func(c *Config) any { return &c.Log.Format },
	},
}

// value is a setting's field seen as a flag value. Set is what a flag
// occurrence does (lists append); replace is what the environment and a
// YAML scalar do.
type value interface {
	pflag.Value
	replace(raw string) error
}

type stringValue string

func (v *stringValue) String() string { return string(*v) }
func (v *stringValue) Type() string   { return "string" }
func (v *stringValue) Set(s string) error {
	*v = stringValue(s)
	return nil
}
func (v *stringValue) replace(s string) error { return v.Set(s) }

type boolValue bool

func (v *boolValue) String() string { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) Type() string   { return "bool" }
func (v *boolValue) Set(s string) error {
	b, err := parseBool(s)
	*v = boolValue(b)
	return err
}
func (v *boolValue) replace(s string) error { return v.Set(s) }

// IsBoolFlag lets pflag print the flag without a value placeholder.
func (v *boolValue) IsBoolFlag() bool { return true }

func parseBool(s string) (bool, error) {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("%q is not a boolean: use true or false", s)
	}
	return b, nil
}

type durationValue time.Duration

func (v *durationValue) String() string { return formatDuration(time.Duration(*v)) }
func (v *durationValue) Type() string   { return "duration" }
func (v *durationValue) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	*v = durationValue(d)
	return nil
}
func (v *durationValue) replace(s string) error { return v.Set(s) }

// parseDuration accepts Go duration strings only: a bare number would be
// ambiguous (seconds? minutes?) and is refused with the fix.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err == nil {
		return d, nil
	}
	if _, nerr := strconv.ParseFloat(strings.TrimSpace(s), 64); nerr == nil {
		return 0, fmt.Errorf("%q is not a Go duration: add a unit (%ss, %sm, %sh); a plain number is not accepted", s, s, s, s)
	}
	return 0, fmt.Errorf("%q is not a Go duration (examples: 90s, 15m, 1h30m, 2160h)", s)
}

// formatDuration writes d as a Go duration without trailing zero units:
// 15m rather than 15m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// listValue is a repeatable flag: the first occurrence replaces the default,
// later ones append; each occurrence may hold comma-separated items.
type listValue struct {
	p   *[]string
	set bool
}

// String is empty for an empty list, so that pflag shows no default.
func (v *listValue) String() string {
	if len(*v.p) == 0 {
		return ""
	}
	return strings.Join(*v.p, ",")
}
func (v *listValue) Type() string { return "strings" }
func (v *listValue) Set(s string) error {
	if !v.set {
		*v.p = nil
		v.set = true
	}
	*v.p = append(*v.p, splitList(s)...)
	return nil
}
func (v *listValue) replace(s string) error {
	*v.p = splitList(s)
	return nil
}

// splitList splits comma-separated items, trimming spaces and dropping
// empty items. It returns nil for no items.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
