package checks

import (
	"fmt"

	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/posture"
)

// pssControl documents one Pod Security Standards control. The verdict is
// never ours: it comes from k8s.io/pod-security-admission, the code the API
// server's PodSecurity admission runs.
type pssControl struct {
	id          string // kustode check ID
	title       string
	severity    finding.Severity
	remediation string
	cis, mitre  []string
}

// pssControls maps pod-security-admission check IDs to kustode checks. A
// test fails when the library gains a check this table lacks.
var pssControls = map[policy.CheckID]pssControl{
	"privileged": {"pss-privileged", "Privileged container", finding.Critical,
		"Remove securityContext.privileged: true; grant only the specific capabilities the container needs.",
		[]string{"5.2.2"}, []string{"T1611"}},
	"hostNamespaces": {"pss-host-namespaces", "Host namespaces shared", finding.High,
		"Remove hostNetwork, hostPID and hostIPC from the pod spec.",
		[]string{"5.2.3", "5.2.4", "5.2.5"}, []string{"T1611"}},
	"hostPathVolumes": {"pss-host-path-volumes", "hostPath volume", finding.High,
		"Replace hostPath volumes with emptyDir, a PersistentVolumeClaim, a ConfigMap or a projected volume.",
		[]string{"5.2.12"}, []string{"T1611"}},
	"hostPorts": {"pss-host-ports", "Host port", finding.Medium,
		"Remove hostPort from container ports; expose the pod through a Service.",
		[]string{"5.2.13"}, nil},
	"capabilities_baseline": {"pss-capabilities-baseline", "Capability beyond the default set", finding.High,
		"Remove capabilities.add entries outside the default set (e.g. SYS_ADMIN, NET_ADMIN).",
		[]string{"5.2.9"}, []string{"T1611"}},
	"procMount": {"pss-proc-mount", "Unmasked /proc mount", finding.Medium,
		"Remove securityContext.procMount or set it to Default.",
		nil, []string{"T1611"}},
	"seLinuxOptions": {"pss-selinux-options", "Custom SELinux options", finding.Medium,
		"Remove seLinuxOptions.user and .role, and use only container_t, container_init_t, container_kvm_t or container_engine_t as type.",
		nil, nil},
	"appArmorProfile": {"pss-apparmor-profile", "AppArmor disabled", finding.Medium,
		"Do not set the AppArmor profile to Unconfined; use RuntimeDefault or a Localhost profile.",
		nil, nil},
	"seccompProfile_baseline": {"pss-seccomp-baseline", "Seccomp unconfined", finding.Medium,
		"Do not set the seccomp profile to Unconfined; use RuntimeDefault or a Localhost profile.",
		[]string{"5.7.2"}, nil},
	"sysctls": {"pss-sysctls", "Unsafe sysctl", finding.Medium,
		"Set only the safe namespaced sysctls the Pod Security Standards allow.",
		nil, nil},
	"windowsHostProcess": {"pss-windows-host-process", "Windows HostProcess container", finding.Critical,
		"Remove windowsOptions.hostProcess: true.",
		[]string{"5.2.11"}, []string{"T1611"}},
	"hostProbesAndHostLifecycle": {"pss-host-probes-and-lifecycle", "Probe or lifecycle handler on another host", finding.Medium,
		"Remove the host field from probes and lifecycle handlers: they must target the pod itself.",
		nil, nil},
	"allowPrivilegeEscalation": {"pss-allow-privilege-escalation", "Privilege escalation allowed", finding.Medium,
		"Set securityContext.allowPrivilegeEscalation: false in every container.",
		[]string{"5.2.6"}, []string{"T1068"}},
	"capabilities_restricted": {"pss-capabilities-restricted", "Capabilities not dropped", finding.Low,
		"Set capabilities.drop: [ALL] in every container and add back at most NET_BIND_SERVICE.",
		[]string{"5.2.8", "5.2.10"}, nil},
	"procMount_restricted": {"pss-proc-mount-restricted", "Unmasked /proc mount (restricted)", finding.Medium,
		"Remove securityContext.procMount or set it to Default.",
		nil, []string{"T1611"}},
	"restrictedVolumes": {"pss-restricted-volumes", "Volume type outside the restricted set", finding.Low,
		"Use only configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret and image volumes.",
		nil, nil},
	"runAsNonRoot": {"pss-run-as-non-root", "May run as root", finding.Medium,
		"Set securityContext.runAsNonRoot: true on the pod or every container, and build images that run as a non-root user.",
		[]string{"5.2.7"}, []string{"T1611"}},
	"runAsUser": {"pss-run-as-user", "Runs as UID 0", finding.Medium,
		"Set runAsUser to a non-zero UID or remove it.",
		[]string{"5.2.7"}, []string{"T1611"}},
	"seccompProfile_restricted": {"pss-seccomp-restricted", "No seccomp profile", finding.Low,
		"Set securityContext.seccompProfile.type: RuntimeDefault on the pod (or Localhost with a profile).",
		[]string{"5.7.2"}, nil},
}

// PSS returns one check per Pod Security Standards control, judged by
// pod-security-admission at version (api.LatestVersion() for the newest).
// A pod template violating a control yields one finding with the
// admission's own reason and detail.
func PSS(version api.Version) ([]*posture.Check, error) {
	var out []*posture.Check
	for _, pc := range policy.DefaultChecks() {
		ctl, ok := pssControls[pc.ID]
		if !ok {
			return nil, fmt.Errorf("pss: pod-security-admission check %q has no kustode mapping", pc.ID)
		}
		run := versionedCheck(pc, version)
		if run == nil {
			continue // the control does not exist yet at this version
		}
		level := string(pc.Level)
		out = append(out, &posture.Check{
			ID:       ctl.id,
			Title:    ctl.title,
			Severity: ctl.severity,
			Description: fmt.Sprintf("Pod Security Standards %s control %q, judged by the same code as the API server's PodSecurity admission (policy version %s).",
				level, pc.ID, version),
			Remediation: ctl.remediation,
			Frameworks: finding.Frameworks{
				PSS:   level,
				CIS:   ctl.cis,
				NSA:   []string{"Pod security"},
				MITRE: ctl.mitre,
			},
			Workload: true,
			Run: func(p *posture.Pass) {
				r := run(&p.Pod.ObjectMeta, &p.Pod.Spec)
				if r.Allowed {
					return
				}
				if r.ForbiddenDetail != "" {
					p.Reportf("%s (%s)", r.ForbiddenReason, r.ForbiddenDetail)
					return
				}
				p.Reportf("%s", r.ForbiddenReason)
			},
		})
	}
	return out, nil
}

// versionedCheck returns the revision of c in force at version v: the one
// with the highest MinimumVersion not newer than v. Nil if none is.
func versionedCheck(c policy.Check, v api.Version) policy.CheckPodFn {
	var fn policy.CheckPodFn
	for _, vc := range c.Versions {
		if !v.Latest() && v.Older(vc.MinimumVersion) {
			break
		}
		fn = vc.CheckPod
	}
	return fn
}
