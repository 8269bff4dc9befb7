// Package web owns the HTTP API of `kustode serve`: JSON under /api/v1
// (findings, posture, alerts, exceptions, rules, checks), the health
// endpoints /healthz and /readyz, and /metrics. The dashboard will be served
// from here too.
//
// Every endpoint but /healthz requires a bearer token (no cookies, so no
// ambient credentials for a cross-site request to ride on; POST bodies must
// also be application/json). An Auth pairs an Authenticator with the
// Authorizer that decides for its users: a StaticToken (--api-token-file)
// with AllowAll, or the cluster's TokenReview with SubjectAccessReview on
// resources of the kustode.io API group, so that cluster RBAC grants access:
//
//	apiGroups: ["kustode.io"]
//	resources: ["findings", "alerts", "exceptions", "rules", "checks", "posture", "metrics", "readyz"]
//	verbs: ["get", "list"]             # read
//	verbs: ["update"]                  # acknowledge alerts, expire exceptions
//	verbs: ["create"]                  # create exceptions
//
// /readyz answers its status code to anyone (kubelet probes carry no token)
// and its conditions only to an authorized caller. Tokens are never logged
// or kept: the Kubernetes caches key on their SHA-256 digest.
//
// Errors are JSON {"error": "..."}; a 400 names the parameter or field at
// fault and what it allows; a 500 says nothing of the cause, which goes to
// the log.
package web
