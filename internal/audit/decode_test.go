package audit

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kustode/kustode/internal/audit/audittest"
	"github.com/kustode/kustode/internal/jsonscan"
)

// refEvent mirrors Event field by field, without Event's UnmarshalJSON:
// decoding into it is what plain encoding/json does, the reference
// DecodeEvent must agree with. Timestamps use unmarshalTime, the one
// documented extension.
type refEvent struct {
	Kind                     string            `json:"kind"`
	APIVersion               string            `json:"apiVersion"`
	Level                    Level             `json:"level"`
	AuditID                  string            `json:"auditID"`
	Stage                    Stage             `json:"stage"`
	RequestURI               string            `json:"requestURI"`
	Verb                     string            `json:"verb"`
	User                     UserInfo          `json:"user"`
	ImpersonatedUser         *UserInfo         `json:"impersonatedUser"`
	SourceIPs                []string          `json:"sourceIPs"`
	UserAgent                string            `json:"userAgent"`
	ObjectRef                ObjectReference   `json:"objectRef"`
	ResponseStatus           ResponseStatus    `json:"responseStatus"`
	RequestObject            json.RawMessage   `json:"requestObject"`
	ResponseObject           json.RawMessage   `json:"responseObject"`
	RequestReceivedTimestamp refTime           `json:"requestReceivedTimestamp"`
	StageTimestamp           refTime           `json:"stageTimestamp"`
	LegacyTimestamp          refTime           `json:"timestamp"`
	Annotations              map[string]string `json:"annotations"`
}

type refTime struct{ time.Time }

func (t *refTime) UnmarshalJSON(b []byte) error { return unmarshalTime(b, &t.Time) }

func (r refEvent) event() Event {
	return Event{
		Kind: r.Kind, APIVersion: r.APIVersion, Level: r.Level, AuditID: r.AuditID, Stage: r.Stage,
		RequestURI: r.RequestURI, Verb: r.Verb, User: r.User, ImpersonatedUser: r.ImpersonatedUser,
		SourceIPs: r.SourceIPs, UserAgent: r.UserAgent, ObjectRef: r.ObjectRef, ResponseStatus: r.ResponseStatus,
		RequestObject: r.RequestObject, ResponseObject: r.ResponseObject,
		RequestReceivedTimestamp: r.RequestReceivedTimestamp.Time, StageTimestamp: r.StageTimestamp.Time,
		LegacyTimestamp: r.LegacyTimestamp.Time,
		Annotations:     r.Annotations,
	}
}

func TestRefEventMirrorsEvent(t *testing.T) {
	ev, ref := reflect.TypeFor[Event](), reflect.TypeFor[refEvent]()
	if ev.NumField() != ref.NumField() {
		t.Fatalf("Event has %d fields, refEvent %d: update refEvent", ev.NumField(), ref.NumField())
	}
	for i := range ev.NumField() {
		a, b := ev.Field(i), ref.Field(i)
		if a.Name != b.Name || strings.Split(a.Tag.Get("json"), ",")[0] != b.Tag.Get("json") {
			t.Fatalf("field %d: Event.%s %q, refEvent.%s %q", i, a.Name, a.Tag, b.Name, b.Tag)
		}
	}
}

// decodeReference decodes data with encoding/json, normalised the way
// DecodeEvent documents: a null request or response object is nil.
func decodeReference(data []byte) (Event, error) {
	var r refEvent
	err := json.Unmarshal(data, &r)
	e := r.event()
	if string(e.RequestObject) == "null" {
		e.RequestObject = nil
	}
	if string(e.ResponseObject) == "null" {
		e.ResponseObject = nil
	}
	return e, err
}

// checkAgainstReference fails t when DecodeEvent and encoding/json disagree
// on data: both must fail, or both succeed with equal events.
func checkAgainstReference(t *testing.T, data []byte) {
	t.Helper()
	want, wantErr := decodeReference(data)
	var got Event
	gotErr := DecodeEvent(data, &got)
	if wantErr != nil {
		if gotErr == nil {
			t.Fatalf("DecodeEvent(%q) accepted what encoding/json rejects (%v): %+v", data, wantErr, got)
		}
		return
	}
	if gotErr != nil {
		if string(bytes.TrimSpace(data)) == "null" {
			return // documented difference
		}
		t.Fatalf("DecodeEvent(%q) = %v; encoding/json accepts it: %+v", data, gotErr, want)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeEvent(%q):\n got %#v\nwant %#v", data, got, want)
	}
	// Times must also agree on location and monotonic-free representation.
	if !got.StageTimestamp.Equal(want.StageTimestamp) || !got.RequestReceivedTimestamp.Equal(want.RequestReceivedTimestamp) ||
		!got.LegacyTimestamp.Equal(want.LegacyTimestamp) {
		t.Fatalf("DecodeEvent(%q): timestamps differ", data)
	}
}

func TestDecodeEvent(t *testing.T) {
	ts := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name    string
		in      string
		want    Event
		wantErr string
	}{
		{
			name: "v1 metadata",
			in: `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"55a81824","stage":"ResponseComplete",
				"requestURI":"/api/v1/namespaces/default/secrets","verb":"create",
				"user":{"username":"minikube-user","uid":"u1","groups":["system:masters","system:authenticated"],"extra":{"k":["a","b"]}},
				"impersonatedUser":{"username":"bob"},
				"sourceIPs":["192.168.64.1"],"userAgent":"kubectl/v1.17.3",
				"objectRef":{"resource":"secrets","namespace":"default","name":"example-secret","uid":"x","apiGroup":"","apiVersion":"v1","resourceVersion":"7","subresource":"s"},
				"responseStatus":{"metadata":{},"code":201,"status":"Success","reason":"R","message":"m","details":{"kind":"x"}},
				"requestReceivedTimestamp":"2020-04-21T17:57:05.541358Z","stageTimestamp":"2020-04-21T17:57:05.548299Z",
				"annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""}}`,
			want: Event{
				Kind: "Event", APIVersion: "audit.k8s.io/v1", Level: LevelMetadata, AuditID: "55a81824",
				Stage: StageResponseComplete, RequestURI: "/api/v1/namespaces/default/secrets", Verb: "create",
				User: UserInfo{
					Username: "minikube-user", UID: "u1", Groups: []string{"system:masters", "system:authenticated"},
					Extra: map[string][]string{"k": {"a", "b"}},
				},
				ImpersonatedUser: &UserInfo{Username: "bob"},
				SourceIPs:        []string{"192.168.64.1"},
				UserAgent:        "kubectl/v1.17.3",
				ObjectRef: ObjectReference{
					Resource: "secrets", Namespace: "default", Name: "example-secret", UID: "x",
					APIVersion: "v1", ResourceVersion: "7", Subresource: "s",
				},
				ResponseStatus:           ResponseStatus{Code: 201, Status: "Success", Reason: "R", Message: "m"},
				RequestReceivedTimestamp: ts("2020-04-21T17:57:05.541358Z"),
				StageTimestamp:           ts("2020-04-21T17:57:05.548299Z"),
				Annotations:              map[string]string{"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
			},
		},
		{
			name: "v1beta1 with metadata and timestamp",
			in:   `{"kind":"Event","apiVersion":"audit.k8s.io/v1beta1","metadata":{"creationTimestamp":"2017-09-11T19:55:05Z"},"level":"Metadata","timestamp":"2017-09-11T19:55:05Z","auditID":"a","verb":"list"}`,
			want: Event{Kind: "Event", APIVersion: "audit.k8s.io/v1beta1", Level: LevelMetadata, AuditID: "a", Verb: "list", LegacyTimestamp: ts("2017-09-11T19:55:05Z")},
		},
		{
			name: "raw objects kept as bytes",
			in:   `{"requestObject": {"kind":"Pod", "spec": {"x": [1, 2.5e3, true, null]}} ,"responseObject":"str"}`,
			want: Event{RequestObject: json.RawMessage(`{"kind":"Pod", "spec": {"x": [1, 2.5e3, true, null]}}`), ResponseObject: json.RawMessage(`"str"`)},
		},
		{
			name: "null object is nil",
			in:   `{"requestObject":null,"responseObject":null,"impersonatedUser":null,"annotations":null}`,
			want: Event{},
		},
		{
			name: "unknown fields and api version tolerated",
			in:   `{"kind":"Event","apiVersion":"audit.k8s.io/v2","future":{"a":[{}]},"verb":"get","p_log_type":"Amazon.EKS.Audit"}`,
			want: Event{Kind: "Event", APIVersion: "audit.k8s.io/v2", Verb: "get"},
		},
		{
			name: "escapes and case-insensitive keys",
			in:   `{"VERB":"g\u00e9t","requestUri":"/a?b=1\u0026c=\ud83d\ude00","annotations":{"k\"":"\n"}}`,
			want: Event{Verb: "gét", RequestURI: "/a?b=1&c=😀", Annotations: map[string]string{`k"`: "\n"}},
		},
		{
			name: "timestamps with a space, as log pipelines rewrite them",
			in:   `{"requestReceivedTimestamp":"2022-11-29 00:09:04.38","stageTimestamp":"2022-11-29 00:09:04.5+01:00"}`,
			want: Event{RequestReceivedTimestamp: ts("2022-11-29T00:09:04.38Z"), StageTimestamp: ts("2022-11-29T00:09:04.5+01:00")},
		},
		{name: "not an object", in: `[1]`, wantErr: "expected an audit event (JSON object), found array"},
		{name: "null", in: `null`, wantErr: "found null"},
		{name: "kind not a string", in: `{"kind": 0}`, wantErr: "kind: expected string, found number"},
		{name: "groups not strings", in: `{"user":{"groups":[1]}}`, wantErr: "user.groups: expected string, found number"},
		{name: "annotation value", in: `{"annotations":{"a":{}}}`, wantErr: "annotations.a: expected string, found object"},
		{name: "code not integer", in: `{"responseStatus":{"code":"403"}}`, wantErr: "responseStatus.code: expected integer, found string"},
		{name: "code too large", in: `{"responseStatus":{"code":4294967296}}`, wantErr: "not a 32-bit integer"},
		{name: "bad time", in: `{"stageTimestamp":"yesterday"}`, wantErr: "stageTimestamp:"},
		{name: "truncated", in: `{"verb":"get","user":{"username":"a"`, wantErr: "unexpected end of JSON input"},
		{name: "trailing garbage", in: `{"verb":"get"} x`, wantErr: "after top-level value"},
		{name: "bad skipped object", in: `{"requestObject":{"a" 1}}`, wantErr: "invalid character '1' after object key"},
		{name: "control character", in: "{\"verb\":\"g\x01\"}", wantErr: "in string literal"},
		{name: "empty", in: ``, wantErr: "unexpected end of JSON input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkAgainstReference(t, []byte(tt.in))
			var got Event
			err := DecodeEvent([]byte(tt.in), &got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("DecodeEvent() error = %v, want it to contain %q", err, tt.wantErr)
				}
				var de *DecodeError
				if !errors.As(err, &de) {
					t.Fatalf("error %T is not a *DecodeError", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeEvent() = %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("DecodeEvent():\n got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestDecodeEventSamples(t *testing.T) {
	for i := range 30 {
		data := audittest.SampleEvent(i)
		checkAgainstReference(t, data)
		var e Event
		if err := DecodeEvent(data, &e); err != nil {
			t.Fatal(err)
		}
		if e.AuditID == "" || e.Verb == "" || e.User.Username == "" || e.StageTimestamp.IsZero() {
			t.Fatalf("sample %d decoded incompletely: %+v", i, e)
		}
	}
}

// TestDecodeEventSharesNoMemory checks that an Event stays intact when the
// buffer it was decoded from is reused, as the webhook and follower do.
func TestDecodeEventSharesNoMemory(t *testing.T) {
	data := audittest.SampleEvent(2)
	var e Event
	if err := DecodeEvent(data, &e); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(e)
	for i := range data {
		data[i] = 'x'
	}
	got, _ := json.Marshal(e)
	if !bytes.Equal(got, want) {
		t.Fatal("event changed when its input buffer was overwritten")
	}
}

func TestEventUnmarshalJSON(t *testing.T) {
	var list struct {
		Items []Event `json:"items"`
	}
	if err := json.Unmarshal(audittest.SampleEventList(3), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 3 || list.Items[1].Verb != "get" {
		t.Fatalf("items = %+v", list.Items)
	}
}

func TestEventTime(t *testing.T) {
	recv := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	stage := recv.Add(time.Second)
	for _, tt := range []struct {
		e    Event
		want time.Time
	}{
		{Event{RequestReceivedTimestamp: recv, StageTimestamp: stage}, stage},
		{Event{RequestReceivedTimestamp: recv}, recv},
		{Event{LegacyTimestamp: recv}, recv}, // audit.k8s.io/v1beta1
		{Event{}, time.Time{}},
	} {
		if got := tt.e.Time(); !got.Equal(tt.want) {
			t.Errorf("Time() = %v, want %v", got, tt.want)
		}
	}
}

func TestDecodeRequestObject(t *testing.T) {
	var e Event
	if err := DecodeEvent(audittest.SampleEvent(2), &e); err != nil {
		t.Fatal(err)
	}
	var obj struct {
		Kind string `json:"kind"`
		Spec struct {
			Replicas int `json:"replicas"`
		} `json:"spec"`
	}
	ok, err := e.DecodeRequestObject(&obj)
	if !ok || err != nil || obj.Kind != "Deployment" || obj.Spec.Replicas != 3 {
		t.Fatalf("DecodeRequestObject() = %v, %v, %+v", ok, err, obj)
	}
	ok, err = e.DecodeResponseObject(&obj)
	if ok || err != nil {
		t.Fatalf("DecodeResponseObject() on an event without one = %v, %v", ok, err)
	}
	e.ResponseObject = json.RawMessage(`[`)
	if _, err := e.DecodeResponseObject(&obj); err == nil || !strings.HasPrefix(err.Error(), "decode response object: ") {
		t.Fatalf("DecodeResponseObject() of bad JSON = %v", err)
	}
}

func TestDecodeEventList(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		events  int
		bad     []int
		wantErr bool
	}{
		{name: "samples", in: string(audittest.SampleEventList(5)), events: 5},
		{name: "empty", in: `{"kind":"EventList","items":[]}`},
		{name: "no items", in: `{}`},
		{name: "null items", in: `{"items":null}`},
		{name: "bad item skipped", in: `{"items":[{"verb":"get"},{"verb":7},5,{"verb":"list"}]}`, events: 2, bad: []int{1, 2}},
		{name: "items that are no events", in: `{"items":[{},{"kind":"Pod","verb":"get"},{"verb":"get"}]}`, events: 1, bad: []int{0, 1}},
		{name: "syntax error", in: `{"items":[{"verb":"get"},{"verb":]}`, wantErr: true},
		{name: "not an object", in: `[]`, wantErr: true},
		{name: "items not an array", in: `{"items":{}}`, wantErr: true},
		{name: "trailing", in: `{"items":[]}{}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var events []Event
			var bad []int
			err := decodeEventList([]byte(tt.in), func(e *Event) { events = append(events, *e) }, func(i int, _ error) { bad = append(bad, i) })
			if (err != nil) != tt.wantErr {
				t.Fatalf("decodeEventList() = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if len(events) != tt.events || !reflect.DeepEqual(bad, tt.bad) {
				t.Fatalf("got %d events, bad items %v; want %d, %v", len(events), bad, tt.events, tt.bad)
			}
		})
	}
}

func FuzzDecodeEvent(f *testing.F) {
	for i := range 3 {
		f.Add(audittest.SampleEvent(i))
	}
	for _, s := range []string{
		`{}`, `null`, `{"kind":0}`, `{"user":{"groups":["a",null]},"user":{"groups":[null,"b","c"]}}`,
		`{"annotations":{"a":"b"},"annotations":{"c":null}}`, `{"requestObject":[1,{"a":"\u00e9"}]}`,
		`{"responseStatus":{"code":-0}}`, `{"responseStatus":{"code":1e2}}`, `{"stageTimestamp":null}`,
		`{"ImpersonatedUser":{"Username":"x"},"impersonatedUser":{"uid":"y"}}`, "{\"verb\":\"\xff\"}",
		`{"\u212aind":"Event"}`, `{"verb":"\ud800\u0041"}`, `[[[[]]]]`, `{"sourceIPs":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAgainstReference(t, data)
		// Whatever decodes must survive a round trip.
		var e Event
		if DecodeEvent(data, &e) == nil {
			out, err := json.Marshal(e)
			if err != nil {
				t.Fatalf("marshal decoded event: %v", err)
			}
			var back Event
			if err := DecodeEvent(out, &back); err != nil {
				t.Fatalf("re-decode %s: %v", out, err)
			}
		}
	})
}

// jsonscan.Attention flags exactly the bytes strSafe does not.
func TestAttention(t *testing.T) {
	// The decoder stops at the bytes jsonscan.Attention flags and reads on
	// through strSafe ones: they must be complements, byte by byte
	// (jsonscan's tests check the mask on whole words).
	for c := range 256 {
		var w [8]byte
		for i := range w {
			w[i] = 'a'
		}
		w[3] = byte(c)
		m := jsonscan.Attention(binary.LittleEndian.Uint64(w[:]))
		flagged := m != 0 && bits.TrailingZeros64(m)>>3 == 3
		if flagged == strSafe[c] {
			t.Errorf("byte %#x: flagged %v, strSafe %v", c, flagged, strSafe[c])
		}
	}
}

// The API server's timestamps parse as time.Time's UnmarshalJSON parses
// them, and what the fast path refuses is left to it.
func TestParseUTCTimestamp(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	inputs := []string{
		`"2025-03-14T09:26:53.001874Z"`, `"2025-03-14T09:26:53Z"`, `"2024-02-29T23:59:59.999999999Z"`, `"2023-02-29T00:00:00Z"`,
		`"2025-13-01T00:00:00Z"`, `"2025-00-01T00:00:00Z"`, `"2025-01-00T00:00:00Z"`, `"2025-04-31T00:00:00Z"`, `"2025-01-01T24:00:00Z"`,
		`"2025-01-01T23:60:00Z"`, `"2025-01-01T23:59:60Z"`, `"2025-01-01T00:00:00.Z"`, `"2025-01-01T00:00:00.1234567890Z"`,
		`"2025-01-01T00:00:00.5Z"`, `"0000-01-01T00:00:00Z"`, `"1900-02-29T00:00:00Z"`, `"2000-02-29T00:00:00Z"`, `"2025-01-01t00:00:00Z"`,
		`"2025-01-01T00:00:00z"`, `"2025-01-01T00:00:00+01:00"`, `"2025-01-01 00:00:00Z"`, `"2025-1-01T00:00:00Z"`, `"+025-01-01T00:00:00Z"`,
		`"2025-01-01T00:00:00.-1Z"`, `"2025-01-01T00:00:0aZ"`, `null`, `"2025-01-01T00:00:00Z`, `2025`, `"\u0032025-01-01T00:00:00Z"`,
	}
	for range 20000 {
		b := []byte(fmt.Sprintf(`"%04d-%02d-%02dT%02d:%02d:%02d`, rng.IntN(10000), rng.IntN(14), rng.IntN(33), rng.IntN(26), rng.IntN(62), rng.IntN(62)))
		if n := rng.IntN(12); n > 0 {
			b = append(b, '.')
			for range n - 1 {
				b = append(b, byte('0'+rng.IntN(10)))
			}
		}
		inputs = append(inputs, string(b)+`Z"`)
	}
	for _, in := range inputs {
		got, ok := parseUTCTimestamp([]byte(in))
		if !ok {
			continue
		}
		var want time.Time
		if err := want.UnmarshalJSON([]byte(in)); err != nil {
			t.Fatalf("%s: parsed as %v, time.Time refuses it: %v", in, got, err)
		}
		if got != want {
			t.Fatalf("%s: parsed as %#v, time.Time gives %#v", in, got, want)
		}
	}
}

// Every interned value is found, in few probes, and nothing else is.
func TestInternTable(t *testing.T) {
	if 4*len(internedValues) > internSize {
		t.Fatalf("%d interned values fill more than a quarter of %d slots: double internSize", len(internedValues), internSize)
	}
	for _, s := range internedValues {
		got, ok := internString([]byte(s))
		if !ok || got != s {
			t.Fatalf("internString(%q) = %q, %v", s, got, ok)
		}
		probes := 1
		for h := internHash(s); internTable[h] != s; h = (h + 1) % internSize {
			probes++
		}
		if probes > 3 {
			t.Errorf("%q takes %d probes", s, probes)
		}
	}
	for _, s := range []string{"", "x", "Get", "pods ", "system:node:a", "kube-systen", strings.Repeat("a", 300)} {
		if got, ok := internString([]byte(s)); ok {
			t.Errorf("internString(%q) = %q, want no interned value", s, got)
		}
	}
}

// skipFast accepts exactly what skipSlow accepts, ending at the same byte,
// except that it may give up on values nested deeper than it follows.
func FuzzSkip(f *testing.F) {
	for i := range 3 {
		f.Add(audittest.SampleEvent(i))
	}
	for _, s := range []string{
		`{}`, `[]`, `{"a":[1,-0.5e+3,true,false,null,"\u00e9\n"]}`, `{"a" 1}`, `[1,]`, `{"a":1,}`, `[01]`, `"\x"`,
		`"a` + "\x01" + `"`, `{"a":{"b":{"c":[[[]]]}}}`, `1.`, `-`, `1e`, `tru`, `nul`, `[1 2]`, `{"a":1 "b":2}`,
		"{\"\xff\":\"\xfe\"}", ` [ 1 , { "a" : "b" } ] `, `{,}`, `[,1]`, `{"a":1}}`, strings.Repeat("[", 70) + strings.Repeat("]", 70),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast := decoder{data: data}
		fast.ws()
		start := fast.pos
		ok := fast.skipFast()
		slow := decoder{data: data, pos: start}
		err := slow.skipSlow()
		switch {
		case ok && err != nil:
			t.Fatalf("skipFast accepts %q, skipSlow: %v", data, err)
		case ok && fast.pos != slow.pos:
			t.Fatalf("skipFast ends %q at %d, skipSlow at %d", data, fast.pos, slow.pos)
		case !ok && fast.pos != start:
			t.Fatalf("skipFast moved to %d on %q, which it refused", fast.pos, data)
		case !ok && err == nil && bytes.Count(data, []byte("["))+bytes.Count(data, []byte("{")) <= fastDepth:
			t.Fatalf("skipFast refuses %q, which skipSlow accepts", data)
		}
	})
}
