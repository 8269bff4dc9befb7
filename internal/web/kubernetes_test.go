package web

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// fakeCluster is a clientset whose TokenReview and SubjectAccessReview
// answers come from maps, counting the calls.
type fakeCluster struct {
	*fake.Clientset
	// users maps tokens to the user the review returns.
	users map[string]authenticationv1.UserInfo
	// audiences the API server says a token is valid for; nil echoes the
	// requested ones.
	audiences []string
	// allowed holds "user verb resource" triples that SAR allows.
	allowed map[string]bool
	// denyReason is the reason SAR gives for a denial.
	denyReason string
	// fail makes every review fail.
	fail atomic.Bool

	tokenReviews, accessReviews atomic.Int32
	lastSAR                     atomic.Pointer[authorizationv1.SubjectAccessReviewSpec]
}

func newFakeCluster() *fakeCluster {
	c := &fakeCluster{
		Clientset: fake.NewClientset(),
		users: map[string]authenticationv1.UserInfo{
			"alice-sa-token": {Username: "alice", UID: "u-1", Groups: []string{"sre", "system:authenticated"},
				Extra: map[string]authenticationv1.ExtraValue{"scopes": {"a", "b"}}},
			"bob-sa-token": {Username: "bob"},
		},
		allowed: map[string]bool{"alice list findings": true, "alice update alerts": true},
	}
	c.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		c.tokenReviews.Add(1)
		if c.fail.Load() {
			return true, nil, errors.New("connection refused")
		}
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview).DeepCopy()
		u, ok := c.users[tr.Spec.Token]
		if !ok {
			tr.Status = authenticationv1.TokenReviewStatus{Error: "invalid bearer token"}
			return true, tr, nil
		}
		auds := c.audiences
		if auds == nil {
			auds = tr.Spec.Audiences
		}
		tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: u, Audiences: auds}
		return true, tr, nil
	})
	c.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		c.accessReviews.Add(1)
		if c.fail.Load() {
			return true, nil, errors.New("connection refused")
		}
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview).DeepCopy()
		c.lastSAR.Store(&sar.Spec)
		ra := sar.Spec.ResourceAttributes
		if ra != nil && ra.Group == APIGroup && c.allowed[sar.Spec.User+" "+ra.Verb+" "+ra.Resource] {
			sar.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: true, Reason: "RBAC: allowed by ClusterRoleBinding"}
		} else {
			sar.Status = authorizationv1.SubjectAccessReviewStatus{Reason: c.denyReason}
		}
		return true, sar, nil
	})
	return c
}

func TestTokenReviewAuthenticator(t *testing.T) {
	tests := []struct {
		name      string
		token     string
		audiences []string // requested
		returned  []string // returned by the API server; nil echoes
		fail      bool
		want      User
		wantErr   string
		unauth    bool
	}{
		{name: "valid", token: "alice-sa-token", want: User{Name: "alice", UID: "u-1", Groups: []string{"sre", "system:authenticated"},
			Extra: map[string][]string{"scopes": {"a", "b"}}}},
		{name: "minimal user", token: "bob-sa-token", want: User{Name: "bob"}},
		{name: "invalid", token: "nope", wantErr: "invalid bearer token", unauth: true},
		{name: "audience matches", token: "bob-sa-token", audiences: []string{"kustode"}, want: User{Name: "bob"}},
		{name: "audience mismatch", token: "bob-sa-token", audiences: []string{"kustode"}, returned: []string{"https://kubernetes.default.svc"},
			wantErr: "audiences", unauth: true},
		{name: "api down", token: "alice-sa-token", fail: true, wantErr: "token review: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCluster()
			c.audiences = tt.returned
			c.fail.Store(tt.fail)
			a := NewTokenReviewAuthenticator(c, KubernetesOptions{Audiences: tt.audiences})
			u, err := a.Authenticate(t.Context(), tt.token)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Authenticate() error = %v, want %q", err, tt.wantErr)
				}
				if errors.Is(err, ErrUnauthenticated) != tt.unauth {
					t.Errorf("errors.Is(err, ErrUnauthenticated) = %v, want %v", !tt.unauth, tt.unauth)
				}
				if strings.Contains(err.Error(), tt.token) {
					t.Errorf("error %q contains the token", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(u, tt.want) {
				t.Errorf("user = %+v, want %+v", u, tt.want)
			}
		})
	}
}

func TestTokenReviewCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFakeCluster()
		a := NewTokenReviewAuthenticator(c, KubernetesOptions{})
		auth := func(token string) error {
			_, err := a.Authenticate(t.Context(), token)
			return err
		}
		for range 3 {
			if err := auth("alice-sa-token"); err != nil {
				t.Fatal(err)
			}
			if err := auth("nope"); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("invalid token: %v", err)
			}
		}
		if n := c.tokenReviews.Load(); n != 2 {
			t.Errorf("%d token reviews for 2 tokens asked 3 times each, want 2 (positive and negative cached)", n)
		}
		if m := fmt.Sprintf("%+v", a.cache.m); strings.Contains(m, "alice-sa-token") || strings.Contains(m, "nope") {
			t.Errorf("cache holds a token: %s", m)
		}

		time.Sleep(DefaultCacheTTL - time.Second)
		if err := auth("alice-sa-token"); err != nil {
			t.Fatal(err)
		}
		if n := c.tokenReviews.Load(); n != 2 {
			t.Errorf("%d token reviews before the TTL, want 2", n)
		}
		time.Sleep(time.Second)
		if err := auth("alice-sa-token"); err != nil {
			t.Fatal(err)
		}
		if n := c.tokenReviews.Load(); n != 3 {
			t.Errorf("%d token reviews after the TTL, want 3", n)
		}

		// Errors are not cached: the next request asks again.
		c.fail.Store(true)
		for range 2 {
			if err := auth("bob-sa-token"); err == nil || errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("api down: %v", err)
			}
		}
		if n := c.tokenReviews.Load(); n != 5 {
			t.Errorf("%d token reviews, want 5 (errors not cached)", n)
		}
	})
}

func TestSubjectAccessReviewAuthorizer(t *testing.T) {
	alice := User{Name: "alice", UID: "u-1", Groups: []string{"sre"}, Extra: map[string][]string{"scopes": {"a"}}}
	tests := []struct {
		name       string
		user       User
		attrs      Attributes
		denyReason string
		fail       bool
		allowed    bool
		reason     []string
		wantErr    bool
	}{
		{name: "allowed", user: alice, attrs: Attributes{"list", "findings"}, allowed: true},
		{name: "denied", user: alice, attrs: Attributes{"create", "exceptions"},
			reason: []string{`user "alice" cannot create exceptions.kustode.io: grant it with a ClusterRole`, `resources: ["exceptions"], verbs: ["create"]`}},
		{name: "denied with authorizer reason", user: User{Name: "bob"}, attrs: Attributes{"list", "alerts"}, denyReason: "no RBAC policy matched",
			reason: []string{`user "bob" cannot list alerts.kustode.io`, "the authorizer said: no RBAC policy matched"}},
		{name: "api down", user: alice, attrs: Attributes{"list", "findings"}, fail: true, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCluster()
			c.denyReason = tt.denyReason
			c.fail.Store(tt.fail)
			z := NewSubjectAccessReviewAuthorizer(c, KubernetesOptions{})
			allowed, reason, err := z.Authorize(t.Context(), tt.user, tt.attrs)
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error while the API server is down")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if allowed != tt.allowed {
				t.Errorf("allowed = %v, want %v (reason %q)", allowed, tt.allowed, reason)
			}
			for _, f := range tt.reason {
				if !strings.Contains(reason, f) {
					t.Errorf("reason %q lacks %q", reason, f)
				}
			}
			spec := c.lastSAR.Load()
			want := authorizationv1.SubjectAccessReviewSpec{
				ResourceAttributes: &authorizationv1.ResourceAttributes{Group: "kustode.io", Resource: tt.attrs.Resource, Verb: tt.attrs.Verb},
				User:               tt.user.Name, UID: tt.user.UID, Groups: tt.user.Groups,
			}
			if tt.user.Extra != nil {
				want.Extra = map[string]authorizationv1.ExtraValue{"scopes": {"a"}}
			}
			if !reflect.DeepEqual(*spec, want) {
				t.Errorf("SAR spec = %+v, want %+v", *spec, want)
			}
		})
	}
}

func TestSubjectAccessReviewCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFakeCluster()
		z := NewSubjectAccessReviewAuthorizer(c, KubernetesOptions{CacheTTL: 5 * time.Second})
		alice := User{Name: "alice", Groups: []string{"sre"}}
		ask := func(u User, a Attributes) bool {
			ok, _, err := z.Authorize(t.Context(), u, a)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		for range 3 {
			if !ask(alice, Attributes{"list", "findings"}) {
				t.Fatal("alice denied list findings")
			}
			if ask(alice, Attributes{"get", "findings"}) {
				t.Fatal("alice allowed get findings")
			}
		}
		if n := c.accessReviews.Load(); n != 2 {
			t.Errorf("%d access reviews, want 2 (allowed and denied cached per attributes)", n)
		}
		// A different identity is a different key, even with the same name.
		ask(User{Name: "alice", Groups: []string{"sre", "admins"}}, Attributes{"list", "findings"})
		if n := c.accessReviews.Load(); n != 3 {
			t.Errorf("%d access reviews, want 3", n)
		}
		time.Sleep(5 * time.Second)
		ask(alice, Attributes{"list", "findings"})
		if n := c.accessReviews.Load(); n != 4 {
			t.Errorf("%d access reviews after the TTL, want 4", n)
		}
	})
}

func TestAccessKey(t *testing.T) {
	// Field boundaries matter: none of these may share a key.
	users := []struct {
		u User
		a Attributes
	}{
		{User{Name: "ab"}, Attributes{"get", "x"}},
		{User{Name: "a", UID: "b"}, Attributes{"get", "x"}},
		{User{Name: "a", Groups: []string{"b"}}, Attributes{"get", "x"}},
		{User{Name: "a", Groups: []string{"b", "c"}}, Attributes{"get", "x"}},
		{User{Name: "a", Groups: []string{"bc"}}, Attributes{"get", "x"}},
		{User{Name: "a", Extra: map[string][]string{"b": {"c"}}}, Attributes{"get", "x"}},
		{User{Name: "a", Extra: map[string][]string{"b": {}, "c": {}}}, Attributes{"get", "x"}},
		{User{Name: "a"}, Attributes{"ge", "tx"}},
		{User{Name: "a"}, Attributes{"get", "x"}},
	}
	seen := map[[32]byte]int{}
	for i, x := range users {
		k := accessKey(x.u, x.a)
		if j, ok := seen[k]; ok {
			t.Errorf("entries %d and %d share a key", j, i)
		}
		seen[k] = i
	}
	// Map order does not change the key.
	u := User{Name: "a", Extra: map[string][]string{"x": {"1"}, "y": {"2"}, "z": {"3"}}}
	first := accessKey(u, Attributes{})
	for range 10 {
		if accessKey(u, Attributes{}) != first {
			t.Fatal("key depends on map order")
		}
	}
}

// TestKubernetesAuthServer runs the API with TokenReview and SAR against
// the fake cluster.
func TestKubernetesAuthServer(t *testing.T) {
	c := newFakeCluster()
	fs := newFakeStore()
	s, err := New(Options{Listen: ":0", Store: fs, Auth: []Auth{KubernetesAuth(c, KubernetesOptions{})}})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, store: fs}
	tests := []struct {
		name   string
		req    req
		code   int
		reason string
	}{
		{"allowed", req{target: "/api/v1/findings", token: "alice-sa-token"}, 200, ""},
		{"ack records the user", req{method: "POST", target: "/api/v1/alerts/7/ack", token: "alice-sa-token"}, 200, ""},
		{"denied", req{target: "/api/v1/alerts", token: "alice-sa-token"}, 403, `user "alice" cannot list alerts.kustode.io: grant it with a ClusterRole`},
		{"other user denied", req{target: "/api/v1/findings", token: "bob-sa-token"}, 403, `user "bob" cannot list findings.kustode.io`},
		{"invalid token", req{target: "/api/v1/findings", token: "forged"}, 401, "invalid bearer token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := ts.do(t, tt.req)
			if tt.code == 200 {
				wantStatus(t, w, 200)
				return
			}
			wantError(t, w, tt.code, tt.reason)
		})
	}
	if a := fs.alerts[7]; a.AckedBy != "alice" {
		t.Errorf("AckedBy = %q, want alice", a.AckedBy)
	}
}
