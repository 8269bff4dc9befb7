// Package tools pins the developer tools kustode's Makefile runs (see the
// tool directives in go.mod), apart from the main module so that their
// dependencies never reach kustode's own build. Run one with
// `go tool -modfile=hack/tools/go.mod NAME`.
package tools
