package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// FieldError is one problem with one setting.
type FieldError struct {
	// Key is the setting's YAML path ("api.tlsKeyFile"); empty for the file
	// as a whole.
	Key string
	// Problem says what is wrong, with the bad value unless it may be
	// secret, and how to fix it.
	Problem string
	// At is where the value came from when known: "file:line:col",
	// "env KUSTODE_LISTEN" or "flag --listen".
	At string
	// near is the setting whose source locates the problem when Key itself
	// was not set ("api.tlsKeyFile: set together with api.tlsCertFile"
	// points at where api.tlsCertFile was set).
	near string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.At != "" {
		b.WriteString(e.At + ": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Problem)
	return b.String()
}

// Validate checks c and returns every problem at once (errors.Join of
// *FieldError), nil if there is none. It stats the files and directories c
// names, and reads the token files to check they are not empty (their
// content never appears in an error); it does not parse certificates or
// connect to anything. A Config that passed Validate can be started from
// as far as configuration goes: what is left are runtime failures.
func (c *Config) Validate() error {
	var errs []error
	for _, e := range c.validate() {
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

type problems []*FieldError

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, &FieldError{Key: key, Problem: fmt.Sprintf(format, args...)})
}

// addNear adds a problem of key that the value of near revealed.
func (p *problems) addNear(key, near, format string, args ...any) {
	*p = append(*p, &FieldError{Key: key, Problem: fmt.Sprintf(format, args...), near: near})
}

func (c *Config) validate() problems {
	var p problems
	p.hostPort("listen", c.Listen, ":8080")
	if c.Kubeconfig != "" {
		p.file("kubeconfig", c.Kubeconfig)
	}
	p.dataDir(c)
	p.store(c.Store)

	p.tokenFile("api.tokenFile", c.API.TokenFile)
	p.pair("api.tlsCertFile", c.API.TLSCertFile, "api.tlsKeyFile", c.API.TLSKeyFile)

	a := c.Audit
	if a.LogPath != "" {
		if fi, err := os.Stat(a.LogPath); err == nil && fi.IsDir() {
			p.add("audit.logPath", "%q is a directory: name the audit log file", a.LogPath)
		}
	}
	p.webhook(c)
	for _, dir := range a.RulesDirs {
		p.dir("audit.rulesDirs", dir)
	}
	for _, c := range a.ClusterCIDRs {
		if _, err := netip.ParsePrefix(c); err != nil {
			p.add("audit.clusterCIDRs", "%q is not a CIDR: write an address and a prefix length (example \"10.244.0.0/16\")", c)
		}
	}
	p.duration("audit.silenceAlert", a.SilenceAlert, true)

	ps := c.Posture
	p.duration("posture.resync", ps.Resync, false)
	p.duration("posture.historyInterval", ps.HistoryInterval, false)
	if ps.ExceptionsFile != "" {
		p.file("posture.exceptionsFile", ps.ExceptionsFile)
	}
	if !pssVersion.MatchString(ps.PSSVersion) {
		p.add("posture.pssVersion", "%q is not a Pod Security Standards version: use \"latest\" or \"v1.N\" (example \"v1.33\")", ps.PSSVersion)
	}
	p.duration("posture.secretMaxAge", ps.SecretMaxAge, true)
	for _, ns := range ps.Namespaces {
		if len(validation.IsDNS1123Label(ns)) > 0 {
			p.add("posture.namespaces", "%q is not a namespace name: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters", ns)
		}
	}

	for _, r := range c.Events.RegistryAllowList {
		if r == "" || strings.Contains(r, "://") || strings.ContainsAny(r, " \t\n") || strings.HasSuffix(r, "/") {
			p.add("events.registryAllowList", "%q is not a registry: write the host, optionally with a path prefix, without scheme or trailing slash (example \"ghcr.io/acme\")", r)
		}
	}

	p.duration("kubelet.configInterval", c.Kubelet.ConfigInterval, false)
	if d := c.Kubelet.ConfigInterval; d > 0 && d < minKubeletInterval {
		p.add("kubelet.configInterval", "%s is too short: every round reads every node's kubelet through the API server; use at least %s (example 10m)",
			formatDuration(d), formatDuration(minKubeletInterval))
	}

	p.duration("retention.alerts", c.Retention.Alerts, true)
	p.duration("retention.resolvedFindings", c.Retention.ResolvedFindings, true)
	p.duration("retention.history", c.Retention.History, true)

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p.add("log.level", "%q is not a level: use debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		p.add("log.format", "%q is not a format: use text or json", c.Log.Format)
	}
	return p
}

// minKubeletInterval bounds kubelet.configInterval from below.
const minKubeletInterval = 30 * time.Second

var pssVersion = regexp.MustCompile(`^(latest|v1\.(0|[1-9][0-9]*))$`)

// hostPort checks a listen address: host (or empty for every interface)
// and a numeric port.
func (p *problems) hostPort(key, addr, example string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		p.add(key, "%q is not host:port (example %q)", addr, example)
		return
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		p.add(key, "%q: port %q is not a number from 0 to 65535 (example %q)", addr, port, example)
	}
	if strings.ContainsAny(host, " /") {
		p.add(key, "%q: host %q is not a host name or IP address (example %q)", addr, host, example)
	}
}

func (p *problems) dataDir(c *Config) {
	if c.DataDir == "" {
		p.add("dataDir", "empty: set the directory of kustode's state (default \"kustode-data\")")
		return
	}
	if fi, err := os.Stat(c.DataDir); err == nil && !fi.IsDir() {
		p.add("dataDir", "%q is a file, not a directory: name a directory (it is created if missing)", c.DataDir)
	}
}

// store checks the store URL. The value is printed redacted: a PostgreSQL
// URL may carry a password.
func (p *problems) store(s string) {
	if s == "" {
		return
	}
	const fix = "use postgres://… or sqlite:PATH, or leave empty for SQLite in dataDir"
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok {
		p.add("store", "%q has no scheme: %s", s, fix)
		return
	}
	switch strings.ToLower(scheme) {
	case "sqlite":
		switch path := strings.TrimPrefix(rest, "//"); {
		case path == "":
			p.add("store", "%q names no file: write sqlite:PATH (example \"sqlite:/var/lib/kustode/kustode.db\")", s)
		case strings.Contains(path, "?"):
			p.add("store", "%q: a SQLite file path cannot contain '?': rename the file", s)
		}
	case "postgres", "postgresql":
		if !strings.HasPrefix(rest, "//") {
			p.add("store", "not a PostgreSQL URL: write %s://USER@HOST:PORT/DATABASE", scheme)
			return
		}
		if _, err := url.Parse(s); err != nil {
			var uerr *url.Error
			if errors.As(err, &uerr) {
				err = uerr.Err // url.Error repeats the URL, password included
			}
			p.add("store", "not a valid PostgreSQL URL (%v): write postgres://USER@HOST:PORT/DATABASE", err)
		}
	default:
		p.add("store", "scheme %q not supported: %s", scheme, fix)
	}
}

// pair checks two settings that only work together.
func (p *problems) pair(keyA, a, keyB, b string) {
	switch {
	case a != "" && b == "":
		p.addNear(keyB, keyA, "set together with %s, or neither", keyA)
	case a == "" && b != "":
		p.addNear(keyA, keyB, "set together with %s, or neither", keyB)
	}
	if a != "" {
		p.file(keyA, a)
	}
	if b != "" {
		p.file(keyB, b)
	}
}

func (p *problems) webhook(c *Config) {
	a := c.Audit
	files := []struct{ key, path string }{
		{"audit.webhookTokenFile", a.WebhookTokenFile},
		{"audit.webhookClientCAFile", a.WebhookClientCAFile},
		{"audit.webhookTLSCertFile", a.WebhookTLSCertFile},
		{"audit.webhookTLSKeyFile", a.WebhookTLSKeyFile},
	}
	if a.WebhookListen == "" {
		for _, f := range files {
			if f.path != "" {
				p.add(f.key, "has no effect without audit.webhookListen: set audit.webhookListen (example \":8443\") or remove it")
			}
		}
		return
	}
	p.hostPort("audit.webhookListen", a.WebhookListen, ":8443")
	if overlap(c.Listen, a.WebhookListen) {
		p.add("audit.webhookListen", "%q uses the port of listen %q: give the audit webhook its own port (example \":8443\")", a.WebhookListen, c.Listen)
	}
	if a.WebhookTokenFile == "" && a.WebhookClientCAFile == "" {
		p.add("audit.webhookListen", "the audit webhook must authenticate its sender: set audit.webhookTokenFile or audit.webhookClientCAFile")
	}
	p.tokenFile("audit.webhookTokenFile", a.WebhookTokenFile)
	if a.WebhookClientCAFile != "" {
		p.file("audit.webhookClientCAFile", a.WebhookClientCAFile)
		if a.WebhookTLSCertFile == "" {
			p.add("audit.webhookClientCAFile", "client certificates need TLS: set audit.webhookTLSCertFile and audit.webhookTLSKeyFile")
		}
	}
	p.pair("audit.webhookTLSCertFile", a.WebhookTLSCertFile, "audit.webhookTLSKeyFile", a.WebhookTLSKeyFile)
}

// overlap reports whether two listen addresses would claim the same port:
// the same port (not 0) and the same host, or either on every interface.
func overlap(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb || pa == "0" {
		return false
	}
	wildcard := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || wildcard(ha) || wildcard(hb)
}

// duration checks that d is not negative, and positive unless zeroOK.
func (p *problems) duration(key string, d time.Duration, zeroOK bool) {
	switch {
	case d < 0 && zeroOK:
		p.add(key, "%s is negative: use a positive duration (example 15m), or 0 to disable", formatDuration(d))
	case d < 0:
		p.add(key, "%s is negative: use a positive duration (example 10m)", formatDuration(d))
	case d == 0 && !zeroOK:
		p.add(key, "0: use a positive duration (example 10m)")
	}
}

// file checks that path names an existing file.
func (p *problems) file(key, path string) {
	fi, err := os.Stat(path)
	if err != nil {
		p.add(key, "%q %s", path, statProblem(path, err))
		return
	}
	if fi.IsDir() {
		p.add(key, "%q is a directory: name a file", path)
	}
}

// dir checks that path names an existing directory.
func (p *problems) dir(key, path string) {
	if path == "" {
		p.add(key, "empty directory name: remove the empty item")
		return
	}
	fi, err := os.Stat(path)
	if err != nil {
		p.add(key, "%q %s", path, strings.Replace(statProblem(path, err), "file not found", "directory not found", 1))
		return
	}
	if !fi.IsDir() {
		p.add(key, "%q is not a directory", path)
	}
}

// tokenFile checks a token file with ReadTokenFile, if path is set.
func (p *problems) tokenFile(key, path string) {
	if path == "" {
		return
	}
	if _, err := ReadTokenFile(path); err != nil {
		p.add(key, "%v", err)
	}
}

func statProblem(path string, err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if strings.HasPrefix(path, "~") {
			return "file not found (only a leading ~/ is expanded: write the full path)"
		}
		return "file not found"
	case errors.Is(err, fs.ErrPermission):
		return "cannot be read: permission denied"
	}
	var perr *fs.PathError
	if errors.As(err, &perr) {
		err = perr.Err
	}
	return fmt.Sprintf("cannot be read: %v", err)
}

// maxTokenSize bounds a token file: tokens are short, and a path to a huge
// or endless file must not exhaust memory.
const maxTokenSize = 64 << 10

// ReadTokenFile returns the bearer token held by the file at path: its
// content with surrounding white space trimmed. It fails if path is not a
// regular file, holds more than 64 KiB, or holds only white space (an empty
// token would let anyone in). Errors name the file and never include its
// content. The file is read on each call, so a rotated token is picked up by
// calling again.
func ReadTokenFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("%q %s", path, statProblem(path, err))
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%q is not a regular file: name the file holding the token", path)
	}
	f, err := os.Open(path) //nolint:gosec // the user names the file
	if err != nil {
		return "", fmt.Errorf("%q %s", path, statProblem(path, err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTokenSize+1))
	if err != nil {
		return "", fmt.Errorf("%q %s", path, statProblem(path, err))
	}
	if len(data) > maxTokenSize {
		return "", fmt.Errorf("%q is larger than 64 KiB: that is not a token file", path)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", fmt.Errorf("%q is empty: write the token into it", path)
	}
	return token, nil
}
