package checks

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"k8s.io/pod-security-admission/policy"

	"github.com/kustode/kustode/internal/manifest"
	"github.com/kustode/kustode/internal/posture"
)

// Fixture annotations: the expected result is written in the fixture.
const (
	// expectFindings is the number of findings the check under test must
	// report on the object; absent means 0.
	expectFindings = "expect.kustode.io/findings"
	// expectMessage, when set, must be a substring of every finding's
	// message.
	expectMessage = "expect.kustode.io/message"
)

// TestFixtures runs each check on testdata/<check-id>/*.yaml and compares its
// findings with the expectations annotated on each object. Every check must
// have a directory with at least one object it flags (bad.yaml) and one it
// passes (good.yaml).
func TestFixtures(t *testing.T) {
	all, err := All(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range all {
		t.Run(c.ID, func(t *testing.T) {
			dir := filepath.Join("testdata", c.ID)
			for _, f := range []string{"good.yaml", "bad.yaml"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Fatalf("check %s has no fixture %s/%s", c.ID, dir, f)
				}
			}
			objs, errs := manifest.Load([]string{dir}, nil)
			if len(errs) > 0 {
				t.Fatalf("fixtures do not load: %v", errs)
			}
			engine, err := posture.NewEngine([]*posture.Check{c})
			if err != nil {
				t.Fatal(err)
			}
			// The objects of a check's fixture directory form one scan, so
			// cross-object checks see each other's objects.
			ix := posture.NewIndex(objs)
			flagged, passed := 0, 0
			for i := range objs {
				o := &objs[i]
				want := 0
				if s, ok := o.Annotations[expectFindings]; ok {
					if want, err = strconv.Atoi(s); err != nil {
						t.Fatalf("%s: bad %s annotation %q", o.Source, expectFindings, s)
					}
				}
				if want > 0 {
					flagged++
				} else {
					passed++
				}
				got, err := engine.RunObject(o, ix)
				if err != nil {
					t.Errorf("%s %s: %v", o.Source, o.Ref, err)
					continue
				}
				if len(got) != want {
					var msgs []string
					for _, f := range got {
						msgs = append(msgs, f.Message)
					}
					t.Errorf("%s %s: %d findings, want %d: %q", o.Source, o.Ref, len(got), want, msgs)
				}
				for _, f := range got {
					if m := o.Annotations[expectMessage]; m != "" && !strings.Contains(f.Message, m) {
						t.Errorf("%s %s: message %q lacks %q", o.Source, o.Ref, f.Message, m)
					}
					if f.CheckID != c.ID || f.File != o.Source.File || f.Line != o.Source.Line || f.Remediation == "" {
						t.Errorf("%s %s: finding not filled in: %+v", o.Source, o.Ref, f)
					}
				}
			}
			if flagged == 0 || passed == 0 {
				t.Errorf("fixtures need objects the check flags and objects it passes: %d flagged, %d passed", flagged, passed)
			}
		})
	}
}

// Every pod-security-admission check has a kustode mapping, so a library
// upgrade that adds a control fails here rather than silently missing it.
func TestPSSMappingIsComplete(t *testing.T) {
	for _, c := range policy.DefaultChecks() {
		if _, ok := pssControls[c.ID]; !ok {
			t.Errorf("pod-security-admission check %q has no entry in pssControls", c.ID)
		}
	}
}

func TestPSSVersions(t *testing.T) {
	old, err := All(Options{PSSVersion: "v1.0"})
	if err != nil {
		t.Fatal(err)
	}
	latest, err := All(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(old) >= len(latest) {
		t.Errorf("v1.0 has %d checks, latest %d: controls added later should be absent at v1.0", len(old), len(latest))
	}
	if _, err := All(Options{PSSVersion: "1.x"}); err == nil {
		t.Error("PSS version 1.x accepted")
	}
}

func TestCheckIDsAreUniqueAndValid(t *testing.T) {
	all, err := All(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := posture.NewEngine(all); err != nil {
		t.Fatal(err)
	}
}

func TestCredentialIn(t *testing.T) {
	tests := []struct {
		name, value, want string
	}{
		{"DB_PASSWORD", "hunter2hunter2", "a credential (by its name)"},
		{"PASSWORD_FILE", "/run/secrets/db", ""},
		{"TOKEN_TTL", "3600", ""},
		{"MAX_TOKENS", "4096", ""},
		{"API_KEY", "${API_KEY}", ""},
		{"CONFIG", "-----BEGIN RSA PRIVATE KEY-----\nMIIE", "a private key"},
		{"AWS_ID", "AKIAIOSFODNN7EXAMPLE", "an AWS access key ID"},
		{"DATABASE_URL", "postgres://app:s3cr3t@db:5432/app", "credentials in a URL"},
		{"SEED", "q8Zr2LmXv9TtB4wKpN7sYd3HfJc6GaUe", "a high-entropy string"},
		{"LOG_LEVEL", "debug", ""},
		{"IMAGE", "registry.example.com/team/app:1.2.3", ""},
	}
	for _, tt := range tests {
		if got := credentialIn(tt.name, tt.value); got != tt.want {
			t.Errorf("credentialIn(%q, …) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestSensitiveHostPath(t *testing.T) {
	tests := map[string]string{
		"/var/run/docker.sock": "/var/run/docker.sock",
		"/var":                 "/var/run/docker.sock",
		"/etc/ssl/certs":       "/etc",
		"/":                    "/",
		"/data/app":            "",
		"/var/log/pods":        "",
		"//proc/":              "/proc",
	}
	for in, want := range tests {
		if got := sensitiveHostPath(in); got != want {
			t.Errorf("sensitiveHostPath(%q) = %q, want %q", in, got, want)
		}
	}
}
