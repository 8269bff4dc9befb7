package web

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
)

// APIGroup is the API group of kustode's authorization attributes: cluster
// RBAC grants access to the API with a ClusterRole whose rules name it
// (apiGroups: ["kustode.io"], resources: ["alerts"], verbs: ["list"]).
const APIGroup = "kustode.io"

// ErrUnauthenticated is wrapped by an Authenticator's error when the token is
// not valid. The server answers 401 to it; any other error means the
// authenticator could not decide (its backend failed) and is answered 500.
var ErrUnauthenticated = errors.New("unauthenticated")

// User is an authenticated caller.
type User struct {
	// Name is who the user is; it is recorded as AckedBy and CreatedBy.
	Name   string
	UID    string
	Groups []string
	Extra  map[string][]string
}

// Attributes describe what a request does, in the terms of a Kubernetes
// SubjectAccessReview on APIGroup: Verb is "get", "list", "create" or
// "update"; Resource is "findings", "alerts", "exceptions", "rules",
// "checks", "posture", "metrics" or "readyz".
type Attributes struct {
	Verb     string
	Resource string
}

// String returns "list alerts.kustode.io".
func (a Attributes) String() string { return a.Verb + " " + a.Resource + "." + APIGroup }

// Authenticator tells who a bearer token belongs to. It returns an error
// wrapping ErrUnauthenticated when the token is not valid, any other error
// when it could not decide. It is called concurrently, for every request,
// and must never log or return the token.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (User, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, token string) (User, error)

var _ Authenticator = AuthenticatorFunc(nil)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, token string) (User, error) {
	return f(ctx, token)
}

// Authorizer decides whether a user may do what the attributes say. When it
// denies, reason tells the user what permission is missing; it is sent to
// the user in the 403 body. An error means it could not decide (answered
// 500). It is called concurrently, for every authenticated request.
type Authorizer interface {
	Authorize(ctx context.Context, u User, a Attributes) (allowed bool, reason string, err error)
}

// AuthorizerFunc adapts a function to Authorizer.
type AuthorizerFunc func(ctx context.Context, u User, a Attributes) (bool, string, error)

var _ Authorizer = AuthorizerFunc(nil)

// Authorize calls f.
func (f AuthorizerFunc) Authorize(ctx context.Context, u User, a Attributes) (bool, string, error) {
	return f(ctx, u, a)
}

// AllowAll authorizes every request. Pair it only with an authenticator
// whose every user should have all access, such as StaticToken.
var AllowAll Authorizer = AuthorizerFunc(func(context.Context, User, Attributes) (bool, string, error) {
	return true, "", nil
})

// Auth is one way to access the API: an authenticator and the authorizer
// that decides for the users it vouches for. Pairing them means a user is
// always authorized by the method that authenticated it: a Kubernetes user
// that happens to be called like the static token's user gets no more than
// RBAC grants it.
type Auth struct {
	Authenticator Authenticator
	Authorizer    Authorizer
}

// StaticTokenUser is the name of the user of a StaticToken.
const StaticTokenUser = "kustode-static-token" //nolint:gosec // a user name, not a credential

// minStaticTokenLen is the shortest static token accepted: the token grants
// all access, so it must not be guessable.
const minStaticTokenLen = 16

// StaticToken authenticates one shared secret (--api-token-file), for local
// use without a cluster's TokenReview. It keeps only the SHA-256 digest of
// the token and compares digests in constant time, so neither its memory nor
// its timing reveals the token. It is safe for concurrent use.
type StaticToken struct {
	digest [sha256.Size]byte
}

var _ Authenticator = (*StaticToken)(nil)

// NewStaticToken returns an authenticator for token, surrounding white space
// removed (token files usually end with a newline). The token must have at
// least 16 characters.
func NewStaticToken(token string) (*StaticToken, error) {
	token = strings.TrimSpace(token)
	if len(token) < minStaticTokenLen {
		return nil, fmt.Errorf("static token: must have at least %d characters", minStaticTokenLen)
	}
	return &StaticToken{digest: sha256.Sum256([]byte(token))}, nil
}

// Authenticate returns StaticTokenUser when token is the static token.
func (s *StaticToken) Authenticate(_ context.Context, token string) (User, error) {
	got := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(got[:], s.digest[:]) != 1 {
		return User{}, fmt.Errorf("static token: not accepted: %w", ErrUnauthenticated)
	}
	return User{Name: StaticTokenUser}, nil
}

// StaticTokenAuth returns the Auth of a static token: StaticToken paired
// with AllowAll.
func StaticTokenAuth(token string) (Auth, error) {
	s, err := NewStaticToken(token)
	if err != nil {
		return Auth{}, err
	}
	return Auth{Authenticator: s, Authorizer: AllowAll}, nil
}
