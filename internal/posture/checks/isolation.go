package checks

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/posture"
)

// Defaults for the isolation checks; Options overrides them.
const (
	// DefaultSensitiveLabel marks namespaces whose pods must run sandboxed:
	// a namespace with this label set to "true".
	DefaultSensitiveLabel = "kustode.io/sensitive"
)

// DefaultSandboxHandlers are RuntimeClass handlers that isolate pods from the
// host kernel: gVisor and Kata Containers.
var DefaultSandboxHandlers = []string{"runsc", "gvisor", "kata", "kata-qemu", "kata-fc", "kata-clh", "kata-dragonball"}

// namespaceLabels maps namespace names to labels, from the Namespace objects
// of the scan.
func namespaceLabels(ix *posture.Index) map[string]map[string]string {
	return ix.Derived("namespace-labels", func(ix *posture.Index) any {
		m := map[string]map[string]string{}
		for _, o := range ix.Objects("Namespace") {
			m[o.Ref.Name] = o.Labels
		}
		return m
	}).(map[string]map[string]string)
}

// runtimeClassHandlers maps RuntimeClass names to handlers.
func runtimeClassHandlers(ix *posture.Index) map[string]string {
	return ix.Derived("runtimeclass-handlers", func(ix *posture.Index) any {
		m := map[string]string{}
		for _, o := range ix.Objects("RuntimeClass") {
			var rc struct {
				Handler string `json:"handler"`
			}
			if json.Unmarshal(o.Raw, &rc) == nil {
				m[o.Ref.Name] = rc.Handler
			}
		}
		return m
	}).(map[string]string)
}

// SensitiveNotSandboxed returns the check that flags workloads in namespaces
// labelled label=true whose pods do not use a RuntimeClass with one of the
// sandbox handlers.
func SensitiveNotSandboxed(label string, handlers []string) *posture.Check {
	return &posture.Check{
		ID:       "sensitive-not-sandboxed",
		Title:    "Sensitive workload not sandboxed",
		Severity: finding.Medium,
		Description: "The namespace is marked sensitive (" + label + `: "true"), but the pod shares the host kernel: ` +
			"a kernel exploit from another pod, or from this one, crosses the boundary. A sandboxed RuntimeClass " +
			"(gVisor, Kata Containers) gives the pod its own kernel.",
		Remediation: "Set runtimeClassName to a RuntimeClass whose handler is a sandbox (" + strings.Join(handlers, ", ") + ").",
		Frameworks:  finding.Frameworks{NSA: []string{"Pod security"}, MITRE: []string{"T1611"}},
		Workload:    true,
		Run: func(p *posture.Pass) {
			ns := posture.Namespace(p.Object)
			if namespaceLabels(p.Index)[ns][label] != "true" {
				return
			}
			rc := p.Pod.Spec.RuntimeClassName
			if rc == nil || *rc == "" {
				p.Reportf("namespace %s is sensitive and the pod has no runtimeClassName", ns)
				return
			}
			handler, known := runtimeClassHandlers(p.Index)[*rc]
			if !known {
				// The RuntimeClass is not in the input: judge by its name.
				handler = *rc
			}
			if !slices.ContainsFunc(handlers, func(h string) bool { return strings.Contains(handler, h) }) {
				p.Reportf("namespace %s is sensitive and RuntimeClass %s (handler %q) is not a sandbox", ns, *rc, handler)
			}
		},
	}
}

// peerAuthentication is security.istio.io PeerAuthentication.
type peerAuthentication struct {
	Spec struct {
		Selector *struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		MTLS *struct {
			Mode string `json:"mode"`
		} `json:"mtls"`
		PortLevelMtls map[string]struct {
			Mode string `json:"mode"`
		} `json:"portLevelMtls"`
	} `json:"spec"`
}

// istioRootNamespace is where a mesh-wide PeerAuthentication lives by
// default.
const istioRootNamespace = "istio-system"

// meshStrict reports whether a mesh-wide or namespace-wide PeerAuthentication
// makes mTLS STRICT for namespace ns.
func meshStrict(ix *posture.Index, ns string) (strict bool, anyPolicy bool) {
	modes := ix.Derived("istio-peerauth-modes", func(ix *posture.Index) any {
		m := map[string]string{} // namespace → mode of its selector-less policy
		for _, o := range ix.Objects("PeerAuthentication") {
			var pa peerAuthentication
			if json.Unmarshal(o.Raw, &pa) != nil || pa.Spec.Selector != nil {
				continue
			}
			mode := "PERMISSIVE" // Istio's default when unset or UNSET
			if pa.Spec.MTLS != nil && pa.Spec.MTLS.Mode != "" && pa.Spec.MTLS.Mode != "UNSET" {
				mode = pa.Spec.MTLS.Mode
			}
			m[posture.Namespace(o)] = mode
		}
		return m
	}).(map[string]string)
	if mode, ok := modes[ns]; ok {
		return mode == "STRICT", true
	}
	mode, ok := modes[istioRootNamespace]
	return ok && mode == "STRICT", ok
}

// istioEnabled reports whether a namespace's pods get Istio sidecars.
func istioEnabled(labels map[string]string) bool {
	return labels["istio-injection"] == "enabled" || labels["istio.io/rev"] != "" || labels["istio.io/dataplane-mode"] == "ambient"
}

// IstioMTLSNotStrict flags meshed namespaces where mTLS is optional, and
// PeerAuthentications that weaken it.
var IstioMTLSNotStrict = &posture.Check{
	ID:       "istio-mtls-not-strict",
	Title:    "Istio mTLS not STRICT",
	Severity: finding.Medium,
	Description: "In PERMISSIVE mode (Istio's default) sidecars also accept plain text, so any pod can call meshed services " +
		"without an identity and traffic can be read on the wire; DISABLE turns mTLS off.",
	Remediation: "Apply a PeerAuthentication with mtls.mode: STRICT in istio-system (mesh-wide) or in the namespace, and remove PERMISSIVE or DISABLE overrides.",
	Frameworks:  finding.Frameworks{NSA: []string{"Network separation and hardening"}, MITRE: []string{"T1557", "T1040"}},
	Kinds:       []string{"Namespace", "PeerAuthentication"},
	Run: func(p *posture.Pass) {
		switch p.Object.Ref.Kind {
		case "Namespace":
			if !istioEnabled(p.Object.Labels) {
				return
			}
			if strict, any := meshStrict(p.Index, p.Object.Ref.Name); !strict {
				if any {
					p.Reportf("meshed namespace whose effective PeerAuthentication is not STRICT")
				} else {
					p.Reportf("meshed namespace with no PeerAuthentication in the input: Istio defaults to PERMISSIVE")
				}
			}
		case "PeerAuthentication":
			var pa peerAuthentication
			if json.Unmarshal(p.Object.Raw, &pa) != nil {
				return
			}
			if pa.Spec.MTLS != nil && (pa.Spec.MTLS.Mode == "PERMISSIVE" || pa.Spec.MTLS.Mode == "DISABLE") {
				p.Reportf("mtls.mode is %s", pa.Spec.MTLS.Mode)
			}
			for port, m := range pa.Spec.PortLevelMtls {
				if m.Mode == "PERMISSIVE" || m.Mode == "DISABLE" {
					p.Reportf("port %s mtls.mode is %s", port, m.Mode)
				}
			}
		}
	},
}
