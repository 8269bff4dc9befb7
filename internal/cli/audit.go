package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/kustode/kustode/internal/audit"
	"github.com/kustode/kustode/internal/detect"
	"github.com/kustode/kustode/internal/finding"
)

func newAuditCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Work with Kubernetes audit logs",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newAuditReplayCommand(s))
	return cmd
}

func newAuditReplayCommand(s streams) *cobra.Command {
	output := newOutputFormat("table", "table", "json")
	var (
		ruleDirs   []string
		noDefaults bool
		stateFile  string
		cidrs      []string
	)
	cmd := &cobra.Command{
		Use:   "replay FILE...",
		Short: "Run the detection rules over saved audit events",
		Long: `Read saved kube-apiserver audit events and run the detection rules over them,
printing every alert.

FILE is a kube-apiserver audit log (JSON lines), an EventList, a managed
cluster's export (GKE Cloud Audit Logs, AKS diagnostic records, EKS
CloudWatch lines), gzip-compressed or not, or "-" for standard input; the
format is recognised per record. A malformed record is counted, reported
with file and line, and skipped.

The default rule pack is built in ('kustode rules test' runs its tests);
--rules adds directories of your own rules, which override default rules
with the same id or disable them (disabled: true). --cluster-cidr names the
cluster's pod and node networks: a service-account token used from
elsewhere was taken out of the cluster (the default: the private ranges).

On a terminal, a line on standard error says every two seconds how many
events have been read (unless -o json writes to the same terminal).

-o json writes one alert per line with at least rule, severity, mitre,
auditIDs, time, user, namespace, object and message.

Exit codes: 0 no alert; 1 alerts raised; 2 usage error or malformed input
(alerts are still printed).`,
		Example: `  kustode audit replay /var/log/kubernetes/audit.log
  kustode audit replay --rules ./my-rules -o json audit-*.log.gz | jq .rule
  gcloud logging read 'resource.type="k8s_cluster"' --format=json | kustode audit replay -`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := detect.Options{NoDefaults: noDefaults, Dirs: ruleDirs}
			if len(cidrs) > 0 {
				for _, c := range cidrs {
					if _, err := netip.ParsePrefix(c); err != nil {
						return usageError{fmt.Errorf("--cluster-cidr %q is not a CIDR: write an address and a prefix length (example 10.244.0.0/16)", c)}
					}
				}
				opts.Lists = map[string][]string{"cluster_cidrs": cidrs}
			}
			engine, err := detect.NewEngine(opts)
			if err != nil {
				return usageError{err}
			}
			if stateFile != "" {
				if err := loadState(engine, stateFile); err != nil {
					return err
				}
			}
			var alerts []finding.Alert
			count := 0
			var progress *replayProgress
			if isTerminal(s.err) && (output.value != "json" || !isTerminal(s.out)) {
				progress = startReplayProgress(s.err, 2*time.Second)
			}
			emit := func(a finding.Alert) error {
				count++
				progress.add(0, 1)
				if output.value == "json" {
					b, err := json.Marshal(a)
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(s.out, "%s\n", b)
					return err
				}
				alerts = append(alerts, a)
				return nil
			}
			sink := audit.SinkFunc(func(_ context.Context, events []audit.Event) error {
				progress.add(len(events), 0)
				for i := range events {
					for _, a := range engine.Evaluate(&events[i]) {
						if err := emit(a); err != nil {
							return err
						}
					}
				}
				return nil
			})
			total, malformed := 0, 0
			for _, name := range args {
				res, err := replayOne(cmd.Context(), name, s.in, sink)
				if err != nil {
					progress.finish()
					return err
				}
				total += res.Events
				malformed += res.Malformed
				for _, re := range res.Errors {
					fmt.Fprintf(s.err, "kustode: %v\n", re)
				}
			}
			progress.finish()
			if stateFile != "" {
				if err := saveState(engine, stateFile); err != nil {
					return err
				}
			}
			if output.value != "json" {
				if err := writeAlertTable(s.out, alerts); err != nil {
					return err
				}
				fmt.Fprintf(s.out, "\n%d events read, %d alerts\n", total, count)
			}
			if malformed > 0 {
				fmt.Fprintf(s.err, "kustode: %d malformed record(s) skipped\n", malformed)
				return exitError{code: ExitUsage}
			}
			if count > 0 {
				return exitError{code: ExitFindings}
			}
			return nil
		},
	}
	output.addTo(cmd.Flags())
	cmd.Flags().StringSliceVar(&ruleDirs, "rules", nil, "directories of your own rules (YAML); they override default rules with the same id")
	cmd.Flags().BoolVar(&noDefaults, "no-default-rules", false, "do not load the built-in rule pack")
	cmd.Flags().StringSliceVar(&cidrs, "cluster-cidr", nil, "the cluster's pod and node networks (CIDRs, repeat or comma-separate); default: the private ranges")
	cmd.Flags().StringVar(&stateFile, "state", "", "file holding what firstSeen rules learned: read at start if it exists, written at the end")
	return cmd
}

func loadState(engine *detect.Engine, path string) error {
	f, err := os.Open(path) //nolint:gosec // the user names the file
	if errors.Is(err, fs.ErrNotExist) {
		return nil // first run: nothing learned yet
	}
	if err != nil {
		return err
	}
	defer f.Close()
	return engine.LoadState(f)
}

// saveState writes the state atomically: a crash leaves the old file.
func saveState(engine *detect.Engine, path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // gone after the rename; cleans up on failure
	if err := engine.SaveState(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func replayOne(ctx context.Context, name string, stdin io.Reader, sink audit.Sink) (audit.ReadResult, error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name) //nolint:gosec // the user names the file
		if err != nil {
			return audit.ReadResult{}, usageError{err}
		}
		defer f.Close()
		r = f
	}
	res, err := audit.Read(ctx, r, sink, audit.ReadOptions{Source: name})
	if err != nil {
		return res, fmt.Errorf("replay %s: %w", name, err)
	}
	return res, nil
}

func writeAlertTable(w io.Writer, alerts []finding.Alert) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tSEVERITY\tRULE\tMESSAGE")
	for _, a := range alerts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Time.UTC().Format("2006-01-02T15:04:05Z"), strings.ToUpper(a.Severity.String()), a.Rule, a.Message)
	}
	return tw.Flush()
}

// replayProgress writes, every interval, how far a replay has got, on one
// terminal line that it clears at the end. A nil *replayProgress does
// nothing.
type replayProgress struct {
	events, alerts atomic.Int64
	stop, done     chan struct{}
}

func startReplayProgress(w io.Writer, interval time.Duration) *replayProgress {
	p := &replayProgress{stop: make(chan struct{}), done: make(chan struct{})}
	start := time.Now()
	go func() {
		defer close(p.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		wrote := false
		for {
			select {
			case <-p.stop:
				if wrote {
					_, _ = fmt.Fprint(w, "\r\033[K") // clear the line for what follows
				}
				return
			case <-tick.C:
				n := p.events.Load()
				_, _ = fmt.Fprintf(w, "\r\033[Kkustode: %d events read, %d alerts (%.0f events/s)", n, p.alerts.Load(), float64(n)/time.Since(start).Seconds())
				wrote = true
			}
		}
	}()
	return p
}

func (p *replayProgress) add(events, alerts int) {
	if p != nil {
		p.events.Add(int64(events))
		p.alerts.Add(int64(alerts))
	}
}

// finish stops the reports and clears their line; safe to call twice.
func (p *replayProgress) finish() {
	if p == nil {
		return
	}
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

// isTerminal reports whether w is a terminal (not a file, a pipe or
// /dev/null).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd())) //nolint:gosec // a file descriptor fits an int
}
