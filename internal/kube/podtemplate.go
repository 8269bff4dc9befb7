package kube

import (
	"encoding/json"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// WorkloadKinds lists the kinds PodTemplate understands, which is every
// built-in kind that runs pods.
var WorkloadKinds = []string{
	"Pod", "Deployment", "ReplicaSet", "ReplicationController", "StatefulSet",
	"DaemonSet", "Job", "CronJob", "PodTemplate",
}

// IsWorkload reports whether kind runs pods (see WorkloadKinds).
func IsWorkload(kind string) bool { return slices.Contains(WorkloadKinds, kind) }

// The shapes that hold a pod template. Decoding structurally rather than
// through a typed scheme is what makes old apiVersions work: a Deployment
// in extensions/v1beta1 or apps/v1beta2 has the same spec.template as in
// apps/v1, but the current client libraries no longer know those versions.
type (
	templateShape struct {
		Spec struct {
			Template *corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	cronJobShape struct {
		Spec struct {
			JobTemplate struct {
				Spec struct {
					Template *corev1.PodTemplateSpec `json:"template"`
				} `json:"spec"`
			} `json:"jobTemplate"`
		} `json:"spec"`
	}
	podTemplateShape struct {
		Template *corev1.PodTemplateSpec `json:"template"`
	}
)

// PodTemplate returns the pod template of a workload object given as JSON:
// a Pod's own metadata and spec, spec.template of the controllers,
// spec.jobTemplate.spec.template of a CronJob, template of a PodTemplate.
// ok is false for a kind that is not a workload. A workload without a
// template yields an error naming the missing field.
func PodTemplate(kind string, raw []byte) (tmpl *corev1.PodTemplateSpec, ok bool, err error) {
	switch kind {
	case "Pod":
		var pod corev1.Pod
		if err := json.Unmarshal(raw, &pod); err != nil {
			return nil, true, fmt.Errorf("decode Pod: %w", err)
		}
		return &corev1.PodTemplateSpec{ObjectMeta: pod.ObjectMeta, Spec: pod.Spec}, true, nil
	case "Deployment", "ReplicaSet", "ReplicationController", "StatefulSet", "DaemonSet", "Job":
		var s templateShape
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, true, fmt.Errorf("decode %s: %w", kind, err)
		}
		if s.Spec.Template == nil {
			return nil, true, fmt.Errorf("%s has no spec.template", kind)
		}
		return s.Spec.Template, true, nil
	case "CronJob":
		var s cronJobShape
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, true, fmt.Errorf("decode CronJob: %w", err)
		}
		if s.Spec.JobTemplate.Spec.Template == nil {
			return nil, true, fmt.Errorf("CronJob has no spec.jobTemplate.spec.template")
		}
		return s.Spec.JobTemplate.Spec.Template, true, nil
	case "PodTemplate":
		var s podTemplateShape
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, true, fmt.Errorf("decode PodTemplate: %w", err)
		}
		if s.Template == nil {
			return nil, true, fmt.Errorf("PodTemplate has no template")
		}
		return s.Template, true, nil
	}
	return nil, false, nil
}

// TypedPodTemplate is PodTemplate for a typed object of the current API
// versions (as client-go decodes them): the template it holds, shared with
// it, or nil for any other type. An Object made from a typed workload can
// carry it (Object.Template), so that judging it needs no JSON round trip.
func TypedPodTemplate(o any) *corev1.PodTemplateSpec {
	switch o := o.(type) {
	case *corev1.Pod:
		return &corev1.PodTemplateSpec{ObjectMeta: o.ObjectMeta, Spec: o.Spec}
	case *appsv1.Deployment:
		return &o.Spec.Template
	case *appsv1.ReplicaSet:
		return &o.Spec.Template
	case *appsv1.StatefulSet:
		return &o.Spec.Template
	case *appsv1.DaemonSet:
		return &o.Spec.Template
	case *batchv1.Job:
		return &o.Spec.Template
	case *batchv1.CronJob:
		return &o.Spec.JobTemplate.Spec.Template
	case *corev1.ReplicationController:
		return o.Spec.Template
	case *corev1.PodTemplate:
		return &o.Template
	}
	return nil
}
