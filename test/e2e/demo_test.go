//go:build e2e

package e2e

import (
	"regexp"
	"strings"
	"testing"

	"github.com/kustode/kustode/internal/cli"
	"github.com/kustode/kustode/internal/testutil"
)

// TestDemo runs the README's first command as a user does (kustode demo,
// here with --exit and a free port): its own control plane, serve wired to
// the audit webhook, the shop, the attack, and a summary that names the
// shop's worst findings and the attack's alerts.
func TestDemo(t *testing.T) {
	var out, progress testutil.SyncBuffer
	code := cli.Run(t.Context(), []string{"demo", "--exit", "--listen", "127.0.0.1:0"}, strings.NewReader(""), &out, &progress)
	story := out.String()
	if code != cli.ExitOK {
		t.Fatalf("kustode demo: exit %d\n%s\nprogress:\n%s", code, story, progress.String())
	}
	t.Logf("the demo's story:\n%s", story)
	for _, want := range []string{
		"1/5 ", "2/5 ", "3/5 ", "4/5 ", "5/5 What kustode found:",
		"with the stolen token", // the stolen token worked
		// The shop's findings and the attack's alerts, by check and rule.
		"pss-privileged", "cluster-admin-bound", "privileged-pod-created", "sensitive-hostpath-pod-created",
		"secrets-listed-cluster-wide", "service-account-unusual-client", "token-created-by-person",
		"KUSTODE_TOKEN",
	} {
		if !strings.Contains(story, want) {
			t.Errorf("the demo's story lacks %q:\n%s", want, story)
		}
	}
	if !regexp.MustCompile(`listed [1-9]\d* Secrets? cluster-wide`).MatchString(story) {
		t.Errorf("the stolen token listed no Secret (the shop's payment-provider key at least):\n%s", story)
	}
	m := regexp.MustCompile(`Posture: (\d+) open findings \((\d+) critical`).FindStringSubmatch(story)
	if m == nil || m[1] == "0" || m[2] == "0" {
		t.Errorf("no critical open findings in the summary:\n%s", story)
	}
	if m := regexp.MustCompile(`Detection: (\d+) alerts from (\d+) rules`).FindStringSubmatch(story); m == nil || m[2] == "0" || m[2] == "1" {
		t.Errorf("the attack raised alerts from fewer than two rules:\n%s", story)
	}
}
