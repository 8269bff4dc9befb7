package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kustode/kustode/internal/finding"
)

// checkInfo is the JSON form of a check in `kustode checks -o json`.
type checkInfo struct {
	ID          string             `json:"id"`
	Title       string             `json:"title"`
	Severity    finding.Severity   `json:"severity"`
	Description string             `json:"description"`
	Remediation string             `json:"remediation"`
	Frameworks  finding.Frameworks `json:"frameworks"`
	Targets     []string           `json:"targets"`
}

func newChecksCommand(s streams) *cobra.Command {
	output := newOutputFormat("table", "table", "json")
	var sel checkSelection
	cmd := &cobra.Command{
		Use:   "checks",
		Short: "List the posture checks 'kustode scan' runs",
		Long: `List every posture check with its stable ID, severity, title and the
frameworks it maps to. IDs never change: use them in --checks, --skip-checks
and the kustode.io/exempt annotation. -o json adds descriptions and
remediation.`,
		Example: `  kustode checks
  kustode checks --framework pss-restricted
  kustode checks -o json | jq -r '.[] | select(.severity == "critical") | .id'`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			selected, err := sel.resolve()
			if err != nil {
				return err
			}
			infos := make([]checkInfo, 0, len(selected))
			for _, c := range selected {
				targets := c.Kinds
				if c.Workload {
					targets = append([]string{"workloads"}, targets...)
				}
				infos = append(infos, checkInfo{
					ID: c.ID, Title: c.Title, Severity: c.Severity, Description: c.Description,
					Remediation: c.Remediation, Frameworks: c.Frameworks, Targets: targets,
				})
			}
			if output.value == "json" {
				return writeJSON(s.out, infos)
			}
			tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSEVERITY\tTITLE\tFRAMEWORKS")
			for _, c := range infos {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.ID, c.Severity, c.Title, frameworkSummary(c.Frameworks))
			}
			return tw.Flush()
		},
	}
	output.addTo(cmd.Flags())
	sel.addFlags(cmd)
	return cmd
}

func frameworkSummary(f finding.Frameworks) string {
	var parts []string
	if f.PSS != "" {
		parts = append(parts, "PSS "+f.PSS)
	}
	if len(f.CIS) > 0 {
		parts = append(parts, "CIS "+strings.Join(f.CIS, ","))
	}
	if len(f.MITRE) > 0 {
		parts = append(parts, "ATT&CK "+strings.Join(f.MITRE, ","))
	}
	return strings.Join(parts, "; ")
}
