package audit

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Authentication errors. An Authenticator wraps one of them so that the
// webhook answers 401 (ErrUnauthenticated: no or bad credentials) or 403
// (ErrForbidden: a valid identity that may not send audit events).
var (
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrForbidden       = errors.New("forbidden")
)

// Authenticator decides whether a request comes from an API server allowed
// to send audit events. It returns the sender's name for logs, or an error
// wrapping ErrUnauthenticated or ErrForbidden (any other error is treated as
// ErrUnauthenticated). It is called concurrently and must not read the body.
type Authenticator interface {
	Authenticate(r *http.Request) (sender string, err error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(r *http.Request) (string, error)

var _ Authenticator = AuthenticatorFunc(nil)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(r *http.Request) (string, error) { return f(r) }

// TokenAuthenticator accepts requests that carry one of its bearer tokens
// (Authorization: Bearer TOKEN), as the API server sends when its webhook
// kubeconfig has a token. It keeps only SHA-256 digests of the tokens and
// compares them in constant time, so neither its memory, its logs nor its
// timing reveal a token. Several tokens allow rotation without downtime.
type TokenAuthenticator struct {
	digests [][sha256.Size]byte
}

var _ Authenticator = (*TokenAuthenticator)(nil)

// NewTokenAuthenticator returns an authenticator for tokens, none of which
// may be empty.
func NewTokenAuthenticator(tokens ...string) (*TokenAuthenticator, error) {
	if len(tokens) == 0 {
		return nil, errors.New("token authenticator: no token")
	}
	a := &TokenAuthenticator{}
	for _, t := range tokens {
		if strings.TrimSpace(t) == "" {
			return nil, errors.New("token authenticator: empty token")
		}
		a.digests = append(a.digests, sha256.Sum256([]byte(t)))
	}
	return a, nil
}

// Authenticate checks the bearer token. Every configured token is compared,
// whatever matches, so timing does not tell which one did.
func (a *TokenAuthenticator) Authenticate(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", fmt.Errorf("no bearer token: %w", ErrUnauthenticated)
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	match := 0
	for i := range a.digests {
		match |= subtle.ConstantTimeCompare(got[:], a.digests[i][:])
	}
	if match != 1 {
		return "", fmt.Errorf("bearer token not accepted: %w", ErrUnauthenticated)
	}
	return "bearer token", nil
}

// ClientCertAuthenticator accepts requests whose TLS client certificate was
// verified by the server (tls.Config.ClientCAs with ClientAuth
// VerifyClientCertIfGiven or RequireAndVerifyClientCert) and whose subject
// common name is in an allowed list. It trusts the server's verification; it
// never verifies certificates itself, so an unverified certificate
// (RequestClientCert) is refused.
type ClientCertAuthenticator struct {
	allowed []string
}

var _ Authenticator = (*ClientCertAuthenticator)(nil)

// NewClientCertAuthenticator returns an authenticator for the common names
// allowedCNs, of which there must be at least one.
func NewClientCertAuthenticator(allowedCNs ...string) (*ClientCertAuthenticator, error) {
	if len(allowedCNs) == 0 {
		return nil, errors.New("client certificate authenticator: no allowed common name")
	}
	for _, cn := range allowedCNs {
		if cn == "" {
			return nil, errors.New("client certificate authenticator: empty common name")
		}
	}
	return &ClientCertAuthenticator{allowed: slices.Clone(allowedCNs)}, nil
}

// Authenticate checks the verified client certificate.
func (a *ClientCertAuthenticator) Authenticate(r *http.Request) (string, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return "", fmt.Errorf("no verified client certificate: %w", ErrUnauthenticated)
	}
	cn := r.TLS.VerifiedChains[0][0].Subject.CommonName
	if !slices.Contains(a.allowed, cn) {
		return "", fmt.Errorf("client certificate %q not allowed: %w", cn, ErrForbidden)
	}
	return "client certificate " + cn, nil
}

// AnyOf accepts a request that any of authenticators accepts, tried in
// order. If all refuse, it returns the first ErrForbidden if there is one
// (a sender that proved an identity should hear 403), else the first error.
func AnyOf(authenticators ...Authenticator) Authenticator {
	return AuthenticatorFunc(func(r *http.Request) (string, error) {
		var first, forbidden error
		for _, a := range authenticators {
			sender, err := a.Authenticate(r)
			if err == nil {
				return sender, nil
			}
			if first == nil {
				first = err
			}
			if forbidden == nil && errors.Is(err, ErrForbidden) {
				forbidden = err
			}
		}
		if forbidden != nil {
			return "", forbidden
		}
		if first == nil {
			first = fmt.Errorf("no authenticator: %w", ErrUnauthenticated)
		}
		return "", first
	})
}
