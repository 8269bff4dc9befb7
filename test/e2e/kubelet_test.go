//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"

	"github.com/kustode/kustode/internal/cli"
	"github.com/kustode/kustode/internal/config"
	"github.com/kustode/kustode/internal/controlplane"
	"github.com/kustode/kustode/internal/daemon"
	"github.com/kustode/kustode/internal/store"
	"github.com/kustode/kustode/internal/web"
)

// fakeKubelets counts fakeKubelet's calls, for unique interface names.
var fakeKubelets atomic.Int32

// fakeKubelet serves a kubelet's /configz over TLS on 10.213.250.2:10250 in
// a network namespace the test creates (the API server refuses to proxy to
// loopback addresses, as a real cluster's would), reached from the host
// through a veth pair. It needs root and iproute2: CI has both.
func fakeKubelet(t *testing.T, configz string) (ip string, port int32) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("the fake kubelet needs root for its network namespace; CI runs as root")
		}
		t.Skip("needs root for a network namespace (CI runs it)")
	}
	// Names unique per call: a deleted namespace's veth pair goes away
	// asynchronously, so the next test must not reuse its names.
	id := fmt.Sprintf("%d%d", os.Getpid()%100000, fakeKubelets.Add(1)%100)
	ns, hostIf, nsIf := "kustode-kubelet-"+id, "kkh"+id, "kkn"+id
	ipCmd := func(args ...string) {
		t.Helper()
		if out, err := exec.CommandContext(t.Context(), "ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ipCmd("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() }) //nolint:noctx // cleanup after the test's context ended
	ipCmd("link", "add", hostIf, "type", "veth", "peer", "name", nsIf)
	// Deleting the host end removes the pair, and its address, at once.
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", hostIf).Run() }) //nolint:noctx // cleanup after the test's context ended
	ipCmd("link", "set", nsIf, "netns", ns)
	ipCmd("addr", "add", "10.213.250.1/30", "dev", hostIf)
	ipCmd("link", "set", hostIf, "up")
	ipCmd("netns", "exec", ns, "ip", "addr", "add", "10.213.250.2/30", "dev", nsIf)
	ipCmd("netns", "exec", ns, "ip", "link", "set", nsIf, "up")

	// Open the listening socket inside the namespace, from a thread that
	// enters it and then dies with its goroutine (never unlocked), so no
	// other goroutine runs in that namespace.
	type listened struct {
		ln  net.Listener
		err error
	}
	ch := make(chan listened, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			ch <- listened{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- listened{err: fmt.Errorf("setns: %w", err)}
			return
		}
		ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "10.213.250.2:10250")
		ch <- listened{ln, err}
	}()
	l := <-ch
	if l.err != nil {
		t.Fatal(l.err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/configz" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(configz))
	}))
	srv.Listener = l.ln
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return "10.213.250.2", 10250
}

// insecureKubelet is a kubelet's /configz that fails the high kubelet
// checks: anonymous requests, AlwaysAllow, the read-only port.
const insecureKubelet = `{"kubeletconfig":{"authentication":{"anonymous":{"enabled":true},"webhook":{"enabled":false}},"authorization":{"mode":"AlwaysAllow"},"readOnlyPort":10255,"rotateCertificates":false}}`

// fakeKubeletNode creates the Node name served by a fake kubelet answering
// configz, and returns once the API server proxies to it. The node is
// deleted when the test ends.
func fakeKubeletNode(t *testing.T, name, configz string) {
	t.Helper()
	ctx := t.Context()
	ip, port := fakeKubelet(t, configz)
	admin := clientFor(t, cp.Config(controlplane.AdminUser))
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := admin.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// t.Context() is done by now.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = admin.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
		_ = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			_, err := admin.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
	})
	// kwok may touch the new node's status too: retry on conflict.
	var updated *corev1.Node
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := admin.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}
		cur.Status.DaemonEndpoints.KubeletEndpoint.Port = port
		updated, err = admin.CoreV1().Nodes().UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(updated.Status.Addresses) != 1 {
		t.Fatalf("node status not stored: %+v", updated.Status)
	}
	// The API server's node proxy reads the node from its watch cache,
	// which may lag the status update by a moment.
	var proxyErr error
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
		_, proxyErr = admin.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", node.Name, "proxy", "configz").Do(ctx).Raw()
		return proxyErr == nil, nil
	}); err != nil {
		t.Fatalf("the API server never proxied to the fake kubelet: %v", proxyErr)
	}
}

// TestScanClusterKubeletConfigz: scan --cluster reads a node's running
// kubelet configuration through the API server's node proxy and judges it.
func TestScanClusterKubeletConfigz(t *testing.T) {
	fakeKubeletNode(t, "configz-node", insecureKubelet)
	kubeconfig, err := cp.WriteKubeconfig(controlplane.AdminUser)
	if err != nil {
		t.Fatal(err)
	}
	code, report, stderr := runScan(t, "--cluster", "-A", "--kubeconfig", kubeconfig, "-o", "json", "--fail-on", "high", "--checks",
		"kubelet-anonymous-auth,kubelet-authorization-always-allow,kubelet-read-only-port")
	for _, id := range []string{"kubelet-anonymous-auth", "kubelet-authorization-always-allow", "kubelet-read-only-port"} {
		if !hasFinding(report, id, "KubeletConfiguration", "configz-node") {
			t.Errorf("%s not reported on the node's live kubelet configuration; findings %+v\nstderr: %s", id, report.Findings, stderr)
		}
	}
	if code != cli.ExitFindings {
		t.Errorf("exit %d, want %d (findings)", code, cli.ExitFindings)
	}
}

// TestServeKubeletConfigz: serve with kubelet.readConfig reads a node's
// running kubelet configuration through the node proxy before its first
// posture, judges it, and resolves its findings when the node goes. Without
// get on nodes/proxy it stays ready and says what to grant, in /readyz, as a
// coverage alert and in /metrics. The install role alone grants none of it.
func TestServeKubeletConfigz(t *testing.T) {
	const nodeName = "serve-configz-node"
	fakeKubeletNode(t, nodeName, insecureKubelet)
	role := installRole(t)
	for _, r := range role.Rules {
		if slices.Contains(r.Resources, "nodes") || slices.Contains(r.Resources, "nodes/proxy") {
			t.Fatalf("the default install role grants %v: kubelet.readConfig is opt-in", r)
		}
	}
	readConfig := func(c *config.Config) { c.Kubelet.ReadConfig = true }

	t.Run("without nodes/proxy", func(t *testing.T) {
		rules := append(slices.Clone(role.Rules), daemon.KubeletPolicyRules()[0]) // nodes, not nodes/proxy
		s := startServeAs(t, "kustode-kubelet-forbidden", rules, readConfig)
		s.waitReady(t) // ready nonetheless: the condition is advisory
		waitFor(t, 30*time.Second, "coverage alert naming nodes/proxy", func() (bool, string) {
			as := s.alerts(t, "rule=coverage-kubelet-config")
			return slices.ContainsFunc(as, func(a store.Alert) bool {
				return strings.Contains(a.Message, "forbidden") && strings.Contains(a.Message, "get on nodes/proxy")
			}), fmt.Sprintf("%+v", as)
		})
		var ready readyzBody
		if code := s.get(t, "/readyz", s.token, &ready); code != http.StatusOK || !ready.Ready {
			t.Errorf("readyz %d ready=%v: a forbidden nodes/proxy must not make serve unready", code, ready.Ready)
		}
		i := slices.IndexFunc(ready.Conditions, func(c web.Condition) bool {
			return c.Name == "kubelet-config"
		})
		if i < 0 || ready.Conditions[i].OK || !ready.Conditions[i].Advisory ||
			!strings.Contains(ready.Conditions[i].Detail, "nodes/proxy") || !strings.Contains(ready.Conditions[i].Detail, "kubelet.readConfig") {
			t.Errorf("readyz conditions %+v, want kubelet-config not OK, advisory, naming nodes/proxy and the fix", ready.Conditions)
		}
		metrics := s.rawGet(t, "/metrics")
		for _, want := range []string{`kustode_coverage_ok{check="kubelet-config"} 0`, `kustode_kubelet_config_nodes{state="forbidden"}`} {
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		if fs := s.findings(t, "checkID=kubelet-anonymous-auth&status=open"); slices.ContainsFunc(fs, func(f store.Finding) bool { return f.Object.Name == nodeName }) {
			t.Errorf("a kubelet finding without the permission to read it: %s", describeStored(fs))
		}
	})

	t.Run("with the kubelet role", func(t *testing.T) {
		rules := append(slices.Clone(role.Rules), daemon.KubeletPolicyRules()...)
		s := startServeAs(t, "kustode-kubelet", rules, readConfig)
		took := s.waitReady(t)
		t.Logf("ready in %s", took.Round(time.Millisecond))
		// No waiting: the first full posture, which readiness waits for,
		// included the kubelets.
		for _, id := range []string{"kubelet-anonymous-auth", "kubelet-authorization-always-allow", "kubelet-read-only-port"} {
			fs := s.findings(t, "checkID="+id+"&status=open")
			if !slices.ContainsFunc(fs, func(f store.Finding) bool {
				return f.Object.Kind == "KubeletConfiguration" && f.Object.Name == nodeName
			}) {
				t.Errorf("%s not open on %s's KubeletConfiguration once ready: %s", id, nodeName, describeStored(fs))
			}
		}
		if alerts := s.alerts(t, "rule=coverage-kubelet-config"); slices.ContainsFunc(alerts, func(a store.Alert) bool {
			return strings.Contains(a.Message, "forbidden")
		}) {
			t.Errorf("forbidden with the kubelet role: %+v", alerts)
		}

		// The node goes: its findings resolve.
		admin := clientFor(t, cp.Config(controlplane.AdminUser))
		if err := admin.CoreV1().Nodes().Delete(t.Context(), nodeName, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		took = waitFor(t, 15*time.Second, "kubelet finding resolved after the node was deleted", func() (bool, string) {
			fs := s.findings(t, "checkID=kubelet-anonymous-auth")
			return slices.ContainsFunc(fs, func(f store.Finding) bool {
				return f.Object.Name == nodeName && f.Status == store.StatusResolved
			}), describeStored(fs)
		})
		t.Logf("resolved %s after the node was deleted", took.Round(time.Millisecond))
	})
}
