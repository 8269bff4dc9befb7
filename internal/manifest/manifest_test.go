package manifest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadMultiDocumentWithLines(t *testing.T) {
	objs, errs := Load([]string{"testdata/multi.yaml"}, nil)
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	want := []string{
		"Namespace/shop@testdata/multi.yaml:2",
		"Deployment/shop/web@testdata/multi.yaml:7",
		"ConfigMap/shop/a@testdata/multi.yaml:21",
		"ConfigMap/shop/b@testdata/multi.yaml:21",
	}
	if got := describe(objs); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("objects:\n got %v\nwant %v", got, want)
	}
	if objs[1].Labels["app"] != "web" || objs[1].Ref.APIVersion != "apps/v1" {
		t.Errorf("deployment metadata not decoded: %+v", objs[1])
	}
}

func describe(objs []Object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.Ref.String()+"@"+o.Source.String())
	}
	return out
}

// One bad document never stops the rest, and each error names file:line.
func TestLoadBadDocumentsDoNotStopTheRest(t *testing.T) {
	objs, errs := Load([]string{"testdata/broken.yaml"}, nil)
	got := describe(objs)
	want := []string{"ConfigMap/good-before@testdata/broken.yaml:1", "ConfigMap/good-after@testdata/broken.yaml:18"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("objects: got %v, want %v", got, want)
	}
	wantErrs := []string{
		"testdata/broken.yaml:6: invalid YAML:",
		"testdata/broken.yaml:12: document is not a mapping",
		"testdata/broken.yaml:14: not a Kubernetes object: apiVersion and kind are required",
	}
	if len(errs) != len(wantErrs) {
		t.Fatalf("errors: got %d %v, want %d", len(errs), errs, len(wantErrs))
	}
	for i, w := range wantErrs {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("error %d = %q, want prefix %q", i, errs[i], w)
		}
		var ie *InputError
		if !errors.As(errs[i], &ie) {
			t.Errorf("error %d is not an *InputError", i)
		}
	}
	// The YAML parser's own line number (the mapping it was reading when
	// the bad indentation at line 10 broke it) is made absolute in the file.
	if !strings.Contains(errs[0].Error(), "line 9:") {
		t.Errorf("YAML error %q does not point at line 9 of the file", errs[0])
	}
}

func TestLoadUnrenderedTemplate(t *testing.T) {
	_, errs := Load([]string{"testdata/helm.yaml"}, nil)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "unrendered Helm or Go template") {
		t.Fatalf("errors = %v, want one unrendered-template error", errs)
	}
}

func TestLoadDirectoryAndStdin(t *testing.T) {
	stdin := strings.NewReader("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
	objs, errs := Load([]string{"testdata/dir", Stdin}, stdin)
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	want := []string{
		"ServiceAccount/x/sa@testdata/dir/a.json:1",
		"Service/x/svc@testdata/dir/sub/b.yml:1",
		"Pod/p@<stdin>:1",
	}
	if got := describe(objs); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("objects:\n got %v\nwant %v (hidden dirs and non-manifest files skipped)", got, want)
	}
}

func TestLoadRefusesBinaryAndMissing(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "image.yaml")
	if err := os.WriteFile(bin, []byte("\x7fELF\x00\x00binary"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errs := Load([]string{bin, filepath.Join(dir, "missing.yaml")}, nil)
	if len(errs) != 2 {
		t.Fatalf("errors = %v, want 2", errs)
	}
	if !strings.Contains(errs[0].Error(), "binary file") {
		t.Errorf("binary file error = %q", errs[0])
	}
	if !errors.Is(errs[1], os.ErrNotExist) {
		t.Errorf("missing file error = %q, want not-exist", errs[1])
	}
}

func FuzzLoad(f *testing.F) {
	for _, p := range []string{"testdata/multi.yaml", "testdata/broken.yaml", "testdata/helm.yaml"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, errs := Load([]string{Stdin}, bytes.NewReader(data))
		for _, o := range objs {
			if o.Ref.Kind == "" || o.Source.Line < 1 {
				t.Errorf("object without kind or line: %+v", o)
			}
		}
		for _, e := range errs {
			if !strings.HasPrefix(e.Error(), "<stdin>") {
				t.Errorf("error without location: %v", e)
			}
		}
	})
}

// A directory with a kustomization is built as kustomize would; its inputs
// are not read one by one. Each overlay is its own build.
func TestLoadKustomize(t *testing.T) {
	objs, errs := Load([]string{"testdata/kustomize"}, nil)
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	want := []string{
		"Deployment/web@testdata/kustomize/base/kustomization.yaml",
		"Deployment/prod/prod-web@testdata/kustomize/overlays/prod/kustomization.yaml",
	}
	if got := describe(objs); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("objects:\n got %v\nwant %v", got, want)
	}
	if !strings.Contains(string(objs[1].Raw), `"hostNetwork":true`) {
		t.Errorf("overlay patch not applied: %s", objs[1].Raw)
	}
	_, errs = Load([]string{"testdata/kustomize-broken"}, nil)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "testdata/kustomize-broken/kustomization.yaml: kustomize build:") {
		t.Errorf("broken kustomization: %v", errs)
	}
}
