package store

import (
	"time"

	"github.com/kustode/kustode/internal/finding"
)

// Status is where a stored finding is in its lifecycle.
type Status string

const (
	// StatusOpen means the last evaluation of the object reported the
	// finding.
	StatusOpen Status = "open"
	// StatusResolved means a later evaluation of the object (or its
	// deletion) no longer reported it. A resolved finding that comes back is
	// reopened: StatusOpen again, Reopened incremented, FirstSeen kept.
	StatusResolved Status = "resolved"
)

// Finding is a posture finding with its lifecycle. Its JSON form is the scan
// JSON (the embedded finding.Finding's fields, flattened) plus the lifecycle
// fields; it is what GET /api/v1/findings returns.
type Finding struct {
	finding.Finding
	// Key identifies the finding across evaluations: a hash of the check
	// ID, the object's kind, namespace and name, and the message.
	Key        string     `json:"key"`
	Status     Status     `json:"status"`
	FirstSeen  time.Time  `json:"firstSeen"`
	LastSeen   time.Time  `json:"lastSeen"`
	ResolvedAt *time.Time `json:"resolvedAt,omitempty"`
	// Reopened counts how often the finding came back after being resolved.
	Reopened int `json:"reopened"`
}

// FindingFilter selects stored findings. Zero fields match everything.
type FindingFilter struct {
	Namespace string
	CheckID   string
	// Severities lists the severities wanted; empty means all.
	Severities []finding.Severity
	Status     Status
	// Limit caps the result (newest LastSeen first); 0 means DefaultLimit.
	Limit int
}

// Scope names the objects one evaluation covered. Findings of objects outside
// the scope are left alone by SyncFindings.
type Scope struct {
	// All means the evaluation covered every object (a full resync): every
	// open finding not reported again is resolved.
	All bool
	// Objects are the objects evaluated (including deleted ones, whose
	// findings all resolve). Matched by kind, namespace and name; the
	// apiVersion is ignored.
	Objects []finding.ObjectRef
}

// SyncResult counts what SyncFindings changed.
type SyncResult struct {
	Opened   int `json:"opened"`
	Reopened int `json:"reopened"`
	Resolved int `json:"resolved"`
	Kept     int `json:"kept"`
}

// PosturePoint is the posture at one moment: open findings counted by
// severity (names as finding.Severity.String), check ID and namespace
// ("" for cluster-scoped objects).
type PosturePoint struct {
	Time        time.Time      `json:"time"`
	Open        int            `json:"open"`
	BySeverity  map[string]int `json:"bySeverity"`
	ByCheck     map[string]int `json:"byCheck"`
	ByNamespace map[string]int `json:"byNamespace"`
}

// AlertStatus is where a stored alert is in its lifecycle.
type AlertStatus string

const (
	// AlertOpen is a stored alert nobody has acknowledged yet.
	AlertOpen AlertStatus = "open"
	// AlertAcknowledged is an alert someone acknowledged (AckAlert); it
	// stays acknowledged.
	AlertAcknowledged AlertStatus = "acknowledged"
)

// Alert is a stored alert. Its JSON form is the replay JSON (the embedded
// finding.Alert's fields, flattened) plus id, status and acknowledgement; it
// is what GET /api/v1/alerts returns.
type Alert struct {
	finding.Alert
	ID      int64       `json:"id"`
	Status  AlertStatus `json:"status"`
	AckedBy string      `json:"ackedBy,omitempty"`
	AckedAt *time.Time  `json:"ackedAt,omitempty"`
}

// AlertFilter selects stored alerts. Zero fields match everything.
type AlertFilter struct {
	Rule       string
	Namespace  string
	Severities []finding.Severity
	Status     AlertStatus
	// Since keeps alerts whose Time is at or after it.
	Since time.Time
	// Limit caps the result (newest first); 0 means DefaultLimit.
	Limit int
}

// Exception exempts objects from posture checks; it is the API-managed
// counterpart of an entry in an exceptions file (see posture.Exception).
type Exception struct {
	ID int64 `json:"id"`
	// Checks are check IDs; "*" means every check.
	Checks []string `json:"checks"`
	// Kind, Namespace and Name are shell globs; empty matches all.
	Kind      string            `json:"kind,omitempty"`
	Namespace string            `json:"namespace,omitempty"`
	Name      string            `json:"name,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	Reason    string            `json:"reason"`
	Owner     string            `json:"owner"`
	// Expires is when the exception stops applying.
	Expires   time.Time `json:"expires"`
	CreatedBy string    `json:"createdBy"`
	CreatedAt time.Time `json:"createdAt"`
	// ExpiredAt is set when someone expired the exception early.
	ExpiredAt *time.Time `json:"expiredAt,omitempty"`
}

// Retention says how long stored records are kept; zero keeps forever.
type Retention struct {
	Alerts           time.Duration
	ResolvedFindings time.Duration
	History          time.Duration
}

// DefaultLimit is the most rows a query returns when its filter sets no Limit.
const DefaultLimit = 1000
