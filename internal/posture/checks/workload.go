package checks

import (
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/posture"
)

// containers returns every container of a pod spec, init and ephemeral
// containers included, with the field path that names it.
func containers(spec *corev1.PodSpec) []containerRef {
	var out []containerRef
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		out = append(out, containerRef{kind: "init container", c: c})
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		out = append(out, containerRef{kind: "container", c: c})
	}
	for i := range spec.EphemeralContainers {
		c := corev1.Container(spec.EphemeralContainers[i].EphemeralContainerCommon)
		out = append(out, containerRef{kind: "ephemeral container", c: &c})
	}
	return out
}

type containerRef struct {
	kind string
	c    *corev1.Container
}

// sensitiveHostPaths are host paths whose exposure gives a container the
// node: runtime sockets, the root of the node's files, process and kernel
// views, and kubelet and etcd state.
var sensitiveHostPaths = []string{
	"/", "/etc", "/proc", "/sys", "/boot", "/dev", "/root", "/home",
	"/var/run/docker.sock", "/run/docker.sock", "/run/containerd", "/var/run/containerd",
	"/run/crio", "/var/run/crio", "/var/run/cri-dockerd.sock",
	"/var/lib/kubelet", "/var/lib/etcd", "/etc/kubernetes", "/var/lib/docker", "/var/lib/containerd",
}

// sensitiveHostPath returns the sensitive path p exposes: p itself or an
// ancestor of one (mounting /var exposes /var/lib/kubelet), or a path under
// one. "" when p is not sensitive.
func sensitiveHostPath(p string) string {
	p = path.Clean("/" + p)
	for _, s := range sensitiveHostPaths {
		if p == s || strings.HasPrefix(s, p+"/") || p == "/" {
			return s
		}
		if s != "/" && strings.HasPrefix(p, s+"/") {
			return s
		}
	}
	return ""
}

// HostPathSensitive flags hostPath volumes that expose the node.
var HostPathSensitive = &posture.Check{
	ID:       "hostpath-sensitive",
	Title:    "Sensitive host path mounted",
	Severity: finding.Critical,
	Description: "A hostPath volume exposes a container runtime socket, the node's root, /etc, /proc, " +
		"or kubelet or etcd state. Any of these lets the pod take over the node and, from there, the cluster.",
	Remediation: "Remove the hostPath volume. Agents that truly need node access belong in a dedicated, " +
		"audited namespace with an exception that names the owner.",
	Frameworks: finding.Frameworks{CIS: []string{"5.2.12"}, NSA: []string{"Pod security"}, MITRE: []string{"T1611", "T1552.001"}},
	Workload:   true,
	Run: func(p *posture.Pass) {
		for _, v := range p.Pod.Spec.Volumes {
			if v.HostPath == nil {
				continue
			}
			s := sensitiveHostPath(v.HostPath.Path)
			switch clean := path.Clean("/" + v.HostPath.Path); {
			case s == "":
			case s == clean:
				p.Reportf("volume %q mounts sensitive host path %s", v.Name, clean)
			case strings.HasPrefix(s, clean+"/") || clean == "/":
				p.Reportf("volume %q mounts host path %s, which contains %s", v.Name, clean, s)
			default:
				p.Reportf("volume %q mounts host path %s, inside %s", v.Name, clean, s)
			}
		}
	},
}

// ImageMutableTag flags images without a tag or with :latest.
var ImageMutableTag = &posture.Check{
	ID:          "image-mutable-tag",
	Title:       "Image tag is latest or missing",
	Severity:    finding.Medium,
	Description: "An image without a tag means :latest, which changes under the workload: what runs is not what was reviewed, and rollbacks do not roll back.",
	Remediation: "Pin the image to a version tag, and better to a digest (image@sha256:…).",
	Frameworks:  finding.Frameworks{NSA: []string{"Supply chain"}, MITRE: []string{"T1525"}},
	Workload:    true,
	Run: func(p *posture.Pass) {
		for _, c := range containers(&p.Pod.Spec) {
			if tag, digest := splitImage(c.c.Image); digest == "" && (tag == "" || tag == "latest") {
				p.Reportf("%s %q uses image %q without a fixed tag", c.kind, c.c.Name, c.c.Image)
			}
		}
	},
}

// ImageNoDigest flags images not pinned by digest.
var ImageNoDigest = &posture.Check{
	ID:          "image-no-digest",
	Title:       "Image not pinned by digest",
	Severity:    finding.Low,
	Description: "A tag can be moved to other content by whoever controls the registry; only a digest names fixed content.",
	Remediation: "Reference the image by digest (registry/name:tag@sha256:…), updated by your build or a bot.",
	Frameworks:  finding.Frameworks{NSA: []string{"Supply chain"}, MITRE: []string{"T1525"}},
	Workload:    true,
	Run: func(p *posture.Pass) {
		for _, c := range containers(&p.Pod.Spec) {
			if _, digest := splitImage(c.c.Image); digest == "" {
				p.Reportf("%s %q image %q has no digest", c.kind, c.c.Name, c.c.Image)
			}
		}
	},
}

// splitImage returns the tag and digest of an image reference.
func splitImage(image string) (tag, digest string) {
	name := image
	if i := strings.Index(name, "@"); i >= 0 {
		name, digest = name[:i], name[i+1:]
	}
	// A tag follows the last colon after the last slash (a colon before it
	// belongs to a registry port).
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		tag = name[i+1:]
	}
	return tag, digest
}

// ResourcesNoLimits flags containers without CPU or memory limits.
var ResourcesNoLimits = &posture.Check{
	ID:          "resources-no-limits",
	Title:       "No CPU or memory limit",
	Severity:    finding.Medium,
	Description: "A container without limits can take a node's CPU or memory from its neighbours; a compromised one can mine crypto-currency at the cluster's expense.",
	Remediation: "Set resources.limits.cpu and resources.limits.memory on every container (or a LimitRange in the namespace).",
	Frameworks:  finding.Frameworks{CIS: []string{"5.7.1"}, NSA: []string{"Pod security"}, MITRE: []string{"T1496"}},
	Workload:    true,
	Run: func(p *posture.Pass) {
		for _, c := range containers(&p.Pod.Spec) {
			if c.kind == "ephemeral container" {
				continue // ephemeral containers cannot have resources
			}
			var missing []string
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if _, ok := c.c.Resources.Limits[r]; !ok {
					missing = append(missing, string(r))
				}
			}
			if len(missing) > 0 {
				p.Reportf("%s %q has no %s limit", c.kind, c.c.Name, strings.Join(missing, " or "))
			}
		}
	},
}

// ServiceAccountTokenAutomount flags pods that mount an API token without
// saying they need one.
var ServiceAccountTokenAutomount = &posture.Check{
	ID:       "sa-token-automount",
	Title:    "Service-account token mounted",
	Severity: finding.Low,
	Description: "The pod gets a token for the Kubernetes API whether or not it uses the API. " +
		"An attacker in the container uses it to explore and, with the wrong RBAC, take the cluster.",
	Remediation: "Set automountServiceAccountToken: false in the pod spec unless the pod calls the API.",
	Frameworks:  finding.Frameworks{CIS: []string{"5.1.6"}, NSA: []string{"Authentication and authorization"}, MITRE: []string{"T1528"}},
	Workload:    true,
	Run: func(p *posture.Pass) {
		if a := p.Pod.Spec.AutomountServiceAccountToken; a == nil || *a {
			p.Reportf("automountServiceAccountToken is not false")
		}
	},
}

// DefaultServiceAccount flags pods that run as their namespace's default
// service account.
var DefaultServiceAccount = &posture.Check{
	ID:          "default-service-account",
	Title:       "Default service account used",
	Severity:    finding.Low,
	Description: "Every pod without its own service account shares the namespace's default one, so any permission granted to it is granted to all of them.",
	Remediation: "Create a service account per workload and set serviceAccountName.",
	Frameworks:  finding.Frameworks{CIS: []string{"5.1.5"}, NSA: []string{"Authentication and authorization"}},
	Workload:    true,
	Run: func(p *posture.Pass) {
		sa := p.Pod.Spec.ServiceAccountName
		if sa == "" {
			// The deprecated field still names the account in old manifests.
			sa = p.Pod.Spec.DeprecatedServiceAccount
		}
		if sa == "" || sa == "default" {
			p.Reportf("runs as the default service account")
		}
	},
}

// WritableRootFilesystem flags containers whose root filesystem is writable.
var WritableRootFilesystem = &posture.Check{
	ID:          "writable-root-filesystem",
	Title:       "Writable root filesystem",
	Severity:    finding.Low,
	Description: "A writable root filesystem lets an intruder drop tools and persist changes inside the container.",
	Remediation: "Set securityContext.readOnlyRootFilesystem: true and mount emptyDir volumes where the application writes.",
	Frameworks:  finding.Frameworks{NSA: []string{"Immutable container file systems"}, MITRE: []string{"T1105"}},
	Workload:    true,
	Run: func(p *posture.Pass) {
		for _, c := range containers(&p.Pod.Spec) {
			if c.kind == "ephemeral container" {
				continue
			}
			if sc := c.c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				p.Reportf("%s %q has a writable root filesystem", c.kind, c.c.Name)
			}
		}
	},
}

// EnvCredentialLiteral flags credentials written into environment variables.
var EnvCredentialLiteral = &posture.Check{
	ID:       "env-credential-literal",
	Title:    "Credential in an environment variable literal",
	Severity: finding.High,
	Description: "A credential written as a literal env value is stored in the manifest, in Git, in etcd unencrypted " +
		"as part of the workload, and shown to anyone who can read the workload. Detected by name and by value " +
		"(private keys, cloud access keys, tokens, high-entropy strings); the value is never reported.",
	Remediation: "Move the value into a Secret (or an external secret store) and mount it as a file; rotate the exposed credential.",
	Frameworks:  finding.Frameworks{CIS: []string{"5.4.1"}, NSA: []string{"Secrets"}, MITRE: []string{"T1552.001"}},
	Workload:    true,
	Run: func(p *posture.Pass) {
		for _, c := range containers(&p.Pod.Spec) {
			for _, e := range c.c.Env {
				if kind := credentialIn(e.Name, e.Value); kind != "" {
					p.Reportf("%s %q env %s holds %s", c.kind, c.c.Name, e.Name, kind)
				}
			}
		}
	},
}

// EnvSecretRef flags Secrets passed through environment variables.
var EnvSecretRef = &posture.Check{
	ID:       "env-secret-ref",
	Title:    "Secret passed as an environment variable",
	Severity: finding.Low,
	Description: "Environment variables leak: into child processes, crash dumps, debug endpoints and logs. " +
		"A Secret mounted as a file does not, and is updated in place when the Secret rotates.",
	Remediation: "Mount the Secret as a volume and read the file.",
	Frameworks:  finding.Frameworks{CIS: []string{"5.4.1"}, NSA: []string{"Secrets"}, MITRE: []string{"T1552.007"}},
	Workload:    true,
	Run: func(p *posture.Pass) {
		for _, c := range containers(&p.Pod.Spec) {
			for _, e := range c.c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					p.Reportf("%s %q env %s comes from Secret %s", c.kind, c.c.Name, e.Name, e.ValueFrom.SecretKeyRef.Name)
				}
			}
			for _, ef := range c.c.EnvFrom {
				if ef.SecretRef != nil {
					p.Reportf("%s %q takes every key of Secret %s as env", c.kind, c.c.Name, ef.SecretRef.Name)
				}
			}
		}
	},
}
