package cli

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"strings"
	"testing"
)

// scanReport mirrors the documented JSON schema of `kustode scan -o json`.
type scanReport struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Summary    struct {
		Objects    int            `json:"objects"`
		Findings   int            `json:"findings"`
		BySeverity map[string]int `json:"bySeverity"`
		Errors     int            `json:"errors"`
	} `json:"summary"`
	Findings []struct {
		CheckID  string `json:"checkID"`
		Severity string `json:"severity"`
		Title    string `json:"title"`
		Message  string `json:"message"`
		Object   struct {
			APIVersion, Kind, Namespace, Name string
		} `json:"object"`
		File        string `json:"file"`
		Line        int    `json:"line"`
		Remediation string `json:"remediation"`
		Frameworks  struct {
			PSS   string   `json:"pss"`
			CIS   []string `json:"cis"`
			MITRE []string `json:"mitre"`
		} `json:"frameworks"`
	} `json:"findings"`
	Errors []struct {
		File    string `json:"file"`
		Line    int    `json:"line"`
		Message string `json:"message"`
	} `json:"errors"`
}

func scanJSON(t *testing.T, stdin string, args ...string) (int, scanReport, string) {
	t.Helper()
	var out, errb strings.Builder
	code := Run(t.Context(), append([]string{"scan", "-o", "json"}, args...), strings.NewReader(stdin), &out, &errb)
	var r scanReport
	if err := json.Unmarshal([]byte(out.String()), &r); err != nil {
		t.Fatalf("scan -o json output is not JSON: %v\n%s\nstderr: %s", err, out.String(), errb.String())
	}
	return code, r, errb.String()
}

const privilegedReplicaSet = `apiVersion: extensions/v1beta1
kind: ReplicaSet
metadata: {name: rs, namespace: ns}
spec:
  template:
    spec:
      containers:
      - name: c
        image: busybox:1.36
        securityContext: {privileged: true}
`

func TestScanJSONSchemaAndOldAPIVersion(t *testing.T) {
	code, r, _ := scanJSON(t, privilegedReplicaSet, "-")
	if code != ExitOK {
		t.Errorf("exit code %d, want 0 without --fail-on", code)
	}
	if r.APIVersion != "kustode.io/v1alpha1" || r.Kind != "ScanReport" || r.Summary.Objects != 1 {
		t.Errorf("report header/summary = %+v", r)
	}
	var found bool
	for _, f := range r.Findings {
		if f.CheckID != "pss-privileged" {
			continue
		}
		found = true
		if f.Severity != "critical" || f.Object.Kind != "ReplicaSet" || f.Object.APIVersion != "extensions/v1beta1" ||
			f.Object.Name != "rs" || f.File != "<stdin>" || f.Line != 1 || f.Frameworks.PSS != "baseline" ||
			f.Remediation == "" || f.Title == "" || !strings.Contains(f.Message, `container "c"`) {
			t.Errorf("pss-privileged finding = %+v", f)
		}
	}
	if !found {
		t.Errorf("a privileged extensions/v1beta1 ReplicaSet was not flagged pss-privileged: %+v", r.Findings)
	}
	if r.Summary.Findings != len(r.Findings) || r.Summary.BySeverity["critical"] < 1 {
		t.Errorf("summary %+v disagrees with %d findings", r.Summary, len(r.Findings))
	}
}

func TestScanExitCodes(t *testing.T) {
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  int
	}{
		{"findings below --fail-on", privilegedReplicaSet, []string{"--checks", "image-no-digest", "--fail-on", "high", "-"}, ExitOK},
		{"findings at --fail-on", privilegedReplicaSet, []string{"--fail-on", "critical", "-"}, ExitFindings},
		{"input error wins over findings", privilegedReplicaSet + "---\nkind: [\n", []string{"--fail-on", "critical", "-"}, ExitUsage},
		{"unknown check", "", []string{"--checks", "no-such-check", "-"}, ExitUsage},
		{"unknown framework", "", []string{"--framework", "sox", "-"}, ExitUsage},
		{"bad severity", "", []string{"--fail-on", "urgent", "-"}, ExitUsage},
		{"bad pss version", "", []string{"--pss-version", "one", "-"}, ExitUsage},
		{"no path", "", nil, ExitUsage},
		{"missing file", "", []string{"/nonexistent/kustode.yaml"}, ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb strings.Builder
			code := Run(t.Context(), append([]string{"scan"}, tt.args...), strings.NewReader(tt.stdin), &out, &errb)
			if code != tt.want {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.want, out.String(), errb.String())
			}
		})
	}
}

// A bad document is reported with file:line and the rest still scanned.
func TestScanBadDocumentDoesNotStopTheRest(t *testing.T) {
	input := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\n spec: x\n---\n" + privilegedReplicaSet
	code, r, stderr := scanJSON(t, input, "--checks", "pss-privileged", "-")
	if code != ExitUsage {
		t.Errorf("exit code %d, want %d", code, ExitUsage)
	}
	if len(r.Errors) != 1 || r.Errors[0].File != "<stdin>" || r.Errors[0].Line != 1 {
		t.Errorf("errors = %+v, want one at <stdin>:1", r.Errors)
	}
	if len(r.Findings) != 1 || r.Findings[0].Line != 7 {
		t.Errorf("findings = %+v, want the ReplicaSet at line 7 flagged", r.Findings)
	}
	if !strings.Contains(stderr, "<stdin>:1: invalid YAML") {
		t.Errorf("stderr %q does not report the input error", stderr)
	}
}

func TestScanFiltersAndExemptions(t *testing.T) {
	exempt := strings.Replace(privilegedReplicaSet, "metadata: {name: rs, namespace: ns}",
		"metadata: {name: rs, namespace: ns, annotations: {kustode.io/exempt: \"pss-privileged, image-no-digest\", kustode.io/exempt-reason: test}}", 1)
	_, r, _ := scanJSON(t, exempt, "-")
	for _, f := range r.Findings {
		if f.CheckID == "pss-privileged" || f.CheckID == "image-no-digest" {
			t.Errorf("exempted check reported: %+v", f)
		}
	}
	if len(r.Findings) == 0 {
		t.Error("exemption suppressed every check")
	}

	_, r, _ = scanJSON(t, privilegedReplicaSet, "--min-severity", "high", "-")
	for _, f := range r.Findings {
		if f.Severity != "high" && f.Severity != "critical" {
			t.Errorf("--min-severity high reported %s", f.Severity)
		}
	}
	_, r, _ = scanJSON(t, privilegedReplicaSet, "--framework", "pss-baseline", "-")
	for _, f := range r.Findings {
		if f.Frameworks.PSS != "baseline" {
			t.Errorf("--framework pss-baseline reported %s", f.CheckID)
		}
	}
	_, r, _ = scanJSON(t, privilegedReplicaSet, "--skip-checks", "pss-privileged", "-")
	for _, f := range r.Findings {
		if f.CheckID == "pss-privileged" {
			t.Error("--skip-checks pss-privileged still reported it")
		}
	}
}

func TestScanTable(t *testing.T) {
	code, out, _ := run(t, "scan", "--checks", "pss-privileged", "../../examples")
	if code != ExitOK {
		t.Fatalf("exit code %d", code)
	}
	for _, want := range []string{"DaemonSet/shop/log-agent", "log-agent.yaml:3", "CRITICAL", "pss-privileged", "objects scanned, 1 findings (1 critical)"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("colour codes written to a non-terminal")
	}
}

func TestChecksCommand(t *testing.T) {
	code, out, _ := run(t, "checks", "-o", "json")
	if code != ExitOK {
		t.Fatalf("exit code %d", code)
	}
	var checks []struct {
		ID, Title, Severity, Description, Remediation string
		Targets                                       []string
	}
	if err := json.Unmarshal([]byte(out), &checks); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, c := range checks {
		if c.ID == "" || c.Title == "" || c.Description == "" || c.Remediation == "" || len(c.Targets) == 0 {
			t.Errorf("incomplete check %+v", c)
		}
		ids[c.ID] = true
	}
	for _, id := range []string{"pss-privileged", "pss-run-as-non-root", "hostpath-sensitive", "env-credential-literal", "service-exposed"} {
		if !ids[id] {
			t.Errorf("checks does not list %s", id)
		}
	}
	code, out, _ = run(t, "checks")
	if code != ExitOK || !strings.Contains(out, "pss-privileged") || !strings.Contains(out, "PSS baseline") {
		t.Errorf("checks table:\n%s", out)
	}
}

func TestScanSARIF(t *testing.T) {
	code, out, _ := run(t, "scan", "-o", "sarif", "--checks", "pss-privileged,hostpath-sensitive", "../../examples/insecure-shop")
	if code != ExitOK {
		t.Fatalf("exit code %d", code)
	}
	var log struct {
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name  string `json:"name"`
					Rules []struct {
						ID         string `json:"id"`
						Properties struct {
							SecuritySeverity string `json:"security-severity"`
						} `json:"properties"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string `json:"ruleId"`
				RuleIndex int    `json:"ruleIndex"`
				Level     string `json:"level"`
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct{ URI string }    `json:"artifactLocation"`
						Region           struct{ StartLine int } `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(out), &log); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if log.Version != "2.1.0" || len(log.Runs) != 1 || log.Runs[0].Tool.Driver.Name != "kustode" || len(log.Runs[0].Tool.Driver.Rules) != 2 {
		t.Fatalf("SARIF log header = %+v", log)
	}
	run := log.Runs[0]
	if len(run.Results) != 2 {
		t.Fatalf("results = %+v, want pss-privileged and hostpath-sensitive on the log agent", run.Results)
	}
	for _, r := range run.Results {
		loc := r.Locations[0].PhysicalLocation
		if run.Tool.Driver.Rules[r.RuleIndex].ID != r.RuleID || r.Level != "error" ||
			loc.ArtifactLocation.URI != "../../examples/insecure-shop/log-agent.yaml" || loc.Region.StartLine != 3 {
			t.Errorf("result %+v", r)
		}
	}
	if run.Tool.Driver.Rules[0].Properties.SecuritySeverity == "" {
		t.Error("rules lack security-severity")
	}
}

func TestScanJUnit(t *testing.T) {
	input := privilegedReplicaSet + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\n---\nkind: [\n"
	var out, errb strings.Builder
	code := Run(t.Context(), []string{"scan", "-o", "junit", "--checks", "pss-privileged", "-"}, strings.NewReader(input), &out, &errb)
	if code != ExitUsage {
		t.Errorf("exit code %d, want %d for the broken document", code, ExitUsage)
	}
	var doc struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Errors   int `xml:"errors,attr"`
		Suites   []struct {
			Cases []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal([]byte(out.String()), &doc); err != nil {
		t.Fatalf("not XML: %v\n%s", err, out.String())
	}
	if doc.Tests != 3 || doc.Failures != 1 || doc.Errors != 1 {
		t.Errorf("tests/failures/errors = %d/%d/%d, want 3/1/1\n%s", doc.Tests, doc.Failures, doc.Errors, out.String())
	}
	if c := doc.Suites[0].Cases[0]; c.Name != "ReplicaSet/ns/rs" || c.Failure == nil || !strings.Contains(c.Failure.Message, "worst critical") {
		t.Errorf("first case = %+v", c)
	}
}

func TestScanExceptionsFile(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/exceptions.yaml"
	content := `apiVersion: kustode.io/v1alpha1
kind: ExceptionList
exceptions:
- checks: [pss-privileged]
  objects: {kind: ReplicaSet, name: rs}
  reason: test
  owner: me@example.com
  expires: 2099-01-01
- checks: [image-no-digest]
  objects: {kind: ReplicaSet}
  reason: old
  owner: someone@example.com
  expires: 2001-01-01
`
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	code, r, stderr := scanJSON(t, privilegedReplicaSet, "--exceptions", file, "-")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var sawDigest bool
	for _, f := range r.Findings {
		if f.CheckID == "pss-privileged" {
			t.Error("pss-privileged reported despite an active exception")
		}
		sawDigest = sawDigest || f.CheckID == "image-no-digest"
	}
	if !sawDigest {
		t.Error("expired exception still suppressed image-no-digest")
	}
	if !strings.Contains(stderr, "expired on 2001-01-01") {
		t.Errorf("stderr %q does not report the expired exception", stderr)
	}

	if err := os.WriteFile(file, []byte("apiVersion: kustode.io/v1alpha1\nkind: ExceptionList\nexceptions:\n- checks: [nope]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	if code := Run(t.Context(), []string{"scan", "--exceptions", file, "-"}, strings.NewReader(""), &out, &errb); code != ExitUsage {
		t.Errorf("bad exceptions file: exit %d, want %d", code, ExitUsage)
	}
	if !strings.Contains(errb.String(), `exceptions.yaml:4: exception 1: unknown check "nope"`) {
		t.Errorf("stderr = %q", errb.String())
	}
}
