package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Identities the control plane creates for itself. Their tokens are in the
// static token file like any other user's.
const (
	// AdminUser is in system:masters: it can do anything, as cluster-admin.
	AdminUser = "kustode-admin"
	// ControllerManagerUser and SchedulerUser are the names the default RBAC
	// bootstrap policy grants the components' permissions to.
	ControllerManagerUser = "system:kube-controller-manager"
	SchedulerUser         = "system:kube-scheduler"
	// KwokUser plays every fake node's kubelet.
	KwokUser = "kwok"
)

// serviceIP is the first address of the service CIDR: the kubernetes Service.
const (
	serviceCIDR = "10.96.0.0/16"
	serviceIP   = "10.96.0.1"
	podCIDR     = "10.244.0.0/16"
	// ServiceAccountIssuer is the iss claim of service-account tokens.
	ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"
)

//go:embed audit-policy.yaml
var defaultAuditPolicy []byte

//go:embed kwok.yaml
var kwokConfig []byte

// DefaultAuditPolicy returns the audit policy used when Options.AuditPolicy
// is empty: metadata for Secrets, ConfigMaps and tokens, request and response
// bodies for writes, metadata for everything else, nothing for lease renewals.
func DefaultAuditPolicy() []byte { return slices.Clone(defaultAuditPolicy) }

// User is a test identity authenticated by a static bearer token.
type User struct {
	Name   string
	Groups []string
}

// Options configures Start. The zero value starts etcd and kube-apiserver
// only, with the admin user, the default audit policy and an audit log file.
type Options struct {
	// AssetsDir holds the binaries. Empty means AssetsDir(ctx, Progress).
	AssetsDir string
	// Dir is where configuration, keys and logs are written. Empty means a
	// new temporary directory, removed by Stop.
	Dir string
	// Users are extra identities besides the admin and the components'.
	Users []User
	// AuditPolicy is an audit.k8s.io/v1 Policy. Empty means DefaultAuditPolicy.
	AuditPolicy []byte
	// AuditWebhookURL, when set, is where the API server POSTs audit
	// EventLists (the webhook backend, batch mode). Plain http on loopback
	// is accepted.
	AuditWebhookURL string
	// AuditWebhookToken, when set, is the bearer token the API server
	// presents to the audit webhook, as a production receiver requires.
	// Kubernetes sends credentials only over TLS: the URL must be https.
	AuditWebhookToken string
	// AuditWebhookCA is the PEM CA that signs an https webhook's
	// certificate.
	AuditWebhookCA []byte
	// AuditWebhookBatchMaxWait bounds how long the API server holds audit
	// events before sending a batch. Zero means one second (the API server's
	// own default of 30 s would delay every alert).
	AuditWebhookBatchMaxWait time.Duration
	// ControllerManager starts kube-controller-manager: default service
	// accounts, ClusterRole aggregation, ReplicaSets, Deployments, Jobs, ...
	ControllerManager bool
	// Scheduler starts kube-scheduler so pods get nodes.
	Scheduler bool
	// Kwok starts kwok: nodes created through the API become Ready, pods on
	// them Running, and resource metrics are served (see KwokMetricsURL).
	Kwok bool
	// APIServerArgs are appended to kube-apiserver's flags (a later flag
	// overrides an earlier one).
	APIServerArgs []string
	// Progress receives one line per step. Nil discards.
	Progress io.Writer
	// ReadyTimeout bounds how long Start waits for each component. Zero
	// means two minutes.
	ReadyTimeout time.Duration
}

// ControlPlane is a running set of control-plane processes. Its methods are
// safe for concurrent use.
type ControlPlane struct {
	// Dir holds configuration, keys and one log file per process.
	Dir string
	// URL is the API server's https URL on 127.0.0.1.
	URL string
	// CACert is the PEM certificate that signs the API server's serving
	// certificate.
	CACert []byte
	// AuditLogPath is the API server's JSON-lines audit log.
	AuditLogPath string
	// KwokURL is kwok's HTTP server (empty without kwok).
	KwokURL string

	removeDir bool
	etcdData  string
	pki       *pki
	tokens    map[string]string // user name → bearer token
	progress  io.Writer

	mu    sync.Mutex
	procs []*process // in start order; stopped in reverse
}

// Start launches the control plane and returns once every requested
// component is ready: the API server answers /readyz, the controller-manager
// has created the default ServiceAccount, the scheduler and kwok answer
// /healthz. On error, everything already started is stopped. The processes
// do not depend on ctx after Start returns; call Stop.
func Start(ctx context.Context, opts Options) (_ *ControlPlane, err error) {
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	timeout := opts.ReadyTimeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	assets := opts.AssetsDir
	if assets == "" {
		if assets, err = AssetsDir(ctx, progress); err != nil {
			return nil, err
		}
	}
	need := []string{Etcd, KubeAPIServer}
	if opts.ControllerManager {
		need = append(need, ControllerManager)
	}
	if opts.Scheduler {
		need = append(need, Scheduler)
	}
	if opts.Kwok {
		need = append(need, Kwok)
	}
	if err := CheckAssets(assets, need...); err != nil {
		return nil, err
	}

	cp := &ControlPlane{Dir: opts.Dir, tokens: map[string]string{}, progress: progress}
	if cp.Dir == "" {
		if cp.Dir, err = os.MkdirTemp("", "kustode-controlplane-"); err != nil {
			return nil, fmt.Errorf("controlplane: %w", err)
		}
		cp.removeDir = true
	} else if err := os.MkdirAll(cp.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	defer func() {
		if err != nil {
			if stopErr := cp.Stop(); stopErr != nil {
				err = errors.Join(err, stopErr)
			}
		}
	}()

	if cp.pki, err = newPKI(filepath.Join(cp.Dir, "pki")); err != nil {
		return nil, fmt.Errorf("controlplane: keys: %w", err)
	}
	cp.CACert = cp.pki.caCertPEM
	tokenFile, err := cp.writeTokenFile(opts.Users)
	if err != nil {
		return nil, err
	}

	ports, err := freePorts(ctx, 6)
	if err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	etcdClient, etcdPeer, apiPort, kcmPort, schedPort, kwokPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]

	// etcd
	if cp.etcdData, err = etcdDataDir(); err != nil {
		return nil, fmt.Errorf("controlplane: etcd data dir: %w", err)
	}
	etcdURL := "http://" + hostPort(etcdClient)
	peerURL := "http://" + hostPort(etcdPeer)
	etcd, err := cp.start(Etcd, filepath.Join(assets, Etcd), []string{
		"--name=default",
		"--data-dir=" + cp.etcdData,
		"--listen-client-urls=" + etcdURL,
		"--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=default=" + peerURL,
		"--unsafe-no-fsync=true", // test data: durability is not the point, speed is
		"--log-level=warn",
	})
	if err != nil {
		return nil, err
	}
	if err := cp.waitReady(ctx, etcd, timeout, httpOK(http.DefaultClient, etcdURL+"/health", nil)); err != nil {
		return nil, err
	}

	// kube-apiserver
	cp.URL = "https://" + hostPort(apiPort)
	cp.AuditLogPath = filepath.Join(cp.Dir, "audit.log")
	policy := opts.AuditPolicy
	if len(policy) == 0 {
		policy = defaultAuditPolicy
	}
	policyFile := filepath.Join(cp.Dir, "audit-policy.yaml")
	if err := os.WriteFile(policyFile, policy, 0o600); err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	apiArgs := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none", // the loopback address cannot be an Endpoints address
		fmt.Sprintf("--secure-port=%d", apiPort),
		"--tls-cert-file=" + cp.pki.servingCert,
		"--tls-private-key-file=" + cp.pki.servingKey,
		"--client-ca-file=" + cp.pki.caCertFile,
		"--token-auth-file=" + tokenFile,
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=" + ServiceAccountIssuer,
		"--service-account-key-file=" + cp.pki.saPublicKeyPEM,
		"--service-account-signing-key-file=" + cp.pki.saKeyFile,
		"--service-cluster-ip-range=" + serviceCIDR,
		"--allow-privileged=true",
		"--profiling=false",
		"--audit-policy-file=" + policyFile,
		"--audit-log-path=" + cp.AuditLogPath,
		"--audit-log-format=json",
		"--audit-log-maxbackup=1",
	}
	if opts.AuditWebhookURL != "" {
		wait := opts.AuditWebhookBatchMaxWait
		if wait == 0 {
			wait = time.Second
		}
		hookConfig := filepath.Join(cp.Dir, "audit-webhook.kubeconfig")
		if opts.AuditWebhookToken != "" && !strings.HasPrefix(opts.AuditWebhookURL, "https://") {
			return nil, errors.New("controlplane: AuditWebhookToken needs an https AuditWebhookURL: the API server sends credentials only over TLS")
		}
		if err := writeWebhookKubeconfig(hookConfig, opts.AuditWebhookURL, opts.AuditWebhookToken, opts.AuditWebhookCA); err != nil {
			return nil, err
		}
		apiArgs = append(apiArgs,
			"--audit-webhook-config-file="+hookConfig,
			"--audit-webhook-mode=batch",
			"--audit-webhook-batch-max-wait="+wait.String(),
			"--audit-webhook-initial-backoff=1s",
		)
	}
	apiArgs = append(apiArgs, opts.APIServerArgs...)
	apiserver, err := cp.start(KubeAPIServer, filepath.Join(assets, KubeAPIServer), apiArgs)
	if err != nil {
		return nil, err
	}
	tlsClient, err := cp.httpClient()
	if err != nil {
		return nil, err
	}
	readyz := httpOK(tlsClient, cp.URL+"/readyz", http.Header{"Authorization": {"Bearer " + cp.tokens[AdminUser]}})
	if err := cp.waitReady(ctx, apiserver, timeout, readyz); err != nil {
		return nil, err
	}

	if opts.ControllerManager {
		kubeconfig, err := cp.WriteKubeconfig(ControllerManagerUser)
		if err != nil {
			return nil, err
		}
		kcm, err := cp.start(ControllerManager, filepath.Join(assets, ControllerManager), []string{
			"--kubeconfig=" + kubeconfig,
			"--authentication-kubeconfig=" + kubeconfig,
			"--authorization-kubeconfig=" + kubeconfig,
			"--bind-address=127.0.0.1",
			fmt.Sprintf("--secure-port=%d", kcmPort),
			"--leader-elect=false",
			// As kubeadm does: each controller acts as its own service
			// account, so audit events name the controller.
			"--use-service-account-credentials=true",
			"--root-ca-file=" + cp.pki.caCertFile,
			"--service-account-private-key-file=" + cp.pki.saKeyFile,
			"--service-cluster-ip-range=" + serviceCIDR,
		})
		if err != nil {
			return nil, err
		}
		admin, err := kubernetes.NewForConfig(cp.Config(AdminUser))
		if err != nil {
			return nil, fmt.Errorf("controlplane: %w", err)
		}
		// Pods are rejected until their namespace's default ServiceAccount
		// exists; once the controller has made one, it is working.
		defaultSA := func(ctx context.Context) error {
			_, err := admin.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
			return err
		}
		if err := cp.waitReady(ctx, kcm, timeout, defaultSA); err != nil {
			return nil, err
		}
	}

	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // components serve self-signed certificates on loopback; only /healthz is read
	if opts.Scheduler {
		kubeconfig, err := cp.WriteKubeconfig(SchedulerUser)
		if err != nil {
			return nil, err
		}
		sched, err := cp.start(Scheduler, filepath.Join(assets, Scheduler), []string{
			"--kubeconfig=" + kubeconfig,
			"--authentication-kubeconfig=" + kubeconfig,
			"--authorization-kubeconfig=" + kubeconfig,
			"--bind-address=127.0.0.1",
			fmt.Sprintf("--secure-port=%d", schedPort),
			"--leader-elect=false",
		})
		if err != nil {
			return nil, err
		}
		if err := cp.waitReady(ctx, sched, timeout, httpOK(insecure, fmt.Sprintf("https://%s/healthz", hostPort(schedPort)), nil)); err != nil {
			return nil, err
		}
	}

	if opts.Kwok {
		kubeconfig, err := cp.WriteKubeconfig(KwokUser)
		if err != nil {
			return nil, err
		}
		configFile := filepath.Join(cp.Dir, "kwok.yaml")
		if err := os.WriteFile(configFile, kwokConfig, 0o600); err != nil {
			return nil, fmt.Errorf("controlplane: %w", err)
		}
		cp.KwokURL = "http://" + hostPort(kwokPort)
		kwok, err := cp.start(Kwok, filepath.Join(assets, Kwok), []string{
			"--kubeconfig=" + kubeconfig,
			"--config=" + configFile,
			// Only nodes annotated as fake: a test may register a node
			// served by something else (a fake kubelet behind the node
			// proxy) whose status kwok must not rewrite.
			"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
			"--server-address=" + hostPort(kwokPort),
			"--cidr=" + podCIDR,
			"--node-lease-duration-seconds=40",
		})
		if err != nil {
			return nil, err
		}
		if err := cp.waitReady(ctx, kwok, timeout, httpOK(http.DefaultClient, cp.KwokURL+"/healthz", nil)); err != nil {
			return nil, err
		}
	}
	return cp, nil
}

func (cp *ControlPlane) start(name, bin string, args []string) (*process, error) {
	p, err := startProcess(name, bin, args, filepath.Join(cp.Dir, name+".log"))
	if err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	cp.mu.Lock()
	cp.procs = append(cp.procs, p)
	cp.mu.Unlock()
	return p, nil
}

func (cp *ControlPlane) waitReady(ctx context.Context, p *process, timeout time.Duration, check func(context.Context) error) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := p.waitReady(ctx, check); err != nil {
		return fmt.Errorf("controlplane: %w", err)
	}
	fmt.Fprintf(cp.progress, "controlplane: %s ready (pid %d) in %s\n", p.name, p.pid(), time.Since(start).Round(time.Millisecond))
	return nil
}

// Report describes each component for a test's failure message: whether
// its process still runs, and the last logBytes of its log, the names
// given (all components when none is).
func (cp *ControlPlane) Report(logBytes int, names ...string) string {
	cp.mu.Lock()
	procs := slices.Clone(cp.procs)
	cp.mu.Unlock()
	var b strings.Builder
	for _, p := range procs {
		if len(names) > 0 && !slices.Contains(names, p.name) {
			continue
		}
		state := "running"
		if p.exited() {
			state = "EXITED"
		}
		fmt.Fprintf(&b, "\n--- %s (pid %d, %s), end of %s:\n%s", p.name, p.pid(), state, p.logPath, p.logTail(logBytes))
	}
	return b.String()
}

// Stop stops every process in reverse start order (kwok, scheduler,
// controller-manager, then the API server before etcd), each by its own PID
// with SIGTERM and, after a grace period, SIGKILL. It removes etcd's data and,
// if Start created it, Dir. Idempotent.
func (cp *ControlPlane) Stop() error {
	cp.mu.Lock()
	procs := cp.procs
	cp.procs = nil
	cp.mu.Unlock()
	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].stop(15 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if cp.etcdData != "" {
		if err := os.RemoveAll(cp.etcdData); err != nil {
			errs = append(errs, err)
		}
		cp.etcdData = ""
	}
	if cp.removeDir && cp.Dir != "" {
		if err := os.RemoveAll(cp.Dir); err != nil {
			errs = append(errs, err)
		}
		cp.removeDir = false
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("controlplane: stop: %w", err)
	}
	return nil
}

// RestartAPIServer stops kube-apiserver and starts it again with the same
// flags on the same port, and waits until it is ready: what clients see
// during an API server upgrade or crash. Watches break; etcd keeps the state.
func (cp *ControlPlane) RestartAPIServer(ctx context.Context) error {
	cp.mu.Lock()
	i := slices.IndexFunc(cp.procs, func(p *process) bool { return p.name == KubeAPIServer })
	if i < 0 {
		cp.mu.Unlock()
		return errors.New("controlplane: no kube-apiserver running")
	}
	old := cp.procs[i]
	cp.mu.Unlock()
	if err := old.stop(15 * time.Second); err != nil {
		return fmt.Errorf("controlplane: stop kube-apiserver: %w", err)
	}
	p, err := startProcess(old.name, old.bin, old.args, old.logPath)
	if err != nil {
		return err
	}
	cp.mu.Lock()
	cp.procs[i] = p
	cp.mu.Unlock()
	client, err := cp.httpClient()
	if err != nil {
		return err
	}
	readyz := httpOK(client, cp.URL+"/readyz", http.Header{"Authorization": {"Bearer " + cp.tokens[AdminUser]}})
	return cp.waitReady(ctx, p, 2*time.Minute, readyz)
}

// PIDs returns the process ID of each running component by binary name.
func (cp *ControlPlane) PIDs() map[string]int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	pids := make(map[string]int, len(cp.procs))
	for _, p := range cp.procs {
		if !p.exited() {
			pids[p.name] = p.pid()
		}
	}
	return pids
}

// Token returns the bearer token of a user named in Options.Users or one of
// the built-in identities, or "" for an unknown name.
func (cp *ControlPlane) Token(user string) string { return cp.tokens[user] }

// Config returns a client configuration that authenticates as user. It
// panics for a user the control plane does not know: that is a bug in the
// test, not a condition to handle.
func (cp *ControlPlane) Config(user string) *rest.Config {
	token, ok := cp.tokens[user]
	if !ok {
		panic(fmt.Sprintf("controlplane: unknown user %q", user))
	}
	return &rest.Config{
		Host:            cp.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: cp.CACert},
		QPS:             100,
		Burst:           200,
		UserAgent:       "kustode-test/" + user,
	}
}

// CertConfig returns a client configuration that authenticates with a
// fresh client certificate for user in groups, signed by the control
// plane's CA: the way kubeadm's admin.conf and kubelets authenticate, and
// a user the static token file does not know.
func (cp *ControlPlane) CertConfig(user string, groups ...string) (*rest.Config, error) {
	certPEM, keyPEM, err := cp.pki.clientCert(user, groups)
	if err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	cfg := cp.AnonymousConfig()
	cfg.CertData, cfg.KeyData = certPEM, keyPEM
	cfg.UserAgent = "kustode-test/" + user
	return cfg, nil
}

// AnonymousConfig returns a client configuration with no credentials.
func (cp *ControlPlane) AnonymousConfig() *rest.Config {
	return &rest.Config{Host: cp.URL, TLSClientConfig: rest.TLSClientConfig{CAData: cp.CACert}}
}

// WriteKubeconfig writes a kubeconfig for user into Dir and returns its path,
// for processes (kubectl, kustode itself) that take a kubeconfig file.
func (cp *ControlPlane) WriteKubeconfig(user string) (string, error) {
	token, ok := cp.tokens[user]
	if !ok {
		return "", fmt.Errorf("controlplane: unknown user %q", user)
	}
	name := strings.NewReplacer(":", "-", "/", "-").Replace(user)
	path := filepath.Join(cp.Dir, name+".kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kustode"] = &clientcmdapi.Cluster{Server: cp.URL, CertificateAuthorityData: cp.CACert}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["kustode"] = &clientcmdapi.Context{Cluster: "kustode", AuthInfo: user}
	cfg.CurrentContext = "kustode"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", fmt.Errorf("controlplane: write kubeconfig: %w", err)
	}
	return path, nil
}

// KwokMetricsURL returns the URL of the kubelet-style resource metrics
// (Prometheus text) of a kwok node.
func (cp *ControlPlane) KwokMetricsURL(node string) string {
	return cp.KwokURL + "/metrics/nodes/" + node + "/metrics/resource"
}

// EnsureNamespace creates namespace ns as the admin and, when no
// controller-manager runs, its default ServiceAccount, so pods are accepted.
// It is idempotent.
func (cp *ControlPlane) EnsureNamespace(ctx context.Context, ns string) error {
	c, err := kubernetes.NewForConfig(cp.Config(AdminUser))
	if err != nil {
		return err
	}
	_, err = c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("controlplane: create namespace %s: %w", ns, err)
	}
	_, err = c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("controlplane: create default service account in %s: %w", ns, err)
	}
	return nil
}

// httpClient trusts the control plane's CA.
func (cp *ControlPlane) httpClient() (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(cp.CACert) {
		return nil, errors.New("controlplane: CA certificate does not parse")
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}, nil
}

// writeTokenFile assigns every identity a random token and writes the API
// server's static token file: token,user,uid,"group1,group2".
func (cp *ControlPlane) writeTokenFile(users []User) (string, error) {
	all := []User{
		{Name: AdminUser, Groups: []string{"system:masters"}},
		{Name: ControllerManagerUser},
		{Name: SchedulerUser},
		{Name: KwokUser, Groups: []string{"system:masters"}},
	}
	all = append(all, users...)
	path := filepath.Join(cp.Dir, "tokens.csv")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600) //nolint:gosec // path is under the control plane's own directory
	if err != nil {
		return "", fmt.Errorf("controlplane: token file: %w", err)
	}
	defer f.Close()
	w := csv.NewWriter(f)
	for _, u := range all {
		if u.Name == "" {
			return "", errors.New("controlplane: a user has an empty name")
		}
		if _, dup := cp.tokens[u.Name]; dup {
			return "", fmt.Errorf("controlplane: user %q is defined twice", u.Name)
		}
		token := randomToken()
		cp.tokens[u.Name] = token
		record := []string{token, u.Name, u.Name}
		if len(u.Groups) > 0 {
			record = append(record, strings.Join(u.Groups, ","))
		}
		if err := w.Write(record); err != nil {
			return "", fmt.Errorf("controlplane: token file: %w", err)
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return "", fmt.Errorf("controlplane: token file: %w", err)
	}
	return path, f.Close()
}

// writeWebhookKubeconfig writes the kubeconfig-format file that tells the API
// server where to send audit events.
func writeWebhookKubeconfig(path, url, token string, ca []byte) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["audit-sink"] = &clientcmdapi.Cluster{Server: url, CertificateAuthorityData: ca}
	cfg.AuthInfos["kube-apiserver"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["default"] = &clientcmdapi.Context{Cluster: "audit-sink", AuthInfo: "kube-apiserver"}
	cfg.CurrentContext = "default"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("controlplane: write audit webhook config: %w", err)
	}
	return nil
}

// etcdDataDir makes a fresh etcd data directory, in memory (/dev/shm) where
// the machine has it.
func etcdDataDir() (string, error) {
	base := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		base = "/dev/shm"
	}
	return os.MkdirTemp(base, "kustode-etcd-")
}
