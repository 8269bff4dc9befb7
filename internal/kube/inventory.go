package kube

import (
	"context"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"

	"github.com/kustode/kustode/internal/finding"
)

// ListedKinds are the kinds List reads from a cluster: what the posture
// checks judge. Secrets are deliberately absent: kustode never reads Secret
// values.
var ListedKinds = []schema.GroupVersionKind{
	{Version: "v1", Kind: "Namespace"},
	{Version: "v1", Kind: "Pod"},
	{Version: "v1", Kind: "ReplicationController"},
	{Version: "v1", Kind: "Service"},
	{Version: "v1", Kind: "ConfigMap"},
	{Version: "v1", Kind: "ServiceAccount"},
	{Group: "apps", Version: "v1", Kind: "Deployment"},
	{Group: "apps", Version: "v1", Kind: "ReplicaSet"},
	{Group: "apps", Version: "v1", Kind: "StatefulSet"},
	{Group: "apps", Version: "v1", Kind: "DaemonSet"},
	{Group: "batch", Version: "v1", Kind: "Job"},
	{Group: "batch", Version: "v1", Kind: "CronJob"},
	{Group: "networking.k8s.io", Version: "v1", Kind: "NetworkPolicy"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "Role"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "RoleBinding"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRoleBinding"},
	{Group: "node.k8s.io", Version: "v1", Kind: "RuntimeClass"},
	{Group: "security.istio.io", Version: "v1", Kind: "PeerAuthentication"},
}

// optionalKinds belong to add-ons (CRDs) that many clusters lack: a cluster
// without them answers NotFound, which means "none", not an error.
var optionalKinds = []string{"PeerAuthentication"}

// MetadataOnlyKinds are listed as metadata only (PartialObjectMetadata):
// names, labels, annotations, timestamps, never data. RBAC cannot grant
// "metadata only", so the list permission still matters; kustode simply never
// asks for more.
var MetadataOnlyKinds = []schema.GroupVersionKind{
	{Version: "v1", Kind: "Secret"},
}

// clusterScoped kinds are listed once, whatever the namespace.
var clusterScoped = []string{"Namespace", "ClusterRole", "ClusterRoleBinding", "RuntimeClass"}

// IsClusterScoped reports whether kind, one of ListedKinds, has no namespace.
func IsClusterScoped(kind string) bool { return slices.Contains(clusterScoped, kind) }

// IsOptional reports whether kind belongs to an add-on (a CRD) that many
// clusters lack; its absence is not an error.
func IsOptional(kind string) bool { return slices.Contains(optionalKinds, kind) }

// ResourceFor maps one of ListedKinds to its resource (the lower-case
// plural).
func ResourceFor(gvk schema.GroupVersionKind) schema.GroupVersionResource {
	plural := map[string]string{
		"Namespace": "namespaces", "Pod": "pods", "ReplicationController": "replicationcontrollers",
		"Service": "services", "ConfigMap": "configmaps", "ServiceAccount": "serviceaccounts",
		"Deployment": "deployments", "ReplicaSet": "replicasets", "StatefulSet": "statefulsets",
		"DaemonSet": "daemonsets", "Job": "jobs", "CronJob": "cronjobs", "NetworkPolicy": "networkpolicies",
		"Role": "roles", "RoleBinding": "rolebindings", "ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings",
		"Secret": "secrets", "RuntimeClass": "runtimeclasses", "PeerAuthentication": "peerauthentications",
	}[gvk.Kind]
	return gvk.GroupVersion().WithResource(plural)
}

// ListError is a kind the cluster would not list, typically for lack of
// RBAC permission: the scan did not see those objects.
type ListError struct {
	Kind string
	Err  error
}

func (e *ListError) Error() string {
	return fmt.Sprintf("cluster: cannot list %s: %v", e.Kind, e.Err)
}

func (e *ListError) Unwrap() error { return e.Err }

// Location names the cluster as the source of the error.
func (e *ListError) Location() finding.Source { return finding.Source{} }

// List reads every object of ListedKinds from a cluster, read-only, in pages
// of 500, in namespace ns ("" for all namespaces; cluster-scoped kinds are
// always read, and with ns set only that Namespace object is kept). Objects
// managed by a controller that is itself listed (a Deployment's ReplicaSets
// and their Pods, a CronJob's Jobs) are left out, so each problem is reported
// once, on the object a person edits. Kinds that cannot be listed are
// reported as ListErrors; the rest is still returned.
//
// kinds, when not empty, limits the listing to those kinds.
func List(ctx context.Context, client dynamic.Interface, meta metadata.Interface, ns string, kinds ...string) ([]Object, []error) {
	var objs []Object
	var errs []error
	wanted := func(kind string) bool { return len(kinds) == 0 || slices.Contains(kinds, kind) }
	for _, gvk := range MetadataOnlyKinds {
		if !wanted(gvk.Kind) {
			continue
		}
		o, err := listMetadata(ctx, meta, gvk, ns)
		if err != nil {
			errs = append(errs, &ListError{Kind: gvk.Kind, Err: err})
			continue
		}
		objs = append(objs, o...)
	}
	for _, gvk := range ListedKinds {
		if !wanted(gvk.Kind) {
			continue
		}
		listNS := ns
		if slices.Contains(clusterScoped, gvk.Kind) {
			listNS = ""
		}
		items, err := listAll(ctx, client, ResourceFor(gvk), listNS)
		if apierrors.IsNotFound(err) && slices.Contains(optionalKinds, gvk.Kind) {
			continue
		}
		if err != nil {
			errs = append(errs, &ListError{Kind: gvk.Kind, Err: err})
			continue
		}
		for _, item := range items {
			if gvk.Kind == "Namespace" && ns != "" && item.GetName() != ns {
				continue
			}
			if ControlledByListedKind(item.GetOwnerReferences()) {
				continue
			}
			obj, err := FromUnstructured(gvk, item)
			if err != nil {
				errs = append(errs, &ListError{Kind: gvk.Kind, Err: err})
				continue
			}
			objs = append(objs, obj)
		}
	}
	return objs, errs
}

// listAll pages through a list.
func listAll(ctx context.Context, client dynamic.Interface, gvr schema.GroupVersionResource, ns string) ([]runtimeObject, error) {
	var out []runtimeObject
	opts := metav1.ListOptions{Limit: 500}
	for {
		list, err := client.Resource(gvr).Namespace(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for i := range list.Items {
			out = append(out, &list.Items[i])
		}
		if list.GetContinue() == "" {
			return out, nil
		}
		opts.Continue = list.GetContinue()
	}
}

// listMetadata pages through a metadata-only list.
func listMetadata(ctx context.Context, meta metadata.Interface, gvk schema.GroupVersionKind, ns string) ([]Object, error) {
	var out []Object
	opts := metav1.ListOptions{Limit: 500}
	for {
		list, err := meta.Resource(ResourceFor(gvk)).Namespace(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for i := range list.Items {
			obj, err := FromMetadata(gvk, &list.Items[i])
			if err != nil {
				return nil, err
			}
			out = append(out, obj)
		}
		if list.Continue == "" {
			return out, nil
		}
		opts.Continue = list.Continue
	}
}

// runtimeObject is the part of unstructured.Unstructured List uses.
type runtimeObject interface {
	UnstructuredContent() map[string]any
	runtime.Object
	metav1.Object
	SetAPIVersion(string)
	SetKind(string)
	MarshalJSON() ([]byte, error)
}

// ControlledByListedKind reports whether an owner reference marks the object
// as managed by a controller of a kind List also reads: such objects are
// judged at their owner, the object a person edits.
func ControlledByListedKind(refs []metav1.OwnerReference) bool {
	for _, r := range refs {
		if r.Controller != nil && *r.Controller && IsWorkload(r.Kind) {
			return true
		}
	}
	return false
}
