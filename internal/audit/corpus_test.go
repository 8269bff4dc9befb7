package audit

import (
	"bufio"
	"bytes"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kustode/kustode/internal/testcorpus"
)

// corpusFile is what reading one corpus file must give.
type corpusFile struct {
	events  map[Format]int
	failing map[int]string // line: why that record is not an audit event
	// notAuditLog files are no audit records at all (test specifications,
	// label tables): every non-blank line must fail.
	notAuditLog string
}

// corpusExpect lists the files whose results are not "every non-blank line
// is one audit event".
var corpusExpect = map[string]corpusFile{
	"falcosecurity__falco/test/falco_k8s_audit_tests.yaml": {
		notAuditLog: "Falco's test specification (YAML), not audit records",
	},
	"falcosecurity__falco/test/trace_files/k8s_audit/fal_01_003.json": {
		// Falco's test of a malformed event.
		failing: map[int]string{1: "not an audit event: kind is 0"},
	},
	"liggitt__audit2rbac/testdata/demo.log": {events: map[Format]int{FormatEvent: 757}},
	"panther-labs__panther-analysis/events.jsonl": {
		events: map[Format]int{FormatEvent: 188, FormatGKE: 51, FormatAKS: 34},
		failing: map[int]string{
			// Panther's negative tests: records of other cloud
			// services, which rightly are no Kubernetes audit events.
			21:  `Google Cloud audit log of service "deploymentmanager.googleapis.com"`,
			22:  `Google Cloud audit log of service "deploymentmanager.googleapis.com"`,
			23:  `Google Cloud audit log of service "deploymentmanager.googleapis.com"`,
			28:  `Google Cloud audit log of service "deploymentmanager.googleapis.com"`,
			29:  `Google Cloud audit log of service "deploymentmanager.googleapis.com"`,
			107: `Google Cloud audit log of service "compute.googleapis.com"`,
			109: `Azure log category "Administrative"`,
			// Threat-intel enrichment only: {"operation": ..., "p_enrichment": ...}.
			26: "not an audit record: no kind, protoPayload, category or message among its fields (operation, p_enrichment)",
			27: "not an audit record: no kind, protoPayload, category or message among its fields (operation, p_enrichment)",
		},
	},
	"panther-labs__panther-analysis/labels.tsv": {
		notAuditLog: "Panther's label table (TSV) for events.jsonl, not audit records",
	},
}

// TestCorpus replays every file of the corpus: nothing crashes or stops
// early, and the only records skipped are those listed above, which are not
// audit events.
func TestCorpus(t *testing.T) {
	root := testcorpus.Dir(t, "audit")
	total := map[Format]int{}
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		files++
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		t.Run(rel, func(t *testing.T) {
			_, res, err := readAll(t, data, ReadOptions{Source: rel, MaxErrors: 1 << 20})
			if err != nil {
				t.Fatalf("Read() = %v", err)
			}
			for f, n := range res.Formats {
				total[f] += n
			}
			want, listed := corpusExpect[rel]
			nonBlank := countNonBlank(data)
			if want.notAuditLog != "" {
				if res.Events != 0 || res.Malformed != nonBlank {
					t.Fatalf("%s: %d events, %d of %d lines failed; want every line to fail", want.notAuditLog, res.Events, res.Malformed, nonBlank)
				}
				return
			}
			if !listed {
				want.events = map[Format]int{FormatEvent: nonBlank}
			}
			got := map[int]string{}
			for _, e := range res.Errors {
				got[e.Line] = e.Err.Error()
			}
			for _, line := range slices.Sorted(maps.Keys(got)) {
				if why, ok := want.failing[line]; !ok || !strings.Contains(got[line], why) {
					t.Errorf("line %d failed unexpectedly: %s", line, got[line])
				}
			}
			for _, line := range slices.Sorted(maps.Keys(want.failing)) {
				if _, ok := got[line]; !ok {
					t.Errorf("line %d was read as an event; want it to fail: %s", line, want.failing[line])
				}
			}
			if !maps.Equal(res.Formats, want.events) {
				t.Errorf("events by format %v, want %v", res.Formats, want.events)
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatalf("no files under %s", root)
	}
	t.Logf("%d files, events by format: %v", files, total)
}

func countNonBlank(data []byte) int {
	n := 0
	for l := range bytes.Lines(data) {
		if len(bytes.TrimSpace(l)) > 0 {
			n++
		}
	}
	return n
}

// TestCorpusPantherFormats reads Panther's events one by one and checks the
// format each is recognised as against the log type Panther labels it with.
func TestCorpusPantherFormats(t *testing.T) {
	dir := filepath.Join(testcorpus.Dir(t, "audit"), "panther-labs__panther-analysis")
	events, err := os.ReadFile(filepath.Join(dir, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	labels, err := os.Open(filepath.Join(dir, "labels.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer labels.Close()
	logType := map[int]string{}
	sc := bufio.NewScanner(labels)
	sc.Scan() // header: line rule_file rule_id test_name expected_result log_type
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		n, err := strconv.Atoi(cols[0])
		if err != nil || len(cols) < 6 {
			t.Fatalf("labels.tsv: bad row %q", sc.Text())
		}
		logType[n] = cols[5]
	}
	// What Panther's log types arrive as. Panther stores EKS audit logs
	// as the plain events; unlabelled rows are GKE rule tests.
	wantFormat := map[string]Format{
		"Amazon.EKS.Audit":      FormatEvent,
		"k8s.audit":             FormatEvent,
		"GCP.AuditLog":          FormatGKE,
		"Azure.MonitorActivity": FormatAKS,
		"":                      FormatGKE,
	}
	failing := corpusExpect["panther-labs__panther-analysis/events.jsonl"].failing
	lineNo := 0
	for l := range bytes.Lines(events) {
		lineNo++
		_, res, err := readAll(t, l, ReadOptions{})
		if err != nil {
			t.Fatalf("line %d: %v", lineNo, err)
		}
		if _, bad := failing[lineNo]; bad {
			continue
		}
		want := map[Format]int{wantFormat[logType[lineNo]]: 1}
		if !maps.Equal(res.Formats, want) {
			t.Errorf("line %d (%s): read as %v, want %v; errors %q", lineNo, logType[lineNo], res.Formats, want, errorStrings(res))
		}
	}
}

func TestCorpusDecodeAgreesWithEncodingJSON(t *testing.T) {
	// Every plain event of the corpus decodes as encoding/json decodes it.
	root := testcorpus.Dir(t, "audit")
	for _, rel := range []string{"liggitt__audit2rbac/testdata/demo.log", "panther-labs__panther-analysis/events.jsonl"} {
		data, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		for l := range bytes.Lines(data) {
			checkAgainstReference(t, bytes.TrimSpace(l))
		}
	}
}
