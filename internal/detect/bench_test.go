package detect

import (
	"fmt"
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
