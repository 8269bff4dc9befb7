// Package testgen writes synthetic but realistic Kubernetes manifests for
// benchmarks and load tests: a mix of workloads of every kind (some
// hardened, some not), Services, ConfigMaps, RBAC and NetworkPolicies, about
// 1.5 KiB per object as in real repositories.
package testgen

import (
	"fmt"
	"io"
)

// kinds cycles through the object shapes, weighted roughly as in real
// clusters: many Deployments, Services and ConfigMaps.
var kinds = []func(w io.Writer, i int){
	deployment, service, configMap, deployment, statefulSet, cronJob,
	daemonSet, job, pod, service, role, networkPolicy, deployment, replicaSet,
}

// Write writes n objects as one multi-document YAML stream.
func Write(w io.Writer, n int) error {
	for i := range n {
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		kinds[i%len(kinds)](w, i)
	}
	return nil
}

func ns(i int) string { return fmt.Sprintf("team-%d", i%50) }

// podSpec writes a pod spec at the given indent. Every third is hardened,
// every seventh privileged with a host path.
func podSpec(w io.Writer, i int, indent string) {
	p := func(format string, args ...any) { fmt.Fprintf(w, indent+format+"\n", args...) }
	if i%3 == 0 {
		p("serviceAccountName: app-%d", i)
		p("automountServiceAccountToken: false")
		p("securityContext:")
		p("  runAsNonRoot: true")
		p("  runAsUser: 10001")
		p("  seccompProfile: {type: RuntimeDefault}")
	}
	if i%7 == 0 {
		p("hostPID: true")
	}
	p("affinity:")
	p("  podAntiAffinity:")
	p("    preferredDuringSchedulingIgnoredDuringExecution:")
	p("    - weight: 100")
	p("      podAffinityTerm:")
	p("        topologyKey: kubernetes.io/hostname")
	p("        labelSelector: {matchLabels: {app: app-%d}}", i)
	p("tolerations:")
	p("- {key: dedicated, operator: Equal, value: team-%d, effect: NoSchedule}", i%50)
	p("containers:")
	p("- name: app")
	p("  image: registry.example.com/team-%d/app-%d:1.%d.0", i%50, i, i%10)
	p("  ports:")
	p("  - containerPort: 8080")
	p("    name: http")
	p("  env:")
	p("  - name: LOG_LEVEL")
	p("    value: info")
	p("  - name: SERVICE_NAME")
	p("    value: app-%d", i)
	if i%11 == 0 {
		p("  - name: DB_PASSWORD")
		p("    value: generated-password-%d", i)
	}
	p("  resources:")
	p("    requests: {cpu: 100m, memory: 128Mi}")
	if i%2 == 0 {
		p("    limits: {cpu: 500m, memory: 256Mi}")
	}
	p("  readinessProbe:")
	p("    httpGet: {path: /healthz, port: 8080}")
	p("    periodSeconds: 10")
	p("  securityContext:")
	if i%3 == 0 {
		p("    allowPrivilegeEscalation: false")
		p("    readOnlyRootFilesystem: true")
		p("    capabilities: {drop: [ALL]}")
	} else if i%7 == 0 {
		p("    privileged: true")
	} else {
		p("    capabilities: {add: [NET_ADMIN]}")
	}
	p("  volumeMounts:")
	p("  - {name: tmp, mountPath: /tmp}")
	if i%7 == 0 {
		p("  - {name: host, mountPath: /host}")
	}
	p("- name: sidecar")
	p("  image: registry.example.com/platform/proxy:2.%d", i%5)
	p("  resources:")
	p("    limits: {cpu: 100m, memory: 64Mi}")
	p("volumes:")
	p("- name: tmp")
	p("  emptyDir: {}")
	if i%7 == 0 {
		p("- name: host")
		p("  hostPath: {path: /var/lib}")
	}
}

func header(w io.Writer, apiVersion, kind string, i int) {
	fmt.Fprintf(w, "apiVersion: %s\nkind: %s\nmetadata:\n  name: app-%d\n  namespace: %s\n  labels:\n    app: app-%d\n    team: team-%d\n    app.kubernetes.io/part-of: shop\n  annotations:\n    owner: team-%d@example.com\n    description: \"Generated object %d of the synthetic shop: serves part of the storefront for team %d.\"\n    checksum/config: 5d41402abc4b2a76b9719d911017c592aa6b1d7c8f3e2a9b0c1d2e3f4a5b6c7d\n    app.kubernetes.io/managed-by: Helm\n    meta.helm.sh/release-name: shop-%d\n    meta.helm.sh/release-namespace: %s\n", apiVersion, kind, i, ns(i), i, i%50, i%50, i, i%50, i%50, ns(i))
}

func template(w io.Writer, i int, indent string) {
	fmt.Fprintf(w, "%stemplate:\n%s  metadata:\n%s    labels: {app: app-%d, team: team-%d}\n%s  spec:\n", indent, indent, indent, i, i%50, indent)
	podSpec(w, i, indent+"    ")
}

func deployment(w io.Writer, i int) {
	header(w, "apps/v1", "Deployment", i)
	fmt.Fprintf(w, "spec:\n  replicas: 3\n  selector:\n    matchLabels: {app: app-%d}\n", i)
	template(w, i, "  ")
}

func replicaSet(w io.Writer, i int) {
	header(w, "extensions/v1beta1", "ReplicaSet", i)
	fmt.Fprintf(w, "spec:\n  replicas: 2\n  selector:\n    matchLabels: {app: app-%d}\n", i)
	template(w, i, "  ")
}

func statefulSet(w io.Writer, i int) {
	header(w, "apps/v1", "StatefulSet", i)
	fmt.Fprintf(w, "spec:\n  serviceName: app-%d\n  selector:\n    matchLabels: {app: app-%d}\n", i, i)
	template(w, i, "  ")
}

func daemonSet(w io.Writer, i int) {
	header(w, "apps/v1", "DaemonSet", i)
	fmt.Fprintf(w, "spec:\n  selector:\n    matchLabels: {app: app-%d}\n", i)
	template(w, i, "  ")
}

func job(w io.Writer, i int) {
	header(w, "batch/v1", "Job", i)
	fmt.Fprintf(w, "spec:\n  backoffLimit: 2\n")
	template(w, i, "  ")
}

func cronJob(w io.Writer, i int) {
	header(w, "batch/v1", "CronJob", i)
	fmt.Fprintf(w, "spec:\n  schedule: \"*/5 * * * *\"\n  jobTemplate:\n    spec:\n")
	template(w, i, "      ")
}

func pod(w io.Writer, i int) {
	header(w, "v1", "Pod", i)
	fmt.Fprintf(w, "spec:\n")
	podSpec(w, i, "  ")
}

func service(w io.Writer, i int) {
	header(w, "v1", "Service", i)
	typ := "ClusterIP"
	if i%13 == 0 {
		typ = "LoadBalancer"
	}
	fmt.Fprintf(w, "spec:\n  type: %s\n  selector: {app: app-%d}\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n", typ, i)
}

func configMap(w io.Writer, i int) {
	header(w, "v1", "ConfigMap", i)
	fmt.Fprintf(w, "data:\n  LOG_LEVEL: info\n  FEATURE_FLAGS: \"search,checkout,recommendations\"\n  config.yaml: |\n    server:\n      port: 8080\n      timeout: 30s\n    upstream: http://app-%d.%s.svc:8080\n", (i+1)%1000, ns(i))
	if i%17 == 0 {
		fmt.Fprintf(w, "  API_TOKEN: generated-token-value-%d\n", i)
	}
}

func role(w io.Writer, i int) {
	header(w, "rbac.authorization.k8s.io/v1", "Role", i)
	fmt.Fprintf(w, "rules:\n- apiGroups: [\"\"]\n  resources: [configmaps, pods]\n  verbs: [get, list, watch]\n")
}

func networkPolicy(w io.Writer, i int) {
	header(w, "networking.k8s.io/v1", "NetworkPolicy", i)
	fmt.Fprintf(w, "spec:\n  podSelector:\n    matchLabels: {app: app-%d}\n  policyTypes: [Ingress]\n  ingress:\n  - from:\n    - podSelector: {matchLabels: {team: team-%d}}\n", i, i%50)
}
