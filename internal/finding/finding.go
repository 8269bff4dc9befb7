package finding

import "fmt"

// ObjectRef names a Kubernetes object. Namespace is empty for cluster-scoped
// objects.
type ObjectRef struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
}

// String renders the reference as kind/namespace/name (kind/name when
// cluster-scoped).
func (o ObjectRef) String() string {
	if o.Namespace == "" {
		return fmt.Sprintf("%s/%s", o.Kind, o.Name)
	}
	return fmt.Sprintf("%s/%s/%s", o.Kind, o.Namespace, o.Name)
}

// Source is where an object was read from: a file and the 1-based line its
// document starts on. Both are empty for objects read from a live cluster.
type Source struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
}

// String renders file:line, or "" when there is no file.
func (s Source) String() string {
	switch {
	case s.File == "":
		return ""
	case s.Line == 0:
		return s.File
	default:
		return fmt.Sprintf("%s:%d", s.File, s.Line)
	}
}

// Frameworks maps a check to the compliance frameworks that ask for it.
// Empty fields mean the framework has no matching control.
type Frameworks struct {
	// PSS is the Pod Security Standards level whose control this is:
	// "baseline" or "restricted".
	PSS string `json:"pss,omitempty"`
	// CIS lists CIS Kubernetes Benchmark recommendation numbers ("5.2.2").
	CIS []string `json:"cis,omitempty"`
	// NSA lists sections of the NSA-CISA Kubernetes Hardening Guide.
	NSA []string `json:"nsa,omitempty"`
	// MITRE lists MITRE ATT&CK technique IDs ("T1611").
	MITRE []string `json:"mitre,omitempty"`
}

// Finding is one problem a posture check found in one object.
type Finding struct {
	CheckID     string     `json:"checkID"`
	Severity    Severity   `json:"severity"`
	Title       string     `json:"title"`
	Message     string     `json:"message"`
	Object      ObjectRef  `json:"object"`
	File        string     `json:"file,omitempty"`
	Line        int        `json:"line,omitempty"`
	Remediation string     `json:"remediation"`
	Frameworks  Frameworks `json:"frameworks"`
}
