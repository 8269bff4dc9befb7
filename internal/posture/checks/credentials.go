package checks

import (
	"math"
	"regexp"
	"strings"
)

// credentialName matches names of variables and keys that conventionally
// hold credentials.
var credentialName = regexp.MustCompile(`(?i)(passw(or)?d|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential|auth[_-]?key|client[_-]?secret|conn(ection)?[_-]?str(ing)?)`)

// nonCredentialName matches names that contain a credential word but hold a
// reference or setting, not the credential itself.
var nonCredentialName = regexp.MustCompile(`(?i)(_(file|path|dir|url|uri|name|ref|enabled|ttl|expiry|length|header|type|id|endpoint)$|^(token|secret)_?(ttl|expiry)$)`)

// credentialValues are shapes of credential values that are recognisable
// without context.
var credentialValues = []struct {
	kind string
	re   *regexp.Regexp
}{
	{"a private key", regexp.MustCompile(`-----BEGIN ([A-Z]+ )?PRIVATE KEY-----`)},
	{"an AWS access key ID", regexp.MustCompile(`\b(AKIA|ASIA)[0-9A-Z]{16}\b`)},
	{"a GitHub token", regexp.MustCompile(`\bgh[pousr]_[A-Za-z0-9]{36,}\b`)},
	{"a Slack token", regexp.MustCompile(`\bxox[abprs]-[A-Za-z0-9-]{10,}`)},
	{"a Google API key", regexp.MustCompile(`\bAIza[0-9A-Za-z_-]{35}\b`)},
	{"a Stripe secret key", regexp.MustCompile(`\bsk_live_[0-9A-Za-z]{24,}\b`)},
	{"a JSON Web Token", regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}`)},
	{"credentials in a URL", regexp.MustCompile(`[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@`)},
}

// credentialIn returns what kind of credential the pair (name, value) looks
// like, or "" when it does not. It never returns the value.
func credentialIn(name, value string) string {
	if value == "" {
		return ""
	}
	for _, cv := range credentialValues {
		if cv.re.MatchString(value) {
			return cv.kind
		}
	}
	if credentialName.MatchString(name) && !nonCredentialName.MatchString(name) && !placeholder(value) {
		return "a credential (by its name)"
	}
	if len(value) >= 32 && !strings.ContainsAny(value, " /.:") && entropy(value) >= 4.5 {
		return "a high-entropy string"
	}
	return ""
}

// placeholder reports values that are obviously not real credentials.
func placeholder(v string) bool {
	l := strings.ToLower(strings.TrimSpace(v))
	switch l {
	case "", "true", "false", "yes", "no", "none", "null", "changeme", "change-me", "xxx", "redacted", "<redacted>", "example":
		return true
	}
	return strings.HasPrefix(l, "$(") || strings.HasPrefix(l, "${") || strings.HasPrefix(l, "/") || len(l) < 4 || shortNumber(l)
}

// shortNumber reports a number such as MAX_TOKENS=4096: a setting, not a
// credential.
func shortNumber(s string) bool {
	if len(s) > 10 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// entropy is the Shannon entropy of s in bits per character.
func entropy(s string) float64 {
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	n := float64(len(s))
	h := 0.0
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}
