package cli

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/posture"
)

// useColor reports whether w is a terminal and NO_COLOR is unset.
func useColor(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

var severityColor = map[finding.Severity]string{
	finding.Critical: "\x1b[1;31m",
	finding.High:     "\x1b[31m",
	finding.Medium:   "\x1b[33m",
	finding.Low:      "\x1b[36m",
	finding.Info:     "\x1b[2m",
}

// writeScanTable prints findings grouped by object, in report order, then a
// summary line.
func writeScanTable(w io.Writer, r posture.Report, color bool) {
	var current string
	for _, f := range r.Findings {
		key := f.Object.String() + "\x00" + f.File + fmt.Sprint(f.Line)
		if key != current {
			if current != "" {
				fmt.Fprintln(w)
			}
			current = key
			loc := ""
			if f.File != "" {
				loc = fmt.Sprintf("  (%s:%d)", f.File, f.Line)
			}
			fmt.Fprintf(w, "%s%s\n", f.Object, loc)
		}
		sev := fmt.Sprintf("%-8s", strings.ToUpper(f.Severity.String()))
		if color {
			sev = severityColor[f.Severity] + sev + "\x1b[0m"
		}
		fmt.Fprintf(w, "  %s  %-34s %s\n", sev, f.CheckID, f.Message)
	}
	if len(r.Findings) > 0 {
		fmt.Fprintln(w)
	}
	var counts []string
	for i := len(finding.Severities()) - 1; i >= 0; i-- {
		s := finding.Severities()[i]
		if n := r.Summary.BySeverity[s.String()]; n > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", n, s))
		}
	}
	summary := fmt.Sprintf("%d objects scanned, %d findings", r.Summary.Objects, r.Summary.Findings)
	if len(counts) > 0 {
		summary += " (" + strings.Join(counts, ", ") + ")"
	}
	if r.Summary.Errors > 0 {
		summary += fmt.Sprintf(", %d input errors", r.Summary.Errors)
	}
	fmt.Fprintln(w, summary)
}
