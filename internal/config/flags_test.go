package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPrecedence: explicitly set flag > env > file > default, for a plain
// setting and for a list.
func TestPrecedence(t *testing.T) {
	file := writeFile(t, "file.yaml", "listen: \":1111\"\nposture: {namespaces: [file-a, file-b]}\n")
	other := writeFile(t, "other.yaml", "listen: \":4444\"\n")
	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		listen     string
		namespaces []string
	}{
		{name: "default", listen: ":8080"},
		{name: "file", args: []string{"--config", file}, listen: ":1111", namespaces: []string{"file-a", "file-b"}},
		{name: "file named by env", env: map[string]string{"KUSTODE_CONFIG": file}, listen: ":1111", namespaces: []string{"file-a", "file-b"}},
		{name: "--config beats KUSTODE_CONFIG", env: map[string]string{"KUSTODE_CONFIG": other}, args: []string{"--config", file}, listen: ":1111", namespaces: []string{"file-a", "file-b"}},
		{
			name: "env beats file", args: []string{"--config", file},
			env:    map[string]string{"KUSTODE_LISTEN": ":2222", "KUSTODE_NAMESPACE": "env-a, env-b"},
			listen: ":2222", namespaces: []string{"env-a", "env-b"},
		},
		{
			name: "empty env clears a list", args: []string{"--config", file},
			env:    map[string]string{"KUSTODE_NAMESPACE": ""},
			listen: ":1111",
		},
		{
			name: "flag beats env and file",
			args: []string{"--config", file, "--listen", ":3333", "--namespace", "flag-a", "--namespace=flag-b,flag-c"},
			env:  map[string]string{"KUSTODE_LISTEN": ":2222", "KUSTODE_NAMESPACE": "env-a"},
			// A repeated list flag accumulates, and replaces the lower sources.
			listen: ":3333", namespaces: []string{"flag-a", "flag-b", "flag-c"},
		},
		{
			name: "a flag set to the default still wins",
			args: []string{"--listen", ":8080"}, env: map[string]string{"KUSTODE_LISTEN": ":2222"},
			listen: ":8080",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := resolveArgs(t, tt.env, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			if c.Listen != tt.listen {
				t.Errorf("listen: got %q, want %q", c.Listen, tt.listen)
			}
			if !reflect.DeepEqual(c.Posture.Namespaces, tt.namespaces) {
				t.Errorf("posture.namespaces: got %q, want %q", c.Posture.Namespaces, tt.namespaces)
			}
		})
	}
}

// TestEverySettingReachable sets each setting of the table, in turn, from
// the file, the environment and a flag, and checks that exactly that field
// changed.
func TestEverySettingReachable(t *testing.T) {
	for _, s := range settings {
		raw, yamlValue := sample(s)
		want := Default()
		if err := s.value(&want).replace(raw); err != nil {
			t.Fatalf("%s: sample %q: %v", s.Key, raw, err)
		}
		sources := map[string]func() (Config, error){
			"flag": func() (Config, error) { return unvalidated(t, nil, "--"+s.Flag+"="+raw) },
			"env":  func() (Config, error) { return unvalidated(t, map[string]string{s.Env(): raw}) },
			"file": func() (Config, error) {
				return unvalidated(t, nil, "--config", writeFile(t, "c.yaml", nested(s.Key, yamlValue)))
			},
		}
		for name, resolve := range sources {
			t.Run(s.Key+"/"+name, func(t *testing.T) {
				got, err := resolve()
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("got  %+v\nwant %+v", got, want)
				}
			})
		}
	}
}

// sample returns a value for s that differs from its default, as a flag or
// env value and as YAML.
func sample(s Setting) (raw, yamlValue string) {
	switch s.Type() {
	case "string":
		v := "/sample/" + s.Flag // absolute: file paths stay as written
		return v, `"` + v + `"`
	case "bool":
		if s.DefaultYAML() == "true" {
			return "false", "false"
		}
		return "true", "true"
	case "duration":
		return "42m", "42m"
	case "strings":
		return "/a,/b", "[/a, /b]"
	}
	panic("unknown type " + s.Type())
}

// nested writes key: value as YAML, one mapping level per dot.
func nested(key, value string) string {
	var b strings.Builder
	parts := strings.Split(key, ".")
	for i, p := range parts {
		b.WriteString(strings.Repeat("  ", i) + p + ":")
		if i < len(parts)-1 {
			b.WriteString("\n")
		}
	}
	b.WriteString(" " + value + "\n")
	return b.String()
}

// unvalidated resolves without Validate: the samples are not valid values.
func unvalidated(t *testing.T, env map[string]string, args ...string) (Config, error) {
	t.Helper()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	f := Bind(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	c, _, err := f.resolve(mapEnv(env))
	return c, err
}

// TestSourcesInErrors: an error says where the bad value came from.
func TestSourcesInErrors(t *testing.T) {
	file := writeFile(t, "c.yaml", "log:\n  level: loud\n")
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{
			name: "env parse error",
			env:  map[string]string{"KUSTODE_AUDIT_SILENCE_ALERT": "900", "KUSTODE_EVENTS": "yes please"},
			want: []string{
				`env KUSTODE_AUDIT_SILENCE_ALERT: audit.silenceAlert: "900" is not a Go duration: add a unit`,
				`env KUSTODE_EVENTS: events.enabled: "yes please" is not a boolean: use true or false`,
			},
		},
		{
			name: "empty env for a duration",
			env:  map[string]string{"KUSTODE_POSTURE_RESYNC": ""},
			want: []string{`env KUSTODE_POSTURE_RESYNC: posture.resync: "" is not a Go duration`},
		},
		{
			name: "validation, by source",
			env:  map[string]string{"KUSTODE_LOG_FORMAT": "xml"},
			args: []string{"--config", file, "--listen", "abc", "--tls-cert-file", "/nonexistent/tls.crt"},
			want: []string{
				`flag --listen: listen: "abc" is not host:port`,
				`c.yaml:2:10: log.level: "loud" is not a level`,
				`env KUSTODE_LOG_FORMAT: log.format: "xml" is not a format`,
				`flag --tls-cert-file: api.tlsCertFile: "/nonexistent/tls.crt" file not found`,
				`flag --tls-cert-file: api.tlsKeyFile: set together with api.tlsCertFile, or neither`,
			},
		},
		{
			name: "missing config file named by env",
			env:  map[string]string{"KUSTODE_CONFIG": "/nonexistent/kustode.yaml"},
			want: []string{"config: open /nonexistent/kustode.yaml: no such file or directory"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := resolveArgs(t, tt.env, tt.args...)
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q; got:\n%v", w, err)
				}
			}
		})
	}
}

func TestFlagParseError(t *testing.T) {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.SetOutput(&strings.Builder{})
	Bind(fs)
	err := fs.Parse([]string{"--retention-history", "90"})
	if err == nil || !strings.Contains(err.Error(), `"90" is not a Go duration: add a unit`) {
		t.Fatalf("got %v", err)
	}
}

// TestHelp: --help teaches each flag's default, environment variable and
// YAML key.
func TestHelp(t *testing.T) {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	Bind(fs)
	help := fs.FlagUsages()
	for _, s := range settings {
		f := fs.Lookup(s.Flag)
		if f == nil {
			t.Fatalf("no flag --%s", s.Flag)
		}
		if !strings.Contains(f.Usage, "env "+s.Env()) || !strings.Contains(f.Usage, "YAML "+s.Key) {
			t.Errorf("--%s: usage %q lacks env or YAML key", s.Flag, f.Usage)
		}
	}
	for _, want := range []string{
		`--listen string`, `(default ":8080")`,
		`--audit-silence-alert duration`, `(default 15m)`,
		`--events `, `(default true)`,
		`--namespace strings`, `repeat the flag`,
		`--config string`, `KUSTODE_CONFIG`,
	} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
	if strings.Contains(help, "--namespace strings   namespaces to watch; empty: all (repeat the flag or separate with commas) [env KUSTODE_NAMESPACE, YAML posture.namespaces] (default") {
		t.Error("an empty list shows a default")
	}
}

func TestBoolFlagWithoutValue(t *testing.T) {
	c, err := unvalidated(t, map[string]string{"KUSTODE_AUDIT_LOG_START_AT_END": "false"}, "--audit-log-start-at-end")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Audit.StartAtEnd {
		t.Error("--audit-log-start-at-end without a value did not set true")
	}
	c, err = unvalidated(t, nil, "--events=false")
	if err != nil {
		t.Fatal(err)
	}
	if c.Events.Enabled {
		t.Error("--events=false did not set false")
	}
}
