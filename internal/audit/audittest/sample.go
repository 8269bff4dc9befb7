// Package audittest holds realistic audit events for the tests and
// benchmarks of the packages that read them.
package audittest

import (
	"fmt"
	"time"
)

// SampleEvent returns the i-th of a family of realistic audit events, about
// 1.7 KB each on average, as the API server writes them: a kubelet patching
// pod status (level Request), a controller reading a Deployment (Metadata,
// with latency annotations) and a user creating a Deployment (Request).
func SampleEvent(i int) []byte {
	ts := time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC).Add(time.Duration(i) * time.Millisecond)
	recv := ts.Format("2006-01-02T15:04:05.000000Z")
	stage := ts.Add(1874 * time.Microsecond).Format("2006-01-02T15:04:05.000000Z")
	id := fmt.Sprintf("%08x-4e1d-4c5a-9b7e-%012x", i*2654435761%(1<<32), i)
	ns := []string{"payments", "checkout", "search", "platform-observability"}[i%4]
	pod := fmt.Sprintf("checkout-api-7d9c6b5f4-%05d", i%100000)
	switch i % 3 {
	case 0:
		node := fmt.Sprintf("ip-10-0-%d-%d.eu-west-1.compute.internal", i%200, i%250)
		return fmt.Appendf(nil, `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"%s","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/%s/pods/%s/status?fieldManager=kubelet","verb":"patch","user":{"username":"system:node:%s","groups":["system:nodes","system:authenticated"],"extra":{"authentication.kubernetes.io/credential-id":["X509SHA256=4f6b1e0d2c9a8b7e6f5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918070"]}},"sourceIPs":["10.0.%d.%d"],"userAgent":"kubelet/v1.31.4 (linux/amd64) kubernetes/a78aa47","objectRef":{"resource":"pods","namespace":"%s","name":"%s","apiVersion":"v1","subresource":"status"},"responseStatus":{"metadata":{},"code":200},"requestObject":{"metadata":{"uid":"b1946ac9-2e3f-4b5a-8c7d-%012x"},"status":{"$setElementOrder/conditions":[{"type":"Initialized"},{"type":"Ready"},{"type":"ContainersReady"},{"type":"PodScheduled"}],"conditions":[{"lastTransitionTime":"%s","status":"True","type":"Ready"},{"lastTransitionTime":"%s","status":"True","type":"ContainersReady"}],"containerStatuses":[{"containerID":"containerd://9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0","image":"registry.example.com/payments/checkout-api:2.14.3","name":"api","ready":true,"restartCount":0,"started":true,"state":{"running":{"startedAt":"%s"}}}]}},"requestReceivedTimestamp":"%s","stageTimestamp":"%s","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""}}`,
			id, ns, pod, node, i%200, i%250, ns, pod, i, recv[:19]+"Z", recv[:19]+"Z", recv[:19]+"Z", recv, stage)
	case 1:
		return fmt.Appendf(nil, `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"%s","stage":"ResponseComplete","requestURI":"/apis/apps/v1/namespaces/%s/deployments/checkout-api-%d","verb":"get","user":{"username":"system:serviceaccount:kube-system:deployment-controller","uid":"5f0c3a1e-6b2d-4c8e-9a7f-%012x","groups":["system:serviceaccounts","system:serviceaccounts:kube-system","system:authenticated"],"extra":{"authentication.kubernetes.io/credential-id":["JTI=0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"],"authentication.kubernetes.io/node-name":["ip-10-0-1-10.eu-west-1.compute.internal"],"authentication.kubernetes.io/pod-name":["kube-controller-manager-ip-10-0-1-10.eu-west-1.compute.internal"]}},"sourceIPs":["10.0.1.10"],"userAgent":"kube-controller-manager/v1.31.4 (linux/amd64) kubernetes/a78aa47/system:serviceaccount:kube-system:deployment-controller","objectRef":{"resource":"deployments","namespace":"%s","name":"checkout-api-%d","apiGroup":"apps","apiVersion":"v1"},"responseStatus":{"metadata":{},"status":"Failure","message":"deployments.apps \"checkout-api-%d\" not found","reason":"NotFound","details":{"name":"checkout-api-%d","group":"apps","kind":"deployments"},"code":404},"requestReceivedTimestamp":"%s","stageTimestamp":"%s","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed by ClusterRoleBinding \"system:controller:deployment-controller\" of ClusterRole \"system:controller:deployment-controller\" to ServiceAccount \"deployment-controller/kube-system\"","apiserver.latency.k8s.io/etcd":"1.104817ms","apiserver.latency.k8s.io/total":"1.874016ms","apiserver.latency.k8s.io/response-write":"18.6µs"}}`,
			id, ns, i, i, ns, i, i, i, recv, stage)
	default:
		return fmt.Appendf(nil, `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"%s","stage":"ResponseComplete","requestURI":"/apis/apps/v1/namespaces/%s/deployments?fieldManager=kubectl-client-side-apply\u0026fieldValidation=Strict","verb":"create","user":{"username":"alice@example.com","groups":["platform-admins","system:authenticated"]},"sourceIPs":["203.0.113.%d","10.0.3.7"],"userAgent":"kubectl/v1.31.1 (darwin/arm64) kubernetes/948afe5","objectRef":{"resource":"deployments","namespace":"%s","name":"web-%d","apiGroup":"apps","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestObject":{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"web-%d","namespace":"%s","labels":{"app.kubernetes.io/name":"web"},"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\"}}\n"}},"spec":{"replicas":3,"selector":{"matchLabels":{"app.kubernetes.io/name":"web"}},"template":{"metadata":{"labels":{"app.kubernetes.io/name":"web"}},"spec":{"serviceAccountName":"web","containers":[{"name":"web","image":"registry.example.com/storefront/web:1.9.0","resources":{"limits":{"cpu":"500m","memory":"256Mi"}},"securityContext":{"runAsNonRoot":true,"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}]}}}},"requestReceivedTimestamp":"%s","stageTimestamp":"%s","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed by ClusterRoleBinding \"platform-admins\" of ClusterRole \"cluster-admin\" to Group \"platform-admins\"","pod-security.kubernetes.io/enforce-policy":"restricted:latest"}}`,
			id, ns, i%250, ns, i, i, ns, recv, stage)
	}
}

// SampleLines returns n sample events, one per line.
func SampleLines(n int) []byte {
	var b []byte
	for i := range n {
		b = append(b, SampleEvent(i)...)
		b = append(b, '\n')
	}
	return b
}

// SampleEventList returns n sample events as an EventList, as the webhook
// backend posts them.
func SampleEventList(n int) []byte {
	b := []byte(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[`)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, SampleEvent(i)...)
	}
	return append(b, "]}"...)
}
