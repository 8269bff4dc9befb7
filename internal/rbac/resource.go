package rbac

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// builtin is a resource the Kubernetes API server serves itself.
type builtin struct {
	resource string // plural, as RBAC rules name it
	group    string
	kind     string // its lowercase is the singular name
	short    []string
}

// builtins are the resources Kubernetes 1.37 serves itself, alpha and beta
// ones included (kube-apiserver's pkg/registry/*/rest, apiextensions and
// apiregistration), with kubectl's short names. Where two groups serve the
// same name, the first listed wins as in kubectl: "events" is the core
// group's. test/e2e/rbac_test.go checks this table against a real API
// server's discovery.
var builtins = []builtin{
	// core ("")
	{"bindings", "", "Binding", nil},
	{"componentstatuses", "", "ComponentStatus", []string{"cs"}},
	{"configmaps", "", "ConfigMap", []string{"cm"}},
	{"endpoints", "", "Endpoints", []string{"ep"}},
	{"events", "", "Event", []string{"ev"}},
	{"limitranges", "", "LimitRange", []string{"limits"}},
	{"namespaces", "", "Namespace", []string{"ns"}},
	{"nodes", "", "Node", []string{"no"}},
	{"persistentvolumeclaims", "", "PersistentVolumeClaim", []string{"pvc"}},
	{"persistentvolumes", "", "PersistentVolume", []string{"pv"}},
	{"pods", "", "Pod", []string{"po"}},
	{"podtemplates", "", "PodTemplate", nil},
	{"replicationcontrollers", "", "ReplicationController", []string{"rc"}},
	{"resourcequotas", "", "ResourceQuota", []string{"quota"}},
	{"secrets", "", "Secret", nil},
	{"serviceaccounts", "", "ServiceAccount", []string{"sa"}},
	{"services", "", "Service", []string{"svc"}},

	{"mutatingadmissionpolicies", "admissionregistration.k8s.io", "MutatingAdmissionPolicy", nil},
	{"mutatingadmissionpolicybindings", "admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding", nil},
	{"mutatingwebhookconfigurations", "admissionregistration.k8s.io", "MutatingWebhookConfiguration", nil},
	{"validatingadmissionpolicies", "admissionregistration.k8s.io", "ValidatingAdmissionPolicy", nil},
	{"validatingadmissionpolicybindings", "admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding", nil},
	{"validatingwebhookconfigurations", "admissionregistration.k8s.io", "ValidatingWebhookConfiguration", nil},

	{"customresourcedefinitions", "apiextensions.k8s.io", "CustomResourceDefinition", []string{"crd", "crds"}},
	{"apiservices", "apiregistration.k8s.io", "APIService", nil},

	{"controllerrevisions", "apps", "ControllerRevision", nil},
	{"daemonsets", "apps", "DaemonSet", []string{"ds"}},
	{"deployments", "apps", "Deployment", []string{"deploy"}},
	{"replicasets", "apps", "ReplicaSet", []string{"rs"}},
	{"statefulsets", "apps", "StatefulSet", []string{"sts"}},

	{"selfsubjectreviews", "authentication.k8s.io", "SelfSubjectReview", nil},
	{"tokenreviews", "authentication.k8s.io", "TokenReview", nil},

	{"localsubjectaccessreviews", "authorization.k8s.io", "LocalSubjectAccessReview", nil},
	{"selfsubjectaccessreviews", "authorization.k8s.io", "SelfSubjectAccessReview", nil},
	{"selfsubjectrulesreviews", "authorization.k8s.io", "SelfSubjectRulesReview", nil},
	{"subjectaccessreviews", "authorization.k8s.io", "SubjectAccessReview", nil},

	{"horizontalpodautoscalers", "autoscaling", "HorizontalPodAutoscaler", []string{"hpa"}},

	{"cronjobs", "batch", "CronJob", []string{"cj"}},
	{"jobs", "batch", "Job", nil},

	{"certificatesigningrequests", "certificates.k8s.io", "CertificateSigningRequest", []string{"csr"}},
	{"clustertrustbundles", "certificates.k8s.io", "ClusterTrustBundle", nil},
	{"podcertificaterequests", "certificates.k8s.io", "PodCertificateRequest", nil},

	{"leasecandidates", "coordination.k8s.io", "LeaseCandidate", nil},
	{"leases", "coordination.k8s.io", "Lease", nil},

	{"endpointslices", "discovery.k8s.io", "EndpointSlice", nil},

	{"events", "events.k8s.io", "Event", []string{"ev"}},

	{"flowschemas", "flowcontrol.apiserver.k8s.io", "FlowSchema", nil},
	{"prioritylevelconfigurations", "flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration", nil},

	{"storageversions", "internal.apiserver.k8s.io", "StorageVersion", nil},

	{"evictionrequests", "lifecycle.k8s.io", "EvictionRequest", nil},
	{"evictions", "lifecycle.k8s.io", "Eviction", nil},

	{"ingressclasses", "networking.k8s.io", "IngressClass", nil},
	{"ingresses", "networking.k8s.io", "Ingress", []string{"ing"}},
	{"ipaddresses", "networking.k8s.io", "IPAddress", []string{"ip"}},
	{"networkpolicies", "networking.k8s.io", "NetworkPolicy", []string{"netpol"}},
	{"servicecidrs", "networking.k8s.io", "ServiceCIDR", nil},

	{"runtimeclasses", "node.k8s.io", "RuntimeClass", nil},

	{"poddisruptionbudgets", "policy", "PodDisruptionBudget", []string{"pdb"}},

	{"clusterrolebindings", "rbac.authorization.k8s.io", "ClusterRoleBinding", nil},
	{"clusterroles", "rbac.authorization.k8s.io", "ClusterRole", nil},
	{"rolebindings", "rbac.authorization.k8s.io", "RoleBinding", nil},
	{"roles", "rbac.authorization.k8s.io", "Role", nil},

	{"deviceclasses", "resource.k8s.io", "DeviceClass", nil},
	{"devicetaintrules", "resource.k8s.io", "DeviceTaintRule", nil},
	{"resourceclaims", "resource.k8s.io", "ResourceClaim", nil},
	{"resourceclaimtemplates", "resource.k8s.io", "ResourceClaimTemplate", nil},
	{"resourcepoolstatusrequests", "resource.k8s.io", "ResourcePoolStatusRequest", nil},
	{"resourceslices", "resource.k8s.io", "ResourceSlice", nil},

	{"compositepodgroups", "scheduling.k8s.io", "CompositePodGroup", nil},
	{"podgroups", "scheduling.k8s.io", "PodGroup", nil},
	{"priorityclasses", "scheduling.k8s.io", "PriorityClass", []string{"pc"}},
	{"workloads", "scheduling.k8s.io", "Workload", nil},

	{"csidrivers", "storage.k8s.io", "CSIDriver", nil},
	{"csinodes", "storage.k8s.io", "CSINode", nil},
	{"csistoragecapacities", "storage.k8s.io", "CSIStorageCapacity", nil},
	{"storageclasses", "storage.k8s.io", "StorageClass", []string{"sc"}},
	{"volumeattachments", "storage.k8s.io", "VolumeAttachment", nil},
	{"volumeattributesclasses", "storage.k8s.io", "VolumeAttributesClass", []string{"vac"}},

	{"storageversionmigrations", "storagemigration.k8s.io", "StorageVersionMigration", nil},
}

// builtinNames maps every plural, singular and short name to its first
// entry in builtins.
var builtinNames = indexBuiltins()

func indexBuiltins() map[string]*builtin {
	m := map[string]*builtin{}
	for i := range builtins {
		b := &builtins[i]
		for _, n := range b.names() {
			if _, ok := m[n]; !ok {
				m[n] = b
			}
		}
	}
	return m
}

func (b *builtin) names() []string {
	return append([]string{b.resource, strings.ToLower(b.kind)}, b.short...)
}

func (b *builtin) named(name string) bool { return slices.Contains(b.names(), name) }

// version matches an API version as the middle part of
// RESOURCE.VERSION.GROUP ("v1", "v2beta1").
var version = regexp.MustCompile(`^v[0-9]+((alpha|beta)[0-9]+)?$`)

// ParseResource parses a resource as kubectl names it: "pods",
// "pods/exec", "deployments.apps", "deployments.apps/scale",
// "deployments.v1.apps", "*" (every resource of every group) or "*.apps".
// A bare name ("deployments", "deploy", "deployment") must be a built-in
// resource of Kubernetes, whose group and plural name it fills in; anything
// else must name its group. Names are lowercased. The subresource is not
// checked against anything.
func ParseResource(s string) (group, resource, subresource string, err error) {
	in := strings.ToLower(strings.TrimSpace(s))
	name, sub, hasSub := strings.Cut(in, "/")
	if hasSub && (sub == "" || strings.Contains(sub, "/")) {
		return "", "", "", fmt.Errorf("parse resource %q: want RESOURCE[.GROUP][/SUBRESOURCE]", s)
	}
	resource, group, hasGroup := strings.Cut(name, ".")
	if resource == "" || (hasGroup && group == "") {
		return "", "", "", fmt.Errorf("parse resource %q: want RESOURCE[.GROUP][/SUBRESOURCE]", s)
	}
	if hasGroup {
		if v, rest, ok := strings.Cut(group, "."); ok && version.MatchString(v) {
			group = rest
		}
		// A singular or short name with its group: kubectl accepts
		// "deploy.apps" too.
		for i := range builtins {
			if b := &builtins[i]; b.group == group && b.named(resource) {
				return group, b.resource, sub, nil
			}
		}
		return group, resource, sub, nil
	}
	if resource == "*" {
		return "*", "*", sub, nil
	}
	b, ok := builtinNames[resource]
	if !ok {
		return "", "", "", fmt.Errorf("parse resource %q: not a built-in Kubernetes resource; name its API group as RESOURCE.GROUP (e.g. %s.example.com)", s, resource)
	}
	return b.group, b.resource, sub, nil
}
