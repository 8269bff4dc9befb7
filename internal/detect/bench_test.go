package detect

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kustode/kustode/internal/audit"
)

// benchEvents is a mix shaped like a real control plane's traffic: mostly
// gets, lists, watches and status updates by components, some writes by
// people, an exec now and then.
func benchEvents(n int) []audit.Event {
	events := make([]audit.Event, n)
	for i := range events {
		e := &events[i]
		e.AuditID = fmt.Sprintf("id-%d", i)
		e.Stage = "ResponseComplete"
		e.StageTimestamp = testEpoch.Add(0)
		e.SourceIPs = []string{"10.0.0.5"}
		e.ResponseStatus.Code = 200
		switch i % 10 {
		case 0, 1, 2:
			e.Verb, e.ObjectRef.Resource, e.ObjectRef.Namespace = "get", "configmaps", "shop"
			e.User.Username, e.User.Groups = "system:serviceaccount:shop:web", []string{"system:serviceaccounts", "system:authenticated"}
			e.UserAgent = "web/1.0"
		case 3, 4:
			e.Verb, e.ObjectRef.Resource, e.ObjectRef.Subresource, e.ObjectRef.Namespace = "update", "pods", "status", "shop"
			e.User.Username, e.User.Groups = "system:node:node-1", []string{"system:nodes", "system:authenticated"}
			e.UserAgent = "kubelet/v1.37.2"
		case 5, 6:
			e.Verb, e.ObjectRef.Resource = "watch", "endpointslices"
			e.User.Username = "system:kube-proxy"
		case 7:
			e.Verb, e.ObjectRef.Resource, e.ObjectRef.Namespace, e.ObjectRef.Name = "create", "pods", "shop", "web-1"
			e.User.Username, e.User.Groups = "alice", []string{"system:authenticated"}
			e.RequestObject = []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1"},"spec":{"containers":[{"name":"c","image":"i"}]}}`)
			e.UserAgent = "kubectl/v1.37.2"
		case 8:
			e.Verb, e.ObjectRef.Resource, e.ObjectRef.Namespace = "list", "secrets", "shop"
			e.User.Username, e.User.Groups = "alice", []string{"system:authenticated"}
			e.ResponseStatus.Code = 403
		case 9:
			e.Verb, e.ObjectRef.Resource, e.ObjectRef.Subresource, e.ObjectRef.Namespace, e.ObjectRef.Name = "create", "pods", "exec", "shop", "web-1"
			e.User.Username, e.User.Groups = "bob", []string{"system:authenticated"}
			e.ResponseStatus.Code = 101
		}
	}
	return events
}

// BenchmarkEvaluate runs the whole default pack over the mix, one core.
func BenchmarkEvaluate(b *testing.B) {
	engine, err := NewEngine(Options{})
	if err != nil {
		b.Fatal(err)
	}
	events := benchEvents(10000)
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		ev := &events[n%len(events)]
		ev.AuditID = fmt.Sprint(n) // new requests, not repeats of one
		engine.Evaluate(ev)
		n++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkEvaluateRules measures how the cost per event grows with the
// number of rules: N generated rules spread over 40 resources and 4 verbs
// (so each (verb, resource) pair holds N/160 of them), each with a small
// condition, over the same event mix as BenchmarkEvaluate.
func BenchmarkEvaluateRules(b *testing.B) {
	resources := []string{"pods", "configmaps", "secrets", "services", "deployments", "endpointslices", "leases", "events",
		"nodes", "namespaces", "roles", "rolebindings", "clusterroles", "clusterrolebindings", "serviceaccounts",
		"daemonsets", "statefulsets", "replicasets", "jobs", "cronjobs", "ingresses", "networkpolicies",
		"persistentvolumes", "persistentvolumeclaims", "storageclasses", "customresourcedefinitions",
		"validatingwebhookconfigurations", "mutatingwebhookconfigurations", "apiservices", "priorityclasses",
		"poddisruptionbudgets", "horizontalpodautoscalers", "limitranges", "resourcequotas", "csidrivers",
		"csinodes", "runtimeclasses", "certificatesigningrequests", "tokenreviews", "subjectaccessreviews"}
	verbs := []string{"create", "update", "delete", "get"}
	for _, n := range []int{100, 1000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			dir := b.TempDir()
			var sb strings.Builder
			sb.WriteString("apiVersion: kustode.io/v1alpha1\nkind: RuleSet\nrules:\n")
			for i := range n {
				fmt.Fprintf(&sb, "- id: generated-%d\n  title: t\n  severity: low\n  mitre: [T1078]\n", i)
				fmt.Fprintf(&sb, "  match: {verbs: [%s], resources: [%s]}\n", verbs[i%len(verbs)], resources[(i/len(verbs))%len(resources)])
				fmt.Fprintf(&sb, "  condition: 'responseStatus.code < 400 && user.username == \"user-%d\"'\n  output: o\n", i)
			}
			if err := os.WriteFile(filepath.Join(dir, "gen.yaml"), []byte(sb.String()), 0o600); err != nil {
				b.Fatal(err)
			}
			engine, err := NewEngine(Options{NoDefaults: true, Dirs: []string{dir}})
			if err != nil {
				b.Fatal(err)
			}
			events := benchEvents(10000)
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				engine.Evaluate(&events[i%len(events)])
				i++
			}
		})
	}
}
