package daemon

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestReferenceRoundTrip(t *testing.T) {
	long := strings.Repeat("spec.containers[0].securityContext ", 40)
	for _, tc := range []struct{ name, ref, src string }{
		{"identical", long, long},
		{"empty object", long, ""},
		{"empty reference", "", long},
		{"nothing shared", "abcdefghijklmnop", "0123456789012345678901234567890123456789"},
		{"shorter than a match", "abcdefgh", "abc"},
		{"prefix and suffix shared", "registry.example.com/shop/web:1.0.0 and more", "registry.example.com/shop/api:1.0.0 and more"},
		{"longer than the reference", "kube-root-ca.crt", strings.Repeat("kube-root-ca.crt/", 50)},
		{"match at the reference's end", "0123456789abcdef", "xx89abcdef"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReference([]byte(tc.ref))
			enc := r.encode([]byte(tc.src))
			got, err := r.decode(enc)
			if err != nil || string(got) != tc.src {
				t.Fatalf("decode(encode(%q)) = %q, %v", tc.src, got, err)
			}
			if tc.name == "identical" && len(enc) > 8 {
				t.Errorf("an object equal to its reference takes %d bytes", len(enc))
			}
		})
	}
}

// A pod stored against another pod of its namespace keeps a fraction of its
// encoding.
func TestReferenceSizeOfAPod(t *testing.T) {
	encode := func(name, image string) []byte {
		var pod corev1.Pod
		s := strings.NewReplacer(`"name": "web", "namespace"`, `"name": "`+name+`", "namespace"`, "nginx:1.27", image).Replace(servedPod)
		if err := json.Unmarshal([]byte(s), &pod); err != nil {
			t.Fatal(err)
		}
		trimObject(&pod)
		b, err := pod.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	r := newReference(encode("web-0", "nginx:1.27"))
	pod := encode("api-7d4f9", "registry.example.com/shop/api:2.3.1")
	enc := r.encode(pod)
	t.Logf("pod: %d bytes of protobuf, %d against a reference", len(pod), len(enc))
	if len(enc) > len(pod)/3 {
		t.Errorf("pod encoded in %d of its %d bytes against a similar pod", len(enc), len(pod))
	}
}

func FuzzReference(f *testing.F) {
	f.Add([]byte("registry.example.com/shop/web:1.0.0"), []byte("registry.example.com/shop/api:1.0.0"))
	f.Add([]byte(""), []byte("x"))
	f.Add([]byte(servedPod), []byte(strings.ReplaceAll(servedPod, "web", "api")))
	f.Fuzz(func(t *testing.T, ref, src []byte) {
		r := newReference(ref)
		got, err := r.decode(r.encode(src))
		if err != nil || !bytes.Equal(got, src) {
			t.Fatalf("round trip: %q, %v, want %q", got, err, src)
		}
		_, _ = r.decode(src) // garbage: an error, never a panic
	})
}

// A kind's reference in a namespace is shared while objects use it, and
// goes when they are all gone.
func TestReferences(t *testing.T) {
	var rs references
	pods := &watchedKind{}
	func() {
		a := rs.get(pods, "shop", []byte("first pod of shop"))
		if b := rs.get(pods, "shop", []byte("second pod of shop")); b != a || string(b.data) != "first pod of shop" {
			t.Fatalf("second object of shop got reference %q, want the first's", b.data)
		}
		if c := rs.get(pods, "other", []byte("pod of other")); c == a {
			t.Fatal("another namespace shares shop's reference")
		}
	}()
	for range 5 {
		runtime.GC()
	}
	if b := rs.get(pods, "shop", []byte("new pod of shop")); string(b.data) != "new pod of shop" {
		t.Errorf("shop's reference %q outlived its objects", b.data)
	}
	rs.sweep = 0
	rs.get(pods, "third", []byte("pod of third")) // sweeps "other", whose reference is unused
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if _, ok := rs.m[refKey{pods, "other"}]; ok {
		t.Errorf("dead reference kept: %v", rs.m)
	}
}
