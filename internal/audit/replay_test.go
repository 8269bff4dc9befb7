package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// readAll runs Read on data and returns the events and the result.
func readAll(t testing.TB, data []byte, opts ReadOptions) ([]Event, ReadResult, error) {
	t.Helper()
	var events []Event
	res, err := Read(context.Background(), bytes.NewReader(data), SinkFunc(func(_ context.Context, batch []Event) error {
		events = append(events, batch...)
		return nil
	}), opts)
	return events, res, err
}

func errorStrings(res ReadResult) []string {
	var s []string
	for _, e := range res.Errors {
		s = append(s, e.Error())
	}
	return s
}

// pretty indents JSON as a person or jq would.
func pretty(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.Indent(&b, data, "", "  "); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func quoteJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestRead(t *testing.T) {
	ev := func(n int) string { return strings.TrimSuffix(line(n), "\n") }
	tests := []struct {
		name    string
		in      []byte
		ids     string
		formats map[Format]int
		errors  []string // substrings of the RecordErrors, in order
		gzip    bool
	}{
		{
			name:    "JSON lines",
			in:      []byte(lines(1, 3)),
			ids:     "1,2,3",
			formats: map[Format]int{FormatEvent: 3},
		},
		{
			name:    "JSON lines with blank, CRLF and malformed lines",
			in:      []byte("\n" + ev(1) + "\r\n\n{\"kind\":\"Event\",\n" + ev(2) + "\nhello\n" + ev(3)),
			ids:     "1,2,3",
			formats: map[Format]int{FormatEvent: 3},
			errors:  []string{"-:4: invalid JSON", "-:6: invalid JSON"},
		},
		{
			name:    "first line malformed",
			in:      []byte(`{"kind":"Event","au` + "\n" + lines(1, 2)),
			ids:     "1,2",
			formats: map[Format]int{FormatEvent: 2},
			errors:  []string{"-:1: invalid JSON at byte 19: unexpected end of JSON input"},
		},
		{
			name:    "pretty-printed EventList",
			in:      pretty(t, []byte(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[`+ev(1)+`,`+ev(2)+`,{"verb":5}]}`)),
			ids:     "1,2",
			formats: map[Format]int{FormatEventList: 2},
			errors:  []string{"-: record 1: item 3: verb: expected string, found number"},
		},
		{
			name:    "pretty-printed events one after another",
			in:      append(pretty(t, []byte(ev(1))), pretty(t, []byte(ev(2)))...),
			ids:     "1,2",
			formats: map[Format]int{FormatEvent: 2},
		},
		{
			name:    "EventList on one line",
			in:      []byte(`{"kind":"EventList","items":[` + ev(1) + `,` + ev(2) + `]}` + "\n" + ev(3)),
			ids:     "1,2,3",
			formats: map[Format]int{FormatEventList: 2, FormatEvent: 1},
		},
		{
			name:    "top-level array",
			in:      pretty(t, []byte(`[`+ev(1)+`,`+ev(2)+`,{"kind":"Pod"}]`)),
			ids:     "1,2",
			formats: map[Format]int{FormatEvent: 2},
			errors:  []string{`-: record 3: not an audit event: kind is "Pod"`},
		},
		{
			name:    "document, then an array",
			in:      append(pretty(t, []byte(ev(1))), pretty(t, []byte(`[`+ev(2)+`,`+ev(3)+`]`))...),
			ids:     "1,2,3",
			formats: map[Format]int{FormatEvent: 3},
		},
		{
			name:    "truncated document",
			in:      pretty(t, []byte(`{"kind":"EventList","items":[`+ev(1)+`]}`))[:100],
			errors:  []string{"-: record 1: invalid JSON, the rest of the input is not read: unexpected EOF"},
			formats: map[Format]int{},
		},
		{
			name:    "gzip JSON lines",
			in:      gzipBytes(t, []byte(lines(1, 3))),
			ids:     "1,2,3",
			formats: map[Format]int{FormatEvent: 3},
			gzip:    true,
		},
		{
			name:    "gzip pretty EventList",
			in:      gzipBytes(t, pretty(t, []byte(`{"kind":"EventList","items":[`+ev(1)+`]}`))),
			ids:     "1",
			formats: map[Format]int{FormatEventList: 1},
			gzip:    true,
		},
		{
			name:    "concatenated gzip members",
			in:      append(gzipBytes(t, []byte(lines(1, 1))), gzipBytes(t, []byte(lines(2, 2)))...),
			ids:     "1,2",
			formats: map[Format]int{FormatEvent: 2},
			gzip:    true,
		},
		{
			name:    "byte order mark",
			in:      []byte("\xef\xbb\xbf" + lines(1, 1)),
			ids:     "1",
			formats: map[Format]int{FormatEvent: 1},
		},
		{
			name: "AKS diagnostic records",
			in: []byte(`{"time":"2024-03-20T10:00:00Z","resourceId":"/SUBSCRIPTIONS/X/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/AKS","category":"kube-audit","operationName":"Microsoft.ContainerService/managedClusters/diagnosticLogs/Read","properties":{"log":` + quoteJSON(ev(1)) + `,"stream":"stdout","pod":"kube-apiserver-6d9f5b7c8-abcde"}}
{"category":"kube-audit-admin","properties":` + quoteJSON(`{"log":`+quoteJSON(ev(2))+`}`) + `}
{"records":[{"category":"kube-audit","properties":{"log":` + quoteJSON(ev(3)) + `}},{"category":"cluster-autoscaler","properties":{"log":"scale up"}}]}
{"category":"kube-audit","properties":{"log":"not json"}}
{"category":"kube-audit","properties":{}}`),
			ids:     "1,2,3",
			formats: map[Format]int{FormatAKS: 3},
			errors: []string{
				`-:3: item 2: not a Kubernetes audit record: Azure log category "cluster-autoscaler"`,
				"-:4: aks record: message is not an audit event: not json",
				"-:5: kube-audit record from Azure: no properties.log",
			},
		},
		{
			name: "EKS CloudWatch exports",
			in: []byte(`2024-03-20T10:00:00.000Z ` + ev(1) + `
2024-03-20 10:00:00.001 ` + ev(2) + `
{"@timestamp":"2024-03-20 10:00:00.002","@message":` + quoteJSON(ev(3)) + `,"@logStream":"kube-apiserver-audit-0123456789abcdef"}
{"@message":` + ev(4) + `}
{"events":[{"logStreamName":"kube-apiserver-audit-1","timestamp":1710928800003,"message":` + quoteJSON(ev(5)) + `,"ingestionTime":1710928801000,"eventId":"1"}],"searchedLogStreams":[]}
{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/eks/prod/cluster","logStream":"kube-apiserver-audit-1","subscriptionFilters":["to-kinesis"],"logEvents":[{"id":"1","timestamp":1710928800006,"message":` + quoteJSON(ev(6)) + `},{"id":"2","timestamp":1710928800007,"message":"I0320 10:00:00.007 klog line"}]}
{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1,"message":"CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."}]}
{"timestamp":1710928800008,"message":` + quoteJSON(ev(8)) + `}`),
			ids:     "1,2,3,4,5,6,8",
			formats: map[Format]int{FormatEKS: 7},
			errors:  []string{"-:6: item 2: eks record: message is not an audit event: I0320"},
		},
		{
			name:    "not audit records",
			in:      []byte("{\"kind\":0}\n[1,2]\n\"x\"\n{\"operation\":{}}\n{\"protoPayload\":{\"serviceName\":\"compute.googleapis.com\",\"methodName\":\"compute.instances.list\"}}\n{}"),
			formats: map[Format]int{},
			errors: []string{
				"-:1: not an audit event: kind is 0",
				"-:2: item 1: not an audit record: not a JSON object",
				"-:2: item 2: not an audit record: not a JSON object",
				"-:3: not an audit record: not a JSON object",
				"-:4: not an audit record: no kind, protoPayload, category or message among its fields (operation)",
				`-:5: not a Kubernetes audit record: Google Cloud audit log of service "compute.googleapis.com"`,
				"-:6: not an audit record: no kind",
			},
		},
		{
			name:    "empty",
			in:      nil,
			formats: map[Format]int{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, res, err := readAll(t, tt.in, ReadOptions{BatchSize: 2})
			if err != nil {
				t.Fatalf("Read() = %v", err)
			}
			if got := ids(events); got != tt.ids {
				t.Errorf("events %q, want %q", got, tt.ids)
			}
			if !reflect.DeepEqual(res.Formats, tt.formats) {
				t.Errorf("Formats = %v, want %v", res.Formats, tt.formats)
			}
			if res.Events != len(events) {
				t.Errorf("Events = %d, sink got %d", res.Events, len(events))
			}
			if res.Compressed != tt.gzip {
				t.Errorf("Compressed = %v", res.Compressed)
			}
			got := errorStrings(res)
			if len(got) != len(tt.errors) || res.Malformed != len(tt.errors) {
				t.Fatalf("errors (%d malformed):\n%s\nwant:\n%s", res.Malformed, strings.Join(got, "\n"), strings.Join(tt.errors, "\n"))
			}
			for i := range got {
				if !strings.Contains(got[i], tt.errors[i]) {
					t.Errorf("error %d = %q, want it to contain %q", i, got[i], tt.errors[i])
				}
			}
		})
	}
}

func TestReadGKE(t *testing.T) {
	data, err := os.ReadFile("testdata/replay/gke-export.json")
	if err != nil {
		t.Fatal(err)
	}
	events, res, err := readAll(t, data, ReadOptions{Source: "gke-export.json"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Formats[FormatGKE] != 3 || len(res.Errors) != 1 ||
		res.Errors[0].Error() != `gke-export.json: record 4: not a Kubernetes audit record: Google Cloud audit log of service "storage.googleapis.com", method "storage.buckets.list"` {
		t.Fatalf("result %+v, errors %q", res, errorStrings(res))
	}
	ts := func(s string) time.Time { v, _ := time.Parse(time.RFC3339Nano, s); return v }
	for i := range events {
		events[i].RequestObject, events[i].ResponseObject = nil, nil
	}
	want := []Event{
		{
			Kind: "Event", APIVersion: "audit.k8s.io/v1", Level: LevelMetadata,
			AuditID: "7f8c5bec-01ff-4079-97e3-065ac34e10e8", Stage: StageResponseStarted,
			RequestURI: "/api/v1/namespaces/shop/pods/web-6f7d9c-x2x7k/exec", Verb: "create",
			User: UserInfo{Username: "alice@example.com"}, SourceIPs: []string{"203.0.113.7"},
			UserAgent:                "kubectl/v1.29.1 (linux/amd64) kubernetes/bc401b9",
			ObjectRef:                ObjectReference{Resource: "pods", Namespace: "shop", Name: "web-6f7d9c-x2x7k", APIVersion: "v1", Subresource: "exec"},
			ResponseStatus:           ResponseStatus{Code: 201},
			RequestReceivedTimestamp: ts("2024-05-02T10:11:12.123456Z"), StageTimestamp: ts("2024-05-02T10:11:12.123456Z"),
			Annotations: map[string]string{"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "access granted by IAM permissions."},
		},
		{
			Kind: "Event", APIVersion: "audit.k8s.io/v1", Level: LevelRequestResponse,
			AuditID: "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", Stage: StageResponseComplete,
			RequestURI: "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", Verb: "create",
			User: UserInfo{Username: "system:serviceaccount:ci:deployer"}, SourceIPs: []string{"10.4.0.12"},
			UserAgent: "kubectl/v1.29.1 (linux/amd64) kubernetes/bc401b9",
			ObjectRef: ObjectReference{Resource: "clusterrolebindings", Name: "ci-admin", APIGroup: "rbac.authorization.k8s.io", APIVersion: "v1"},
			ResponseStatus: ResponseStatus{Code: 409, Status: "Failure", Reason: "AlreadyExists",
				Message: `clusterrolebindings.rbac.authorization.k8s.io "ci-admin" already exists`},
			RequestReceivedTimestamp: ts("2024-05-02T10:12:00Z"), StageTimestamp: ts("2024-05-02T10:12:00Z"),
		},
		{
			Kind: "Event", APIVersion: "audit.k8s.io/v1", Level: LevelMetadata,
			AuditID: "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e", Stage: StageResponseComplete,
			RequestURI: "/api/v1/secrets", Verb: "list",
			User: UserInfo{Username: "bob@example.com"}, SourceIPs: []string{"198.51.100.23"}, UserAgent: "python-requests/2.31.0",
			ObjectRef:                ObjectReference{Resource: "secrets", APIVersion: "v1"},
			ResponseStatus:           ResponseStatus{Code: 403, Status: "Failure", Message: "PERMISSION_DENIED"},
			RequestReceivedTimestamp: ts("2024-05-02T10:13:00.5Z"), StageTimestamp: ts("2024-05-02T10:13:00.5Z"),
		},
	}
	if !reflect.DeepEqual(events, want) {
		for i := range events {
			g, _ := json.Marshal(events[i])
			w, _ := json.Marshal(want[i])
			if !bytes.Equal(g, w) {
				t.Errorf("event %d:\n got %s\nwant %s", i, g, w)
			}
		}
	}
}

func TestParseGKEMethod(t *testing.T) {
	tests := []struct {
		method, resourceName string
		want                 ObjectReference
		verb, uri            string
	}{
		{"io.k8s.core.v1.pods.create", "core/v1/namespaces/default/pods/web", ObjectReference{Resource: "pods", Namespace: "default", Name: "web", APIVersion: "v1"}, "create", "/api/v1/namespaces/default/pods"},
		{"io.k8s.apps.v1.deployments.scale.update", "apps/v1/namespaces/shop/deployments/web/scale", ObjectReference{Resource: "deployments", Namespace: "shop", Name: "web", APIGroup: "apps", APIVersion: "v1", Subresource: "scale"}, "update", "/apis/apps/v1/namespaces/shop/deployments/web/scale"},
		{"io.k8s.core.v1.namespaces.delete", "core/v1/namespaces/foo", ObjectReference{Resource: "namespaces", Namespace: "foo", Name: "foo", APIVersion: "v1"}, "delete", "/api/v1/namespaces/foo"},
		{"io.k8s.core.v1.namespaces.create", "core/v1/namespaces/foo", ObjectReference{Resource: "namespaces", Name: "foo", APIVersion: "v1"}, "create", "/api/v1/namespaces"},
		{"io.k8s.admissionregistration.v1.mutatingwebhookconfigurations.create", "", ObjectReference{Resource: "mutatingwebhookconfigurations", APIGroup: "admissionregistration.k8s.io", APIVersion: "v1"}, "create", ""},
		{"io.k8s.readyz", "/readyz", ObjectReference{}, "get", "/readyz"},
		{"io.k8s.healthz.get", "", ObjectReference{}, "get", "/healthz"},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			entry := fmt.Sprintf(`{"protoPayload":{"serviceName":"k8s.io","methodName":%q,"resourceName":%q}}`, tt.method, tt.resourceName)
			var e Event
			if err := decodeGKE([]byte(entry), &e); err != nil {
				t.Fatal(err)
			}
			if e.ObjectRef != tt.want || e.Verb != tt.verb || e.RequestURI != tt.uri {
				t.Fatalf("got %+v %q %q, want %+v %q %q", e.ObjectRef, e.Verb, e.RequestURI, tt.want, tt.verb, tt.uri)
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	t.Run("sink refuses", func(t *testing.T) {
		res, err := Read(t.Context(), strings.NewReader(lines(1, 5)), SinkFunc(func(context.Context, []Event) error {
			return errors.New("full")
		}), ReadOptions{Source: "a.log", BatchSize: 2})
		if err == nil || !strings.HasPrefix(err.Error(), "read audit events from a.log: deliver 2 events: full") || res.Events != 0 {
			t.Fatalf("Read() = %+v, %v", res, err)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := Read(ctx, strings.NewReader(lines(1, 5)), &recordingSink{}, ReadOptions{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Read() = %v", err)
		}
	})
	t.Run("corrupt gzip", func(t *testing.T) {
		data := gzipBytes(t, []byte(lines(1, 50)))
		data[len(data)/2] ^= 0xff
		if _, _, err := readAll(t, data, ReadOptions{}); err == nil {
			t.Fatal("Read() of corrupt gzip = nil")
		}
	})
	t.Run("line too long", func(t *testing.T) {
		in := line(1) + `{"kind":"Event","auditID":"` + strings.Repeat("x", 200) + "\"}\n" + line(3)
		events, res, err := readAll(t, []byte(in), ReadOptions{MaxRecordBytes: 150})
		if err != nil || ids(events) != "1,3" || res.Malformed != 1 || !strings.Contains(res.Errors[0].Error(), "-:2: line longer than 150 bytes") {
			t.Fatalf("Read() = %q, %q, %v", ids(events), errorStrings(res), err)
		}
	})
	t.Run("errors kept are bounded", func(t *testing.T) {
		_, res, err := readAll(t, bytes.Repeat([]byte("x\n"), 30), ReadOptions{MaxErrors: 5})
		if err != nil || res.Malformed != 30 || len(res.Errors) != 5 {
			t.Fatalf("Read() = %d malformed, %d errors kept, %v", res.Malformed, len(res.Errors), err)
		}
	})
}

func FuzzReadReplay(f *testing.F) {
	for _, s := range []string{
		lines(1, 2),
		`{"kind":"EventList","items":[{"verb":"get","auditID":"a"}]}`,
		"[\n" + `{"protoPayload":{"serviceName":"k8s.io","methodName":"io.k8s.core.v1.pods.exec.create","resourceName":"core/v1/namespaces/a/pods/b/exec"},"operation":{"id":"x"}}` + "\n]",
		`{"category":"kube-audit","properties":{"log":"{\"kind\":\"Event\",\"verb\":\"get\"}"}}`,
		"2024-03-20T10:00:00.000Z " + line(3),
		`{"logEvents":[{"message":"{\"kind\":\"Event\",\"verb\":\"get\"}"}]}`,
		`{"records":[{"records":[]}]}`,
		"{\n\"kind\": \"Event\",\n\"verb\": \"get\"\n}\n{\n",
	} {
		f.Add([]byte(s))
	}
	f.Add(gzipBytes(f, []byte(lines(1, 3))))
	f.Fuzz(func(t *testing.T, data []byte) {
		events, res, err := readAll(t, data, ReadOptions{BatchSize: 3, MaxRecordBytes: 1 << 16})
		if err != nil && !res.Compressed {
			// Only a broken gzip stream stops a replay of bytes in memory.
			t.Fatalf("Read() = %v", err)
		}
		if res.Events != len(events) {
			t.Fatalf("Events = %d, sink got %d", res.Events, len(events))
		}
		total := 0
		for _, n := range res.Formats {
			total += n
		}
		if total != res.Events {
			t.Fatalf("Formats %v add up to %d, not %d", res.Formats, total, res.Events)
		}
		for _, e := range events {
			if e.Kind != "" && e.Kind != "Event" {
				t.Fatalf("event of kind %q passed", e.Kind)
			}
		}
		for _, re := range res.Errors {
			if re.Source != "-" || re.Line == 0 && re.Record == 0 {
				t.Fatalf("error without a location: %v", re)
			}
		}
	})
}
