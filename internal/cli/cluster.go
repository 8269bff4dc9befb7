package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kustode/kustode/internal/kube"
)

// clusterFlags selects a live cluster and namespace, as kubectl does.
type clusterFlags struct {
	enabled       bool
	kubeconfig    string
	context       string
	namespace     string
	allNamespaces bool
	cmd           *cobra.Command
}

func (c *clusterFlags) addFlags(cmd *cobra.Command) {
	c.addConnectionFlags(cmd, "scan the live cluster of the current kubeconfig context (or in-cluster) instead of files, read-only; also each node's running kubelet configuration through the node proxy (needs get on nodes/proxy; unreadable nodes are warnings)")
	fs := cmd.Flags()
	fs.StringVarP(&c.namespace, "namespace", "n", "", "namespace to scan (default: the context's namespace)")
	fs.BoolVarP(&c.allNamespaces, "all-namespaces", "A", false, "scan every namespace")
}

// addConnectionFlags adds --cluster, --kubeconfig and --context only, for
// commands whose -n means something else.
func (c *clusterFlags) addConnectionFlags(cmd *cobra.Command, clusterUsage string) {
	c.cmd = cmd
	c.allNamespaces = true
	fs := cmd.Flags()
	fs.BoolVar(&c.enabled, "cluster", false, clusterUsage)
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&c.context, "context", "", "kubeconfig context (default: the current context)")
}

func (c *clusterFlags) namespaceFlagsSet() bool {
	for _, name := range []string{"kubeconfig", "context", "namespace", "all-namespaces"} {
		if f := c.cmd.Flags().Lookup(name); f != nil && f.Changed {
			return true
		}
	}
	return false
}

// list reads the cluster's objects. Errors building the client (no
// kubeconfig, unknown context) are returned as err; kinds that could not be
// listed come back in listErrs beside the objects that could.
func (c *clusterFlags) list(ctx context.Context, kinds ...string) (objs []kube.Object, listErrs []error, err error) {
	if c.allNamespaces && c.namespace != "" {
		return nil, nil, usageError{fmt.Errorf("-n and -A exclude each other")}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = c.kubeconfig
	cfg := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: c.context})
	restCfg, err := cfg.ClientConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: %w (set --kubeconfig or --context, or run inside a pod)", err)
	}
	restCfg.UserAgent = "kustode-scan"
	ns := c.namespace
	if ns == "" && !c.allNamespaces {
		if ns, _, err = cfg.Namespace(); err != nil {
			return nil, nil, fmt.Errorf("cluster: %w", err)
		}
	}
	client, err := dynamic.NewForConfig(restCfg)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: %w", err)
	}
	meta, err := metadata.NewForConfig(restCfg)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: %w", err)
	}
	objs, listErrs = kube.List(ctx, client, meta, ns, kinds...)
	if len(kinds) == 0 {
		// The nodes' running kubelet configuration, for the kubelet checks.
		// A node that cannot be read (no nodes/proxy permission, a kubelet
		// down or without /configz) is a warning: the rest of the scan is
		// complete.
		cs, err := kubernetes.NewForConfig(restCfg)
		if err != nil {
			return nil, nil, fmt.Errorf("cluster: %w", err)
		}
		kc, kerrs := kube.KubeletConfigs(ctx, cs)
		objs = append(objs, kc...)
		for _, e := range kerrs {
			fmt.Fprintf(c.cmd.ErrOrStderr(), "kustode: warning: %v\n", e)
		}
	}
	return objs, listErrs, nil
}
