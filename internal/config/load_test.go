package config

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// TestTestdata resolves every testdata/*.yaml through --config, as
// `kustode serve` does. A .good.yaml file must resolve cleanly; a .bad.yaml
// file must fail with every "# want: SUBSTRING" of its leading comments in
// the error, and none of its "# never: SUBSTRING" (secrets).
func TestTestdata(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			want, never := expectations(data)
			_, err = resolveArgs(t, nil, "--config", file)
			switch {
			case strings.HasSuffix(file, ".good.yaml"):
				if err != nil {
					t.Fatalf("want no error, got:\n%v", err)
				}
				if len(want) > 0 {
					t.Fatal("a .good.yaml file carries no # want")
				}
			case strings.HasSuffix(file, ".bad.yaml"):
				if err == nil {
					t.Fatal("want an error, got none")
				}
				if len(want) == 0 {
					t.Fatal("a .bad.yaml file needs a # want: line")
				}
				t.Logf("error (as users see it):\n%v", err)
				for _, w := range want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q; got:\n%v", w, err)
					}
				}
				for _, n := range never {
					if strings.Contains(err.Error(), n) {
						t.Errorf("error contains %q:\n%v", n, err)
					}
				}
			default:
				t.Fatal("a testdata file is name.good.yaml or name.bad.yaml")
			}
		})
	}
}

// expectations reads the "# want:" and "# never:" lines.
func expectations(data []byte) (want, never []string) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if w, ok := strings.CutPrefix(sc.Text(), "# want: "); ok {
			want = append(want, w)
		}
		if n, ok := strings.CutPrefix(sc.Text(), "# never: "); ok {
			never = append(never, n)
		}
	}
	return want, never
}

// resolveArgs binds a fresh flag set, parses args and resolves with env as
// the whole environment.
func resolveArgs(t *testing.T, env map[string]string, args ...string) (Config, error) {
	t.Helper()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	f := Bind(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return f.Resolve(mapEnv(env))
}

func mapEnv(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

func TestFull(t *testing.T) {
	got, err := resolveArgs(t, nil, "--config", "testdata/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files := func(name string) string { return filepath.Join("testdata", "files", name) }
	want := Config{
		Kubeconfig: files("token"),
		Listen:     "127.0.0.1:9090",
		DataDir:    "/var/lib/kustode",
		Store:      "sqlite:" + filepath.Join("testdata", "state", "kustode.db"),
		API:        API{TokenFile: files("token"), TLSCertFile: files("tls.crt"), TLSKeyFile: files("tls.key")},
		Audit: Audit{
			LogPath:             "/var/log/kubernetes/audit.log",
			StartAtEnd:          true,
			WebhookListen:       ":8443",
			WebhookTokenFile:    files("token"),
			WebhookClientCAFile: files("ca.crt"),
			WebhookTLSCertFile:  files("tls.crt"),
			WebhookTLSKeyFile:   files("tls.key"),
			RulesDirs:           []string{files("rules")},
			ClusterCIDRs:        []string{"10.244.0.0/16", "10.0.0.0/20", "fd00:10:244::/56"},
			SilenceAlert:        0,
		},
		Posture: Posture{
			Resync:          time.Hour,
			HistoryInterval: 30 * time.Minute,
			ExceptionsFile:  files("exceptions.yaml"),
			PSSVersion:      "v1.33",
			SecretMaxAge:    365 * 24 * time.Hour,
			Namespaces:      []string{"default", "payments"},
		},
		Events:    Events{Enabled: false, RegistryAllowList: []string{"ghcr.io/acme", "registry.k8s.io"}},
		Kubelet:   Kubelet{ReadConfig: true, ConfigInterval: 30 * time.Minute},
		Retention: Retention{Alerts: 90 * 24 * time.Hour, ResolvedFindings: 0, History: 90 * time.Minute},
		Log:       Log{Level: "debug", Format: "json"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	// The file sets every setting, so that this test covers the decoder
	// for each of them.
	_, at, err := load("testdata/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settings {
		if at[s.Key] == "" {
			t.Errorf("full.good.yaml does not set %s", s.Key)
		}
	}
}

func TestDefaultIsValid(t *testing.T) {
	t.Chdir(t.TempDir())
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	got, err := resolveArgs(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, Default()) {
		t.Errorf("no file, env or flag: got %+v, want Default()", got)
	}
}

// TestMarshalRoundTrip: what --print-config prints loads back to the same
// configuration.
func TestMarshalRoundTrip(t *testing.T) {
	for _, file := range []string{"", "testdata/full.good.yaml"} {
		want := Default()
		if file != "" {
			var err error
			if want, err = Load(file); err != nil {
				t.Fatal(err)
			}
		}
		out, err := yaml.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := parse("printed.yaml", out)
		if err != nil {
			t.Fatalf("%s: %v\n%s", file, err, out)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: round trip: got %+v, want %+v\n%s", file, got, want, out)
		}
	}
}

func TestRelativePaths(t *testing.T) {
	dir, home := t.TempDir(), t.TempDir()
	t.Setenv("HOME", home)
	file := filepath.Join(dir, "kustode.yaml")
	data := "kubeconfig: ~/.kube/config\ndataDir: data\nstore: sqlite://db/k.db\napi: {tokenFile: /abs/token}\naudit: {rulesDirs: [rules, /abs/rules]}\n"
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(home, ".kube", "config"); c.Kubeconfig != want {
		t.Errorf("kubeconfig: got %q, want %q", c.Kubeconfig, want)
	}
	if want := filepath.Join(dir, "data"); c.DataDir != want {
		t.Errorf("dataDir: got %q, want %q", c.DataDir, want)
	}
	if want := "sqlite:" + filepath.Join(dir, "db", "k.db"); c.Store != want {
		t.Errorf("store: got %q, want %q", c.Store, want)
	}
	if c.API.TokenFile != "/abs/token" {
		t.Errorf("api.tokenFile: got %q", c.API.TokenFile)
	}
	if want := []string{filepath.Join(dir, "rules"), "/abs/rules"}; !reflect.DeepEqual(c.Audit.RulesDirs, want) {
		t.Errorf("audit.rulesDirs: got %q, want %q", c.Audit.RulesDirs, want)
	}
	if c.Listen != ":8080" {
		t.Errorf("listen, not a path: got %q", c.Listen)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("want an error naming the file, got %v", err)
	}
}

func TestSuggest(t *testing.T) {
	tests := []struct{ section, key, want string }{
		{"api", "tokenfile", `did you mean "tokenFile"?`},
		{"api", "tls-key-file", `did you mean "tlsKeyFile"?`},
		{"", "lisetn", `did you mean "listen"?`},
		{"", "tlsCertFile", `did you mean "api.tlsCertFile"?`},
		{"", "audit-webhook-listen", `did you mean "audit.webhookListen"?`},
		{"posture", "namespace", `did you mean "namespaces"?`},
		{"log", "colour", "the settings in log are level, format"},
		{"", "x", "the settings here are kubeconfig"},
	}
	for _, tt := range tests {
		if got := suggest(tt.section, tt.key); !strings.Contains(got, tt.want) {
			t.Errorf("suggest(%q, %q) = %q, want %q", tt.section, tt.key, got, tt.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "abc", 0}, {"abc", "acb", 1}, {"listen", "lisetn", 1},
		{"kitten", "sitting", 3}, {"", "abc", 3}, {"a", "", 1},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// FuzzLoad: no input makes the decoder or Validate panic, and a
// configuration that loads prints (as --print-config does) to YAML that
// loads back to the same configuration.
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("listen: &a [*a]"))
	f.Add([]byte("a: &a {b: *a}"))
	f.Add([]byte("\"\": {listen: \":1\"}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, _, err := parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		_ = c.Validate()
		out, err := yaml.Marshal(c.Redacted())
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		if c.Redacted().Store != c.Store {
			return // the password is gone: no round trip
		}
		again, _, err := parse("fuzz.yaml", out)
		if err != nil {
			t.Fatalf("printed configuration does not load: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip: got %+v, want %+v\n%s", again, c, out)
		}
	})
}

func TestEmptyKey(t *testing.T) {
	_, _, err := parse("c.yaml", []byte(`"": {listen: ":1"}`))
	if err == nil || !strings.Contains(err.Error(), "c.yaml:1:1: unknown setting") {
		t.Fatalf("got %v", err)
	}
}
