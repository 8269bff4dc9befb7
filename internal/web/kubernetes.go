package web

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Defaults of KubernetesOptions.
const (
	DefaultCacheTTL  = 10 * time.Second
	DefaultCacheSize = 4096
	// reviewTimeout bounds one TokenReview or SubjectAccessReview call, so
	// that a slow API server cannot hold requests forever.
	reviewTimeout = 10 * time.Second
)

// KubernetesOptions configure TokenReview and SubjectAccessReview.
type KubernetesOptions struct {
	// Audiences, when set, are sent in every TokenReview, and a token is
	// accepted only if the API server says it is valid for one of them.
	// Empty means the API server's own audience.
	Audiences []string
	// CacheTTL is how long an answer (positive or negative) is reused;
	// 0 means DefaultCacheTTL, a negative value disables caching.
	CacheTTL time.Duration
	// CacheSize bounds the entries of each cache; 0 means DefaultCacheSize.
	CacheSize int
}

func (o KubernetesOptions) cache() (time.Duration, int) {
	ttl, size := o.CacheTTL, o.CacheSize
	if ttl == 0 {
		ttl = DefaultCacheTTL
	}
	if size <= 0 {
		size = DefaultCacheSize
	}
	return ttl, size
}

// KubernetesAuth returns the Auth of a cluster: TokenReview paired with
// SubjectAccessReview, so that cluster RBAC on APIGroup grants access.
func KubernetesAuth(client kubernetes.Interface, opts KubernetesOptions) Auth {
	return Auth{
		Authenticator: NewTokenReviewAuthenticator(client, opts),
		Authorizer:    NewSubjectAccessReviewAuthorizer(client, opts),
	}
}

// TokenReviewAuthenticator authenticates bearer tokens with the API server's
// TokenReview (authentication.k8s.io/v1). kustode's service account needs
// the system:auth-delegator ClusterRole (create tokenreviews and
// subjectaccessreviews). Answers, positive and negative, are cached for the
// cache TTL, keyed by the SHA-256 digest of the token; the token itself is
// never kept. API errors are not cached. It is safe for concurrent use;
// concurrent misses for the same token each call the API server.
type TokenReviewAuthenticator struct {
	client    kubernetes.Interface
	audiences []string
	cache     *ttlCache[[sha256.Size]byte, tokenAnswer]
}

type tokenAnswer struct {
	user   User
	ok     bool
	reason string
}

var _ Authenticator = (*TokenReviewAuthenticator)(nil)

// NewTokenReviewAuthenticator returns an authenticator that asks client.
func NewTokenReviewAuthenticator(client kubernetes.Interface, opts KubernetesOptions) *TokenReviewAuthenticator {
	ttl, size := opts.cache()
	return &TokenReviewAuthenticator{
		client:    client,
		audiences: slices.Clone(opts.Audiences),
		cache:     newTTLCache[[sha256.Size]byte, tokenAnswer](ttl, size),
	}
}

// Authenticate reviews token, or reuses a recent review of it.
func (a *TokenReviewAuthenticator) Authenticate(ctx context.Context, token string) (User, error) {
	key := sha256.Sum256([]byte(token))
	ans, ok := a.cache.get(key, time.Now())
	if !ok {
		var err error
		ans, err = a.review(ctx, token)
		if err != nil {
			return User{}, err
		}
		a.cache.put(key, ans, time.Now())
	}
	if !ans.ok {
		return User{}, fmt.Errorf("token review: %s: %w", ans.reason, ErrUnauthenticated)
	}
	return ans.user, nil
}

func (a *TokenReviewAuthenticator) review(ctx context.Context, token string) (tokenAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, reviewTimeout)
	defer cancel()
	tr := &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: a.audiences},
	}
	res, err := a.client.AuthenticationV1().TokenReviews().Create(ctx, tr, metav1.CreateOptions{})
	if err != nil {
		// client-go errors carry the server's message, never the request body.
		return tokenAnswer{}, fmt.Errorf("token review: %w", err)
	}
	st := res.Status
	switch {
	case !st.Authenticated:
		reason := "token not valid"
		if st.Error != "" {
			reason = st.Error
		}
		return tokenAnswer{reason: reason}, nil
	case st.User.Username == "":
		return tokenAnswer{reason: "no user name in review"}, nil
	case len(a.audiences) > 0 && !intersects(a.audiences, st.Audiences):
		return tokenAnswer{reason: "token not valid for the audiences " + fmt.Sprint(a.audiences)}, nil
	}
	u := User{Name: st.User.Username, UID: st.User.UID, Groups: st.User.Groups}
	if len(st.User.Extra) > 0 {
		u.Extra = make(map[string][]string, len(st.User.Extra))
		for k, v := range st.User.Extra {
			u.Extra[k] = []string(v)
		}
	}
	return tokenAnswer{user: u, ok: true}, nil
}

func intersects(a, b []string) bool {
	for _, s := range a {
		if slices.Contains(b, s) {
			return true
		}
	}
	return false
}

// SubjectAccessReviewAuthorizer authorizes requests with the API server's
// SubjectAccessReview (authorization.k8s.io/v1) on resource attributes of
// APIGroup, cluster-wide. Answers, allowed and denied, are cached for the
// cache TTL, keyed by a digest of the user and the attributes; API errors are
// not cached. It is safe for concurrent use.
type SubjectAccessReviewAuthorizer struct {
	client kubernetes.Interface
	cache  *ttlCache[[sha256.Size]byte, accessAnswer]
}

type accessAnswer struct {
	allowed bool
	reason  string
}

var _ Authorizer = (*SubjectAccessReviewAuthorizer)(nil)

// NewSubjectAccessReviewAuthorizer returns an authorizer that asks client.
// Only the cache settings of opts apply.
func NewSubjectAccessReviewAuthorizer(client kubernetes.Interface, opts KubernetesOptions) *SubjectAccessReviewAuthorizer {
	ttl, size := opts.cache()
	return &SubjectAccessReviewAuthorizer{
		client: client,
		cache:  newTTLCache[[sha256.Size]byte, accessAnswer](ttl, size),
	}
}

// Authorize reviews whether u may do a, or reuses a recent review. A denial's
// reason names the missing permission and how to grant it.
func (z *SubjectAccessReviewAuthorizer) Authorize(ctx context.Context, u User, a Attributes) (bool, string, error) {
	key := accessKey(u, a)
	ans, ok := z.cache.get(key, time.Now())
	if !ok {
		var err error
		ans, err = z.review(ctx, u, a)
		if err != nil {
			return false, "", err
		}
		z.cache.put(key, ans, time.Now())
	}
	return ans.allowed, ans.reason, nil
}

func (z *SubjectAccessReviewAuthorizer) review(ctx context.Context, u User, a Attributes) (accessAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, reviewTimeout)
	defer cancel()
	sar := &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Group:    APIGroup,
				Resource: a.Resource,
				Verb:     a.Verb,
			},
			User:   u.Name,
			UID:    u.UID,
			Groups: u.Groups,
		},
	}
	if len(u.Extra) > 0 {
		sar.Spec.Extra = make(map[string]authorizationv1.ExtraValue, len(u.Extra))
		for k, v := range u.Extra {
			sar.Spec.Extra[k] = authorizationv1.ExtraValue(v)
		}
	}
	res, err := z.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return accessAnswer{}, fmt.Errorf("subject access review: %w", err)
	}
	if res.Status.Allowed && !res.Status.Denied {
		return accessAnswer{allowed: true}, nil
	}
	reason := fmt.Sprintf("user %q cannot %s: grant it with a ClusterRole (apiGroups: [%q], resources: [%q], verbs: [%q])",
		u.Name, a, APIGroup, a.Resource, a.Verb)
	if res.Status.Reason != "" {
		reason += "; the authorizer said: " + res.Status.Reason
	}
	return accessAnswer{reason: reason}, nil
}

// accessKey digests everything a SubjectAccessReview is about, each field
// length-prefixed so that no two different requests share a key.
func accessKey(u User, a Attributes) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	write := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	write(a.Verb)
	write(a.Resource)
	write(u.Name)
	write(u.UID)
	binary.BigEndian.PutUint64(n[:], uint64(len(u.Groups)))
	h.Write(n[:])
	for _, g := range u.Groups {
		write(g)
	}
	binary.BigEndian.PutUint64(n[:], uint64(len(u.Extra)))
	h.Write(n[:])
	for _, k := range slices.Sorted(maps.Keys(u.Extra)) {
		write(k)
		binary.BigEndian.PutUint64(n[:], uint64(len(u.Extra[k])))
		h.Write(n[:])
		for _, v := range u.Extra[k] {
			write(v)
		}
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	return key
}
