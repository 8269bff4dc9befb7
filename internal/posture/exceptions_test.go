package posture

import (
	"strings"
	"testing"
	"time"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/kube"
)

func knownIDs(id string) bool {
	return id == "pss-host-namespaces" || id == "pss-host-path-volumes" || id == "pss-privileged"
}

func TestLoadExceptions(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	x, err := LoadExceptions("testdata/exceptions.yaml", now, knownIDs)
	if err != nil {
		t.Fatal(err)
	}
	if len(x.Active) != 1 || len(x.Expired) != 1 {
		t.Fatalf("active %d, expired %d; want 1 and 1", len(x.Active), len(x.Expired))
	}
	if x.Expired[0].Owner != "billing@example.com" || x.Expired[0].Source.Line != 9 {
		t.Errorf("expired = %+v", x.Expired[0])
	}
	exporter := &kube.Object{Ref: finding.ObjectRef{Kind: "DaemonSet", Namespace: "monitoring", Name: "node-exporter-v2"}}
	other := &kube.Object{Ref: finding.ObjectRef{Kind: "DaemonSet", Namespace: "default", Name: "node-exporter"}}
	legacy := &kube.Object{Ref: finding.ObjectRef{Kind: "Pod", Name: "x"}, Labels: map[string]string{"app.kubernetes.io/part-of": "legacy-billing"}}
	tests := []struct {
		check string
		obj   *kube.Object
		want  bool
	}{
		{"pss-host-namespaces", exporter, true},
		{"pss-host-path-volumes", exporter, true},
		{"pss-privileged", exporter, false},   // not listed
		{"pss-host-namespaces", other, false}, // other namespace
		{"pss-privileged", legacy, false},     // expired: no longer applies
	}
	for _, tt := range tests {
		if got := x.Exempts(tt.check, tt.obj); got != tt.want {
			t.Errorf("Exempts(%s, %s) = %v, want %v", tt.check, tt.obj.Ref, got, tt.want)
		}
	}
	// The last day still counts.
	last := time.Date(2099, 12, 31, 23, 0, 0, 0, time.UTC)
	if x, err := LoadExceptions("testdata/exceptions.yaml", last, knownIDs); err != nil || len(x.Active) != 1 {
		t.Errorf("on its expiry day: %v, %+v", err, x)
	}
}

func TestLoadExceptionsReportsEveryProblemWithLine(t *testing.T) {
	_, err := LoadExceptions("testdata/exceptions-bad.yaml", time.Now(), knownIDs)
	if err == nil {
		t.Fatal("bad exceptions file accepted")
	}
	for _, want := range []string{
		`exceptions-bad.yaml:4: exception 1: unknown check "no-such-check"`,
		`exceptions-bad.yaml:9: exception 2: objects selects everything`,
		`exceptions-bad.yaml:9: exception 2: reason is required`,
		`exceptions-bad.yaml:9: exception 2: expires "someday" is not a date`,
		`exceptions-bad.yaml:14: exception 3: `,
		`field approved not found`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestEngineAppliesExceptions(t *testing.T) {
	x, err := LoadExceptions("testdata/exceptions.yaml", time.Now(), knownIDs)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine([]*Check{testCheck("pss-host-namespaces", finding.High, true), testCheck("pss-privileged", finding.Critical, true)})
	if err != nil {
		t.Fatal(err)
	}
	o := obj("DaemonSet", "node-exporter", "a.yaml", 1, `{"spec":{"template":{"spec":{"containers":[{"name":"c"}]}}}}`, nil)
	o.Ref.Namespace = "monitoring"
	got, err := e.WithExceptions(x).RunObject(&o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].CheckID != "pss-privileged" {
		t.Errorf("findings with exception = %+v, want only pss-privileged", got)
	}
	all, _ := e.RunObject(&o, nil)
	if len(all) != 2 {
		t.Errorf("the original engine changed: %d findings", len(all))
	}
}
