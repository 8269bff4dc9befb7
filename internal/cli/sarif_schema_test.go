package cli

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	// The official SARIF 2.1.0 JSON schema (OASIS, errata 01) ships in this
	// module as the constant schema in schema.go; sarifSchema reads it from
	// the module cache. The import only pins the module in go.mod, so that
	// the version read is the one go.sum verifies.
	_ "github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"
)

const (
	sarifSchemaModule = "github.com/owenrumney/go-sarif/v3"
	sarifSchemaFile   = "pkg/report/v210/sarif/schema.go"
	sarifSchemaID     = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)

// sarifSchema compiles the SARIF 2.1.0 schema, formats asserted (draft-04
// leaves them optional; the schema declares uri and uri-reference formats).
func sarifSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", sarifSchemaModule).Output()
	if err != nil {
		t.Fatalf("locate %s: %v", sarifSchemaModule, err)
	}
	file := filepath.Join(strings.TrimSpace(string(dir)), filepath.FromSlash(sarifSchemaFile))
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatalf("parse %s: %v", file, err)
	}
	var text string
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && name.Name == "schema" && lit.Kind == token.STRING {
					text, err = strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatalf("%s: const schema: %v", file, err)
					}
				}
			}
		}
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
	if err != nil {
		t.Fatalf("%s: const schema is not JSON: %v", file, err)
	}
	// A new version of the module may carry another schema: fail rather than
	// validate against something else.
	if m, ok := doc.(map[string]any); !ok || m["id"] != sarifSchemaID {
		t.Fatalf("%s: const schema is not %s", file, sarifSchemaID)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(sarifSchemaID, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(sarifSchemaID)
	if err != nil {
		t.Fatalf("compile the SARIF schema: %v", err)
	}
	return sch
}

// The SARIF log `scan -o sarif` writes is valid against the official schema,
// with and without findings, and when some input could not be read.
func TestScanSARIFSchema(t *testing.T) {
	sch := sarifSchema(t)
	tests := []struct {
		name        string
		stdin       string
		args        []string
		wantCode    int
		wantResults int // -1: as many as `scan -o json` finds
	}{
		{"examples, every check", "", []string{"../../examples"}, ExitOK, -1},
		{"no findings", "", []string{"--checks", "pss-privileged", "../../examples/hardened"}, ExitOK, 0},
		{"stdin with a bad document", privilegedReplicaSet + "---\nkind: [\n", []string{"--checks", "pss-privileged", "-"}, ExitUsage, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Run(t.Context(), append([]string{"scan", "-o", "sarif"}, tt.args...), strings.NewReader(tt.stdin), &out, &errb)
			if code != tt.wantCode {
				t.Fatalf("exit code %d, want %d\nstderr: %s", code, tt.wantCode, errb.String())
			}
			v, err := jsonschema.UnmarshalJSON(bytes.NewReader(out.Bytes()))
			if err != nil {
				t.Fatalf("not JSON: %v\n%s", err, out.String())
			}
			if err := sch.Validate(v); err != nil {
				t.Fatalf("not valid SARIF 2.1.0: %v", err)
			}
			var log struct {
				Runs []struct {
					Results []json.RawMessage `json:"results"`
				} `json:"runs"`
			}
			if err := json.Unmarshal(out.Bytes(), &log); err != nil || len(log.Runs) != 1 {
				t.Fatalf("want one run: %v", err)
			}
			want := tt.wantResults
			if want < 0 {
				_, r, _ := scanJSON(t, tt.stdin, tt.args...)
				want = r.Summary.Findings
				if want == 0 {
					t.Fatal("scan -o json finds nothing: the case checks no results")
				}
			}
			if got := len(log.Runs[0].Results); got != want {
				t.Errorf("%d results, want %d", got, want)
			}
		})
	}
}

// The schema rejects what it should, so a passing TestScanSARIFSchema means
// something.
func TestSARIFSchemaRejects(t *testing.T) {
	sch := sarifSchema(t)
	var out bytes.Buffer
	if code := Run(t.Context(), []string{"scan", "-o", "sarif", "--checks", "pss-privileged", "-"}, strings.NewReader(privilegedReplicaSet), &out, &bytes.Buffer{}); code != ExitOK {
		t.Fatalf("exit code %d", code)
	}
	tests := []struct {
		name string
		old  string
		new  string
	}{
		{"unknown level", `"level": "error"`, `"level": "fatal"`},
		{"unknown property", `"version": "2.1.0"`, `"version": "2.1.0", "kustode": true`},
		{"relative informationUri", `"informationUri": "https://github.com/kustode/kustode"`, `"informationUri": "kustode"`},
		{"start line 0", `"startLine": 1`, `"startLine": 0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(out.String(), tt.old) {
				t.Fatalf("output lacks %s:\n%s", tt.old, out.String())
			}
			v, err := jsonschema.UnmarshalJSON(strings.NewReader(strings.Replace(out.String(), tt.old, tt.new, 1)))
			if err != nil {
				t.Fatal(err)
			}
			if sch.Validate(v) == nil {
				t.Errorf("valid with %s", tt.new)
			}
		})
	}
}
