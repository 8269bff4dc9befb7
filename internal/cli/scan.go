package cli

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/kube"
	"github.com/kustode/kustode/internal/manifest"
	"github.com/kustode/kustode/internal/posture"
	"github.com/kustode/kustode/internal/posture/checks"
	"github.com/kustode/kustode/internal/version"
)

// severityFlag is a --fail-on / --min-severity value; "none" (for --fail-on)
// is the unset state.
type severityFlag struct {
	set bool
	sev finding.Severity
}

func (s *severityFlag) String() string {
	if !s.set {
		return "none"
	}
	return s.sev.String()
}
func (s *severityFlag) Type() string { return "severity" }
func (s *severityFlag) Set(v string) error {
	if v == "none" {
		s.set = false
		return nil
	}
	sev, err := finding.ParseSeverity(v)
	if err != nil {
		return err
	}
	s.set, s.sev = true, sev
	return nil
}

// checkSelection holds the flags that choose which checks run.
type checkSelection struct {
	only          []string
	skip          []string
	frameworks    []string
	pssVersion    string
	secretMaxDays int
}

func (sel *checkSelection) options() checks.Options {
	return checks.Options{PSSVersion: sel.pssVersion, SecretMaxAge: time.Duration(sel.secretMaxDays) * 24 * time.Hour}
}

func (sel *checkSelection) addFlags(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringSliceVar(&sel.only, "checks", nil, "run only these check IDs (comma-separated; see 'kustode checks')")
	fs.StringSliceVar(&sel.skip, "skip-checks", nil, "do not run these check IDs")
	fs.StringSliceVar(&sel.frameworks, "framework", nil,
		"run only checks mapped to these frameworks: pss, pss-baseline, pss-restricted, cis, nsa, mitre")
	fs.StringVar(&sel.pssVersion, "pss-version", "latest",
		`Pod Security Standards version to judge by, as in the PodSecurity admission's version labels ("v1.30", "latest")`)
	fs.IntVar(&sel.secretMaxDays, "secret-max-age", int(checks.DefaultSecretMaxAge.Hours()/24),
		"days after which secret-not-rotated reports a Secret")
}

var frameworkNames = []string{"pss", "pss-baseline", "pss-restricted", "cis", "nsa", "mitre"}

// resolve returns the selected checks. Unknown IDs and frameworks are usage
// errors, so a typo never silently runs nothing.
// known reports whether id names a check (at the selected PSS version).
func (sel *checkSelection) known(id string) bool {
	all, err := checks.All(sel.options())
	if err != nil {
		return false
	}
	return slices.ContainsFunc(all, func(c *posture.Check) bool { return c.ID == id })
}

func (sel *checkSelection) resolve() ([]*posture.Check, error) {
	if sel.secretMaxDays < 1 {
		return nil, usageError{fmt.Errorf("--secret-max-age must be at least 1 day")}
	}
	all, err := checks.All(sel.options())
	if err != nil {
		return nil, usageError{fmt.Errorf("--pss-version: %w", err)}
	}
	known := map[string]bool{}
	for _, c := range all {
		known[c.ID] = true
	}
	for _, id := range append(slices.Clone(sel.only), sel.skip...) {
		if !known[id] {
			return nil, usageError{fmt.Errorf("unknown check %q (list them with 'kustode checks')", id)}
		}
	}
	for _, f := range sel.frameworks {
		if !slices.Contains(frameworkNames, f) {
			return nil, usageError{fmt.Errorf("unknown framework %q (valid: %s)", f, strings.Join(frameworkNames, ", "))}
		}
	}
	var out []*posture.Check
	for _, c := range all {
		if len(sel.only) > 0 && !slices.Contains(sel.only, c.ID) {
			continue
		}
		if slices.Contains(sel.skip, c.ID) {
			continue
		}
		if len(sel.frameworks) > 0 && !slices.ContainsFunc(sel.frameworks, func(f string) bool { return inFramework(c, f) }) {
			continue
		}
		out = append(out, c)
	}
	return out, nil
}

func inFramework(c *posture.Check, f string) bool {
	fw := c.Frameworks
	switch f {
	case "pss":
		return fw.PSS != ""
	case "pss-baseline":
		return fw.PSS == "baseline"
	case "pss-restricted":
		return fw.PSS == "restricted"
	case "cis":
		return len(fw.CIS) > 0
	case "nsa":
		return len(fw.NSA) > 0
	case "mitre":
		return len(fw.MITRE) > 0
	}
	return false
}

func newScanCommand(s streams) *cobra.Command {
	output := newOutputFormat("table", "table", "json", "sarif", "junit")
	var (
		sel         checkSelection
		failOn      severityFlag
		minSeverity severityFlag
		cluster     clusterFlags
		exceptions  string
	)
	cmd := &cobra.Command{
		Use:   "scan (PATH... | --cluster)",
		Short: "Check manifests or a live cluster for security misconfigurations",
		Long: `Scan Kubernetes manifests for security misconfigurations: every Pod Security
Standards control (judged by the same code as the API server's PodSecurity
admission), sensitive host paths, mutable images, missing limits, service
account tokens, credentials in env literals and ConfigMaps, exposed Services.

PATH is a file, a directory (read recursively: *.yaml, *.yml, *.json) or "-"
for standard input. A directory holding a kustomization.yaml is built as
'kustomize build' would (each overlay on its own). Multi-document YAML, JSON and List kinds are read; every
workload kind (Pod, Deployment, ReplicaSet, ReplicationController,
StatefulSet, DaemonSet, Job, CronJob) is checked through its pod template, at
any apiVersion, old ones included.

A document that cannot be read is reported with file:line and the reason;
every other document is still scanned.

--cluster scans a live cluster instead, read-only, through the current
kubeconfig context (or the in-cluster service account): the namespace of the
context, -n NAMESPACE, or -A for all. Objects a controller manages (a
Deployment's ReplicaSets and Pods) are judged through their controller, once.
Secrets are never read. Kinds the credentials may not list are reported as
errors, and everything else is still scanned.

Exceptions: annotate an object with kustode.io/exempt: "check-id,..." and
kustode.io/exempt-reason: "why", or keep them in a file (--exceptions) where
each names checks, an object selector, a reason, an owner and an expiry date;
expired exceptions stop applying and are reported.

Output formats: table (grouped by object, most severe first), json (stable
schema: apiVersion kustode.io/v1alpha1, kind ScanReport, summary, findings,
errors), sarif (2.1.0, for GitHub code scanning), junit (one test case per
object, for CI test reports).

Exit codes: 0 no finding at or above --fail-on; 1 findings at or above
--fail-on; 2 usage error or some input could not be read (even if findings
were printed).`,
		Example: `  # scan a directory of manifests
  kustode scan deploy/

  # in CI: fail on high or critical findings, machine-readable output
  kustode scan --fail-on high -o json manifests/ > kustode.json

  # GitHub code scanning
  kustode scan -o sarif manifests/ > kustode.sarif

  # a Helm chart, rendered first
  helm template ./chart | kustode scan -

  # only the Pod Security Standards restricted profile, as of Kubernetes 1.30
  kustode scan --framework pss-restricted --pss-version v1.30 app.yaml

  # the live cluster, every namespace
  kustode scan --cluster -A`,
		Args: func(_ *cobra.Command, args []string) error {
			switch {
			case cluster.enabled && len(args) > 0:
				return usageError{fmt.Errorf("give PATHs or --cluster, not both")}
			case !cluster.enabled && len(args) == 0:
				return usageError{fmt.Errorf("nothing to scan: give a PATH (a file, a directory or - for stdin) or --cluster")}
			case !cluster.enabled && cluster.namespaceFlagsSet():
				return usageError{fmt.Errorf("-n, -A, --kubeconfig and --context need --cluster")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			selected, err := sel.resolve()
			if err != nil {
				return err
			}
			engine, err := posture.NewEngine(selected)
			if err != nil {
				return err
			}
			var exc *posture.Exceptions
			if exceptions != "" {
				if exc, err = posture.LoadExceptions(exceptions, time.Now(), sel.known); err != nil {
					return usageError{err}
				}
				engine = engine.WithExceptions(exc)
			}
			var objs []kube.Object
			var inputErrs []error
			if cluster.enabled {
				if objs, inputErrs, err = cluster.list(cmd.Context()); err != nil {
					return err
				}
			} else {
				objs, inputErrs = manifest.Load(args, s.in)
			}
			findings, objErrs := engine.Run(objs)
			if minSeverity.set {
				findings = slices.DeleteFunc(findings, func(f finding.Finding) bool { return f.Severity < minSeverity.sev })
			}
			report := posture.NewReport(len(objs), findings, append(inputErrs, objErrs...))
			report.AddExceptions(exc)

			switch output.value {
			case "json":
				err = report.WriteJSON(s.out)
			case "sarif":
				err = report.WriteSARIF(s.out, selected, version.Get().Version)
			case "junit":
				ids := make([]posture.ObjectID, len(objs))
				for i, o := range objs {
					ids[i] = posture.ObjectID{Ref: o.Ref, Source: o.Source}
				}
				err = report.WriteJUnit(s.out, ids)
			default:
				writeScanTable(s.out, report, useColor(s.out))
			}
			if err != nil {
				return err
			}
			// Input errors always reach stderr too, so a CI log shows them
			// whatever the output format.
			for _, e := range report.Errors {
				fmt.Fprintf(s.err, "kustode: %s\n", e.Message)
			}
			for _, e := range report.ExpiredExceptions {
				fmt.Fprintf(s.err, "kustode: %s:%d: exception for %s (owner %s) expired on %s and no longer applies\n",
					e.File, e.Line, strings.Join(e.Checks, ","), e.Owner, e.Expires)
			}

			switch {
			case len(report.Errors) > 0:
				return exitError{code: ExitUsage}
			case failOn.set && slices.ContainsFunc(findings, func(f finding.Finding) bool { return f.Severity >= failOn.sev }):
				return exitError{code: ExitFindings}
			}
			return nil
		},
	}
	output.addTo(cmd.Flags())
	sel.addFlags(cmd)
	cluster.addFlags(cmd)
	cmd.Flags().StringVar(&exceptions, "exceptions", "", "exceptions file: checks waived for selected objects, with reason, owner and expiry (see docs/exceptions.md)")
	cmd.Flags().Var(&failOn, "fail-on", "exit 1 when a finding is at or above this severity: info, low, medium, high, critical, none")
	cmd.Flags().Var(&minSeverity, "min-severity", "report only findings at or above this severity")
	return cmd
}
