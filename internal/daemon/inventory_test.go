package daemon

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/kube"
	"github.com/kustode/kustode/internal/manifest"
	"github.com/kustode/kustode/internal/posture"
	"github.com/kustode/kustode/internal/posture/checks"
	"github.com/kustode/kustode/internal/testcorpus"
)

// The inventory judges what `kustode scan --cluster` judges: each object
// read through the typed API in protobuf, trimmed, kept as an entry
// (encoded unless its kind is a context kind) and judged with an index in
// which only the context kinds are ready, gets exactly the findings the
// engine gives the same object converted from its JSON (kube.List's path,
// and serve's before it read protobuf) with every object in the index.
//
// This also proves contextKinds complete over the checks' fixtures: a check
// that read another kind through the index would find those objects empty
// here and report differently.
func TestInventoryJudgesAsScan(t *testing.T) {
	engine := checksEngine(t)
	// The objects of one check's fixture directory form one scan (its
	// cross-object checks see each other's objects).
	dirs, err := filepath.Glob("../posture/checks/testdata/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	judged := 0
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			judged += compareJudgements(t, engine, []string{dir})
		})
	}
	// The shared corpus of real manifests: each file one scan, as a
	// cluster it would be applied to (the files reuse names).
	t.Run("corpus", func(t *testing.T) {
		dir := testcorpus.Dir(t, "manifests")
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if ext := filepath.Ext(path); ext == ".yaml" || ext == ".yml" || ext == ".json" {
				judged += compareJudgements(t, engine, []string{path})
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	if judged < 100 {
		t.Errorf("only %d objects judged: the fixtures should hold far more of the watched kinds", judged)
	}
}

// compareJudgements loads the manifests under paths as one scan and
// compares the two paths' findings; it returns the objects judged.
func compareJudgements(t *testing.T, engine *posture.Engine, paths []string) int {
	t.Helper()
	objs, _ := manifest.Load(paths, nil) // files that do not load are not the point here
	kinds := map[schema.GroupVersionKind]*watchedKind{}
	for _, k := range watchedKinds() {
		kinds[k.gvk] = k
	}
	inv := NewInventory(nil, nil, nil, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	var legacy []kube.Object
	var entries []*entry
	seen := map[finding.ObjectRef]bool{}
	for _, o := range objs {
		gvk := schema.FromAPIVersionAndKind(o.Ref.APIVersion, o.Ref.Kind)
		k := kinds[gvk]
		if k == nil || seen[o.Ref] {
			continue // not watched, or a name a cluster holds once
		}
		seen[o.Ref] = true
		wire, served, ok := fromWire(t, k, o.Raw)
		if !ok {
			continue // the API server would not have accepted it
		}
		want, ok := legacyObject(t, k, served)
		if !ok {
			continue // controlled by a listed workload: judged at its owner
		}
		got, err := inv.trim(k, wire)
		if err != nil {
			t.Fatalf("%s: trim: %v", o.Source, err)
		}
		e, ok := got.(*entry)
		if !ok {
			t.Fatalf("%s: trimmed to %T, want an entry as the object is judged", o.Source, got)
		}
		if (e.obj != nil) != k.context {
			t.Errorf("%s: ready %v, want ready only for context kinds", o.Source, e.obj != nil)
		}
		legacy = append(legacy, want)
		entries = append(entries, e)
	}
	wantFindings, _ := engine.Run(legacy)

	sortEntries(entries)
	index, ix := indexEntries(entries)
	targets := make([]int, len(entries))
	for i := range targets {
		targets[i] = i
	}
	p := &Posture{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	gotFindings := p.judge(engine, ix, entries, index, targets)

	want, got := describeFindings(wantFindings), describeFindings(gotFindings)
	if !slices.Equal(want, got) {
		t.Errorf("%s: findings differ (%d objects)\n-scan:\n%s\n+inventory:\n%s", strings.Join(paths, " "), len(entries),
			strings.Join(diffLines(want, got), "\n"), strings.Join(diffLines(got, want), "\n"))
	}
	return len(entries)
}

// legacyObject is the object as scan (and serve, before) converts it from
// JSON; ok is false for an object controlled by a listed workload.
func legacyObject(t *testing.T, k *watchedKind, raw []byte) (kube.Object, bool) {
	t.Helper()
	if k.source == metadataSource {
		var m metav1.PartialObjectMetadata
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		o, err := kube.FromMetadata(k.gvk, &m)
		if err != nil {
			t.Fatal(err)
		}
		return o, true
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		t.Fatal(err)
	}
	if kube.ControlledByListedKind(u.GetOwnerReferences()) && k.gvk.Kind != "Namespace" {
		return kube.Object{}, false
	}
	if k.gvk.Kind == "Pod" {
		unstructured.RemoveNestedField(u.Object, "status")
	}
	o, err := kube.FromUnstructured(k.gvk, u)
	if err != nil {
		t.Fatal(err)
	}
	return o, true
}

// fromWire returns the object of manifest raw as an informer of k receives
// it from the API server: decoded from its protobuf encoding for the typed
// kinds (which loses the difference between empty and absent lists), as
// metadata only for the metadata kinds, unstructured for the others; and
// the JSON the API server would have served for it (the typed object
// encoded, as the API server does), which the JSON path reads. ok is false
// for an object the API types cannot hold (a manifest with a string for a
// number), which no cluster serves.
func fromWire(t *testing.T, k *watchedKind, raw []byte) (_ any, served []byte, ok bool) {
	t.Helper()
	switch k.source {
	case metadataSource:
		var m metav1.PartialObjectMetadata
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, nil, false
		}
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var out metav1.PartialObjectMetadata
		if err := out.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
		return &out, raw, true
	case typedSource:
		o, _, err := scheme.Codecs.UniversalDeserializer().Decode(raw, nil, nil)
		if err != nil {
			return nil, nil, false
		}
		if served, err = json.Marshal(o); err != nil {
			t.Fatal(err)
		}
		b, err := o.(protoObject).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out, err := scheme.Scheme.New(k.gvk)
		if err != nil {
			t.Fatal(err)
		}
		if err := out.(protoObject).Unmarshal(b); err != nil {
			t.Fatal(err)
		}
		return out, served, true
	default:
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			return nil, nil, false
		}
		return u, raw, true
	}
}

func describeFindings(fs []finding.Finding) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s %s %s: %s", f.Object.String(), f.CheckID, f.Severity, f.Message))
	}
	slices.Sort(out)
	return out
}

// diffLines returns the lines of a that b lacks, as a multiset.
func diffLines(a, b []string) []string {
	left := map[string]int{}
	for _, l := range b {
		left[l]++
	}
	var out []string
	for _, l := range a {
		if left[l] > 0 {
			left[l]--
			continue
		}
		out = append(out, l)
	}
	return out
}

// An object the checks do not judge is kept as its cache key only, and no
// event about it reaches the posture; an update that changes only what the
// inventory drops (a pod's status, its resourceVersion) reaches it neither.
func TestInventoryEvents(t *testing.T) {
	var changed []string
	inv := NewInventory(nil, nil, nil, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), func(k objKey) {
		changed = append(changed, k.String())
	})
	pod := func(name, rv, phase string, owned bool) any {
		return trimmedPod(t, inv, fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":%q,"namespace":"shop","resourceVersion":%q%s},
			"spec":{"containers":[{"name":"c","image":"nginx"}]},"status":{"phase":%q}}`, name, rv,
			map[bool]string{true: `,"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs","uid":"u","controller":true}]`}[owned], phase))
	}
	owned := pod("web-1", "1", "Pending", true)
	if k, ok := owned.(cache.ExplicitKey); !ok || k != "shop/web-1" {
		t.Fatalf("owned pod kept as %#v, want its key only", owned)
	}
	if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(pod("bare", "1", "Pending", false)); err != nil || key != "shop/bare" {
		t.Fatalf("entry's cache key %q, %v", key, err)
	}

	h := inv.handlers("Pod")
	h.OnAdd(owned, false)
	h.OnUpdate(owned, pod("web-1", "2", "Running", true))
	h.OnDelete(owned)
	if len(changed) != 0 {
		t.Errorf("events about an owned pod reached the posture: %v", changed)
	}
	bare1, bare2 := pod("bare", "1", "Pending", false), pod("bare", "2", "Running", false)
	h.OnAdd(bare1, false)
	h.OnUpdate(bare1, bare2)                             // status only
	h.OnUpdate(bare2, pod("bare", "3", "Running", true)) // adopted: its findings resolve
	h.OnDelete(cache.DeletedFinalStateUnknown{Key: "shop/bare", Obj: bare2})
	if want := []string{"Pod/shop/bare", "Pod/shop/bare", "Pod/shop/bare"}; !slices.Equal(changed, want) {
		t.Errorf("changes %v, want %v (add, adoption, delete; not the status update)", changed, want)
	}
}

// testPods is the watched kind Pod, one value for every test (entries of
// one object from two values of it would differ).
var testPods = sync.OnceValue(func() *watchedKind {
	kinds := watchedKinds()
	return kinds[slices.IndexFunc(kinds, func(k *watchedKind) bool { return k.gvk.Kind == "Pod" })]
})

// trimmedPod is what the inventory keeps of the pod in raw (JSON), read as
// from the wire: an entry, or a key only.
func trimmedPod(t *testing.T, inv *Inventory, raw string) any {
	t.Helper()
	pods := testPods()
	wire, _, ok := fromWire(t, pods, []byte(raw))
	if !ok {
		t.Fatalf("pod %s does not decode", raw)
	}
	e, err := inv.trim(pods, wire)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// checksEngine is the posture engine with every check, as serve runs it.
func checksEngine(t *testing.T) *posture.Engine {
	t.Helper()
	all, err := checks.All(checks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	engine, err := posture.NewEngine(all)
	if err != nil {
		t.Fatal(err)
	}
	return engine
}
