package manifest

import (
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// kustomizationFiles are the names kustomize recognises, in its order.
var kustomizationFiles = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// isKustomization reports whether dir is a kustomize root.
func isKustomization(dir string) bool {
	for _, name := range kustomizationFiles {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}

// kustomize builds the kustomization in dir as `kustomize build` (and
// `kubectl apply -k`) would, with kustomize's default options: files outside
// dir may not be loaded and no plugins run. It returns each resulting object
// as a YAML document.
func kustomize(dir string) ([][]byte, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build: %w", err)
	}
	var docs [][]byte
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("kustomize build: %s: %w", r.CurId(), err)
		}
		docs = append(docs, y)
	}
	return docs, nil
}
