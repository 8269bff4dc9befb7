package posture

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

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

// writeArray writes items as the elements of a JSON array, one per line,
// each as json.Marshal encodes it. Long arrays are encoded in chunks on
// every CPU and written in order; a few chunks are in memory at most.
func writeArray[T any](bw *bufio.Writer, items []T) error {
	const chunk = 1024
	chunks := (len(items) + chunk - 1) / chunk
	workers := min(runtime.GOMAXPROCS(0), chunks)
	if workers <= 1 {
		var buf bytes.Buffer
		for i := range items {
			buf.Reset()
			if err := encodeItems(&buf, items, i, i+1); err != nil {
				return err
			}
			bw.Write(buf.Bytes())
		}
	} else {
		type encoded struct {
			buf *bytes.Buffer
			err error
		}
		done := make([]chan encoded, chunks)
		for i := range done {
			done[i] = make(chan encoded, 1)
		}
		// A worker takes a free buffer, then the next chunk: chunks are
		// taken in order, so the oldest unwritten one always has a buffer
		// and the writer never waits for a chunk that cannot start.
		free := make(chan *bytes.Buffer, 2*workers)
		for range cap(free) {
			free <- new(bytes.Buffer)
		}
		var next atomic.Int64
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range workers {
			wg.Go(func() {
				for {
					var buf *bytes.Buffer
					select {
					case buf = <-free:
					case <-stop:
						return
					}
					i := int(next.Add(1)) - 1
					if i >= chunks {
						return
					}
					buf.Reset()
					err := encodeItems(buf, items, i*chunk, min((i+1)*chunk, len(items)))
					done[i] <- encoded{buf, err}
				}
			})
		}
		var err error
		for i := range done {
			e := <-done[i]
			if err = e.err; err != nil {
				break
			}
			bw.Write(e.buf.Bytes())
			free <- e.buf
		}
		close(stop)
		wg.Wait()
		if err != nil {
			return err
		}
	}
	if len(items) > 0 {
		bw.WriteByte('\n')
	}
	return nil
}

// encodeItems writes items[lo:hi] to buf as array elements.
func encodeItems[T any](buf *bytes.Buffer, items []T, lo, hi int) error {
	enc := json.NewEncoder(buf) // as json.Marshal, plus a line feed
	for i := lo; i < hi; i++ {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString("\n  ")
		if err := enc.Encode(&items[i]); err != nil {
			return err
		}
		buf.Truncate(buf.Len() - 1)
	}
	return nil
}
