// Package detect evaluates detection rules over Kubernetes audit events and
// raises alerts.
//
// Rules are data: YAML files with CEL conditions (the expression language
// Kubernetes itself uses), compiled once at load, with errors that name the
// file, line and rule. The engine indexes rules by verb and resource so that
// most rules never run for most events, applies structured exceptions, and
// keeps bounded state for the stateful kinds: threshold (N matching events
// by one key within a window) and firstSeen (a key not seen during a
// learning period). The default rule pack is embedded (rules/*.yaml) and
// ships with rule tests (see RunTests).
package detect

//go:generate go run ../../hack/genruledocs -out ../../docs/rules
