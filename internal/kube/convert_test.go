package kube

import (
	"encoding/json"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// FromTyped makes the Object FromUnstructured makes of the same object's
// JSON: same reference, labels and annotations, and a Raw that decodes to
// the same pod, without managed fields and the last-applied copy.
func TestFromTypedMatchesFromUnstructured(t *testing.T) {
	const served = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"shop",
		"labels":{"app":"web"},"annotations":{"team":"shop","kubectl.kubernetes.io/last-applied-configuration":"{\"big\":true}"},
		"managedFields":[{"manager":"kubectl","operation":"Apply"}]},
		"spec":{"containers":[{"name":"web","image":"nginx:1.27","securityContext":{"privileged":true}}]}}`
	gvk := schema.GroupVersionKind{Version: "v1", Kind: "Pod"}
	var typed corev1.Pod
	if err := json.Unmarshal([]byte(served), &typed); err != nil {
		t.Fatal(err)
	}
	typed.TypeMeta = metav1.TypeMeta{} // typed clients leave it empty
	got, err := FromTyped(gvk, &typed)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON([]byte(served)); err != nil {
		t.Fatal(err)
	}
	want, err := FromUnstructured(gvk, u)
	if err != nil {
		t.Fatal(err)
	}
	if got.Ref != want.Ref || !reflect.DeepEqual(got.Labels, want.Labels) || !reflect.DeepEqual(got.Annotations, want.Annotations) {
		t.Errorf("FromTyped = %+v %v %v, want %+v %v %v", got.Ref, got.Labels, got.Annotations, want.Ref, want.Labels, want.Annotations)
	}
	if _, ok := got.Annotations[LastAppliedAnnotation]; ok {
		t.Error("last-applied annotation kept")
	}
	var a, b corev1.Pod
	if err := json.Unmarshal(got.Raw, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want.Raw, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) || a.Kind != "Pod" || a.APIVersion != "v1" || len(a.ManagedFields) != 0 {
		t.Errorf("Raw decodes to\n%+v\nwant\n%+v", a, b)
	}
}
