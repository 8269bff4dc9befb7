// Package manifest reads Kubernetes objects from files, directories and
// standard input: multi-document YAML, JSON, and List kinds, each object
// with the file and line its document starts on.
//
// One bad document never stops the rest: Load returns every object it could
// read and, separately, one error per document or file it could not, each
// naming file:line, the reason and, where it can tell, the fix.
//
// Each document becomes JSON exactly as sigs.k8s.io/yaml would make it. The
// YAML manifests are usually written in (block mappings and sequences,
// one-line scalars and flow collections, block scalars) takes a fast path
// about ten times quicker (fastyaml.go); anything else, and every error,
// goes through sigs.k8s.io/yaml.
package manifest
