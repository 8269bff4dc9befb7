package config

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// TestTableMatchesStruct: every leaf field of Config has exactly one
// Setting, whose Key is the field's YAML path and whose accessor returns
// that field; flags and environment variables are unique.
func TestTableMatchesStruct(t *testing.T) {
	var c Config
	fields := map[string]uintptr{} // YAML path → address in c
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		for i := range v.NumField() {
			f := v.Type().Field(i)
			key := joinKey(prefix, strings.Split(f.Tag.Get("yaml"), ",")[0])
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]() {
				walk(v.Field(i), key)
				continue
			}
			fields[key] = v.Field(i).Addr().Pointer()
		}
	}
	walk(reflect.ValueOf(&c).Elem(), "")

	flags, envs := map[string]bool{"config": true}, map[string]bool{}
	for _, s := range settings {
		addr, ok := fields[s.Key]
		if !ok {
			t.Errorf("setting %s: no field of Config has this YAML path", s.Key)
			continue
		}
		if got := reflect.ValueOf(s.field(&c)).Pointer(); got != addr {
			t.Errorf("setting %s: accessor returns another field", s.Key)
		}
		delete(fields, s.Key)
		if flags[s.Flag] || envs[s.Env()] {
			t.Errorf("setting %s: flag --%s or %s used twice", s.Key, s.Flag, s.Env())
		}
		flags[s.Flag], envs[s.Env()] = true, true
		if s.Usage == "" {
			t.Errorf("setting %s: no usage", s.Key)
		}
	}
	for key := range fields {
		t.Errorf("field %s has no setting", key)
	}
}

func TestEnvName(t *testing.T) {
	for flag, want := range map[string]string{
		"audit-webhook-listen": "KUSTODE_AUDIT_WEBHOOK_LISTEN",
		"kubeconfig":           "KUSTODE_KUBECONFIG",
		"config":               "KUSTODE_CONFIG",
	} {
		if got := envName(flag); got != want {
			t.Errorf("envName(%q) = %q, want %q", flag, got, want)
		}
	}
}

func TestDefaultYAML(t *testing.T) {
	want := map[string]string{
		"listen":             `":8080"`,
		"kubeconfig":         `""`,
		"audit.rulesDirs":    "[]",
		"audit.silenceAlert": "15m",
		"events.enabled":     "true",
		"posture.resync":     "10m",
		"retention.history":  "2160h",
	}
	for _, s := range settings {
		if w, ok := want[s.Key]; ok && s.DefaultYAML() != w {
			t.Errorf("%s: DefaultYAML() = %s, want %s", s.Key, s.DefaultYAML(), w)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 15 * time.Minute: "15m", 2160 * time.Hour: "2160h", 90 * time.Minute: "1h30m",
		time.Hour + 5*time.Second: "1h0m5s", 1500 * time.Millisecond: "1.5s", -time.Hour: "-1h",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
		if back, err := parseDuration(formatDuration(d)); err != nil || back != d {
			t.Errorf("parseDuration(%q) = %v, %v", formatDuration(d), back, err)
		}
	}
}

func TestRedacted(t *testing.T) {
	tests := []struct{ store, want string }{
		{"", ""},
		{"sqlite:/var/lib/kustode.db", "sqlite:/var/lib/kustode.db"},
		{"postgres://kustode@db/kustode", "postgres://kustode@db/kustode"},
		{"postgres://kustode:hunter2@db:5432/kustode?sslmode=require", "postgres://kustode:xxxxx@db:5432/kustode?sslmode=require"},
		{"postgresql://db/kustode?user=k&password=hunter2", "postgresql://db/kustode?password=xxxxx&user=k"},
		{"postgres://kustode:hunter2@db:port/kustode", "xxxxx"}, // does not parse
		{"kustode:hunter2@db/kustode", "xxxxx"},                 // no scheme: "kustode" would be one
	}
	for _, tt := range tests {
		c := Default()
		c.Store = tt.store
		c.Posture.Namespaces = []string{"a"}
		r := c.Redacted()
		if r.Store != tt.want {
			t.Errorf("Redacted(%q).Store = %q, want %q", tt.store, r.Store, tt.want)
		}
		if c.Store != tt.store {
			t.Error("Redacted modified its receiver")
		}
		r.Posture.Namespaces[0] = "changed"
		if c.Posture.Namespaces[0] != "a" {
			t.Error("Redacted shares a slice with its receiver")
		}
	}
}

// TestNoSecretLeaks: the store password appears in no log line, printed
// configuration or error.
func TestNoSecretLeaks(t *testing.T) {
	const secret = "hunter2"
	c := Default()
	c.Store = "postgres://kustode:" + secret + "@db:5432/kustode?password=" + secret
	var log bytes.Buffer
	slog.New(slog.NewJSONHandler(&log, nil)).Info("starting", "config", c)
	printed, err := yaml.Marshal(c.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	bad := c
	bad.Store = "postgres://kustode:" + secret + "@db:port/kustode"
	validateErr := bad.Validate()
	if validateErr == nil {
		t.Fatal("want a validation error for a bad port")
	}
	for name, out := range map[string]string{"log": log.String(), "print": string(printed), "validate": validateErr.Error()} {
		if strings.Contains(out, secret) {
			t.Errorf("%s leaks the password:\n%s", name, out)
		}
	}
	if !strings.Contains(log.String(), `"Listen":":8080"`) {
		t.Errorf("the log lacks the configuration:\n%s", log.String())
	}
}

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tok, err := ReadTokenFile(write("token", "\n  s3cret \n"))
	if err != nil || tok != "s3cret" {
		t.Fatalf("got %q, %v; want the trimmed token", tok, err)
	}
	tests := []struct{ path, want string }{
		{write("blank", " \n\t"), "is empty"},
		{write("huge", "s3cret"+strings.Repeat("x", maxTokenSize)), "larger than 64 KiB"},
		{filepath.Join(dir, "missing"), "file not found"},
		{dir, "is not a regular file"},
	}
	for _, tt := range tests {
		_, err := ReadTokenFile(tt.path)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ReadTokenFile(%s): got %v, want %q", filepath.Base(tt.path), err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("ReadTokenFile(%s): error leaks the content: %v", filepath.Base(tt.path), err)
		}
	}
}

func TestOverlap(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{":8080", ":8080", true},
		{":8080", "127.0.0.1:8080", true},
		{"0.0.0.0:8080", "[::1]:8080", true},
		{"127.0.0.1:8080", "127.0.0.2:8080", false},
		{":8080", ":8443", false},
		{":0", ":0", false},
		{"abc", ":8080", false},
	}
	for _, tt := range tests {
		if got := overlap(tt.a, tt.b); got != tt.want {
			t.Errorf("overlap(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestValidateJoinsFieldErrors(t *testing.T) {
	c := Default()
	c.Log.Level, c.Log.Format = "loud", "xml"
	err := c.Validate()
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Key != "log.level" {
		t.Fatalf("want a *FieldError for log.level first, got %v", err)
	}
	if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != 2 {
		t.Errorf("want 2 problems, got %d: %v", n, err)
	}
}

func TestValidateStore(t *testing.T) {
	tests := []struct{ store, want string }{
		{"", ""},
		{"sqlite:kustode.db", ""},
		{"sqlite:///var/lib/kustode.db", ""},
		{"postgres://kustode@db:5432/kustode?sslmode=require", ""},
		{"postgresql:///kustode?host=/var/run/postgresql", ""},
		{"sqlite://", `"sqlite://" names no file`},
		{"sqlite:k.db?mode=ro", `cannot contain '?'`},
		{"postgres:kustode:hunter2@db", `not a PostgreSQL URL: write postgres://USER@HOST:PORT/DATABASE`},
		{"mysql://root:hunter2@db/k", `scheme "mysql" not supported`},
		{"/var/lib/kustode.db", `"/var/lib/kustode.db" has no scheme`},
	}
	for _, tt := range tests {
		c := Default()
		c.DataDir = t.TempDir()
		c.Store = tt.store
		err := c.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("store %q: %v", tt.store, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("store %q: got %v, want %q", tt.store, err, tt.want)
		case err != nil && strings.Contains(err.Error(), "hunter2"):
			t.Errorf("store %q: error leaks the password: %v", tt.store, err)
		}
	}
}
