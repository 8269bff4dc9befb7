// Package daemon is `kustode serve`: it builds every component from one
// config.Config and runs them until the context ends.
//
//   - Inventory: one informer per kind the posture checks need, built-in
//     kinds read through the typed API in protobuf, with trimmed caches (no
//     managed fields, status or admission defaults, Secrets as metadata
//     only, objects controlled by a workload kept as names only, the rest
//     encoded compactly until judged: see entry).
//   - Posture: a full evaluation once synced and every resync; between, only
//     changed objects and their dependants, judged on every CPU. Findings go
//     to the store, whose lifecycle (open, resolved, reopened) follows;
//     posture history is recorded at an interval.
//   - Detection: the audit webhook receiver and log follower from
//     internal/audit, and Kubernetes Warning Events and image pulls (Events,
//     selected by the API server), evaluated by the rules of
//     internal/detect; alerts are stored before a batch is accepted, so none
//     is lost to a store outage.
//   - Kubelet configurations (kubelet.readConfig, off by default): each
//     node's running kubelet configuration, read through the API server's
//     node proxy at start-up (before the first posture), every interval and
//     as nodes join, judged by the posture beside the inventory's objects.
//   - Coverage: what kustode cannot see, as alerts, /readyz detail and
//     metrics.
//   - The API of internal/web.
//
// Nothing is written into the cluster: serve's ClusterRole (PolicyRules,
// what deploy/ installs) is read-only. kubelet.readConfig needs more
// (KubeletPolicyRules: get on nodes/proxy, which also reaches the kubelet
// API), granted by a separate, opt-in ClusterRole.
package daemon
