package cli

import (
	"github.com/spf13/cobra"

	"github.com/kustode/kustode/internal/demo"
)

func newDemoCommand(s streams) *cobra.Command {
	opts := demo.Options{Listen: "127.0.0.1:8080"}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "See kustode work: a local cluster, a vulnerable shop, an attack, and what kustode finds",
		Long: `Run the whole of kustode on this machine, with nothing but Go installed:

  1. start a local Kubernetes control plane (etcd, kube-apiserver,
     kube-controller-manager on 127.0.0.1; the first run builds the binaries
     from source, which takes several minutes, later runs take seconds);
  2. start 'kustode serve' wired to the API server's audit webhook;
  3. apply a small shop with the misconfigurations real clusters have;
  4. play an attack: a stolen service-account token listing Secrets with
     curl, a privileged pod mounting the node, a cluster-admin backdoor
     binding, an exec into a pod;
  5. print the findings and alerts, and how to query the API.

It then keeps serving until Ctrl-C (or exits at once with --exit). Every
process it started is stopped by PID, and its temporary files removed
(unless --dir keeps them). Run it from a clone of the kustode repository:
the control-plane build script lives there.`,
		Example: `  go run ./cmd/kustode demo
  kustode demo --listen 127.0.0.1:9090 --exit`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Out, opts.Progress = s.out, s.err
			return demo.Run(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Listen, "listen", opts.Listen, "address of serve's API")
	cmd.Flags().StringVar(&opts.Dir, "dir", "", "keep the demo's files (control plane, store, logs, token) in this directory instead of a temporary one")
	cmd.Flags().BoolVar(&opts.Exit, "exit", false, "stop after printing the summary instead of serving until Ctrl-C")
	return cmd
}
