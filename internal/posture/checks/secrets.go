package checks

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/posture"
)

// secretMeta is what the Secret checks read: metadata and type, never data.
// In a live cluster kustode lists Secrets as metadata only, so type is empty
// there and the legacy-token annotation identifies token Secrets instead.
type secretMeta struct {
	Type     string `json:"type"`
	Metadata struct {
		CreationTimestamp *time.Time `json:"creationTimestamp"`
	} `json:"metadata"`
}

const legacyTokenType = "kubernetes.io/service-account-token" //nolint:gosec // a Secret type name, not a credential

// SecretLegacySAToken flags long-lived service-account token Secrets.
var SecretLegacySAToken = &posture.Check{
	ID:       "secret-legacy-sa-token",
	Title:    "Long-lived service-account token Secret",
	Severity: finding.Medium,
	Description: "A Secret of type kubernetes.io/service-account-token holds a token that never expires and works " +
		"from anywhere until the Secret is deleted. Since Kubernetes 1.22 pods get short-lived, bound tokens instead.",
	Remediation: "Delete the Secret and use bound tokens (the projected token volume, or kubectl create token / the TokenRequest API for external use).",
	Frameworks:  finding.Frameworks{CIS: []string{"5.1.6"}, NSA: []string{"Authentication and authorization"}, MITRE: []string{"T1528"}},
	Kinds:       []string{"Secret"},
	Run: func(p *posture.Pass) {
		var s secretMeta
		if err := json.Unmarshal(p.Object.Raw, &s); err != nil {
			return
		}
		sa, annotated := p.Object.Annotations["kubernetes.io/service-account.name"]
		if s.Type == legacyTokenType || (s.Type == "" && annotated) {
			p.Reportf("long-lived token for service account %q", sa)
		}
	},
}

// DefaultSecretMaxAge is the rotation age after which secret-not-rotated
// reports a Secret.
const DefaultSecretMaxAge = 90 * 24 * time.Hour

// SecretNotRotated returns the check that flags Secrets older than maxAge,
// measured at now. Manifests rarely carry creationTimestamp, so this is a
// live-cluster check in practice.
func SecretNotRotated(maxAge time.Duration, now time.Time) *posture.Check {
	days := int(maxAge.Hours() / 24)
	return &posture.Check{
		ID:       "secret-not-rotated",
		Title:    "Secret not rotated",
		Severity: finding.Low,
		Description: fmt.Sprintf("The Secret was created more than %d days ago and never replaced. Long-lived credentials "+
			"accumulate exposure: every copy, log and former employee keeps them valid.", days),
		Remediation: "Rotate the credential and replace the Secret (or let an external secret operator do it on a schedule).",
		Frameworks:  finding.Frameworks{NSA: []string{"Secrets"}, MITRE: []string{"T1552.007"}},
		Kinds:       []string{"Secret"},
		Run: func(p *posture.Pass) {
			var s secretMeta
			if err := json.Unmarshal(p.Object.Raw, &s); err != nil || s.Metadata.CreationTimestamp == nil {
				return
			}
			if age := now.Sub(*s.Metadata.CreationTimestamp); age > maxAge {
				p.Reportf("created %s, %d days ago (limit %d days)", s.Metadata.CreationTimestamp.Format(time.DateOnly), int(age.Hours()/24), days)
			}
		},
	}
}
