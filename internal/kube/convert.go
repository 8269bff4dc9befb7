package kube

import (
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kustode/kustode/internal/finding"
)

// LastAppliedAnnotation is kubectl's copy of the whole previous manifest:
// bulk that no check reads and that may repeat sensitive data. The
// conversions below drop it.
const LastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// FromUnstructured converts an object read from the cluster into an Object
// of kind gvk, without managed fields and kubectl's last-applied copy. The
// item is modified in place.
func FromUnstructured(gvk schema.GroupVersionKind, item runtimeObject) (Object, error) {
	item.SetManagedFields(nil)
	if a := item.GetAnnotations(); a[LastAppliedAnnotation] != "" {
		delete(a, LastAppliedAnnotation)
		item.SetAnnotations(a)
	}
	item.SetAPIVersion(gvk.GroupVersion().String())
	item.SetKind(gvk.Kind)
	return encoded(gvk, item, item.UnstructuredContent())
}

// encoded is the Object of kind gvk whose JSON is v's and whose name,
// labels and annotations are meta's.
func encoded(gvk schema.GroupVersionKind, meta metav1.Object, v any) (Object, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return Object{}, fmt.Errorf("encode %s %s/%s: %w", gvk.Kind, meta.GetNamespace(), meta.GetName(), err)
	}
	return Object{
		Ref: finding.ObjectRef{
			APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind,
			Namespace: meta.GetNamespace(), Name: meta.GetName(),
		},
		Labels:      meta.GetLabels(),
		Annotations: meta.GetAnnotations(),
		Raw:         raw,
	}, nil
}

// FromMetadata converts a metadata-only object (a Secret read as
// PartialObjectMetadata: never its data) into an Object of kind gvk. The
// item is modified in place.
func FromMetadata(gvk schema.GroupVersionKind, item *metav1.PartialObjectMetadata) (Object, error) {
	item.ManagedFields = nil
	delete(item.Annotations, LastAppliedAnnotation)
	item.APIVersion, item.Kind = gvk.GroupVersion().String(), gvk.Kind
	raw, err := json.Marshal(item)
	if err != nil {
		return Object{}, fmt.Errorf("encode %s %s/%s: %w", gvk.Kind, item.Namespace, item.Name, err)
	}
	return Object{
		Ref:         finding.ObjectRef{APIVersion: item.APIVersion, Kind: gvk.Kind, Namespace: item.Namespace, Name: item.Name},
		Labels:      item.Labels,
		Annotations: item.Annotations,
		Raw:         raw,
	}, nil
}

// TypedObject is a typed Kubernetes object, as client-go's typed clients and
// informers return them (a *corev1.Pod, an *appsv1.Deployment, ...).
type TypedObject interface {
	runtime.Object
	metav1.Object
}

// FromTyped converts a typed object read from the cluster into an Object of
// kind gvk, without managed fields and kubectl's last-applied copy: the same
// Object FromUnstructured makes of the object's JSON, but for fields the
// client's API types do not know (which no check can read either). The
// item is modified in place; the Object shares its labels and annotations.
func FromTyped(gvk schema.GroupVersionKind, item TypedObject) (Object, error) {
	item.SetManagedFields(nil)
	delete(item.GetAnnotations(), LastAppliedAnnotation)
	item.GetObjectKind().SetGroupVersionKind(gvk)
	return encoded(gvk, item, item)
}
