package finding

import (
	"encoding/json"
	"testing"
)

func TestSeverityRoundTrip(t *testing.T) {
	for _, s := range Severities() {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var got Severity
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("unmarshal %s: %v", b, err)
		}
		if got != s {
			t.Errorf("round trip of %v gave %v", s, got)
		}
	}
	if _, err := ParseSeverity("urgent"); err == nil {
		t.Error(`ParseSeverity("urgent") succeeded`)
	}
	if s, err := ParseSeverity("HIGH"); err != nil || s != High {
		t.Errorf(`ParseSeverity("HIGH") = %v, %v`, s, err)
	}
	if Critical <= High || High <= Medium || Medium <= Low || Low <= Info {
		t.Error("severities do not order least to most severe")
	}
}

func TestRefs(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{ObjectRef{Kind: "Pod", Namespace: "ns", Name: "p"}.String(), "Pod/ns/p"},
		{ObjectRef{Kind: "Node", Name: "n"}.String(), "Node/n"},
		{Source{File: "a.yaml", Line: 3}.String(), "a.yaml:3"},
		{Source{File: "a.yaml"}.String(), "a.yaml"},
		{Source{}.String(), ""},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
