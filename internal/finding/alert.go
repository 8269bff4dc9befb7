package finding

import "time"

// Alert is a detection: a rule matched one event, or a threshold of events.
// Its JSON form is stable (fields are only ever added): it is what
// `kustode audit replay -o json` prints, one alert per line.
type Alert struct {
	Rule     string   `json:"rule"`
	Title    string   `json:"title"`
	Severity Severity `json:"severity"`
	// MITRE lists ATT&CK technique IDs ("T1609").
	MITRE []string  `json:"mitre"`
	Tags  []string  `json:"tags,omitempty"`
	Time  time.Time `json:"time"`
	// AuditIDs are the audit events that caused the alert.
	AuditIDs  []string `json:"auditIDs"`
	User      string   `json:"user"`
	Groups    []string `json:"groups,omitempty"`
	SourceIPs []string `json:"sourceIPs,omitempty"`
	UserAgent string   `json:"userAgent,omitempty"`
	Verb      string   `json:"verb,omitempty"`
	Namespace string   `json:"namespace"`
	// Object is the resource (with subresource) and name the request was
	// about: "pods/exec web-1", "secrets" for a list.
	Object  string `json:"object"`
	Message string `json:"message"`
}
