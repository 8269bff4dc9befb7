package checks

import (
	"cmp"
	"time"

	"k8s.io/pod-security-admission/api"

	"github.com/kustode/kustode/internal/posture"
)

// Options selects check behaviour that depends on the user's environment.
type Options struct {
	// PSSVersion is the Pod Security Standards version to judge by, as the
	// PodSecurity admission's enforce-version label names it ("v1.30" or
	// "latest"). Empty means latest.
	PSSVersion string
	// SecretMaxAge is the rotation age for secret-not-rotated; zero means
	// DefaultSecretMaxAge.
	SecretMaxAge time.Duration
	// Now is the time checks measure ages against; zero means time.Now().
	Now time.Time
	// SensitiveLabel marks namespaces whose pods must run sandboxed; empty
	// means DefaultSensitiveLabel.
	SensitiveLabel string
	// SandboxHandlers are the RuntimeClass handlers that count as
	// sandboxes; nil means DefaultSandboxHandlers.
	SandboxHandlers []string
}

// All returns every check, PSS controls first.
func All(opts Options) ([]*posture.Check, error) {
	v := api.LatestVersion()
	if opts.PSSVersion != "" {
		var err error
		if v, err = api.ParseVersion(opts.PSSVersion); err != nil {
			return nil, err
		}
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	sandboxHandlers := opts.SandboxHandlers
	if len(sandboxHandlers) == 0 {
		sandboxHandlers = DefaultSandboxHandlers
	}
	pss, err := PSS(v)
	if err != nil {
		return nil, err
	}
	return append(pss,
		HostPathSensitive,
		ImageMutableTag,
		ImageNoDigest,
		ResourcesNoLimits,
		ServiceAccountTokenAutomount,
		DefaultServiceAccount,
		WritableRootFilesystem,
		EnvCredentialLiteral,
		EnvSecretRef,
		ServiceExposed,
		ConfigMapCredentials,
		NetpolWorkloadNotIsolated,
		NetpolNamespaceNoDefaultDeny,
		NetpolAllowAll,
		NetpolMetadataEgress,
		APIServerAnonymousAuth,
		APIServerAlwaysAllow,
		APIServerNoAudit,
		APIServerNoEncryption,
		APIServerProfiling,
		APIServerAdmission,
		EncryptionAtRestWeak,
		KubeletAnonymousAuth,
		KubeletAlwaysAllow,
		KubeletReadOnlyPort,
		KubeletProtectKernelDefaults,
		KubeletCertRotation,
		SensitiveNotSandboxed(cmp.Or(opts.SensitiveLabel, DefaultSensitiveLabel), sandboxHandlers),
		IstioMTLSNotStrict,
		RBACClusterAdmin,
		RBACPublicSubject,
		RBACSecretsRead,
		RBACEscalation,
		RBACPodExec,
		RBACTokenCreate,
		RBACCSRApproval,
		RBACWebhookConfig,
		RBACWorkloadCreateKubeSystem,
		RBACDefaultServiceAccount,
		RBACDangling,
		RBACWildcard,
		SecretLegacySAToken,
		SecretNotRotated(cmp.Or(opts.SecretMaxAge, DefaultSecretMaxAge), now),
	), nil
}
