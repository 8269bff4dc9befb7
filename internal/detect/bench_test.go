package detect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kustode/kustode/internal/audit"
	"github.com/kustode/kustode/internal/audit/audittest"
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
	debug.FreeOSMemory() // the engine's garbage is no cost of the events
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
// condition, over the same event mix as BenchmarkEvaluate. In "N" each
// condition names the user it is about, as rules written for one identity
// do; in "unindexed-N" it tests a prefix of the user name instead, which
// the index cannot select on, so every rule sharing an event's verb and
// resource runs.
func BenchmarkEvaluateRules(b *testing.B) {
	resources := []string{"pods", "configmaps", "secrets", "services", "deployments", "endpointslices", "leases", "events",
		"nodes", "namespaces", "roles", "rolebindings", "clusterroles", "clusterrolebindings", "serviceaccounts",
		"daemonsets", "statefulsets", "replicasets", "jobs", "cronjobs", "ingresses", "networkpolicies",
		"persistentvolumes", "persistentvolumeclaims", "storageclasses", "customresourcedefinitions",
		"validatingwebhookconfigurations", "mutatingwebhookconfigurations", "apiservices", "priorityclasses",
		"poddisruptionbudgets", "horizontalpodautoscalers", "limitranges", "resourcequotas", "csidrivers",
		"csinodes", "runtimeclasses", "certificatesigningrequests", "tokenreviews", "subjectaccessreviews"}
	verbs := []string{"create", "update", "delete", "get"}
	for _, tc := range []struct {
		name      string
		n         int
		condition string
	}{
		{"100", 100, `responseStatus.code < 400 && user.username == "user-%d"`},
		{"1000", 1000, `responseStatus.code < 400 && user.username == "user-%d"`},
		{"unindexed-100", 100, `responseStatus.code < 400 && user.username.startsWith("user-%d:")`},
		{"unindexed-1000", 1000, `responseStatus.code < 400 && user.username.startsWith("user-%d:")`},
	} {
		n := tc.n
		b.Run(tc.name, func(b *testing.B) {
			dir := b.TempDir()
			var sb strings.Builder
			sb.WriteString("apiVersion: kustode.io/v1alpha1\nkind: RuleSet\nrules:\n")
			for i := range n {
				fmt.Fprintf(&sb, "- id: generated-%d\n  title: t\n  severity: low\n  mitre: [T1078]\n", i)
				fmt.Fprintf(&sb, "  match: {verbs: [%s], resources: [%s]}\n", verbs[i%len(verbs)], resources[(i/len(verbs))%len(resources)])
				fmt.Fprintf(&sb, "  condition: '"+tc.condition+"'\n  output: o\n", i)
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
			debug.FreeOSMemory()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				engine.Evaluate(&events[i%len(events)])
				i++
			}
		})
	}
}

// benchEventsJSON is the mix of benchEvents as the API server writes it:
// the same requests with the fields a real event carries besides (level,
// request URI, full user agents, the authorizer's annotations, credential
// extras, timestamps, and the request object of the writes recorded at
// level Request), one JSON event per element.
//
// With full set, the writes recorded at level Request carry what they
// carry in a real cluster: the kubelet's status update the whole Pod with
// two containers' statuses and its conditions, the user's create a pod spec
// with two containers, probes, resources and environment; the mean event
// is then ~1.4 KB (~1.0 KB without).
func benchEventsJSON(b *testing.B, n int, full bool) ([][]byte, int64) {
	b.Helper()
	events := benchEvents(n)
	out := make([][]byte, n)
	var total int64
	for i := range events {
		e := &events[i]
		e.Kind, e.APIVersion, e.Level = "Event", "audit.k8s.io/v1", "Metadata"
		e.AuditID = fmt.Sprintf("%08x-4e1d-4c5a-9b7e-%012x", i*2654435761%(1<<32), i)
		e.RequestReceivedTimestamp = testEpoch.Add(time.Duration(i) * time.Millisecond)
		e.StageTimestamp = e.RequestReceivedTimestamp.Add(1874 * time.Microsecond)
		e.ObjectRef.APIVersion = "v1"
		e.Annotations = map[string]string{"authorization.k8s.io/decision": "allow",
			"authorization.k8s.io/reason": `RBAC: allowed by RoleBinding "web/shop" of Role "web" to ServiceAccount "web/shop"`}
		switch i % 10 {
		case 0, 1, 2:
			e.RequestURI = "/api/v1/namespaces/shop/configmaps/web-config"
			e.ObjectRef.Name = "web-config"
			e.User.UID = "5f0c3a1e-6b2d-4c8e-9a7f-000000000001"
			e.User.Extra = map[string][]string{
				"authentication.kubernetes.io/credential-id": {"JTI=0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"},
				"authentication.kubernetes.io/pod-name":      {fmt.Sprintf("web-7d9c6b5f4-%05d", i%1000)},
			}
		case 3, 4:
			e.Level = "Request"
			e.ObjectRef.Name = fmt.Sprintf("web-7d9c6b5f4-%05d", i%1000)
			e.RequestURI = "/api/v1/namespaces/shop/pods/" + e.ObjectRef.Name + "/status"
			e.User.Extra = map[string][]string{"authentication.kubernetes.io/credential-id": {"X509SHA256=4f6b1e0d2c9a8b7e6f5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918070"}}
			e.UserAgent = "kubelet/v1.37.2 (linux/amd64) kubernetes/a78aa47"
			e.Annotations["authorization.k8s.io/reason"] = ""
			e.RequestObject = fmt.Appendf(nil, `{"kind":"Pod","apiVersion":"v1","metadata":{"name":%q,"namespace":"shop"},"status":{"conditions":[{"lastTransitionTime":"2026-01-01T00:00:00Z","status":"True","type":"Ready"}],"containerStatuses":[{"containerID":"containerd://9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0","image":"registry.example.com/shop/web:2.14.3","name":"web","ready":true,"restartCount":0,"started":true,"state":{"running":{"startedAt":"2026-01-01T00:00:00Z"}}}]}}`, e.ObjectRef.Name)
		case 5, 6:
			e.RequestURI = "/apis/discovery.k8s.io/v1/endpointslices?allowWatchBookmarks=true&resourceVersion=4242&timeout=7m2s&timeoutSeconds=422&watch=true"
			e.ObjectRef.APIGroup = "discovery.k8s.io"
			e.UserAgent = "kube-proxy/v1.37.2 (linux/amd64) kubernetes/a78aa47"
			e.Annotations["authorization.k8s.io/reason"] = `RBAC: allowed by ClusterRoleBinding "system:node-proxier" of ClusterRole "system:node-proxier" to User "system:kube-proxy"`
		case 7:
			e.Level = "Request"
			e.RequestURI = "/api/v1/namespaces/shop/pods?fieldManager=kubectl-client-side-apply&fieldValidation=Strict"
			e.UserAgent = "kubectl/v1.37.2 (darwin/arm64) kubernetes/948afe5"
			e.ResponseStatus.Code = 201
		case 8:
			e.RequestURI = "/api/v1/namespaces/shop/secrets"
			e.UserAgent = "kubectl/v1.37.2 (darwin/arm64) kubernetes/948afe5"
			e.ResponseStatus.Status, e.ResponseStatus.Reason = "Failure", "Forbidden"
			e.ResponseStatus.Message = `secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" in the namespace "shop"`
			e.Annotations = map[string]string{"authorization.k8s.io/decision": "forbid", "authorization.k8s.io/reason": ""}
		case 9:
			e.RequestURI = "/api/v1/namespaces/shop/pods/web-1/exec?command=sh&container=web&stdin=true&stdout=true&tty=true"
			e.UserAgent = "kubectl/v1.37.2 (darwin/arm64) kubernetes/948afe5"
		}
		if full {
			switch i % 10 {
			case 3, 4:
				e.RequestObject = fmt.Appendf(nil, fullStatusUpdate, e.ObjectRef.Name)
			case 7:
				e.RequestObject = []byte(fullPodCreate)
			}
		}
		raw, err := json.Marshal(e)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = raw
		total += int64(len(raw))
	}
	return out, total
}

// fullStatusUpdate is a kubelet's pod status update as recorded at level
// Request (%q is the pod's name).
const fullStatusUpdate = `{"kind":"Pod","apiVersion":"v1","metadata":{"name":%q,"generateName":"web-7d9c6b5f4-","namespace":"shop","uid":"0d9e4f7a-3c2b-4a1e-9f8d-7c6b5a493827","resourceVersion":"48213","labels":{"app":"web","pod-template-hash":"7d9c6b5f4"}},` +
	`"status":{"phase":"Running","conditions":[{"type":"PodReadyToStartContainers","status":"True","lastTransitionTime":"2026-01-01T00:00:00Z"},{"type":"Initialized","status":"True","lastTransitionTime":"2026-01-01T00:00:00Z"},` +
	`{"type":"Ready","status":"True","lastTransitionTime":"2026-01-01T00:00:04Z"},{"type":"ContainersReady","status":"True","lastTransitionTime":"2026-01-01T00:00:04Z"},{"type":"PodScheduled","status":"True","lastTransitionTime":"2026-01-01T00:00:00Z"}],` +
	`"hostIP":"10.0.3.17","hostIPs":[{"ip":"10.0.3.17"}],"podIP":"10.244.3.41","podIPs":[{"ip":"10.244.3.41"}],"startTime":"2026-01-01T00:00:00Z",` +
	`"containerStatuses":[{"name":"proxy","state":{"running":{"startedAt":"2026-01-01T00:00:02Z"}},"lastState":{},"ready":true,"restartCount":0,"image":"registry.example.com/mesh/proxy:1.22.4","imageID":"registry.example.com/mesh/proxy@sha256:5e1f9a0c3b7d2e8f4a6c1b9d0e3f7a2c5b8d1e4f7a0c3b6d9e2f5a8c1b4d7e0f","containerID":"containerd://1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b","started":true},` +
	`{"name":"web","state":{"running":{"startedAt":"2026-01-01T00:00:03Z"}},"lastState":{},"ready":true,"restartCount":0,"image":"registry.example.com/shop/web:2.14.3","imageID":"registry.example.com/shop/web@sha256:9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0","containerID":"containerd://9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0","started":true}],` +
	`"qosClass":"Burstable"}}`

// fullPodCreate is a user's pod create as recorded at level Request.
const fullPodCreate = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"shop","labels":{"app":"web","tier":"frontend"},"annotations":{"kubectl.kubernetes.io/default-container":"web"}},` +
	`"spec":{"serviceAccountName":"web","securityContext":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}},"containers":[` +
	`{"name":"web","image":"registry.example.com/shop/web:2.14.3","ports":[{"containerPort":8080,"name":"http"}],"env":[{"name":"LOG_LEVEL","value":"info"},{"name":"DB_HOST","value":"db.shop.svc"},{"name":"DB_PASSWORD","valueFrom":{"secretKeyRef":{"name":"db","key":"password"}}}],` +
	`"resources":{"requests":{"cpu":"100m","memory":"128Mi"},"limits":{"cpu":"500m","memory":"256Mi"}},"readinessProbe":{"httpGet":{"path":"/ready","port":"http"},"periodSeconds":5},"livenessProbe":{"httpGet":{"path":"/live","port":"http"},"periodSeconds":10},` +
	`"securityContext":{"allowPrivilegeEscalation":false,"readOnlyRootFilesystem":true,"capabilities":{"drop":["ALL"]}},"volumeMounts":[{"name":"tmp","mountPath":"/tmp"}]},` +
	`{"name":"proxy","image":"registry.example.com/mesh/proxy:1.22.4","args":["proxy","sidecar","--log-level=warning"],"resources":{"requests":{"cpu":"50m","memory":"64Mi"},"limits":{"memory":"128Mi"}},` +
	`"securityContext":{"allowPrivilegeEscalation":false,"readOnlyRootFilesystem":true,"capabilities":{"drop":["ALL"]}}}],"volumes":[{"name":"tmp","emptyDir":{}}]}}`

// BenchmarkDecodeEvaluate is the whole path from the wire to alerts on one
// core: audit.DecodeEvent, then the default pack, over three sets of
// events: "mix" is benchEventsJSON as it is (~1.0 KB a mean event), "full"
// the same with the writes' whole request objects (~1.4 KB), "sample" the
// audit package's sample events (~1.7 KB: kubelets patching pod status,
// a controller's reads, a user creating Deployments). events/s is what
// one core sustains (issue #4: at least 100,000); cpu-ns/op is the
// process's CPU time per event, which a shared machine stretches less than
// the wall time.
func BenchmarkDecodeEvaluate(b *testing.B) {
	for _, set := range []string{"mix", "full", "sample"} {
		b.Run(set, func(b *testing.B) {
			var events [][]byte
			var total int64
			if set == "sample" {
				events = make([][]byte, 10000)
				for i := range events {
					events[i] = audittest.SampleEvent(i)
					total += int64(len(events[i]))
				}
			} else {
				events, total = benchEventsJSON(b, 10000, set == "full")
			}
			benchDecodeEvaluate(b, events, total)
		})
	}
}

func benchDecodeEvaluate(b *testing.B, events [][]byte, total int64) {
	engine, err := NewEngine(Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(total / int64(len(events)))
	b.ReportAllocs()
	debug.FreeOSMemory() // the engine's garbage is no cost of the events
	b.ResetTimer()
	// Each pass over the events gives them new audit IDs (the first eight
	// hex digits), so that no request looks like a repeat of one alerted on.
	idAt := make([]int, len(events))
	for i, raw := range events {
		idAt[i] = bytes.Index(raw, []byte(`"auditID":"`)) + len(`"auditID":"`)
	}
	var ev audit.Event
	n := 0
	cpu := startCPU()
	for b.Loop() {
		i := n % len(events)
		if i == 0 && n > 0 {
			b.StopTimer()
			cpu.pause()
			for j, raw := range events {
				copy(raw[idAt[j]:], fmt.Sprintf("%08x", n+j))
			}
			cpu.resume()
			b.StartTimer()
		}
		if err := audit.DecodeEvent(events[i], &ev); err != nil {
			b.Fatal(err)
		}
		engine.Evaluate(&ev)
		n++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	cpu.report(b)
}

// cpuClock measures the process's CPU time (user and system, all threads:
// the garbage collector's workers included) over a benchmark's loop.
type cpuClock struct {
	spent time.Duration
	since time.Duration
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() *cpuClock { return &cpuClock{since: processCPU()} }

func (c *cpuClock) pause()  { c.spent += processCPU() - c.since }
func (c *cpuClock) resume() { c.since = processCPU() }

// report adds cpu-ns/op: CPU time per operation.
func (c *cpuClock) report(b *testing.B) {
	c.pause()
	b.ReportMetric(float64(c.spent.Nanoseconds())/float64(b.N), "cpu-ns/op")
}
