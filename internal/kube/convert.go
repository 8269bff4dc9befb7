package kube

import (
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kustode/kustode/internal/finding"
)

// lastApplied is kubectl's copy of the whole previous manifest: bulk that no
// check reads and that may repeat sensitive data.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// FromUnstructured converts an object read from the cluster into an Object
// of kind gvk, without managed fields and kubectl's last-applied copy. The
// item is modified in place.
func FromUnstructured(gvk schema.GroupVersionKind, item runtimeObject) (Object, error) {
	item.SetManagedFields(nil)
	if a := item.GetAnnotations(); a[lastApplied] != "" {
		delete(a, lastApplied)
		item.SetAnnotations(a)
	}
	item.SetAPIVersion(gvk.GroupVersion().String())
	item.SetKind(gvk.Kind)
	raw, err := json.Marshal(item.UnstructuredContent())
	if err != nil {
		return Object{}, fmt.Errorf("encode %s %s/%s: %w", gvk.Kind, item.GetNamespace(), item.GetName(), err)
	}
	return Object{
		Ref: finding.ObjectRef{
			APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind,
			Namespace: item.GetNamespace(), Name: item.GetName(),
		},
		Labels:      item.GetLabels(),
		Annotations: item.GetAnnotations(),
		Raw:         raw,
	}, nil
}

// FromMetadata converts a metadata-only object (a Secret read as
// PartialObjectMetadata: never its data) into an Object of kind gvk. The
// item is modified in place.
func FromMetadata(gvk schema.GroupVersionKind, item *metav1.PartialObjectMetadata) (Object, error) {
	item.ManagedFields = nil
	delete(item.Annotations, lastApplied)
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
