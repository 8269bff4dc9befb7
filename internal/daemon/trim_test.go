package daemon

import (
	"encoding/json"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kustode/kustode/internal/kube"
)

// servedPod is a pod as the API server serves it after admission: the
// service-account token volume mounted into each container, the default
// tolerations and container defaults, and a status. Its author asked for a
// privileged container, a hostPath and a toleration of their own.
const servedPod = `{
  "apiVersion": "v1", "kind": "Pod",
  "metadata": {"name": "web", "namespace": "shop", "uid": "6a1e0c1f-8d8e-4c8a-9d57-0c3e8f0e6b1a", "resourceVersion": "4242",
    "creationTimestamp": "2026-11-26T07:00:00Z", "labels": {"app": "web"}},
  "spec": {
    "volumes": [
      {"name": "data", "hostPath": {"path": "/var/lib/web", "type": ""}},
      {"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}},
      {"name": "vault-token", "projected": {"sources": [{"serviceAccountToken": {"audience": "vault", "expirationSeconds": 600, "path": "token"}}]}}
    ],
    "containers": [
      {"name": "web", "image": "nginx:1.27", "resources": {},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "vault-token", "mountPath": "/vault"},
          {"name": "kube-api-access-x7k2p", "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent",
        "securityContext": {"privileged": true}},
      {"name": "log", "image": "busybox:1.36", "resources": {},
        "volumeMounts": [{"name": "kube-api-access-x7k2p", "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
        "terminationMessagePath": "/tmp/why", "terminationMessagePolicy": "FallbackToLogsOnError", "imagePullPolicy": "IfNotPresent"}
    ],
    "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
    "serviceAccountName": "default", "serviceAccount": "default", "nodeName": "node-1", "securityContext": {},
    "schedulerName": "default-scheduler",
    "tolerations": [
      {"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"},
      {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
      {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 600}
    ],
    "priority": 0, "enableServiceLinks": true, "preemptionPolicy": "PreemptLowerPriority"
  },
  "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": null,
    "lastTransitionTime": "2026-11-26T07:00:05Z"}], "hostIP": "10.0.0.1", "podIP": "10.244.0.7",
    "startTime": "2026-11-26T07:00:00Z", "containerStatuses": [{"name": "web", "state": {"running": {"startedAt": "2026-11-26T07:00:04Z"}},
    "lastState": {}, "ready": true, "restartCount": 0, "image": "nginx:1.27", "imageID": "docker.io/library/nginx@sha256:0123", "containerID": "containerd://abc", "started": true}],
    "qosClass": "BestEffort"}
}`

// Admission's additions go, and only they: the author's toleration,
// projected token and termination settings stay; the findings do not
// change.
func TestTrimObject(t *testing.T) {
	var pod corev1.Pod
	if err := json.Unmarshal([]byte(servedPod), &pod); err != nil {
		t.Fatal(err)
	}
	before, _ := pod.Marshal()
	untrimmed := pod.DeepCopy()
	trimObject(&pod)
	after, _ := pod.Marshal()
	t.Logf("protobuf: %d bytes served, %d kept", len(before), len(after))

	s := pod.Spec
	if pod.Status.Phase != "" || len(pod.Status.ContainerStatuses) != 0 {
		t.Errorf("status kept: %+v", pod.Status)
	}
	var volumes []string
	for _, v := range s.Volumes {
		volumes = append(volumes, v.Name)
	}
	if !slices.Equal(volumes, []string{"data", "vault-token"}) {
		t.Errorf("volumes %v, want the token volume gone and the author's kept", volumes)
	}
	if len(s.Containers[0].VolumeMounts) != 2 || len(s.Containers[1].VolumeMounts) != 0 {
		t.Errorf("mounts %+v, want the token volume's gone", s.Containers)
	}
	if len(s.Tolerations) != 2 || s.Tolerations[0].Key != "dedicated" || *s.Tolerations[1].TolerationSeconds != 600 {
		t.Errorf("tolerations %+v, want the default one gone", s.Tolerations)
	}
	if c := s.Containers[0]; c.TerminationMessagePath != "" || c.TerminationMessagePolicy != "" {
		t.Errorf("default termination message settings kept: %+v", c)
	}
	if c := s.Containers[1]; c.TerminationMessagePath != "/tmp/why" || c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
		t.Errorf("the author's termination message settings dropped: %+v", c)
	}

	engine := checksEngine(t)
	gvk := schema.GroupVersionKind{Version: "v1", Kind: "Pod"}
	judge := func(p *corev1.Pod) []string {
		o, err := kube.FromTyped(gvk, p)
		if err != nil {
			t.Fatal(err)
		}
		fs, errs := engine.Run([]kube.Object{o})
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		return describeFindings(fs)
	}
	want, got := judge(untrimmed), judge(&pod)
	if len(want) < 5 || !slices.Equal(want, got) {
		t.Errorf("findings changed by trimming:\n%v\n%v", want, got)
	}
}
