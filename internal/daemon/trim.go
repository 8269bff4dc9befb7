package daemon

import (
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// What the inventory drops from the objects it keeps, beyond managed fields
// and kubectl's last-applied annotation: the status, which no check reads
// and which changes far more often than anything they do read, and what the
// API server's admission adds to every pod, identical across pods, that
// says nothing of the pod's author's choices: the service-account token
// volume and its mounts, the default not-ready and unreachable tolerations,
// and the default termination-message settings. A pod keeps half its bytes.
// TestInventoryJudgesAsScan proves the checks' findings unchanged.

// trimObject drops status and admission defaults from a built-in object.
func trimObject(o runtime.Object) {
	switch o := o.(type) {
	case *corev1.Pod:
		o.Status = corev1.PodStatus{}
		trimPodSpec(&o.Spec, true)
	case *corev1.Namespace:
		o.Status = corev1.NamespaceStatus{}
	case *corev1.Service:
		o.Status = corev1.ServiceStatus{}
	case *corev1.ReplicationController:
		o.Status = corev1.ReplicationControllerStatus{}
		if o.Spec.Template != nil {
			trimPodSpec(&o.Spec.Template.Spec, false)
		}
	case *appsv1.Deployment:
		o.Status = appsv1.DeploymentStatus{}
		trimPodSpec(&o.Spec.Template.Spec, false)
	case *appsv1.ReplicaSet:
		o.Status = appsv1.ReplicaSetStatus{}
		trimPodSpec(&o.Spec.Template.Spec, false)
	case *appsv1.StatefulSet:
		o.Status = appsv1.StatefulSetStatus{}
		trimPodSpec(&o.Spec.Template.Spec, false)
	case *appsv1.DaemonSet:
		o.Status = appsv1.DaemonSetStatus{}
		trimPodSpec(&o.Spec.Template.Spec, false)
	case *batchv1.Job:
		o.Status = batchv1.JobStatus{}
		trimPodSpec(&o.Spec.Template.Spec, false)
	case *batchv1.CronJob:
		o.Status = batchv1.CronJobStatus{}
		trimPodSpec(&o.Spec.JobTemplate.Spec.Template.Spec, false)
	}
}

// Admission's additions, as the API server makes them.
const (
	// The ServiceAccount admission plugin's token volume, kube-api-access-
	// and five random characters, mounted into every container here.
	tokenVolumePrefix = "kube-api-access-"
	tokenMountPath    = "/var/run/secrets/kubernetes.io/serviceaccount" //nolint:gosec // a path, not a credential
	// Defaults of every container.
	defaultTerminationMessagePath   = "/dev/termination-log"
	defaultTerminationMessagePolicy = corev1.TerminationMessageReadFile
	// DefaultTolerationSeconds admission: pods tolerate a not-ready or
	// unreachable node for five minutes.
	defaultTolerationSeconds = 300
)

// trimPodSpec drops admission's additions from a pod's spec (pod) or from a
// pod template's (only the container defaults: admission does not touch
// templates).
func trimPodSpec(spec *corev1.PodSpec, pod bool) {
	for i := range spec.InitContainers {
		trimContainer(&spec.InitContainers[i])
	}
	for i := range spec.Containers {
		trimContainer(&spec.Containers[i])
	}
	for i := range spec.EphemeralContainers {
		c := &spec.EphemeralContainers[i].EphemeralContainerCommon
		if c.TerminationMessagePath == defaultTerminationMessagePath {
			c.TerminationMessagePath = ""
		}
		if c.TerminationMessagePolicy == defaultTerminationMessagePolicy {
			c.TerminationMessagePolicy = ""
		}
	}
	if !pod {
		return
	}
	spec.Tolerations = slices.DeleteFunc(spec.Tolerations, defaultToleration)
	i := slices.IndexFunc(spec.Volumes, tokenVolume)
	if i < 0 {
		return
	}
	name := spec.Volumes[i].Name
	spec.Volumes = slices.Delete(spec.Volumes, i, i+1)
	unmount := func(ms []corev1.VolumeMount) []corev1.VolumeMount {
		return slices.DeleteFunc(ms, func(m corev1.VolumeMount) bool {
			return m.Name == name && m.MountPath == tokenMountPath && m.ReadOnly && m.SubPath == "" && m.SubPathExpr == ""
		})
	}
	for i := range spec.InitContainers {
		spec.InitContainers[i].VolumeMounts = unmount(spec.InitContainers[i].VolumeMounts)
	}
	for i := range spec.Containers {
		spec.Containers[i].VolumeMounts = unmount(spec.Containers[i].VolumeMounts)
	}
	for i := range spec.EphemeralContainers {
		spec.EphemeralContainers[i].VolumeMounts = unmount(spec.EphemeralContainers[i].VolumeMounts)
	}
}

func trimContainer(c *corev1.Container) {
	if c.TerminationMessagePath == defaultTerminationMessagePath {
		c.TerminationMessagePath = ""
	}
	if c.TerminationMessagePolicy == defaultTerminationMessagePolicy {
		c.TerminationMessagePolicy = ""
	}
}

// defaultToleration reports a toleration DefaultTolerationSeconds admission
// adds.
func defaultToleration(t corev1.Toleration) bool {
	return (t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable) &&
		t.Operator == corev1.TolerationOpExists && t.Value == "" && t.Effect == corev1.TaintEffectNoExecute &&
		t.TolerationSeconds != nil && *t.TolerationSeconds == defaultTolerationSeconds
}

// tokenVolume reports the ServiceAccount admission plugin's token volume:
// a projected token, the cluster's CA bundle and the namespace, exactly.
func tokenVolume(v corev1.Volume) bool {
	p := v.Projected
	if !strings.HasPrefix(v.Name, tokenVolumePrefix) || p == nil || len(p.Sources) != 3 {
		return false
	}
	token, ca, ns := p.Sources[0].ServiceAccountToken, p.Sources[1].ConfigMap, p.Sources[2].DownwardAPI
	return token != nil && token.Path == "token" && token.Audience == "" &&
		ca != nil && ca.Name == "kube-root-ca.crt" && len(ca.Items) == 1 && ca.Items[0].Key == "ca.crt" && ca.Items[0].Path == "ca.crt" &&
		ns != nil && len(ns.Items) == 1 && ns.Items[0].Path == "namespace" &&
		ns.Items[0].FieldRef != nil && ns.Items[0].FieldRef.FieldPath == "metadata.namespace"
}
