package checks

import (
	"encoding/json"
	"net/netip"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/posture"
)

// ServiceExposed flags Services reachable from outside the cluster network.
var ServiceExposed = &posture.Check{
	ID:          "service-exposed",
	Title:       "Service exposed outside the cluster",
	Severity:    finding.Medium,
	Description: "A NodePort Service opens a port on every node; a LoadBalancer Service usually opens one to the internet.",
	Remediation: "Use ClusterIP behind an ingress or gateway with authentication; if exposure is intended, restrict loadBalancerSourceRanges and record an exception.",
	Frameworks:  finding.Frameworks{NSA: []string{"Network separation and hardening"}, MITRE: []string{"T1133"}},
	Kinds:       []string{"Service"},
	Run: func(p *posture.Pass) {
		var svc corev1.Service
		if err := json.Unmarshal(p.Object.Raw, &svc); err != nil {
			return
		}
		switch svc.Spec.Type {
		case corev1.ServiceTypeNodePort:
			p.Reportf("type NodePort opens its ports on every node")
		case corev1.ServiceTypeLoadBalancer:
			ranges := svc.Spec.LoadBalancerSourceRanges
			switch {
			case len(ranges) == 0:
				p.Reportf("type LoadBalancer with no loadBalancerSourceRanges")
			case slices.ContainsFunc(ranges, openToAll):
				p.Reportf("type LoadBalancer whose loadBalancerSourceRanges admit every address")
			}
		}
	},
}

// openToAll reports whether a CIDR admits every address.
func openToAll(cidr string) bool {
	prefix, err := netip.ParsePrefix(strings.TrimSpace(cidr))
	return err == nil && prefix.Bits() == 0
}

// ConfigMapCredentials flags credentials stored in ConfigMaps.
var ConfigMapCredentials = &posture.Check{
	ID:          "configmap-credentials",
	Title:       "Credential in a ConfigMap",
	Severity:    finding.High,
	Description: "ConfigMaps are readable by far more identities than Secrets and are never encrypted at rest. The value is never reported.",
	Remediation: "Move the value into a Secret and rotate the exposed credential.",
	Frameworks:  finding.Frameworks{CIS: []string{"5.4.1"}, NSA: []string{"Secrets"}, MITRE: []string{"T1552.001"}},
	Kinds:       []string{"ConfigMap"},
	Run: func(p *posture.Pass) {
		var cm corev1.ConfigMap
		if err := json.Unmarshal(p.Object.Raw, &cm); err != nil {
			return
		}
		keys := make([]string, 0, len(cm.Data))
		for k := range cm.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if kind := credentialIn(k, cm.Data[k]); kind != "" {
				p.Reportf("key %s holds %s", k, kind)
			}
		}
	},
}
