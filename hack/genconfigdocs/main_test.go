package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/kustode/kustode/internal/config"
)

// TestDocsUpToDate fails when docs/config.md is not what the settings table
// generates: run `make generate` (or `go generate ./internal/config`).
func TestDocsUpToDate(t *testing.T) {
	committed, err := os.ReadFile(filepath.Join("..", "..", "docs", "config.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, render()) {
		t.Fatal("docs/config.md is stale: run `make generate` and commit the result")
	}
}

// TestExampleLoads: the example in the reference is a configuration file
// that loads to the defaults.
func TestExampleLoads(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kustode.yaml")
	if err := os.WriteFile(file, example(config.Settings()), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	want := config.Default()
	want.DataDir = filepath.Join(dir, want.DataDir) // relative to the file
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestRun(t *testing.T) {
	out := filepath.Join(t.TempDir(), "docs", "config.md")
	if err := run(out); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range config.Settings() {
		for _, want := range []string{"`" + s.Key + "`", "`--" + s.Flag + "`", "`" + s.Env() + "`"} {
			if !bytes.Contains(data, []byte(want)) {
				t.Errorf("the reference lacks %s", want)
			}
		}
	}
}
