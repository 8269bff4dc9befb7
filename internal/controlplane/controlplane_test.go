package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

func TestCheckAssetsNamesEveryMissingBinary(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, Etcd), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, Kwok), []byte("not executable"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := CheckAssets(dir, Etcd, KubeAPIServer, Kwok)
	if err == nil {
		t.Fatal("CheckAssets succeeded with kube-apiserver missing and kwok not executable")
	}
	msg := err.Error()
	for _, want := range []string{"kube-apiserver", "kwok", "is not an executable file", "hack/k8s-assets.sh"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, "etcd:") {
		t.Errorf("error %q blames etcd, which is present", msg)
	}
	if err := CheckAssets(dir, Etcd); err != nil {
		t.Errorf("CheckAssets(etcd present) = %v", err)
	}
}

func TestStartFailsLoudlyWithoutBinaries(t *testing.T) {
	_, err := Start(t.Context(), Options{AssetsDir: t.TempDir(), Kwok: true})
	if err == nil || !strings.Contains(err.Error(), "missing binaries") {
		t.Fatalf("Start with an empty assets dir: err = %v, want a missing-binaries error", err)
	}
}

func TestTokenFile(t *testing.T) {
	cp := &ControlPlane{Dir: t.TempDir(), tokens: map[string]string{}}
	path, err := cp.writeTokenFile([]User{{Name: "alice", Groups: []string{"dev", "ops"}}, {Name: "bob"}})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	records, err := r.ReadAll()
	if err != nil {
		t.Fatalf("token file is not CSV: %v", err)
	}
	byUser := map[string][]string{}
	for _, rec := range records {
		byUser[rec[1]] = rec
	}
	tests := []struct {
		user   string
		groups string
	}{
		{AdminUser, "system:masters"},
		{ControllerManagerUser, ""},
		{"alice", "dev,ops"},
		{"bob", ""},
	}
	for _, tt := range tests {
		rec, ok := byUser[tt.user]
		if !ok {
			t.Errorf("no token for %s", tt.user)
			continue
		}
		if rec[0] != cp.Token(tt.user) || len(rec[0]) != 32 {
			t.Errorf("%s: token in file %q, Token() %q: want the same 32-character token", tt.user, rec[0], cp.Token(tt.user))
		}
		groups := ""
		if len(rec) > 3 {
			groups = rec[3]
		}
		if groups != tt.groups {
			t.Errorf("%s: groups %q, want %q", tt.user, groups, tt.groups)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}

	dup := &ControlPlane{Dir: t.TempDir(), tokens: map[string]string{}}
	if _, err := dup.writeTokenFile([]User{{Name: AdminUser}}); err == nil {
		t.Error("a user named like the built-in admin was accepted")
	}
}

func TestKubeconfigs(t *testing.T) {
	cp := &ControlPlane{Dir: t.TempDir(), URL: "https://127.0.0.1:6443", CACert: []byte("ca"), tokens: map[string]string{"system:kube-scheduler": "tok"}}
	path, err := cp.WriteKubeconfig("system:kube-scheduler")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "system-kube-scheduler.kubeconfig" {
		t.Errorf("kubeconfig path %s: want a file name without colons", path)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("kubeconfig does not load: %v", err)
	}
	if cfg.Host != cp.URL || cfg.BearerToken != "tok" || string(cfg.CAData) != "ca" {
		t.Errorf("kubeconfig = host %q token %q ca %q", cfg.Host, cfg.BearerToken, cfg.CAData)
	}
	if _, err := cp.WriteKubeconfig("nobody"); err == nil {
		t.Error("WriteKubeconfig for an unknown user succeeded")
	}

	hook := filepath.Join(t.TempDir(), "hook.kubeconfig")
	if err := writeWebhookKubeconfig(hook, "https://127.0.0.1:9999/audit", "hook-token", []byte("ca")); err != nil {
		t.Fatal(err)
	}
	hc, err := clientcmd.BuildConfigFromFlags("", hook)
	if err != nil {
		t.Fatalf("webhook kubeconfig does not load: %v", err)
	}
	if hc.Host != "https://127.0.0.1:9999/audit" || hc.BearerToken != "hook-token" || string(hc.CAData) != "ca" {
		t.Errorf("webhook kubeconfig server = %q, token %q", hc.Host, hc.BearerToken)
	}
}

func TestPKI(t *testing.T) {
	p, err := newPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{p.caCertFile, p.servingCert, p.servingKey, p.saKeyFile, p.saPublicKeyPEM} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
}

func TestFreePortsDistinct(t *testing.T) {
	ports, err := freePorts(t.Context(), 6)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v: want 6 distinct positive ports", ports)
		}
		seen[p] = true
	}
}

// A process that exits before it is ready makes waitReady fail with the
// end of its log; stop is idempotent.
func TestProcessExitBeforeReadyQuotesLog(t *testing.T) {
	dir := t.TempDir()
	p, err := startProcess("broken", "/bin/sh", []string{"-c", "echo starting; echo 'fatal: bad flag --nope' >&2; exit 3"}, filepath.Join(dir, "broken.log"))
	if err != nil {
		t.Fatal(err)
	}
	never := func(context.Context) error { return os.ErrNotExist }
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err = p.waitReady(ctx, never)
	if err == nil {
		t.Fatal("waitReady succeeded for a process that exited")
	}
	for _, want := range []string{"broken exited before it was ready", "exit status 3", "fatal: bad flag --nope"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if err := p.stop(time.Second); err != nil {
		t.Errorf("stop after exit: %v", err)
	}
}

// stop sends SIGTERM to the process's own PID and waits for it.
func TestProcessStop(t *testing.T) {
	p, err := startProcess("sleeper", "/bin/sh", []string{"-c", "exec sleep 60"}, filepath.Join(t.TempDir(), "sleeper.log"))
	if err != nil {
		t.Fatal(err)
	}
	if p.exited() {
		t.Fatal("sleeper exited at once")
	}
	if err := p.stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !p.exited() {
		t.Error("process still running after stop")
	}
	if err := p.stop(time.Second); err != nil {
		t.Errorf("second stop: %v", err)
	}
}

func TestClientCert(t *testing.T) {
	p, err := newPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := p.clientCert("carol", []string{"ops", "oncall"})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("certificate and key do not match: %v", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.caCertPEM)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate does not verify against the CA: %v", err)
	}
	if cert.Subject.CommonName != "carol" || strings.Join(cert.Subject.Organization, ",") != "ops,oncall" {
		t.Errorf("subject = %v, want CN=carol O=ops,oncall", cert.Subject)
	}
}

// Report says which components still run and quotes the end of the logs of
// those asked for.
func TestReport(t *testing.T) {
	dir := t.TempDir()
	dead, err := startProcess(Scheduler, "/bin/sh", []string{"-c", "echo 'E1126 leaderelection lost'; exit 1"}, filepath.Join(dir, "sched.log"))
	if err != nil {
		t.Fatal(err)
	}
	alive, err := startProcess(Kwok, "/bin/sh", []string{"-c", "echo kwok up; exec sleep 60"}, filepath.Join(dir, "kwok.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alive.stop(10 * time.Second); _ = dead.stop(time.Second) })
	<-dead.done
	cp := &ControlPlane{procs: []*process{dead, alive}}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(cp.Report(100), "kwok up") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // the shell's echo reaches the log
	}
	all := cp.Report(100)
	for _, want := range []string{"kube-scheduler (pid", "EXITED", "leaderelection lost", "kwok (pid", "running", "kwok up"} {
		if !strings.Contains(all, want) {
			t.Errorf("report lacks %q:\n%s", want, all)
		}
	}
	if only := cp.Report(100, Scheduler); strings.Contains(only, "kwok") || !strings.Contains(only, "EXITED") {
		t.Errorf("report of the scheduler alone:\n%s", only)
	}
}
