package kube

import (
	"encoding/json"

	corev1 "k8s.io/api/core/v1"

	"github.com/kustode/kustode/internal/finding"
)

// Object is one Kubernetes object as kustode's checks see it, whichever
// source it came from: a manifest file (Source set) or a live cluster.
type Object struct {
	Ref    finding.ObjectRef
	Source finding.Source
	// Labels and Annotations are the object's metadata.
	Labels      map[string]string
	Annotations map[string]string
	// Raw is the whole object as JSON. Checks decode the parts they need.
	Raw json.RawMessage
	// Template, when set, is a workload's pod template as PodTemplate
	// would decode it from Raw (see TypedPodTemplate): the posture engine
	// reads it instead. Read-only.
	Template *corev1.PodTemplateSpec
}
