// Package audit owns the intake of Kubernetes API server audit events: the
// typed Event every detector reads, its decoder, and the three ways events
// arrive.
//
//   - WebhookHandler receives the API server's webhook backend
//     (--audit-webhook-config-file): POSTed audit.k8s.io EventLists, batch
//     or blocking mode, optionally gzip-compressed, from an authenticated
//     sender.
//   - Follower tails the API server's log backend (--audit-log-path): JSON
//     lines, across rotation by rename and by truncation, resuming from a
//     persisted Position after a restart.
//   - Read replays saved events for investigation and tests: JSON lines,
//     EventList documents, gzip, and the exports of managed clusters (GKE
//     Cloud Audit Logs, AKS diagnostic logs, EKS CloudWatch Logs).
//
// All three hand decoded events to a Sink in batches and never stop on bad
// input: a record that cannot be decoded is counted, reported with where it
// came from (file:line, or record index) and skipped.
//
// The package decodes audit.k8s.io/v1 and v1beta1 events by field name;
// unknown fields and unknown API versions are tolerated. It does not import
// k8s.io/apiserver: the Event type here is trimmed to what detection needs,
// and request and response objects stay raw JSON until a rule asks for them.
package audit
