package audit

// internTable holds values that recur in nearly every audit event.
// Decoding returns these strings instead of allocating a copy per event,
// which saves both time and the memory of events kept in windows and
// baselines. It is an open-addressing hash table, a quarter full, whose
// hash reads four bytes, so a lookup costs about one comparison, and a
// miss, the common case for names and IDs, usually none.
var internTable = func() (t [internSize]string) {
	for _, s := range internedValues {
		h := internHash(s)
		for t[h] != "" && t[h] != s {
			h = (h + 1) % internSize
		}
		t[h] = s
	}
	return t
}()

// internSize is the number of slots of internTable, a power of two at
// least four times the number of values (TestInternTable checks).
const internSize = 1024

// maxInterned is the longest interned value; longer strings skip the lookup.
var maxInterned = func() int {
	n := 0
	for _, s := range internedValues {
		n = max(n, len(s))
	}
	return n
}()

// internHash hashes a non-empty string by its length and three of its
// bytes: the values share prefixes ("system:", "apiserver.latency.k8s.io/")
// but rarely all of those.
func internHash[T string | []byte](b T) uint {
	n := uint(len(b))
	h := n*0x9e3779b1 ^ uint(b[0])*0x85ebca77 ^ uint(b[n-1])*0xc2b2ae3d ^ uint(b[n/2])*0x27d4eb2f
	return (h >> 7) % internSize
}

// internString returns the interned copy of b, if there is one.
func internString(b []byte) (string, bool) {
	if len(b) == 0 || len(b) > maxInterned {
		return "", false
	}
	for h := internHash(b); ; h = (h + 1) % internSize {
		s := internTable[h]
		if s == "" {
			return "", false
		}
		if s == string(b) {
			return s, true
		}
	}
}

var internedValues = []string{
	// kind, apiVersion, level, stage
	"Event", "audit.k8s.io/v1", "audit.k8s.io/v1beta1",
	"None", "Metadata", "Request", "RequestResponse",
	"RequestReceived", "ResponseStarted", "ResponseComplete", "Panic",
	// verbs
	"get", "list", "watch", "create", "update", "patch", "delete",
	"deletecollection", "proxy", "impersonate", "bind", "escalate", "approve",
	// users, groups and source addresses of the control plane
	"system:authenticated", "system:unauthenticated", "system:masters",
	"system:serviceaccounts", "system:serviceaccounts:kube-system",
	"system:nodes", "system:anonymous", "system:apiserver",
	"system:kube-controller-manager", "system:kube-scheduler",
	"system:kube-proxy", "system:monitoring", "kubeadm:cluster-admins",
	"127.0.0.1", "::1",
	// namespaces
	"default", "kube-system", "kube-public", "kube-node-lease",
	// API groups and versions
	"v1", "v1beta1", "v1beta2", "v1beta3", "v1alpha1", "v2",
	"apps", "batch", "policy", "autoscaling", "rbac.authorization.k8s.io",
	"coordination.k8s.io", "discovery.k8s.io", "networking.k8s.io",
	"storage.k8s.io", "authentication.k8s.io", "authorization.k8s.io",
	"admissionregistration.k8s.io", "apiextensions.k8s.io",
	"apiregistration.k8s.io", "certificates.k8s.io", "events.k8s.io",
	"scheduling.k8s.io", "node.k8s.io", "flowcontrol.apiserver.k8s.io",
	"resource.k8s.io",
	// resources and subresources
	"pods", "secrets", "configmaps", "services", "endpoints",
	"endpointslices", "leases", "events", "nodes", "namespaces",
	"deployments", "replicasets", "daemonsets", "statefulsets", "jobs",
	"cronjobs", "serviceaccounts", "roles", "rolebindings", "clusterroles",
	"clusterrolebindings", "networkpolicies", "ingresses",
	"persistentvolumeclaims", "persistentvolumes", "storageclasses",
	"customresourcedefinitions", "tokenreviews", "subjectaccessreviews",
	"selfsubjectaccessreviews", "selfsubjectrulesreviews",
	"localsubjectaccessreviews", "certificatesigningrequests",
	"validatingwebhookconfigurations", "mutatingwebhookconfigurations",
	"validatingadmissionpolicies", "validatingadmissionpolicybindings",
	"priorityclasses", "runtimeclasses", "csinodes", "csidrivers",
	"volumeattachments", "horizontalpodautoscalers", "poddisruptionbudgets",
	"apiservices", "flowschemas", "prioritylevelconfigurations",
	"controllerrevisions", "limitranges", "resourcequotas",
	"status", "exec", "attach", "portforward", "log", "token", "binding",
	"eviction", "scale", "ephemeralcontainers", "approval", "finalize",
	// annotations and statuses
	"authorization.k8s.io/decision", "authorization.k8s.io/reason",
	"allow", "forbid",
	"pod-security.kubernetes.io/enforce-policy",
	"pod-security.kubernetes.io/audit-violations",
	"pod-security.kubernetes.io/exempt",
	"privileged:latest", "baseline:latest", "restricted:latest",
	"apiserver.latency.k8s.io/etcd", "apiserver.latency.k8s.io/total",
	"apiserver.latency.k8s.io/response-write",
	"apiserver.latency.k8s.io/serialize-response-object",
	"apiserver.latency.k8s.io/decode-response-object",
	"apiserver.latency.k8s.io/transform-response-object",
	"apiserver.latency.k8s.io/apf-queue-wait",
	"Success", "Failure", "Forbidden", "NotFound", "AlreadyExists",
	"Conflict", "Invalid", "Unauthorized", "BadRequest", "Expired",
	// user extra keys
	"authentication.kubernetes.io/credential-id",
	"authentication.kubernetes.io/pod-name",
	"authentication.kubernetes.io/pod-uid",
	"authentication.kubernetes.io/node-name",
	"authentication.kubernetes.io/node-uid",
}
