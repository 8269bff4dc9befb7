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
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kustode/kustode/internal/cli"
	"github.com/kustode/kustode/internal/controlplane"
)

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
	id := fmt.Sprint(os.Getpid() % 100000)
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

// TestScanClusterKubeletConfigz: scan --cluster reads a node's running
// kubelet configuration through the API server's node proxy and judges it.
func TestScanClusterKubeletConfigz(t *testing.T) {
	ctx := t.Context()
	ip, port := fakeKubelet(t, `{"kubeletconfig":{"authentication":{"anonymous":{"enabled":true},"webhook":{"enabled":false}},"authorization":{"mode":"AlwaysAllow"},"readOnlyPort":10255,"rotateCertificates":false}}`)
	admin := clientFor(t, cp.Config(controlplane.AdminUser))
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "configz-node"}}
	created, err := admin.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.CoreV1().Nodes().Delete(t.Context(), node.Name, metav1.DeleteOptions{}) })
	created.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}
	created.Status.DaemonEndpoints.KubeletEndpoint.Port = port
	updated, err := admin.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
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
