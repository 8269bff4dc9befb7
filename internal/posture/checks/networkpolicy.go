package checks

import (
	"encoding/json"
	"net/netip"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/posture"
)

// netpol is a decoded NetworkPolicy with what the checks need precomputed.
type netpol struct {
	name     string
	selector labels.Selector
	ingress  bool // policyTypes includes Ingress (the default)
	egress   bool // policyTypes includes Egress (default when spec.egress is set)
	spec     networkingv1.NetworkPolicySpec
}

// policiesByNamespace decodes every NetworkPolicy of the scan once.
func policiesByNamespace(ix *posture.Index) map[string][]netpol {
	return ix.Derived("networkpolicies-by-namespace", func(ix *posture.Index) any {
		m := map[string][]netpol{}
		for _, o := range ix.Objects("NetworkPolicy") {
			var np networkingv1.NetworkPolicy
			if err := json.Unmarshal(o.Raw, &np); err != nil {
				continue
			}
			sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
			if err != nil {
				continue // an invalid selector is rejected by the API server
			}
			p := netpol{name: o.Ref.Name, selector: sel, spec: np.Spec}
			if len(np.Spec.PolicyTypes) == 0 {
				p.ingress, p.egress = true, len(np.Spec.Egress) > 0
			}
			for _, t := range np.Spec.PolicyTypes {
				switch t {
				case networkingv1.PolicyTypeIngress:
					p.ingress = true
				case networkingv1.PolicyTypeEgress:
					p.egress = true
				}
			}
			ns := posture.Namespace(o)
			m[ns] = append(m[ns], p)
		}
		return m
	}).(map[string][]netpol)
}

var netpolFrameworks = finding.Frameworks{CIS: []string{"5.3.2"}, NSA: []string{"Network separation and hardening"}, MITRE: []string{"T1046", "T1210"}}

// NetpolWorkloadNotIsolated flags workloads whose pods no NetworkPolicy
// selects, per direction: their traffic is unrestricted.
var NetpolWorkloadNotIsolated = &posture.Check{
	ID:       "netpol-workload-not-isolated",
	Title:    "Pods not isolated by a NetworkPolicy",
	Severity: finding.Medium,
	Description: "No NetworkPolicy in the input selects the workload's pods for ingress, egress or both, so any pod " +
		"in the cluster can reach them, or they can reach anything. Judged across every input file together.",
	Remediation: "Add a default-deny NetworkPolicy to the namespace (podSelector: {}, policyTypes: [Ingress, Egress]) and policies that allow only the traffic the workload needs.",
	Frameworks:  netpolFrameworks,
	Workload:    true,
	Run: func(p *posture.Pass) {
		if p.Pod.Spec.HostNetwork {
			return // NetworkPolicy does not apply to host-network pods; pss-host-namespaces reports them
		}
		podLabels := labels.Set(p.Pod.Labels)
		var ingress, egress bool
		for _, np := range policiesByNamespace(p.Index)[posture.Namespace(p.Object)] {
			if np.selector.Matches(podLabels) {
				ingress = ingress || np.ingress
				egress = egress || np.egress
			}
		}
		switch {
		case !ingress && !egress:
			p.Reportf("no NetworkPolicy in namespace %s selects its pods (ingress and egress unrestricted)", posture.Namespace(p.Object))
		case !ingress:
			p.Reportf("no NetworkPolicy in namespace %s selects its pods for ingress", posture.Namespace(p.Object))
		case !egress:
			p.Reportf("no NetworkPolicy in namespace %s selects its pods for egress", posture.Namespace(p.Object))
		}
	},
}

// NetpolNamespaceNoDefaultDeny flags namespaces without default-deny
// policies.
var NetpolNamespaceNoDefaultDeny = &posture.Check{
	ID:       "netpol-namespace-no-default-deny",
	Title:    "Namespace without default-deny NetworkPolicy",
	Severity: finding.Medium,
	Description: "Without a policy that selects every pod and allows nothing, each new workload in the namespace starts " +
		"with unrestricted traffic until someone remembers to write its policy.",
	Remediation: "Add a NetworkPolicy with podSelector: {}, policyTypes: [Ingress, Egress] and no rules; allow needed traffic with further policies.",
	Frameworks:  netpolFrameworks,
	Kinds:       []string{"Namespace"},
	Run: func(p *posture.Pass) {
		var ingress, egress bool
		for _, np := range policiesByNamespace(p.Index)[p.Object.Ref.Name] {
			if !np.selector.Empty() {
				continue
			}
			ingress = ingress || (np.ingress && len(np.spec.Ingress) == 0)
			egress = egress || (np.egress && len(np.spec.Egress) == 0)
		}
		var missing []string
		if !ingress {
			missing = append(missing, "ingress")
		}
		if !egress {
			missing = append(missing, "egress")
		}
		if len(missing) > 0 {
			p.Reportf("no default-deny %s NetworkPolicy in the input", strings.Join(missing, " or "))
		}
	},
}

// NetpolAllowAll flags policy rules that admit every source or destination.
var NetpolAllowAll = &posture.Check{
	ID:          "netpol-allow-all",
	Title:       "NetworkPolicy rule allows everything",
	Severity:    finding.Medium,
	Description: "A rule with no peers, an ipBlock of 0.0.0.0/0 or ::/0, or a namespaceSelector of {} with no podSelector admits every address or every pod in the cluster, undoing the isolation the policy appears to give.",
	Remediation: "Name the peers: pods by label, namespaces by label, or specific CIDRs.",
	Frameworks:  netpolFrameworks,
	Kinds:       []string{"NetworkPolicy"},
	Run: func(p *posture.Pass) {
		var np networkingv1.NetworkPolicy
		if err := json.Unmarshal(p.Object.Raw, &np); err != nil {
			return
		}
		for i, r := range np.Spec.Ingress {
			if why := allowsEveryone(r.From); why != "" {
				p.Reportf("ingress rule %d admits %s", i+1, why)
			}
		}
		for i, r := range np.Spec.Egress {
			if why := allowsEveryone(r.To); why != "" {
				p.Reportf("egress rule %d admits %s", i+1, why)
			}
		}
	},
}

func allowsEveryone(peers []networkingv1.NetworkPolicyPeer) string {
	if len(peers) == 0 {
		return "every address (no peers listed)"
	}
	for _, peer := range peers {
		if peer.IPBlock != nil && openToAll(peer.IPBlock.CIDR) && len(peer.IPBlock.Except) == 0 {
			return "every address (ipBlock " + peer.IPBlock.CIDR + ")"
		}
		if peer.PodSelector == nil && peer.NamespaceSelector != nil && len(peer.NamespaceSelector.MatchLabels) == 0 && len(peer.NamespaceSelector.MatchExpressions) == 0 {
			return "every pod in every namespace (namespaceSelector: {})"
		}
	}
	return ""
}

// metadataAddress is the cloud instance-metadata service, which hands out
// node credentials on most clouds.
var metadataAddress = netip.MustParseAddr("169.254.169.254")

// NetpolMetadataEgress flags egress rules that leave the cloud metadata
// service reachable.
var NetpolMetadataEgress = &posture.Check{
	ID:       "netpol-metadata-egress",
	Title:    "Egress to the cloud metadata service allowed",
	Severity: finding.High,
	Description: "An egress rule admits 169.254.169.254, where cloud providers serve the node's credentials: " +
		"a compromised pod can take the node's cloud identity.",
	Remediation: "Add 169.254.169.254/32 to the ipBlock's except list, or list only the destinations the workload needs.",
	Frameworks:  finding.Frameworks{NSA: []string{"Network separation and hardening"}, MITRE: []string{"T1552.005"}},
	Kinds:       []string{"NetworkPolicy"},
	Run: func(p *posture.Pass) {
		var np networkingv1.NetworkPolicy
		if err := json.Unmarshal(p.Object.Raw, &np); err != nil {
			return
		}
		for i, r := range np.Spec.Egress {
			if !portsAdmitHTTP(r.Ports) {
				continue
			}
			if len(r.To) == 0 {
				p.Reportf("egress rule %d admits every destination, 169.254.169.254 included", i+1)
				continue
			}
			for _, peer := range r.To {
				if peer.IPBlock != nil && blockAdmits(peer.IPBlock, metadataAddress) {
					p.Reportf("egress rule %d ipBlock %s admits 169.254.169.254", i+1, peer.IPBlock.CIDR)
				}
			}
		}
	},
}

// portsAdmitHTTP reports whether a rule's ports admit TCP port 80, on which
// metadata services answer. No ports means all ports.
func portsAdmitHTTP(ports []networkingv1.NetworkPolicyPort) bool {
	if len(ports) == 0 {
		return true
	}
	for _, pp := range ports {
		if pp.Protocol != nil && *pp.Protocol != "TCP" {
			continue
		}
		if pp.Port == nil {
			return true
		}
		if pp.Port.Type == intstr.String {
			if pp.Port.StrVal == "http" {
				return true
			}
			continue
		}
		lo, hi := pp.Port.IntVal, pp.Port.IntVal
		if pp.EndPort != nil {
			hi = *pp.EndPort
		}
		if lo <= 80 && 80 <= hi {
			return true
		}
	}
	return false
}

func blockAdmits(b *networkingv1.IPBlock, addr netip.Addr) bool {
	prefix, err := netip.ParsePrefix(b.CIDR)
	if err != nil || !prefix.Contains(addr) {
		return false
	}
	for _, ex := range b.Except {
		if e, err := netip.ParsePrefix(ex); err == nil && e.Contains(addr) {
			return false
		}
	}
	return true
}
