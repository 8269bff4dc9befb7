package checks

import (
	"encoding/json"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/posture"
)

// Control-plane and node hardening, judged from the files that configure
// them: the kube-apiserver static pod manifest (also visible in a live
// cluster as a mirror pod in kube-system), EncryptionConfiguration and
// KubeletConfiguration. CIS numbers follow the CIS Kubernetes Benchmark
// v1.9.

// apiserverFlags returns the flags of the kube-apiserver container of a pod,
// or nil when the pod does not run kube-apiserver. Both "--flag=value" and
// "--flag value" are understood; a flag given twice keeps its last value, as
// the API server's flag parsing does.
func apiserverFlags(p *posture.Pass) map[string]string {
	if p.Object.Ref.Kind != "Pod" || p.Pod == nil {
		return nil
	}
	for _, c := range p.Pod.Spec.Containers {
		argv := append(slices.Clone(c.Command), c.Args...)
		i := slices.IndexFunc(argv, func(a string) bool { return path.Base(a) == "kube-apiserver" })
		if i < 0 {
			continue
		}
		flags := map[string]string{}
		rest := argv[i+1:]
		for j := 0; j < len(rest); j++ {
			a := rest[j]
			if !strings.HasPrefix(a, "--") {
				continue
			}
			name, value, ok := strings.Cut(a[2:], "=")
			if !ok && j+1 < len(rest) && !strings.HasPrefix(rest[j+1], "--") {
				value = rest[j+1]
				j++
			}
			flags[name] = value
		}
		return flags
	}
	return nil
}

// apiserverCheck builds a check over kube-apiserver flags.
func apiserverCheck(id, title string, sev finding.Severity, cis []string, mitre []string, description, remediation string, judge func(flags map[string]string) []string) *posture.Check {
	return &posture.Check{
		ID: id, Title: title, Severity: sev, Description: description, Remediation: remediation,
		Frameworks: finding.Frameworks{CIS: cis, NSA: []string{"Control plane hardening"}, MITRE: mitre},
		Kinds:      []string{"Pod"},
		Run: func(p *posture.Pass) {
			flags := apiserverFlags(p)
			if flags == nil {
				return
			}
			for _, msg := range judge(flags) {
				p.Reportf("%s", msg)
			}
		},
	}
}

func listFlag(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// APIServerAnonymousAuth flags an API server that accepts anonymous requests.
var APIServerAnonymousAuth = apiserverCheck("apiserver-anonymous-auth", "API server accepts anonymous requests", finding.Medium,
	[]string{"1.2.1"}, []string{"T1078.001"},
	"Unless --anonymous-auth=false, requests without credentials are served as system:anonymous; one careless binding to it or to system:unauthenticated opens the cluster.",
	"Set --anonymous-auth=false, or on Kubernetes 1.32+ restrict anonymous access to the health endpoints with an AuthenticationConfiguration.",
	func(f map[string]string) []string {
		if f["anonymous-auth"] != "false" {
			return []string{"--anonymous-auth is not false"}
		}
		return nil
	})

// APIServerAlwaysAllow flags an API server that authorizes every request.
var APIServerAlwaysAllow = apiserverCheck("apiserver-authorization-mode", "API server authorization too weak", finding.Critical,
	[]string{"1.2.6", "1.2.7", "1.2.8"}, []string{"T1078"},
	"The authorization mode decides what each identity may do: AlwaysAllow (the default when the flag is absent) lets every authenticated identity do anything; without Node and RBAC, kubelets and workloads are not confined.",
	"Set --authorization-mode=Node,RBAC (or an AuthorizationConfiguration with Node and RBAC).",
	func(f map[string]string) []string {
		if _, ok := f["authorization-config"]; ok {
			return nil // structured authorization configuration: a separate file
		}
		modes := listFlag(f["authorization-mode"])
		var out []string
		if len(modes) == 0 || slices.Contains(modes, "AlwaysAllow") {
			out = append(out, "authorization mode allows every request (--authorization-mode is AlwaysAllow or unset)")
		}
		for _, m := range []string{"Node", "RBAC"} {
			if len(modes) > 0 && !slices.Contains(modes, m) {
				out = append(out, "--authorization-mode lacks "+m)
			}
		}
		return out
	})

// APIServerNoAudit flags an API server that keeps no audit trail.
var APIServerNoAudit = apiserverCheck("apiserver-no-audit", "API server audit logging off", finding.Medium,
	[]string{"1.2.16"}, []string{"T1562.008"},
	"Without --audit-log-path or --audit-webhook-config-file (and an --audit-policy-file) nothing records who did what: intrusions go unseen and cannot be investigated.",
	"Set --audit-policy-file and --audit-log-path (or --audit-webhook-config-file pointing at kustode).",
	func(f map[string]string) []string {
		_, logPath := f["audit-log-path"]
		_, hook := f["audit-webhook-config-file"]
		_, policy := f["audit-policy-file"]
		switch {
		case !logPath && !hook:
			return []string{"neither --audit-log-path nor --audit-webhook-config-file is set"}
		case !policy:
			return []string{"--audit-policy-file is not set, so no event is recorded"}
		}
		return nil
	})

// APIServerNoEncryption flags an API server that stores Secrets in etcd in
// plain text.
var APIServerNoEncryption = apiserverCheck("apiserver-no-encryption-at-rest", "Secrets not encrypted at rest", finding.High,
	[]string{"1.2.27"}, []string{"T1552"},
	"Without --encryption-provider-config, Secrets are stored in etcd unencrypted: anyone with an etcd backup or disk has every credential.",
	"Write an EncryptionConfiguration (KMS v2 preferred) and set --encryption-provider-config.",
	func(f map[string]string) []string {
		if _, ok := f["encryption-provider-config"]; !ok {
			return []string{"--encryption-provider-config is not set"}
		}
		return nil
	})

// APIServerProfiling flags profiling left on.
var APIServerProfiling = apiserverCheck("apiserver-profiling", "API server profiling enabled", finding.Low,
	[]string{"1.2.15"}, nil,
	"The profiling endpoints reveal internals and cost CPU; they are for debugging, not production.",
	"Set --profiling=false.",
	func(f map[string]string) []string {
		if f["profiling"] != "false" {
			return []string{"--profiling is not false"}
		}
		return nil
	})

// APIServerAdmission flags missing security admission plugins.
var APIServerAdmission = apiserverCheck("apiserver-admission-plugins", "Security admission plugin missing", finding.Medium,
	[]string{"1.2.14"}, []string{"T1611"},
	"NodeRestriction stops a compromised kubelet from modifying other nodes and their pods; PodSecurity (on by default since 1.25) enforces the Pod Security Standards per namespace.",
	"Add NodeRestriction to --enable-admission-plugins and remove PodSecurity from --disable-admission-plugins.",
	func(f map[string]string) []string {
		var out []string
		if !slices.Contains(listFlag(f["enable-admission-plugins"]), "NodeRestriction") {
			out = append(out, "NodeRestriction is not in --enable-admission-plugins")
		}
		if slices.Contains(listFlag(f["disable-admission-plugins"]), "PodSecurity") {
			out = append(out, "PodSecurity is disabled by --disable-admission-plugins")
		}
		return out
	})

// encryptionConfiguration is apiserver.config.k8s.io/v1 EncryptionConfiguration.
type encryptionConfiguration struct {
	Resources []struct {
		Resources []string                     `json:"resources"`
		Providers []map[string]json.RawMessage `json:"providers"`
	} `json:"resources"`
}

// EncryptionAtRestWeak judges the providers that protect Secrets.
var EncryptionAtRestWeak = &posture.Check{
	ID:       "encryption-config-weak",
	Title:    "Secrets encryption provider weak or missing",
	Severity: finding.High,
	Description: "The first provider listed for a resource encrypts new writes. identity first means no encryption; no entry " +
		"for secrets means they are not encrypted; aescbc is weaker than KMS v2 or aesgcm (padding-oracle prone, key on disk).",
	Remediation: "List secrets with a KMS v2 provider first (or aesgcm/secretbox with keys rotated), keep identity only last for reading old data, then rewrite all Secrets.",
	Frameworks:  finding.Frameworks{CIS: []string{"1.2.28"}, NSA: []string{"Secrets"}, MITRE: []string{"T1552"}},
	Kinds:       []string{"EncryptionConfiguration"},
	Run: func(p *posture.Pass) {
		var c encryptionConfiguration
		if err := json.Unmarshal(p.Object.Raw, &c); err != nil {
			return
		}
		for _, r := range c.Resources {
			if !slices.ContainsFunc(r.Resources, func(s string) bool { return s == "secrets" || s == "*.*" || s == "*." }) {
				continue
			}
			if len(r.Providers) == 0 {
				p.Reportf("secrets have no providers")
				return
			}
			first := r.Providers[0]
			switch {
			case has(first, "identity"):
				p.Reportf("the first provider for secrets is identity: new Secrets are stored unencrypted")
			case has(first, "aescbc"):
				p.Reportf("the first provider for secrets is aescbc; prefer kms (v2) or aesgcm")
			case has(first, "kms"):
				var kms struct {
					APIVersion string `json:"apiVersion"`
				}
				if json.Unmarshal(first["kms"], &kms) == nil && kms.APIVersion != "v2" {
					p.Reportf("the first provider for secrets is KMS v1 (deprecated); use apiVersion: v2")
				}
			}
			return
		}
		p.Reportf("secrets are not listed: they are stored unencrypted")
	},
}

func has(m map[string]json.RawMessage, k string) bool { _, ok := m[k]; return ok }

// kubeletConfiguration is the part of kubelet.config.k8s.io/v1beta1
// KubeletConfiguration the checks read. Unset fields take the v1beta1
// defaults: anonymous auth off, Webhook authorization, read-only port 0.
type kubeletConfiguration struct {
	Authentication struct {
		Anonymous struct {
			Enabled *bool `json:"enabled"`
		} `json:"anonymous"`
	} `json:"authentication"`
	Authorization struct {
		Mode string `json:"mode"`
	} `json:"authorization"`
	ReadOnlyPort          int32 `json:"readOnlyPort"`
	ProtectKernelDefaults bool  `json:"protectKernelDefaults"`
	RotateCertificates    bool  `json:"rotateCertificates"`
	ServerTLSBootstrap    bool  `json:"serverTLSBootstrap"`
}

func kubeletCheck(id, title string, sev finding.Severity, cis []string, description, remediation string, judge func(c *kubeletConfiguration) string) *posture.Check {
	return &posture.Check{
		ID: id, Title: title, Severity: sev, Description: description, Remediation: remediation,
		Frameworks: finding.Frameworks{CIS: cis, NSA: []string{"Worker node hardening"}, MITRE: []string{"T1609"}},
		Kinds:      []string{"KubeletConfiguration"},
		Run: func(p *posture.Pass) {
			var c kubeletConfiguration
			if err := json.Unmarshal(p.Object.Raw, &c); err != nil {
				return
			}
			if msg := judge(&c); msg != "" {
				p.Reportf("%s", msg)
			}
		},
	}
}

// Kubelet checks.
var (
	KubeletAnonymousAuth = kubeletCheck("kubelet-anonymous-auth", "Kubelet accepts anonymous requests", finding.High, []string{"4.2.1"},
		"An anonymous caller reaching the kubelet's port can, depending on authorization, list pods or run commands in them.",
		"Set authentication.anonymous.enabled: false.",
		func(c *kubeletConfiguration) string {
			if e := c.Authentication.Anonymous.Enabled; e != nil && *e {
				return "authentication.anonymous.enabled is true"
			}
			return ""
		})
	KubeletAlwaysAllow = kubeletCheck("kubelet-authorization-always-allow", "Kubelet authorizes every request", finding.High, []string{"4.2.2"},
		"With AlwaysAllow, anyone who authenticates to the kubelet may exec into its pods and read their logs.",
		"Set authorization.mode: Webhook.",
		func(c *kubeletConfiguration) string {
			if c.Authorization.Mode == "AlwaysAllow" {
				return "authorization.mode is AlwaysAllow"
			}
			return ""
		})
	KubeletReadOnlyPort = kubeletCheck("kubelet-read-only-port", "Kubelet read-only port open", finding.Medium, []string{"4.2.4"},
		"The read-only port serves pod specs and metrics without authentication.",
		"Set readOnlyPort: 0.",
		func(c *kubeletConfiguration) string {
			if c.ReadOnlyPort != 0 {
				return "readOnlyPort is " + strconv.Itoa(int(c.ReadOnlyPort))
			}
			return ""
		})
	KubeletProtectKernelDefaults = kubeletCheck("kubelet-protect-kernel-defaults", "Kubelet may change kernel settings", finding.Low, []string{"4.2.6"},
		"Without protectKernelDefaults the kubelet silently changes kernel parameters it disagrees with instead of failing.",
		"Set protectKernelDefaults: true and tune the kernel parameters the kubelet expects.",
		func(c *kubeletConfiguration) string {
			if !c.ProtectKernelDefaults {
				return "protectKernelDefaults is not true"
			}
			return ""
		})
	KubeletCertRotation = kubeletCheck("kubelet-cert-rotation", "Kubelet certificates not rotated", finding.Low, []string{"4.2.11", "4.2.12"},
		"Without rotation, kubelet client and serving certificates live until they expire, and a stolen one stays valid.",
		"Set rotateCertificates: true and serverTLSBootstrap: true (and approve serving CSRs).",
		func(c *kubeletConfiguration) string {
			var off []string
			if !c.RotateCertificates {
				off = append(off, "rotateCertificates")
			}
			if !c.ServerTLSBootstrap {
				off = append(off, "serverTLSBootstrap")
			}
			if len(off) > 0 {
				return strings.Join(off, " and ") + " not true"
			}
			return ""
		})
)
