// Package checks holds kustode's posture checks, one file per check or
// family, each a posture.Check value. All returns them; docs/checks is
// generated from them.
package checks

//go:generate go run ../../../hack/gencheckdocs -out ../../../docs/checks
