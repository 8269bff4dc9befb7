package detect

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/kustode/kustode/internal/audit"
	"github.com/kustode/kustode/internal/testcorpus"
)

// corpusTally counts how a detector's verdicts agree with labels.
type corpusTally struct{ tp, fn, fp, tn int }

func (x *corpusTally) add(y corpusTally) {
	x.tp, x.fn, x.fp, x.tn = x.tp+y.tp, x.fn+y.fn, x.fp+y.fp, x.tn+y.tn
}

func (x corpusTally) recall() float64    { return float64(x.tp) / float64(max(x.tp+x.fn, 1)) }
func (x corpusTally) precision() float64 { return float64(x.tp) / float64(max(x.tp+x.fp, 1)) }

// replayed is one event of a replay: who made the request, and the IDs of
// the rules that fired on it.
type replayed struct {
	user  string
	rules []string
}

// firedAny reports whether one of ids fired on the event.
func (r replayed) firedAny(ids []string) bool {
	return slices.ContainsFunc(r.rules, func(id string) bool { return slices.Contains(ids, id) })
}

// replayDefault replays data (audit events in any format audit.Read takes)
// through a fresh engine running the default rules.
func replayDefault(t *testing.T, data []byte, source string) []replayed {
	t.Helper()
	engine, err := NewEngine(Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out []replayed
	_, err = audit.Read(t.Context(), bytes.NewReader(data), audit.SinkFunc(func(_ context.Context, evs []audit.Event) error {
		for i := range evs {
			r := replayed{user: evs[i].User.Username}
			for _, a := range engine.Evaluate(&evs[i]) {
				r.rules = append(r.rules, a.Rule)
			}
			out = append(out, r)
		}
		return nil
	}), audit.ReadOptions{Source: source})
	if err != nil {
		t.Fatalf("%s: %v", source, err)
	}
	return out
}

// pantherToKustode maps the Panther rules of the shared corpus to the
// kustode rules that detect the same thing. Panther rules with no
// counterpart (IOC lists, ingress TLS, multi-event correlations that a
// single labelled record cannot trigger) are left out of the measure.
var pantherToKustode = map[string][]string{
	"rules/aws_eks_rules/anonymous_api_access.yml":                             {"anonymous-request-allowed"},
	"rules/kubernetes_rules/k8s_anonymous_api_access.yml":                      {"anonymous-request-allowed"},
	"rules/kubernetes_rules/k8s_secrets_dump_all_namespaces.yml":               {"secrets-listed-cluster-wide"},
	"rules/kubernetes_rules/k8s_role_wildcard.yml":                             {"wildcard-role-written"},
	"rules/kubernetes_rules/k8s_role_node_proxy_permissions.yml":               {"role-grants-nodes-proxy"},
	"rules/kubernetes_rules/k8s_role_pod_exec.yml":                             {"role-grants-pod-exec"},
	"rules/kubernetes_rules/k8s_pod_created_in_system_namespace.yml":           {"workload-in-system-namespace"},
	"rules/kubernetes_rules/k8s_clusterrolebinding_privileged.yml":             {"cluster-admin-bound", "privileged-role-bound-cluster-wide"},
	"rules/kubernetes_rules/k8s_client_certificate_created.yml":                {"csr-created"},
	"rules/kubernetes_rules/k8s_privileged_pod_created.yml":                    {"privileged-pod-created"},
	"rules/gcp_k8s_rules/gcp_k8s_privileged_pod_created.yml":                   {"privileged-pod-created"},
	"rules/kubernetes_rules/k8s_kubectl_cp_operation.yml":                      {"pod-files-copied-out"},
	"rules/kubernetes_rules/k8s_exec_into_pod.yml":                             {"pod-exec", "pod-exec-by-service-account"},
	"rules/gcp_k8s_rules/gcp_k8s_exec_into_pod.yml":                            {"pod-exec", "pod-exec-by-service-account"},
	"rules/kubernetes_rules/k8s_daemonset_created.yml":                         {"daemonset-created"},
	"rules/gcp_k8s_rules/gcp_k8s_new_daemonset_deployed.yml":                   {"daemonset-created"},
	"rules/kubernetes_rules/k8s_cronjob_created_or_modified.yml":               {"cronjob-created"},
	"rules/gcp_k8s_rules/gcp_k8s_cron_job_created_or_modified.yml":             {"cronjob-created"},
	"rules/kubernetes_rules/k8s_service_nodeport.yml":                          {"service-exposed"},
	"rules/gcp_k8s_rules/gcp_k8s_service_type_node_port_deployed.yml":          {"service-exposed"},
	"rules/kubernetes_rules/k8s_pod_hostpath_volume.yml":                       {"sensitive-hostpath-pod-created"},
	"rules/gcp_k8s_rules/gcp_k8s_pod_create_or_modify_host_path_vol_mount.yml": {"sensitive-hostpath-pod-created"},
	"rules/kubernetes_rules/k8s_pod_host_network.yml":                          {"host-namespace-pod-created"},
	"rules/kubernetes_rules/k8s_pod_host_ipc.yml":                              {"host-namespace-pod-created"},
	"rules/kubernetes_rules/k8s_pod_host_pid.yml":                              {"host-namespace-pod-created"},
	"rules/gcp_k8s_rules/gcp_k8s_pod_using_host_pid_namespace.yml":             {"host-namespace-pod-created"},
	"rules/gcp_k8s_rules/gcp_k8s_pod_attached_to_node_host_network.yml":        {"host-namespace-pod-created"},
	"rules/kubernetes_rules/k8s_pod_dangerous_capabilities.yml":                {"dangerous-capability-pod-created"},
	"rules/kubernetes_rules/k8s_admission_controller_created.yml":              {"admission-webhook-changed"},
	"rules/kubernetes_rules/k8s_serviceaccount_token_created.yml":              {"privileged-token-requested", "token-created-by-person"},
	"rules/kubernetes_rules/k8s_steal_serviceaccount_token.yml":                {"pod-exec-token-read", "privileged-token-requested", "service-account-unusual-client", "service-account-token-outside-cluster"},
	"rules/kubernetes_rules/k8s_system_principal_public_ip.yml":                {"service-account-token-outside-cluster"},
}

// TestPantherRecallPrecision replays Panther's labelled rule-test records
// one by one and measures, over the Panther rules kustode has a
// counterpart for, how many expected detections kustode makes (recall) and
// how many of its detections were expected (precision). The numbers are
// reported in the README; the floors below only guard against regressions.
func TestPantherRecallPrecision(t *testing.T) {
	dir := filepath.Join(testcorpus.Dir(t, "audit"), "panther-labs__panther-analysis")
	events, err := os.ReadFile(filepath.Join(dir, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	labels, err := os.ReadFile(filepath.Join(dir, "labels.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimRight(events, "\n"), []byte("\n"))
	per := map[string]*corpusTally{}
	var total corpusTally
	sc := bufio.NewScanner(bytes.NewReader(labels))
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) < 6 {
			continue
		}
		var line int
		if _, err := fmt.Sscan(f[0], &line); err != nil || line < 1 || line > len(lines) {
			t.Fatalf("labels.tsv: bad line %q", f[0])
		}
		ours, mapped := pantherToKustode[f[1]]
		if !mapped {
			continue
		}
		expected := f[4] == "True"
		fired := false
		for _, ev := range replayDefault(t, lines[line-1], fmt.Sprintf("events.jsonl:%d", line)) {
			fired = fired || ev.firedAny(ours)
		}
		tl := per[f[1]]
		if tl == nil {
			tl = &corpusTally{}
			per[f[1]] = tl
		}
		for _, x := range []*corpusTally{tl, &total} {
			switch {
			case expected && fired:
				x.tp++
			case expected:
				x.fn++
			case fired:
				x.fp++
			default:
				x.tn++
			}
		}
	}
	names := make([]string, 0, len(per))
	for n := range per {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		x := per[n]
		t.Logf("%-72s tp %2d fn %2d fp %2d tn %2d", n, x.tp, x.fn, x.fp, x.tn)
	}
	recall, precision := total.recall(), total.precision()
	t.Logf("over %d labelled records of %d mapped rules: recall %.2f (%d/%d), precision %.2f (%d/%d)",
		total.tp+total.fn+total.fp+total.tn, len(per), recall, total.tp, total.tp+total.fn, precision, total.tp, total.tp+total.fp)
	if recall < minPantherRecall || precision < minPantherPrecision {
		t.Errorf("recall %.2f / precision %.2f fell below %.2f / %.2f", recall, precision, minPantherRecall, minPantherPrecision)
	}
}

// Floors set a little under the values measured when the test was written.
const (
	minPantherRecall    = 0.60
	minPantherPrecision = 0.70
)
