package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// serve --print-config shows the resolved configuration, flags over the
// file, with the store password redacted; a bad file is a usage error that
// names the field.
func TestServePrintConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kustode.yaml")
	if err := os.WriteFile(cfg, []byte("listen: \":9000\"\nstore: postgres://kustode:hunter2@db:5432/kustode\nlog: {level: debug}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "serve", "--config", cfg, "--listen", "127.0.0.1:9100", "--print-config")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"listen: 127.0.0.1:9100", "level: debug", "postgres://kustode:xxxxx@db:5432/kustode"} {
		if !strings.Contains(out, want) {
			t.Errorf("--print-config lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errOut, "hunter2") {
		t.Error("--print-config printed the store password")
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("listen: \":9000\"\nlog:\n  lvl: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = run(t, "serve", "--config", bad)
	if code != ExitUsage || !strings.Contains(errOut, "bad.yaml:3") || !strings.Contains(errOut, "level") {
		t.Errorf("bad config: exit %d, stderr %q; want %d naming bad.yaml:3 and the known key", code, errOut, ExitUsage)
	}
}
