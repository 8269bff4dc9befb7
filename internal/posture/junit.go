package posture

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"github.com/kustode/kustode/internal/finding"
)

// JUnit XML as CI systems read it: one test suite, one test case per object
// scanned (named kind/namespace/name, class = file), failed when the object
// has findings; unreadable input is an errored test case.
type (
	junitSuites struct {
		XMLName  xml.Name     `xml:"testsuites"`
		Tests    int          `xml:"tests,attr"`
		Failures int          `xml:"failures,attr"`
		Errors   int          `xml:"errors,attr"`
		Suites   []junitSuite `xml:"testsuite"`
	}
	junitSuite struct {
		Name     string      `xml:"name,attr"`
		Tests    int         `xml:"tests,attr"`
		Failures int         `xml:"failures,attr"`
		Errors   int         `xml:"errors,attr"`
		Cases    []junitCase `xml:"testcase"`
	}
	junitCase struct {
		Name      string        `xml:"name,attr"`
		ClassName string        `xml:"classname,attr"`
		Failure   *junitMessage `xml:"failure,omitempty"`
		Error     *junitMessage `xml:"error,omitempty"`
	}
	junitMessage struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr"`
		Text    string `xml:",chardata"`
	}
)

// WriteJUnit writes the report as JUnit XML. objects lists every object
// scanned, so objects without findings appear as passed test cases.
func (r Report) WriteJUnit(w io.Writer, objects []ObjectID) error {
	type key struct {
		ref  finding.ObjectRef
		file string
		line int
	}
	byObject := map[key][]finding.Finding{}
	for _, f := range r.Findings {
		k := key{f.Object, f.File, f.Line}
		byObject[k] = append(byObject[k], f)
	}
	suite := junitSuite{Name: "kustode scan"}
	for _, o := range objects {
		c := junitCase{Name: o.Ref.String(), ClassName: o.Source.String()}
		if fs := byObject[key{o.Ref, o.Source.File, o.Source.Line}]; len(fs) > 0 {
			var text strings.Builder
			worst := finding.Info
			for _, f := range fs {
				worst = max(worst, f.Severity)
				fmt.Fprintf(&text, "%s %s: %s\n  fix: %s\n", strings.ToUpper(f.Severity.String()), f.CheckID, f.Message, f.Remediation)
			}
			c.Failure = &junitMessage{Message: fmt.Sprintf("%d findings, worst %s", len(fs), worst), Type: worst.String(), Text: text.String()}
			suite.Failures++
		}
		suite.Cases = append(suite.Cases, c)
	}
	for _, e := range r.Errors {
		name := e.File
		if e.Line > 0 {
			name = fmt.Sprintf("%s:%d", e.File, e.Line)
		}
		suite.Cases = append(suite.Cases, junitCase{Name: "input " + name, ClassName: e.File, Error: &junitMessage{Message: e.Message, Type: "input"}})
		suite.Errors++
	}
	suite.Tests = len(suite.Cases)
	doc := junitSuites{Tests: suite.Tests, Failures: suite.Failures, Errors: suite.Errors, Suites: []junitSuite{suite}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// ObjectID names a scanned object and where it came from.
type ObjectID struct {
	Ref    finding.ObjectRef
	Source finding.Source
}
