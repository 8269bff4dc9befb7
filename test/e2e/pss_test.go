//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/pod-security-admission/api"

	"github.com/kustode/kustode/internal/controlplane"
	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/kube"
	"github.com/kustode/kustode/internal/posture"
	"github.com/kustode/kustode/internal/posture/checks"
)

// TestPSSVerdictsMatchAdmission generates varied pods and asks the real API
// server's PodSecurity admission (dryRun creates in namespaces enforcing
// baseline and restricted) whether each is allowed. kustode's PSS checks
// must reach the same verdict for every pod at both levels.
func TestPSSVerdictsMatchAdmission(t *testing.T) {
	ctx := t.Context()
	admin := clientFor(t, cp.Config(controlplane.AdminUser))
	levels := []string{"baseline", "restricted"}
	for _, level := range levels {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: "pss-" + level,
			Labels: map[string]string{
				"pod-security.kubernetes.io/enforce":         level,
				"pod-security.kubernetes.io/enforce-version": "latest",
			},
		}}
		if _, err := admin.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create namespace: %v", err)
		}
		if err := cp.EnsureNamespace(ctx, ns.Name); err != nil {
			t.Fatal(err)
		}
	}

	pssChecks, err := checks.PSS(api.LatestVersion())
	if err != nil {
		t.Fatal(err)
	}
	engine, err := posture.NewEngine(pssChecks)
	if err != nil {
		t.Fatal(err)
	}

	rng := rand.New(rand.NewPCG(1, 37))
	const n = 300
	disagreements, invalid := 0, 0
	allowed := map[string]int{}
	for i := range n {
		pod := randomPod(rng, i)
		raw, err := json.Marshal(pod)
		if err != nil {
			t.Fatal(err)
		}
		obj := kube.Object{Ref: finding.ObjectRef{APIVersion: "v1", Kind: "Pod", Name: pod.Name}, Raw: raw}
		findings, err := engine.RunObject(&obj, nil)
		if err != nil {
			t.Fatal(err)
		}
		ours := map[string]bool{"baseline": true, "restricted": true}
		for _, f := range findings {
			ours["restricted"] = false
			if f.Frameworks.PSS == "baseline" {
				ours["baseline"] = false
			}
		}
	levelLoop:
		for _, level := range levels {
			p := pod.DeepCopy()
			p.Namespace = "pss-" + level
			_, err := admin.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			var theirs bool
			switch {
			case err == nil:
				theirs = true
			case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "violates PodSecurity"):
				theirs = false
			case apierrors.IsInvalid(err):
				// Field validation rejected the pod before PodSecurity
				// judged it (e.g. procMount Unmasked needs hostUsers:
				// false): there is no verdict to compare.
				invalid++
				break levelLoop
			default:
				t.Fatalf("pod %d: dry-run create in %s: %v\n%s", i, p.Namespace, err, raw)
			}
			if theirs {
				allowed[level]++
			}
			if theirs != ours[level] {
				disagreements++
				if disagreements <= 10 {
					t.Errorf("pod %d at %s: API server allowed=%v, kustode allowed=%v\nadmission: %v\nkustode findings: %s\npod: %s",
						i, level, theirs, ours[level], err, describeFindings(findings), raw)
				}
			}
		}
	}
	t.Logf("%d pods: API server allowed %d at baseline, %d at restricted; %d invalid; %d disagreements",
		n, allowed["baseline"], allowed["restricted"], invalid, disagreements)
	if invalid > n/5 {
		t.Errorf("%d of %d generated pods were invalid: the generator compares too little", invalid, n)
	}
	// The generator must exercise both verdicts at both levels, or the
	// comparison proves little.
	for _, level := range levels {
		if allowed[level] < n/20 || allowed[level] > n-n/20 {
			t.Errorf("generator too one-sided at %s: %d of %d allowed", level, allowed[level], n)
		}
	}
}

func describeFindings(fs []finding.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "\n  %s: %s", f.CheckID, f.Message)
	}
	return b.String()
}

// randomPod builds a pod that sets each security-relevant field with some
// probability, biased so that a useful share passes each level.
func randomPod(rng *rand.Rand, i int) *corev1.Pod {
	chance := func(p float64) bool { return rng.Float64() < p }
	pick := func(options ...string) string { return options[rng.IntN(len(options))] }
	boolp := func(b bool) *bool { return &b }

	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("gen-%03d", i)}}
	spec := &pod.Spec
	hardened := chance(0.5) // start from a restricted-compliant pod half the time
	if hardened {
		spec.SecurityContext = &corev1.PodSecurityContext{
			RunAsNonRoot:   boolp(true),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		}
	}
	containerCount := 1 + rng.IntN(2)
	for c := range containerCount + 1 {
		ctr := corev1.Container{Name: fmt.Sprintf("c%d", c), Image: "registry.example/app:1"}
		if hardened {
			ctr.SecurityContext = &corev1.SecurityContext{
				AllowPrivilegeEscalation: boolp(false),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			}
		}
		mutate(rng, &ctr, chance, pick, boolp)
		if c == containerCount {
			if chance(0.3) {
				spec.InitContainers = append(spec.InitContainers, ctr)
			}
			continue
		}
		spec.Containers = append(spec.Containers, ctr)
	}
	if chance(0.06) {
		spec.HostNetwork = true
	}
	if chance(0.05) {
		spec.HostPID = true
	}
	if chance(0.05) {
		spec.HostIPC = true
	}
	if chance(0.15) {
		if spec.SecurityContext == nil {
			spec.SecurityContext = &corev1.PodSecurityContext{}
		}
		sc := spec.SecurityContext
		switch rng.IntN(6) {
		case 0:
			sc.RunAsNonRoot = boolp(chance(0.5))
		case 1:
			sc.RunAsUser = ptr(int64(0))
			if chance(0.5) {
				sc.RunAsUser = ptr(int64(1000))
			}
		case 2:
			sc.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileType(pick("Unconfined", "RuntimeDefault"))}
		case 3:
			sc.Sysctls = []corev1.Sysctl{{Name: pick("kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "kernel.msgmax", "net.core.somaxconn"), Value: "1"}}
		case 4:
			sc.SELinuxOptions = &corev1.SELinuxOptions{Type: pick("container_t", "spc_t"), User: pick("", "", "system_u")}
		case 5:
			sc.AppArmorProfile = &corev1.AppArmorProfile{Type: corev1.AppArmorProfileType(pick("RuntimeDefault", "Unconfined"))}
		}
	}
	if chance(0.25) {
		vol := corev1.Volume{Name: "v"}
		switch rng.IntN(4) {
		case 0:
			vol.HostPath = &corev1.HostPathVolumeSource{Path: pick("/var/log", "/var/run/docker.sock")}
		case 1:
			vol.EmptyDir = &corev1.EmptyDirVolumeSource{}
		case 2:
			vol.NFS = &corev1.NFSVolumeSource{Server: "nfs.example", Path: "/export"}
		case 3:
			vol.Secret = &corev1.SecretVolumeSource{SecretName: "s"}
		}
		spec.Volumes = append(spec.Volumes, vol)
	}
	return pod
}

// mutate changes one or two container settings at random.
func mutate(rng *rand.Rand, c *corev1.Container, chance func(float64) bool, pick func(...string) string, boolp func(bool) *bool) {
	for range rng.IntN(3) {
		if c.SecurityContext == nil {
			c.SecurityContext = &corev1.SecurityContext{}
		}
		sc := c.SecurityContext
		switch rng.IntN(10) {
		case 0:
			sc.Privileged = boolp(chance(0.5))
		case 1:
			if sc.Capabilities == nil {
				sc.Capabilities = &corev1.Capabilities{}
			}
			sc.Capabilities.Add = append(sc.Capabilities.Add, corev1.Capability(pick("NET_BIND_SERVICE", "SYS_ADMIN", "NET_RAW", "CHOWN", "KILL")))
		case 2:
			sc.Capabilities = nil
		case 3:
			sc.AllowPrivilegeEscalation = boolp(chance(0.5))
		case 4:
			sc.RunAsNonRoot = boolp(chance(0.5))
		case 5:
			sc.RunAsUser = ptr(int64(0))
			if chance(0.5) {
				sc.RunAsUser = ptr(int64(1001))
			}
		case 6:
			sc.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileType(pick("Unconfined", "RuntimeDefault", "Localhost"))}
			if sc.SeccompProfile.Type == corev1.SeccompProfileTypeLocalhost {
				sc.SeccompProfile.LocalhostProfile = ptr("profiles/app.json")
			}
		case 7:
			port := corev1.ContainerPort{ContainerPort: 8080}
			if chance(0.5) {
				port.HostPort = 8080
			}
			c.Ports = append(c.Ports, port)
		case 8:
			pm := corev1.ProcMountType(pick("Default", "Unmasked"))
			sc.ProcMount = &pm
		case 9:
			c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080), Host: pick("", "10.0.0.1")}}}
		}
	}
}
