package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Level is how much of a request the API server's audit policy recorded.
type Level string

// The audit levels of audit.k8s.io/v1.
const (
	LevelNone            Level = "None"
	LevelMetadata        Level = "Metadata"
	LevelRequest         Level = "Request"
	LevelRequestResponse Level = "RequestResponse"
)

// Stage is the point in handling a request at which an event was emitted.
type Stage string

// The stages of audit.k8s.io/v1.
const (
	StageRequestReceived  Stage = "RequestReceived"
	StageResponseStarted  Stage = "ResponseStarted"
	StageResponseComplete Stage = "ResponseComplete"
	StagePanic            Stage = "Panic"
)

// Event is one audit.k8s.io/v1 (or v1beta1) audit event, trimmed to what
// detection reads. JSON field names are those of the API server, so an Event
// marshals back to a valid audit event.
//
// Events share no memory with the buffers they were decoded from: they are
// safe to keep after a Sink returns.
type Event struct {
	// Kind and APIVersion are kept as sent ("Event", "audit.k8s.io/v1");
	// they are not validated.
	Kind       string `json:"kind,omitempty"`
	APIVersion string `json:"apiVersion,omitempty"`

	Level      Level  `json:"level"`
	AuditID    string `json:"auditID"`
	Stage      Stage  `json:"stage"`
	RequestURI string `json:"requestURI"`
	Verb       string `json:"verb"`

	User             UserInfo  `json:"user"`
	ImpersonatedUser *UserInfo `json:"impersonatedUser,omitempty"`
	SourceIPs        []string  `json:"sourceIPs,omitempty"`
	UserAgent        string    `json:"userAgent,omitempty"`

	// ObjectRef is the zero value for non-resource requests (/healthz).
	ObjectRef ObjectReference `json:"objectRef,omitzero"`
	// ResponseStatus is the zero value when the event has none, as at
	// stage RequestReceived.
	ResponseStatus ResponseStatus `json:"responseStatus,omitzero"`

	// RequestObject and ResponseObject are the raw JSON the audit policy
	// recorded (levels Request and RequestResponse), nil when absent or
	// null. Decode them only when needed, with DecodeRequestObject and
	// DecodeResponseObject: they are most of an event's bytes.
	RequestObject  json.RawMessage `json:"requestObject,omitempty"`
	ResponseObject json.RawMessage `json:"responseObject,omitempty"`

	RequestReceivedTimestamp time.Time `json:"requestReceivedTimestamp,omitzero"`
	StageTimestamp           time.Time `json:"stageTimestamp,omitzero"`
	// LegacyTimestamp is audit.k8s.io/v1beta1's deprecated "timestamp",
	// which the oldest logs carry instead of the two above.
	LegacyTimestamp time.Time `json:"timestamp,omitzero"`

	// Annotations hold what admission and authorization added, such as
	// authorization.k8s.io/decision and pod-security.kubernetes.io/*.
	Annotations map[string]string `json:"annotations,omitempty"`
}

// UserInfo is an authenticated identity (authentication.k8s.io/v1).
type UserInfo struct {
	Username string              `json:"username,omitempty"`
	UID      string              `json:"uid,omitempty"`
	Groups   []string            `json:"groups,omitempty"`
	Extra    map[string][]string `json:"extra,omitempty"`
}

// ObjectReference names the object a request was about.
type ObjectReference struct {
	Resource        string `json:"resource,omitempty"`
	Namespace       string `json:"namespace,omitempty"`
	Name            string `json:"name,omitempty"`
	UID             string `json:"uid,omitempty"`
	APIGroup        string `json:"apiGroup,omitempty"`
	APIVersion      string `json:"apiVersion,omitempty"`
	ResourceVersion string `json:"resourceVersion,omitempty"`
	Subresource     string `json:"subresource,omitempty"`
}

// ResponseStatus is the part of the metav1.Status of a response that audit
// events carry. Code is the HTTP status code.
type ResponseStatus struct {
	Code    int32  `json:"code,omitempty"`
	Status  string `json:"status,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// Time is when the event's stage was reached, or when the request was
// received if the event carries no stage timestamp, or the v1beta1
// timestamp. It is the zero time for events that carry none.
func (e *Event) Time() time.Time {
	switch {
	case !e.StageTimestamp.IsZero():
		return e.StageTimestamp
	case !e.RequestReceivedTimestamp.IsZero():
		return e.RequestReceivedTimestamp
	}
	return e.LegacyTimestamp
}

// DecodeRequestObject unmarshals the request object into v with
// encoding/json. It reports false, and leaves v alone, when the event has no
// request object.
func (e *Event) DecodeRequestObject(v any) (bool, error) {
	return decodeObject("request object", e.RequestObject, v)
}

// DecodeResponseObject unmarshals the response object into v with
// encoding/json. It reports false, and leaves v alone, when the event has no
// response object.
func (e *Event) DecodeResponseObject(v any) (bool, error) {
	return decodeObject("response object", e.ResponseObject, v)
}

func decodeObject(what string, raw json.RawMessage, v any) (bool, error) {
	if len(raw) == 0 {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("decode %s: %w", what, err)
	}
	return true, nil
}

// checkEvent rejects what decoded as JSON but is no audit event: another
// kind, or an object with none of the fields every event has. Events inside
// an EventList usually carry no kind, so a missing kind is accepted.
func checkEvent(e *Event) error {
	if e.Kind != "" && e.Kind != "Event" {
		return fmt.Errorf("kind %q is not an audit Event", e.Kind)
	}
	if e.Kind == "" && e.AuditID == "" && e.Verb == "" && e.RequestURI == "" && e.Stage == "" && e.Level == "" {
		return errors.New("not an audit event: no kind, auditID, verb, requestURI, stage or level")
	}
	return nil
}
