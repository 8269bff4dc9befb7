package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kustode/kustode/internal/finding"
)

// KubeletConfigKind is the kind of the objects KubeletConfigs returns, the
// one the kubelet checks judge (also when read from files).
const (
	KubeletConfigKind       = "KubeletConfiguration"
	KubeletConfigAPIVersion = "kubelet.config.k8s.io/v1beta1"
)

// KubeletError is a node whose kubelet configuration could not be read: the
// kubelet is unreachable, does not serve /configz, or the caller may not use
// nodes/proxy.
type KubeletError struct {
	Node string
	Err  error
}

func (e *KubeletError) Error() string {
	return fmt.Sprintf("cluster: kubelet configuration of node %s not read: %v", e.Node, e.Err)
}

func (e *KubeletError) Unwrap() error { return e.Err }

// KubeletConfigs reads every node's running kubelet configuration through
// the API server's node proxy (GET /api/v1/nodes/NAME/proxy/configz, which
// needs get on nodes/proxy), as one KubeletConfiguration object per node,
// named after the node. Nodes are read in parallel, each bounded by a
// timeout; a node that cannot be read is a *KubeletError beside the others.
// A failure to list nodes is returned as the only error.
func KubeletConfigs(ctx context.Context, client kubernetes.Interface) ([]Object, []error) {
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, []error{&ListError{Kind: "Node", Err: err}}
	}
	type result struct {
		obj Object
		err error
	}
	results := make([]result, len(nodes.Items))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range nodes.Items {
		n := &nodes.Items[i]
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			obj, err := KubeletConfig(ctx, client, n.Name)
			results[i] = result{obj, err}
		})
	}
	wg.Wait()
	var objs []Object
	var errs []error
	for i, r := range results {
		if r.err != nil {
			errs = append(errs, &KubeletError{Node: nodes.Items[i].Name, Err: r.err})
			continue
		}
		objs = append(objs, r.obj)
	}
	return objs, errs
}

// KubeletConfig reads one node's running kubelet configuration through the
// API server's node proxy (GET /api/v1/nodes/NODE/proxy/configz, which needs
// get on nodes/proxy), as a KubeletConfiguration object named after the
// node, bounded by a 10 s timeout. It does not retry. An error from the API
// server (forbidden, the kubelet unreachable) wraps the *errors.StatusError,
// with the proxy's own explanation when it has one.
func KubeletConfig(ctx context.Context, client kubernetes.Interface, node string) (Object, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	raw, err := client.CoreV1().RESTClient().Get().
		AbsPath("/api/v1/nodes", node, "proxy", "configz").Do(ctx).Raw()
	if err != nil {
		// The API server's own refusal (RBAC) or the proxy's failure to
		// reach the kubelet is a Status that client-go leaves undecoded
		// here: decode it, so that callers can tell a forbidden from an
		// unreachable kubelet (apierrors.IsForbidden) and read its message.
		var st metav1.Status
		if json.Unmarshal(raw, &st) == nil && st.Kind == "Status" && st.Status == metav1.StatusFailure {
			return Object{}, &apierrors.StatusError{ErrStatus: st}
		}
		// A proxy error's body says what went wrong (unreachable kubelet,
		// TLS, 404 from a kubelet without configz); client-go's generic
		// message does not.
		if body := strings.TrimSpace(string(raw)); body != "" && !strings.Contains(err.Error(), body) {
			if len(body) > 300 {
				body = body[:300] + "..."
			}
			return Object{}, fmt.Errorf("%w: %s", err, body)
		}
		return Object{}, err
	}
	var configz struct {
		KubeletConfig map[string]any `json:"kubeletconfig"`
	}
	if err := json.Unmarshal(raw, &configz); err != nil {
		return Object{}, fmt.Errorf("configz is not JSON: %w", err)
	}
	if configz.KubeletConfig == nil {
		return Object{}, fmt.Errorf("configz has no kubeletconfig")
	}
	cfg := configz.KubeletConfig
	cfg["apiVersion"], cfg["kind"] = KubeletConfigAPIVersion, KubeletConfigKind
	cfg["metadata"] = map[string]any{"name": node}
	b, err := json.Marshal(cfg)
	if err != nil {
		return Object{}, err
	}
	return Object{
		Ref: finding.ObjectRef{APIVersion: KubeletConfigAPIVersion, Kind: KubeletConfigKind, Name: node},
		Raw: b,
	}, nil
}
