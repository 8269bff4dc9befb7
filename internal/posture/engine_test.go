package posture

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/kube"
)

func testCheck(id string, sev finding.Severity, workload bool, kinds ...string) *Check {
	return &Check{
		ID: id, Title: "t", Description: "d", Remediation: "r", Severity: sev,
		Workload: workload, Kinds: kinds,
		Run: func(p *Pass) {
			if p.Pod != nil {
				p.Reportf("%s saw %d containers", id, len(p.Pod.Spec.Containers))
				return
			}
			p.Reportf("%s saw %s", id, p.Object.Ref.Kind)
		},
	}
}

func obj(kind, name, file string, line int, raw string, annotations map[string]string) kube.Object {
	return kube.Object{
		Ref:         finding.ObjectRef{APIVersion: "v1", Kind: kind, Namespace: "ns", Name: name},
		Source:      finding.Source{File: file, Line: line},
		Annotations: annotations,
		Raw:         json.RawMessage(raw),
	}
}

func TestEngineDispatchSortAndExempt(t *testing.T) {
	e, err := NewEngine([]*Check{
		testCheck("wl-low", finding.Low, true),
		testCheck("wl-high", finding.High, true),
		testCheck("svc", finding.Medium, false, "Service"),
	})
	if err != nil {
		t.Fatal(err)
	}
	pod := `{"spec":{"containers":[{"name":"a"},{"name":"b"}]}}`
	objs := []kube.Object{
		obj("Service", "s", "b.yaml", 1, `{}`, nil),
		obj("Pod", "p", "a.yaml", 5, pod, nil),
		obj("Pod", "exempt", "a.yaml", 9, pod, map[string]string{ExemptAnnotation: " wl-high , svc"}),
		obj("Deployment", "broken", "a.yaml", 20, `{"spec":{}}`, nil),
		obj("ConfigMap", "c", "a.yaml", 30, `{}`, nil),
	}
	findings, errs := e.Run(objs)
	var got []string
	for _, f := range findings {
		got = append(got, f.Object.Name+":"+f.CheckID+":"+f.Message)
	}
	want := []string{
		"p:wl-high:wl-high saw 2 containers", // most severe first within an object
		"p:wl-low:wl-low saw 2 containers",
		"exempt:wl-low:wl-low saw 2 containers",
		"s:svc:svc saw Service",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "a.yaml:20: Deployment/ns/broken: Deployment has no spec.template") {
		t.Errorf("errors = %v, want one for the Deployment without a template", errs)
	}
	r := NewReport(len(objs), findings, errs)
	if r.Summary.Findings != 4 || r.Summary.BySeverity["high"] != 1 || r.Summary.BySeverity["low"] != 2 ||
		len(r.Errors) != 1 || r.Errors[0].File != "a.yaml" || r.Errors[0].Line != 20 {
		t.Errorf("report = %+v", r)
	}
}

// Objects that share a document (a List's items, a kustomization's output)
// share file and line: their findings are ordered by object, and those of
// objects that are the same (given twice) by severity and check, input order
// last.
func TestEngineSortsObjectsOfOneDocument(t *testing.T) {
	e, err := NewEngine([]*Check{
		testCheck("cm-low", finding.Low, false, "ConfigMap"),
		testCheck("cm-high", finding.High, false, "ConfigMap"),
	})
	if err != nil {
		t.Fatal(err)
	}
	objs := []kube.Object{
		obj("ConfigMap", "b", "k/kustomization.yaml", 0, `{}`, nil),
		obj("ConfigMap", "a", "k/kustomization.yaml", 0, `{}`, nil),
		obj("ConfigMap", "a", "k/kustomization.yaml", 0, `{}`, map[string]string{ExemptAnnotation: "cm-low"}),
		obj("ConfigMap", "a", "k/kustomization.yaml", 0, `{}`, nil),
	}
	findings, errs := e.Run(objs)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var got []string
	for _, f := range findings {
		got = append(got, f.Object.Name+":"+f.CheckID)
	}
	want := []string{"a:cm-high", "a:cm-high", "a:cm-high", "a:cm-low", "a:cm-low", "b:cm-high", "b:cm-low"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("findings = %v, want %v", got, want)
	}
}

func TestNewEngineRejectsBadChecks(t *testing.T) {
	good := testCheck("ok", finding.Low, true)
	tests := []struct {
		name   string
		checks []*Check
		want   string
	}{
		{"duplicate", []*Check{good, testCheck("ok", finding.High, true)}, "defined twice"},
		{"not kebab", []*Check{testCheck("Not_Kebab", finding.Low, true)}, "kebab-case"},
		{"runs on nothing", []*Check{testCheck("idle", finding.Low, false)}, "runs on nothing"},
		{"no docs", []*Check{{ID: "x", Workload: true, Run: func(*Pass) {}}}, "required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewEngine(tt.checks)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewEngine error = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestReportJSONRoundTrip(t *testing.T) {
	r := NewReport(2, []finding.Finding{{CheckID: "a", Severity: finding.High, Message: "m <&>"}}, nil)
	var b strings.Builder
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal([]byte(b.String()), &back); err != nil {
		t.Fatalf("WriteJSON output does not decode: %v\n%s", err, b.String())
	}
	if back.Kind != "ScanReport" || len(back.Findings) != 1 || back.Findings[0].Message != "m <&>" || back.Findings[0].Severity != finding.High || back.Errors == nil {
		t.Errorf("round trip = %+v", back)
	}
	empty := NewReport(0, nil, nil)
	b.Reset()
	if err := empty.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(b.String()), &back); err != nil || back.Findings == nil || len(back.Findings) != 0 {
		t.Errorf("empty report %q: err %v, findings %v (want [] not null)", b.String(), err, back.Findings)
	}
}

// A long report is encoded in parallel chunks; it must read exactly as
// encoding each finding in turn does.
func TestReportJSONManyFindings(t *testing.T) {
	var fs []finding.Finding
	for i := range 5000 {
		fs = append(fs, finding.Finding{
			CheckID: "c", Severity: finding.Severity(i % 5), Message: fmt.Sprintf("finding %d <&>", i),
			Object: finding.ObjectRef{Kind: "Pod", Name: fmt.Sprint("p", i)}, File: "f.yaml", Line: i,
			Frameworks: finding.Frameworks{CIS: []string{"5.2.1"}},
		})
	}
	var b strings.Builder
	if err := NewReport(len(fs), fs, nil).WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	want.WriteString(`"findings": [`)
	for i := range fs {
		if i > 0 {
			want.WriteByte(',')
		}
		item, err := json.Marshal(&fs[i])
		if err != nil {
			t.Fatal(err)
		}
		want.WriteString("\n  " + string(item))
	}
	want.WriteString("\n],\n\"errors\": []\n}\n")
	if !strings.HasSuffix(b.String(), want.String()) {
		t.Errorf("findings not written in order, one per line, as json.Marshal encodes each")
	}
}
