package checks

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/kube"
	"github.com/kustode/kustode/internal/manifest"
	"github.com/kustode/kustode/internal/posture"
	"github.com/kustode/kustode/internal/testcorpus"
)

// knownBroken lists corpus files that really are not scannable manifests,
// with why. Any other file that fails to load or check is a kustode bug.
var knownBroken = map[string]string{
	"fixtures/FairwindsOps__polaris/test/checks/nakedPod/check.yaml":                                         "a Polaris check definition, not an object",
	"fixtures/FairwindsOps__polaris/test/checks/oneController/check.yaml":                                    "a Polaris check definition, not an object",
	"fixtures/FairwindsOps__polaris/test/checks/resourceRange/check.yaml":                                    "a Polaris check definition, not an object",
	"fixtures/FairwindsOps__polaris/test/checks/oneController/failure.yaml":                                  "StatefulSet without spec.template",
	"fixtures/FairwindsOps__polaris/test/checks/oneController/success.yaml":                                  "StatefulSet without spec.template",
	"fixtures/controlplaneio__kubesec/test/asset/form-prefix-file.json":                                      "an HTTP form body, not JSON",
	"fixtures/controlplaneio__kubesec/test/asset/form-prefix-not-file.json":                                  "an HTTP form body, not JSON",
	"fixtures/controlplaneio__kubesec/test/asset/form-prefix-file.yml":                                       "an HTTP form body, not YAML",
	"fixtures/controlplaneio__kubesec/test/asset/form-prefix-not-file.yml":                                   "an HTTP form body, not YAML",
	"fixtures/controlplaneio__kubesec/test/asset/invalid-input-pod-dump.json":                                "deliberately invalid input",
	"fixtures/controlplaneio__kubesec/test/asset/invalid-schema.yml":                                         "deliberately invalid schema",
	"fixtures/controlplaneio__kubesec/test/asset/multi.yml":                                                  "a document with a numeric metadata.name",
	"fixtures/stackrox__kube-linter/tests/checks/cel.yml":                                                    "Deployments without spec.template",
	"fixtures/stackrox__kube-linter/tests/checks/forbidden-annotation.yml":                                   "Deployments without spec.template",
	"fixtures/stackrox__kube-linter/tests/checks/minimum-three-replicas.yml":                                 "Deployments without spec.template",
	"fixtures/stackrox__kube-linter/tests/checks/no-rolling-update-strategy.yml":                             "Deployments without spec.template",
	"fixtures/stackrox__kube-linter/tests/checks/pdb-min-available.yaml":                                     "Deployments without spec.template",
	"fixtures/stackrox__kube-linter/tests/checks/required-annotation-email.yml":                              "Deployments without spec.template",
	"fixtures/stackrox__kube-linter/tests/checks/required-label-owner.yml":                                   "Deployments without spec.template",
	"fixtures/stackrox__kube-linter/tests/checks/sorted-keys.yaml":                                           "Deployments without spec.template",
	"fixtures/stackrox__kube-linter/tests/checks/use-namespace.yml":                                          "Deployments without spec.template",
	"real/madhuakula__kubernetes-goat/infrastructure/helm-tiller/pwnchart/templates/clusterrolebinding.yaml": "an unrendered Helm template",
	"real/madhuakula__kubernetes-goat/scenarios/metadata-db/Chart.yaml":                                      "a Helm Chart.yaml",
	"real/madhuakula__kubernetes-goat/scenarios/metadata-db/values.yaml":                                     "Helm values",
}

// TestCorpus scans every corpus manifest with every check: nothing panics,
// and nothing fails except the files that really are broken.
func TestCorpus(t *testing.T) {
	dir := testcorpus.Dir(t, "manifests")
	all, err := All(Options{})
	if err != nil {
		t.Fatal(err)
	}
	engine, err := posture.NewEngine(all)
	if err != nil {
		t.Fatal(err)
	}
	objs, loadErrs := manifest.Load([]string{dir}, nil)
	findings, checkErrs := engine.Run(objs)
	failed := map[string]bool{}
	for _, err := range append(loadErrs, checkErrs...) {
		var loc interface{ Location() finding.Source }
		if !errors.As(err, &loc) {
			t.Errorf("error without location: %v", err)
			continue
		}
		rel, _ := filepath.Rel(dir, loc.Location().File)
		failed[rel] = true
		if _, ok := knownBroken[rel]; !ok {
			t.Errorf("unexpected failure: %v", err)
		}
	}
	for f, why := range knownBroken {
		if !failed[f] {
			t.Errorf("%s (%s) no longer fails: remove it from knownBroken", f, why)
		}
	}
	if len(objs) < 1000 || len(findings) == 0 {
		t.Errorf("corpus gave %d objects and %d findings: is it complete?", len(objs), len(findings))
	}
	t.Logf("%d objects, %d findings, %d failing files", len(objs), len(findings), len(failed))
}

// TestBadPods checks BishopFox's badPods: every privileged, hostPID,
// hostNetwork, hostIPC and hostPath case, in all eight workload kinds, is
// flagged by the matching check, and the "nothing-allowed" control is clean
// of those findings.
func TestBadPods(t *testing.T) {
	root := filepath.Join(testcorpus.Dir(t, "manifests"), "fixtures", "BishopFox__badPods", "manifests")
	all, err := All(Options{})
	if err != nil {
		t.Fatal(err)
	}
	engine, err := posture.NewEngine(all)
	if err != nil {
		t.Fatal(err)
	}
	type want struct{ check, message string }
	var (
		priv     = want{"pss-privileged", "privileged"}
		hostPID  = want{"pss-host-namespaces", "hostPID=true"}
		hostNet  = want{"pss-host-namespaces", "hostNetwork=true"}
		hostIPC  = want{"pss-host-namespaces", "hostIPC=true"}
		hostPath = want{"pss-host-path-volumes", "hostPath"}
		rootPath = want{"hostpath-sensitive", "host path /"}
	)
	categories := map[string][]want{
		"priv":               {priv},
		"hostpid":            {hostPID},
		"hostnetwork":        {hostNet},
		"hostipc":            {hostIPC},
		"hostpath":           {hostPath, rootPath},
		"priv-and-hostpid":   {priv, hostPID},
		"everything-allowed": {priv, hostPID, hostNet, hostIPC, hostPath, rootPath},
		"nothing-allowed":    nil,
	}
	flaggedBy := []string{"pss-privileged", "pss-host-namespaces", "pss-host-path-volumes", "hostpath-sensitive"}
	kinds := []string{"Pod", "Deployment", "ReplicaSet", "ReplicationController", "StatefulSet", "DaemonSet", "Job", "CronJob"}
	for category, wants := range categories {
		t.Run(category, func(t *testing.T) {
			objs, errs := manifest.Load([]string{filepath.Join(root, category)}, nil)
			if len(errs) > 0 {
				t.Fatalf("load: %v", errs)
			}
			ix := posture.NewIndex(objs)
			var seen []string
			for i := range objs {
				o := &objs[i]
				if !kube.IsWorkload(o.Ref.Kind) {
					continue // the StatefulSet files also hold a Service
				}
				seen = append(seen, o.Ref.Kind)
				got, err := engine.RunObject(o, ix)
				if err != nil {
					t.Errorf("%s: %v", o.Source, err)
				}
				for _, w := range wants {
					if !slices.ContainsFunc(got, func(f finding.Finding) bool {
						return f.CheckID == w.check && strings.Contains(f.Message, w.message)
					}) {
						t.Errorf("%s %s: no %s finding mentioning %q", o.Source, o.Ref, w.check, w.message)
					}
				}
				if wants == nil {
					for _, f := range got {
						if slices.Contains(flaggedBy, f.CheckID) {
							t.Errorf("%s %s: control case flagged %s: %s", o.Source, o.Ref, f.CheckID, f.Message)
						}
					}
				}
			}
			for _, k := range kinds {
				if !slices.Contains(seen, k) {
					t.Errorf("no %s in %s: corpus incomplete or a kind was not read", k, category)
				}
			}
		})
	}
}
