package rbac

import (
	_ "embed"
	"encoding/json"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/kube"
)

// bootstrapRoles are cluster-admin, admin, edit and view as kube-apiserver
// v1.37 serves them, aggregated (hack/genbootstraproles writes the file).
//
//go:embed bootstrap-roles.yaml
var bootstrapRoles string

// WithBuiltinRoles returns objs plus the built-in user-facing ClusterRoles
// (cluster-admin, admin, edit, view) that objs does not define. Manifests
// bind these roles without containing them, because every cluster has
// them; a live cluster's listing already includes them.
func WithBuiltinRoles(objs []kube.Object) []kube.Object {
	defined := map[string]bool{}
	for _, o := range objs {
		if o.Ref.Kind == "ClusterRole" {
			defined[o.Ref.Name] = true
		}
	}
	out := objs
	for _, doc := range strings.Split(bootstrapRoles, "\n---\n")[1:] {
		raw, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			panic("rbac: embedded bootstrap-roles.yaml: " + err.Error()) // generated file: a test covers it
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Metadata   struct {
				Name   string            `json:"name"`
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(raw, &meta); err != nil {
			panic("rbac: embedded bootstrap-roles.yaml: " + err.Error())
		}
		if defined[meta.Metadata.Name] {
			continue
		}
		out = append(out, kube.Object{
			Ref:    finding.ObjectRef{APIVersion: meta.APIVersion, Kind: "ClusterRole", Name: meta.Metadata.Name},
			Labels: meta.Metadata.Labels,
			Raw:    raw,
		})
	}
	return out
}
