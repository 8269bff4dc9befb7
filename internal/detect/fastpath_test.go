package detect

import (
	"encoding/json"
	"math/rand/v2"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kustode/kustode/internal/audit"
)

// referenceMessage is how alert messages were built before templates were
// parsed at load: a regular expression replacement over the output.
func referenceMessage(output string, ev *audit.Event, count int) string {
	res := ev.ObjectRef.Resource
	if ev.ObjectRef.Subresource != "" {
		res += "/" + ev.ObjectRef.Subresource
	}
	sourceIP := ""
	if len(ev.SourceIPs) > 0 {
		sourceIP = ev.SourceIPs[0]
	}
	vars := map[string]string{
		"user": ev.User.Username, "verb": ev.Verb, "resource": res,
		"namespace": ev.ObjectRef.Namespace, "name": ev.ObjectRef.Name,
		"sourceIP": sourceIP, "userAgent": ev.UserAgent,
		"code": strconv.Itoa(int(ev.ResponseStatus.Code)), "count": strconv.Itoa(count),
		"impersonated": impersonated(ev),
	}
	objects := map[string]json.RawMessage{"requestObject": ev.RequestObject, "responseObject": ev.ResponseObject}
	decoded := map[string]any{}
	// "{namespace}/{name}" leaves out the '/' when either is empty: a
	// variable of its own here ("{@path}", which no template can name).
	vars["@path"] = strings.Trim(ev.ObjectRef.Namespace+"/"+ev.ObjectRef.Name, "/")
	if ev.ObjectRef.Namespace != "" && ev.ObjectRef.Name != "" {
		vars["@path"] = ev.ObjectRef.Namespace + "/" + ev.ObjectRef.Name
	}
	output = strings.ReplaceAll(output, "{namespace}/{name}", "{@path}")
	return regexp.MustCompile(`\{@path\}|`+placeholder.String()).ReplaceAllStringFunc(output, func(p string) string {
		name := p[1 : len(p)-1]
		if v, ok := vars[name]; ok {
			return v
		}
		root, field, _ := strings.Cut(name, ".")
		raw, ok := objects[root]
		if !ok || field == "" {
			return p
		}
		obj, ok := decoded[root]
		if !ok {
			obj = decodeRaw(raw)
			decoded[root] = obj
		}
		return fieldString(obj, field)
	})
}

// Messages come out as the regular expression replacement made them, for
// every default rule's output and for templates with odd braces.
func TestMessageMatchesReference(t *testing.T) {
	engines, err := nativeCheckEngines()
	if err != nil {
		t.Fatal(err)
	}
	outputs := []string{
		"", "plain", "{user}", "{{user}}", "{user", "user}", "{}", "{1x}", "{requestObject}", "{requestObject.}",
		"{requestObject.metadata.name} {responseObject.kind}/{requestObject.spec}", "{foo.bar} {lists.x}", "é{verb}é{count}",
		"{code}{sourceIP}{impersonated}{resource}{namespace}{name}{userAgent}{nope}", "{requestObject.a.b.c} {requestObject.kind}x",
		"{namespace}/{name}", "{{namespace}/{name}}", "{namespace}/{name}/{namespace}/{name}", "{namespace}//{name}", "a/{namespace}/", "{name}/{namespace}",
	}
	for _, c := range engines[0].rules {
		outputs = append(outputs, c.Output)
	}
	events := ruleTestEvents(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		events = append(events, randomEvent(rng))
	}
	for _, out := range outputs {
		c := &compiled{Rule: &Rule{Output: out}, output: parseOutput(out)}
		for i := range events {
			ev := &events[i]
			res := ev.ObjectRef.Resource
			if ev.ObjectRef.Subresource != "" {
				res += "/" + ev.ObjectRef.Subresource
			}
			if got, want := c.message(ev, res, 7), referenceMessage(out, ev, 7); got != want {
				t.Fatalf("output %q: got %q, want %q\nevent: %s", out, got, want, eventJSON(ev))
			}
		}
	}
}

// referenceCovers is how service-account exceptions were matched before
// their patterns were split at load.
func referenceCovers(patterns []string, username string) bool {
	rest, ok := strings.CutPrefix(username, "system:serviceaccount:")
	if !ok {
		return false
	}
	sa := strings.Replace(rest, ":", "/", 1)
	for _, pattern := range patterns {
		if ok, _ := path.Match(pattern, sa); ok {
			return true
		}
	}
	return false
}

// Service-account exceptions match exactly as path.Match over
// "namespace/name" does.
func TestServiceAccountExceptions(t *testing.T) {
	patternSets := [][]string{
		{"kube-system/*-controller", "kube-system/token-cleaner", "kustode/kustode"},
		{"a/b?c", "x/[ab]*", `ns/na\*me`, "ns/*", "*/web", "k:s/x", "a/[", "a/b/c"},
		// One star in the name and a plain suffix: matched without path.Match.
		{"a/*b", "a/x*", "a:b/*", "ab/*:x", "k/*-c", "a/*"},
	}
	users := []string{"", "alice", "system:serviceaccount:", "system:serviceaccount:kube-system", "system:serviceaccount:kube-system:",
		"system:serviceaccount:kube-system:deployment-controller", "system:serviceaccount:kube-system:token-cleaner",
		"system:serviceaccount:kube-system:token-cleanerx", "system:serviceaccount:kustode:kustode", "system:serviceaccount:kustode/kustode",
		"system:serviceaccount:a:bxc", "system:serviceaccount:a:b/c", "system:serviceaccount:a/b:c", "system:serviceaccount:x:b", "system:serviceaccount:x:c",
		"system:serviceaccount:ns:na*me", "system:serviceaccount:ns:naXme", "system:serviceaccount:ns:anything", "system:serviceaccount:shop:web",
		"system:serviceaccount:k:s:x", "system:serviceaccount:a:[", "system:serviceaccount:kube-system:-controller"}
	for _, patterns := range patternSets {
		x := &Exceptions{ServiceAccounts: patterns}
		x.validate()
		for _, u := range users {
			ev := &audit.Event{User: audit.UserInfo{Username: u}}
			if got, want := x.covers(ev), referenceCovers(patterns, u); got != want {
				t.Errorf("patterns %q, user %q: covers %v, want %v", patterns, u, got, want)
			}
		}
	}
	// Random names over the patterns' alphabet.
	rng := rand.New(rand.NewPCG(5, 6))
	alphabet := []byte("ab:/x*?[]-cnsk")
	for range 20000 {
		name := make([]byte, rng.IntN(8))
		for i := range name {
			name[i] = alphabet[rng.IntN(len(alphabet))]
		}
		u := "system:serviceaccount:" + string(name)
		for _, patterns := range patternSets {
			x := &Exceptions{ServiceAccounts: patterns}
			x.validate()
			if got, want := x.covers(&audit.Event{User: audit.UserInfo{Username: u}}), referenceCovers(patterns, u); got != want {
				t.Fatalf("patterns %q, user %q: covers %v, want %v", patterns, u, got, want)
			}
		}
	}
}

// slowPodSpec is the pod spec the pod helpers read through the decoded
// map, and whether the object is non-null to CEL.
func slowPodSpec(raw []byte) (*podSecurity, bool) {
	v := decodeRaw(raw)
	m, ok := v.(map[string]any)
	if !ok {
		return nil, v != nil
	}
	return decodePodSpec(m), true
}

// checkPlain compares the plain-object path with the round trip on raw.
func checkPlain(t testing.TB, raw []byte) (plain bool) {
	t.Helper()
	r := readPlain(raw)
	if !r.plain {
		return false
	}
	want, nonNull := slowPodSpec(raw)
	if !nonNull {
		t.Fatalf("plain object %s is null to CEL", raw)
	}
	got := r.podSpec
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("plain object %s: pod spec %+v, through the map %+v", raw, got, want)
	}
	return true
}

// plainSamples are objects on both sides of what readPlain accepts.
var plainSamples = []string{
	// Strings full of escapes before the fields the helpers read:
	// kubectl's last-applied annotation, an escaped
	// backslash right before a closing quote, a quote after an escaped one.
	`{"kind":"Deployment","metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"kind\":\"Deployment\",\"spec\":{\"x\":\"\\\"\"}}\n"}},"spec":{"template":{"spec":{"hostPID":true,"containers":[{"name":"c"}]}}}}`,
	`{"kind":"Pod","metadata":{"labels":{"a":"b\\","c\u0022":"d"}},"spec":{"hostNetwork":true,"containers":[{"name":"x\\\"y","securityContext":{"privileged":true}}]}}`,
	`{"kind":"Pod","metadata":{"name":"\\\\"},"spec":{"hostIPC":true}}`,
	`{"kind":"Pod","spec":{"containers":[{"name":"c","securityContext":{"privileged":true}}]}}`,
	`{"kind":"Pod","Spec":{"hostNetwork":true},"spec":{"hostPID":true}}`,
	`{"kind":"Pod","spec":{"hostNetwork":true},"spec":{"hostPID":true}}`,
	`{"KIND":"Pod","spec":{"hostIPC":true}}`,
	`{"kind":"Pod","kind":"Deployment","spec":{"hostIPC":true}}`,
	`{"kind":"Pod","spec":{"terminationGracePeriodSeconds":1e2,"hostNetwork":true}}`,
	`{"kind":"Pod","spec":{"terminationGracePeriodSeconds":30.0,"hostNetwork":true}}`,
	`{"kind":"Pod","spec":{"terminationGracePeriodSeconds":30,"hostNetwork":true}}`,
	`{"kind":"Pod","spec":{"terminationGracePeriodSeconds":-0,"hostNetwork":true}}`,
	`{"kind":"Pod","spec":{"activeDeadlineSeconds":9007199254740993,"hostPID":true}}`,
	`{"kind":"Pod","spec":{"activeDeadlineSeconds":999999999999999,"hostPID":true}}`,
	`{"kind":"Pod","spec":{"priority":99999999999,"hostPID":true}}`,
	`{"kind":"Pod","spec":{"containers":"x"}}`,
	`{"kind":7}`, `{"kind":null,"spec":{}}`, `{"kind":"P\u006fd","spec":{"hostPID":true}}`, `{"kind":"Pod\xff"}`,
	`{"k\u0069nd":"Pod","spec":{"hostPID":true}}`, `{"\u212aind":"Pod","spec":{"hostPID":true}}`,
	`{"kind":"Deployment","spec":{"template":{"spec":{"volumes":[{"name":"v","hostPath":{"path":"/etc\u0000x"}}]}}}}`,
	`{"kind":"Deployment","spec":{"template":null}}`, `{"kind":"CronJob","spec":{"jobTemplate":{"spec":{"template":{"spec":{"hostIPC":true}}}}}}`,
	`{"kind":"Pod","metadata":{"labels":{"App":"a","app":"b"}},"spec":{"hostPID":true}}`,
	`{"kind":"Pod","spec":{"containers":[{"securityContext":{"capabilities":{"add":["SYS_ADMIN","\ud800"]}}}]}}`,
	` {"kind" : "Pod" , "spec" : { } } `, `{"kind":"Pod"} x`, `{"kind":"Pod",}`, `{"kind":"Pod"`, `null`, `[]`, `"Pod"`, `{}`, ``,
	`{"kind":"Pod","spec":{"nodeSelector":{"a":"b","A":"c"}}}`, `{"kind":"Pod","spec":{"hostNetwork":tru}}`, `{"kind":"Pod","spec":{"x":01}}`,
	`{"kind":"Pod","spec":{"x":-}}`, `{"kind":"Pod","spec":{"x":"\q"}}`, `{"kind":"Pod","spec":{"x":"` + "\x01" + `"}}`,
	`{"kind":"Pod","spec":{"x":[1,2,{"y":[true,false,null]}]}}`, `{"kind":"Pod","spec":{"x":1E2}}`,
	// The way down to the spec and through the slices.
	`{"kind":"Pod","spec":"x"}`, `{"kind":"Pod","spec":null}`, `{"kind":"Pod","SPEC":{"HostPid":true}}`, `{"kind":"Pod","spec":[]}`,
	`{"kind":"Deployment","spec":{"template":5}}`, `{"kind":"Deployment","spec":{}}`, `{"kind":"Deployment","spec":null}`,
	`{"kind":"Job","spec":{"Template":{"Spec":{"hostNetwork":true}}}}`, `{"kind":"Deployment","spec":{"template":{"spec":null}}}`,
	`{"kind":"CronJob","spec":{"jobTemplate":null}}`, `{"kind":"CronJob","spec":{"jobTemplate":{"spec":"x"}}}`,
	`{"kind":"PodTemplate","template":{"spec":{"hostIPC":true}}}`, `{"kind":"PodTemplate","template":null}`, `{"kind":"PodTemplate"}`,
	`{"kind":"Pod","spec":{"containers":[]}}`, `{"kind":"Pod","spec":{"containers":null}}`, `{"kind":"Pod","spec":{"containers":[null,{}]}}`,
	`{"kind":"Pod","spec":{"containers":[5]}}`, `{"kind":"Pod","spec":{"containers":{}}}`, `{"kind":"Pod","spec":{"hostNetwork":"true"}}`,
	`{"kind":"Pod","spec":{"hostNetwork":null,"hostPID":1}}`,
	`{"kind":"Pod","spec":{"initContainers":[{"name":"a","SecurityContext":{"Privileged":true,"capabilities":{"ADD":["NET_RAW"]}}}],"ephemeralContainers":[{"securityContext":null}]}}`,
	`{"kind":"Pod","spec":{"containers":[{"securityContext":{"privileged":"yes"}}]}}`, `{"kind":"Pod","spec":{"containers":[{"securityContext":[]}]}}`,
	`{"kind":"Pod","spec":{"volumes":[{"name":"a","hostPath":{"path":"/x","type":"Directory"}},{"name":"b","emptyDir":{}},null]}}`,
	`{"kind":"Pod","spec":{"volumes":[{"hostPath":null},{"HOSTPATH":{"PATH":"/etc"}}]}}`, `{"kind":"Pod","spec":{"volumes":[{"hostPath":{"path":5}}]}}`,
	` { "kind" : "Pod" , "spec" : { "containers" : [ { "securityContext" : { "privileged" : true } } , { } ] , "volumes" : [ ] } } `,
	`{"kind":"Pod","spec":{"containers":[{"env":[{"name":"A","value":"x\"}]"}],"securityContext":{"privileged":true}}]}}`,
}

// The plain-object path gives the pod helpers what the round trip through
// the decoded map gives, on every object it accepts.
func TestPlainObjectMatchesRoundTrip(t *testing.T) {
	accepted := 0
	for _, s := range plainSamples {
		if checkPlain(t, []byte(s)) {
			accepted++
		}
	}
	for _, ev := range ruleTestEvents(t) {
		for _, raw := range [][]byte{ev.RequestObject, ev.ResponseObject} {
			if len(raw) > 0 && checkPlain(t, raw) {
				accepted++
			}
		}
	}
	for _, ev := range corpusEvents(t) {
		for _, raw := range [][]byte{ev.RequestObject, ev.ResponseObject} {
			if len(raw) > 0 && checkPlain(t, raw) {
				accepted++
			}
		}
	}
	t.Logf("%d plain objects", accepted)
	if accepted < 50 {
		t.Errorf("only %d objects were plain", accepted)
	}
}

func FuzzPlainObject(f *testing.F) {
	for _, s := range plainSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkPlain(t, raw)
	})
}

// A candidate list gives each event's rules, guarded or not, once each and
// in load order.
func TestCandidateListOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	users, namespaces := []string{"alice", "bob", "carol"}, []string{"a", "b"}
	for range 200 {
		var rules []*compiled
		for i := range rng.IntN(12) {
			c := &compiled{Rule: &Rule{ID: strconv.Itoa(i)}, order: i}
			switch rng.IntN(4) {
			case 1:
				c.guarded, c.guard, c.guardValues = true, guardUser, []string{users[rng.IntN(3)], users[rng.IntN(3)]}
			case 2:
				c.guarded, c.guard, c.guardValues = true, guardNamespace, []string{namespaces[rng.IntN(2)]}
			case 3:
				c.guarded, c.guard = true, guardName // no value: never runs
			}
			rules = append(rules, c)
		}
		cl := newCandidateList(rules)
		ev := &audit.Event{User: audit.UserInfo{Username: users[rng.IntN(3)]}, ObjectRef: audit.ObjectReference{Namespace: namespaces[rng.IntN(2)]}}
		var want []int
		for _, c := range rules {
			if !c.guarded || slices.Contains(c.guardValues, c.guard.value(ev)) {
				want = append(want, c.order)
			}
		}
		var got []int
		m := cl.forEvent(ev)
		for c := m.next(); c != nil; c = m.next() {
			got = append(got, c.order)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("rules %v for %s in %s, want %v", got, ev.User.Username, ev.ObjectRef.Namespace, want)
		}
	}
}
