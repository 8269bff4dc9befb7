package posture

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"

	"github.com/kustode/kustode/internal/finding"
)

// Report is the result of a scan, in the stable shape `kustode scan -o json`
// prints. Fields are only ever added.
type Report struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Summary    Summary           `json:"summary"`
	Findings   []finding.Finding `json:"findings"`
	Errors     []InputProblem    `json:"errors"`
	// ExpiredExceptions are exceptions past their date: they no longer
	// apply, and someone must renew or remove them.
	ExpiredExceptions []ExpiredException `json:"expiredExceptions"`
}

// ExpiredException is an exception that no longer applies.
type ExpiredException struct {
	File    string   `json:"file"`
	Line    int      `json:"line"`
	Checks  []string `json:"checks"`
	Owner   string   `json:"owner"`
	Reason  string   `json:"reason"`
	Expires string   `json:"expires"`
}

// Summary counts a report's contents.
type Summary struct {
	Objects    int            `json:"objects"`
	Findings   int            `json:"findings"`
	BySeverity map[string]int `json:"bySeverity"`
	Errors     int            `json:"errors"`
	// ActiveExceptions counts exceptions in force from --exceptions.
	ActiveExceptions int `json:"activeExceptions"`
}

// InputProblem is input that could not be read or checked.
type InputProblem struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

// sourced is implemented by errors that know where in the input they are.
type sourced interface {
	error
	Location() finding.Source
}

// NewReport assembles a report. Errors that carry a location (see
// finding.Source) keep it.
func NewReport(objects int, findings []finding.Finding, errs []error) Report {
	r := Report{
		APIVersion: "kustode.io/v1alpha1",
		Kind:       "ScanReport",
		Findings:   findings,
		Errors:     []InputProblem{},
		Summary: Summary{
			Objects:    objects,
			Findings:   len(findings),
			BySeverity: map[string]int{},
			Errors:     len(errs),
		},
	}
	if r.Findings == nil {
		r.Findings = []finding.Finding{}
	}
	for _, s := range finding.Severities() {
		r.Summary.BySeverity[s.String()] = 0
	}
	for _, f := range findings {
		r.Summary.BySeverity[f.Severity.String()]++
	}
	r.ExpiredExceptions = []ExpiredException{}
	for _, err := range errs {
		p := InputProblem{Message: err.Error()}
		var s sourced
		if errors.As(err, &s) {
			loc := s.Location()
			p.File, p.Line = loc.File, loc.Line
		}
		r.Errors = append(r.Errors, p)
	}
	return r
}

// AddExceptions records which exceptions were in force and which expired.
func (r *Report) AddExceptions(x *Exceptions) {
	if x == nil {
		return
	}
	r.Summary.ActiveExceptions = len(x.Active)
	for _, e := range x.Expired {
		r.ExpiredExceptions = append(r.ExpiredExceptions, ExpiredException{
			File: e.Source.File, Line: e.Source.Line, Checks: e.Checks, Owner: e.Owner, Reason: e.Reason, Expires: e.Expires,
		})
	}
}

// Location returns where the object that failed was read from.
func (e *ObjectError) Location() finding.Source { return e.Object.Source }

// WriteJSON writes the report as one JSON object, streaming findings one per
// line so that memory does not grow with the size of the output. The result
// decodes into Report.
func (r Report) WriteJSON(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	head, err := json.Marshal(struct {
		APIVersion        string             `json:"apiVersion"`
		Kind              string             `json:"kind"`
		Summary           Summary            `json:"summary"`
		ExpiredExceptions []ExpiredException `json:"expiredExceptions"`
	}{r.APIVersion, r.Kind, r.Summary, r.ExpiredExceptions})
	if err != nil {
		return err
	}
	// Reopen the header object to append the two arrays.
	bw.Write(head[:len(head)-1])
	bw.WriteString(",\n\"findings\": [")
	if err := writeArray(bw, r.Findings); err != nil {
		return err
	}
	bw.WriteString("],\n\"errors\": [")
	if err := writeArray(bw, r.Errors); err != nil {
		return err
	}
	bw.WriteString("]\n}\n")
	return bw.Flush()
}

func writeArray[T any](bw *bufio.Writer, items []T) error {
	for i := range items {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString("\n  ")
		b, err := json.Marshal(&items[i])
		if err != nil {
			return err
		}
		bw.Write(b)
	}
	if len(items) > 0 {
		bw.WriteByte('\n')
	}
	return nil
}
