// Package rbac evaluates Kubernetes RBAC offline: given Roles, ClusterRoles,
// RoleBindings and ClusterRoleBindings as objects (from manifests or a
// cluster dump), it answers the questions the API server's RBAC authorizer
// answers, with the same result: may this user do this (Allowed, like a
// SubjectAccessReview), who may do this (WhoCan), and what may this subject
// do (Rules).
//
// The package owns the evaluation rules and nothing else. It follows
// k8s.io/kubernetes plugin/pkg/auth/authorizer/rbac and
// pkg/registry/rbac/validation (rule resolution: which bindings apply to a
// user in a namespace), pkg/apis/rbac/v1/evaluation_helpers.go (rule
// matching) and pkg/controller/clusterroleaggregation (the rules an
// aggregated ClusterRole ends up with), reimplemented rather than imported
// so kustode does not depend on k8s.io/kubernetes. Where this package
// departs from what a first reading suggests, the comment at that spot says
// why the API server behaves so; test/e2e/rbac_test.go proves the result
// equals a real API server's SubjectAccessReview.
//
// RBAC is the only authorizer modelled. A real API server also runs others
// before it: the Node authorizer (users system:node:* in group
// system:nodes) and the system:masters superuser group. The latter needs no
// special case when the bootstrap ClusterRoleBinding cluster-admin is in the
// input, as it is in every cluster.
package rbac
