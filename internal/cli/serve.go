package cli

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
	"k8s.io/klog/v2"

	"github.com/kustode/kustode/internal/config"
	"github.com/kustode/kustode/internal/daemon"
)

func newServeCommand(s streams) *cobra.Command {
	var printConfig bool
	var flags *config.Flags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the monitor: continuous posture, live detection, the store and the API",
		Long: `Run kustode continuously against a cluster: the way it runs in production.

  - Posture: informers over the kinds the checks need (Secrets as metadata
    only); every change re-evaluates the object and the objects that depend
    on it; findings are stored with a lifecycle (open, resolved, reopened) and
    the posture is recorded over time.
  - Detection: the kube-apiserver audit webhook (--audit-webhook-listen) and/or
    audit log file (--audit-log), and Kubernetes Warning Events, evaluated by
    the detection rules; alerts are stored.
  - Store: SQLite in --data-dir, or PostgreSQL with --store postgres://...
    Nothing is written into the cluster.
  - API on --listen: /api/v1 (findings, posture, alerts, exceptions, rules,
    checks), /metrics, /readyz, /healthz. Callers present a Kubernetes bearer
    token (checked with TokenReview, authorized with SubjectAccessReview on
    the kustode.io API group) or the static token of --api-token-file.
  - Coverage self-check: what kustode cannot see (a kind it may not list, a
    silent audit feed, a failing store) is an alert and shows in /readyz.

Every setting is a flag, an environment variable and a key of the --config
YAML file; docs/config.md is the reference. Flags override the environment,
which overrides the file. It runs in-cluster with its service account, or
from a laptop with a kubeconfig. Stop it with SIGINT or SIGTERM: it saves
its state and exits 0.`,
		Example: `  # From a laptop, current kubeconfig context, local static token:
  head -c 32 /dev/urandom | base64 > token && kustode serve --api-token-file token
  curl -H "Authorization: Bearer $(cat token)" localhost:8080/api/v1/findings?severity=high,critical

  # In a cluster (see deploy/): the install's config file
  kustode serve --config /etc/kustode/config.yaml

  # Show the effective configuration (passwords redacted) and exit
  kustode serve --config kustode.yaml --print-config`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := flags.Resolve(os.LookupEnv)
			if err != nil {
				return usageError{err}
			}
			if printConfig {
				b, err := yaml.Marshal(cfg.Redacted())
				if err != nil {
					return err
				}
				_, err = s.out.Write(b)
				return err
			}
			log := newLogger(s, cfg.Log)
			// client-go logs through klog: into the same structured log.
			klog.SetSlogLogger(log.With("component", "client-go"))
			restCfg, err := daemon.RESTConfig(cfg.Kubeconfig)
			if err != nil {
				return usageError{err}
			}
			d, err := daemon.New(cmd.Context(), cfg, restCfg, log)
			if err != nil {
				return fmt.Errorf("serve: %w", err)
			}
			return d.Start(cmd.Context())
		},
	}
	flags = config.Bind(cmd.Flags())
	cmd.Flags().BoolVar(&printConfig, "print-config", false, "print the effective configuration as YAML (secrets redacted) and exit")
	return cmd
}

// newLogger builds serve's logger from the log settings; logs go to stderr.
func newLogger(s streams, c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(s.err, opts))
	}
	return slog.New(slog.NewTextHandler(s.err, opts))
}
