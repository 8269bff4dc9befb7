package audit

// interned holds values that recur in nearly every audit event, by length.
// Decoding returns these strings instead of allocating a copy per event,
// which saves both time and the memory of events kept in windows and
// baselines. For the short strings of audit events, comparing against the
// few candidates of the same length is faster than hashing into a map.
var interned = func() [][]string {
	byLen := make([][]string, maxInterned+1)
	for _, s := range internedValues {
		byLen[len(s)] = append(byLen[len(s)], s)
	}
	return byLen
}()

// maxInterned is the longest interned value; longer strings skip the lookup.
var maxInterned = func() int {
	n := 0
	for _, s := range internedValues {
		n = max(n, len(s))
	}
	return n
}()

// internString returns the interned copy of b, if there is one.
func internString(b []byte) (string, bool) {
	if len(b) == 0 || len(b) > maxInterned {
		return "", false
	}
	for _, s := range interned[len(b)] {
		if s[0] == b[0] && s == string(b) {
			return s, true
		}
	}
	return "", false
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
