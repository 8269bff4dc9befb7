package kube

import (
	"encoding/json"

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
}
