package rbac

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/kube"
)

// Groups the API server's authenticators put users in, which bindings name.
const (
	// GroupAuthenticated holds every authenticated user.
	GroupAuthenticated = "system:authenticated"
	// GroupUnauthenticated holds the anonymous user.
	GroupUnauthenticated = "system:unauthenticated"
	// GroupServiceAccounts holds every service account.
	GroupServiceAccounts = "system:serviceaccounts"
	// UserAnonymous is the user of requests without credentials.
	UserAnonymous = "system:anonymous"

	serviceAccountPrefix = "system:serviceaccount:"
)

// ServiceAccountUser returns the username a service account authenticates
// as: system:serviceaccount:NAMESPACE:NAME.
func ServiceAccountUser(namespace, name string) string {
	return serviceAccountPrefix + namespace + ":" + name
}

// ServiceAccountGroups returns the groups a service account of a namespace
// is in, as the API server's token authenticator reports them.
func ServiceAccountGroups(namespace string) []string {
	return []string{GroupServiceAccounts, GroupServiceAccounts + ":" + namespace, GroupAuthenticated}
}

// Subject is who a binding grants to, or who is asked about.
type Subject struct {
	// Kind is "User", "Group" or "ServiceAccount" (rbacv1.UserKind,
	// rbacv1.GroupKind, rbacv1.ServiceAccountKind), case-sensitive as the
	// API server compares it.
	Kind string
	Name string
	// Namespace is a ServiceAccount's namespace, empty for users and groups.
	Namespace string
}

// String renders the subject as Kind name, or Kind namespace/name for a
// service account.
func (s Subject) String() string {
	if s.Kind == rbacv1.ServiceAccountKind {
		return fmt.Sprintf("%s %s/%s", s.Kind, s.Namespace, s.Name)
	}
	return s.Kind + " " + s.Name
}

// identity returns the user and groups the API server authenticates the
// subject as, and false for a subject that is no one (a ServiceAccount
// without namespace, an unknown kind). A User's groups beyond
// system:authenticated come from its authenticator and cannot be known
// here.
func (s Subject) identity() (user string, groups []string, ok bool) {
	switch s.Kind {
	case rbacv1.UserKind:
		if s.Name == UserAnonymous {
			return s.Name, []string{GroupUnauthenticated}, true
		}
		if ns, _, isSA := splitServiceAccountUser(s.Name); isSA {
			return s.Name, ServiceAccountGroups(ns), true
		}
		return s.Name, []string{GroupAuthenticated}, true
	case rbacv1.GroupKind:
		return "", []string{s.Name}, true
	case rbacv1.ServiceAccountKind:
		if s.Namespace == "" {
			return "", nil, false
		}
		return ServiceAccountUser(s.Namespace, s.Name), ServiceAccountGroups(s.Namespace), true
	}
	return "", nil, false
}

func splitServiceAccountUser(user string) (namespace, name string, ok bool) {
	rest, ok := strings.CutPrefix(user, serviceAccountPrefix)
	if !ok {
		return "", "", false
	}
	namespace, name, ok = strings.Cut(rest, ":")
	if !ok || namespace == "" || name == "" || strings.Contains(name, ":") {
		return "", "", false
	}
	return namespace, name, true
}

// Request is one access to authorize, with the fields of a
// SubjectAccessReview. It is a resource request, or a non-resource request
// when NonResourceURL is set.
type Request struct {
	Verb string
	// APIGroup is "" for the core group.
	APIGroup    string
	Resource    string
	Subresource string
	// Namespace is the namespace of a namespaced resource. Empty means
	// cluster-wide: a cluster-scoped resource, or all namespaces at once
	// (list pods --all-namespaces), which only ClusterRoleBindings grant.
	Namespace string
	// Name is the object's name; empty for requests on a collection (list,
	// watch, create, deletecollection), which a rule with resourceNames
	// never allows.
	Name string
	// NonResourceURL is the path of a non-resource request ("/healthz").
	// When set, the resource fields and Namespace are ignored: the API
	// server gives non-resource requests no namespace, so only
	// ClusterRoleBindings grant them.
	NonResourceURL string
}

func (r *Request) isNonResource() bool { return r.NonResourceURL != "" }

// scope is the namespace whose RoleBindings apply to the request; "" means
// none do.
func (r *Request) scope() string {
	if r.isNonResource() {
		return ""
	}
	return r.Namespace
}

// String renders the request roughly as kubectl auth can-i takes it.
func (r Request) String() string {
	if r.isNonResource() {
		return r.Verb + " " + r.NonResourceURL
	}
	var b strings.Builder
	b.WriteString(r.Verb + " " + r.Resource)
	if r.APIGroup != "" {
		b.WriteString("." + r.APIGroup)
	}
	if r.Subresource != "" {
		b.WriteString("/" + r.Subresource)
	}
	if r.Name != "" {
		b.WriteString(" " + r.Name)
	}
	if r.Namespace != "" {
		b.WriteString(" -n " + r.Namespace)
	} else {
		b.WriteString(" (cluster-wide)")
	}
	return b.String()
}

// Grant is one rule a binding gives a subject: Subject as the binding names
// it (a ServiceAccount's empty namespace filled in from a RoleBinding),
// Binding the RoleBinding or ClusterRoleBinding, Role the Role or
// ClusterRole it references. A RoleBinding's grant holds in the binding's
// namespace only (Binding.Namespace), a ClusterRoleBinding's everywhere.
type Grant struct {
	Subject Subject
	Binding finding.ObjectRef
	Role    finding.ObjectRef
	Rule    rbacv1.PolicyRule
}

// Index answers RBAC questions over a fixed set of objects. It is read-only
// once built and safe for concurrent use.
type Index struct {
	roles        map[nsName]*role
	clusterRoles map[string]*role
	// clusterBindings are the ClusterRoleBindings, roleBindings the
	// RoleBindings by namespace, each in input order.
	clusterBindings []*binding
	roleBindings    map[string][]*binding
	// byUser and byGroup hold the bindings naming a user (service accounts
	// under their username) or a group, so that Allowed and Rules read only
	// the bindings that can apply.
	byUser          map[string][]*binding
	byGroup         map[string][]*binding
	serviceAccounts map[nsName]finding.ObjectRef
	refs            refIndex
}

type nsName struct{ namespace, name string }

type role struct {
	ref         finding.ObjectRef
	source      finding.Source
	labels      map[string]string
	aggregation *rbacv1.AggregationRule
	rules       []rbacv1.PolicyRule
}

type binding struct {
	// ref's Namespace is the binding's effective namespace, "" for a
	// ClusterRoleBinding.
	ref      finding.ObjectRef
	source   finding.Source
	seq      int
	roleRef  rbacv1.RoleRef
	subjects []rbacv1.Subject
}

// ObjectError is an input object New could not use. Its message starts
// with the object's file:line when it came from a file.
type ObjectError struct {
	Object finding.ObjectRef
	Source finding.Source
	Err    error
}

// ErrDuplicate marks an ObjectError about an object given twice: a warning,
// not a failure, since the answer is what the cluster would have after
// applying both.
var ErrDuplicate = errors.New("duplicate object")

type duplicateError struct{ msg string }

func (e duplicateError) Error() string        { return e.msg }
func (e duplicateError) Is(target error) bool { return target == ErrDuplicate }

func (e *ObjectError) Error() string {
	msg := e.Object.String() + ": " + e.Err.Error()
	if loc := e.Source.String(); loc != "" {
		return loc + ": " + msg
	}
	return msg
}

func (e *ObjectError) Unwrap() error { return e.Err }

// Location returns where the failing object is.
func (e *ObjectError) Location() finding.Source { return e.Source }

// rbacVersions are the apiVersions whose RBAC kinds New reads; v1beta1 and
// v1alpha1 have the fields of v1.
var rbacVersions = map[string]bool{
	rbacv1.SchemeGroupVersion.String(): true,
	rbacv1.GroupName + "/v1beta1":      true,
	rbacv1.GroupName + "/v1alpha1":     true,
}

// New indexes the Roles, ClusterRoles, RoleBindings, ClusterRoleBindings
// and ServiceAccounts among objs and ignores other kinds. A namespaced
// object without namespace is in "default", as kubectl applies it.
//
// ClusterRole aggregation is resolved here: the rules of a ClusterRole with
// an aggregationRule are those the API server serves once its
// controller-manager has aggregated them, which replace the role's own
// rules unless its selectors select none.
//
// It returns one *ObjectError per object it could not read (left out), per
// duplicate (the later one is used, as a second kubectl apply would leave
// it), and per ClusterRole whose aggregation cannot be resolved: an invalid
// selector (its rules are kept as given) or aggregated roles selecting each
// other in a cycle that never settles.
func New(objs []kube.Object) (*Index, []error) {
	ix := &Index{
		roles:           map[nsName]*role{},
		clusterRoles:    map[string]*role{},
		roleBindings:    map[string][]*binding{},
		byUser:          map[string][]*binding{},
		byGroup:         map[string][]*binding{},
		serviceAccounts: map[nsName]finding.ObjectRef{},
	}
	var errs []error
	fail := func(o *kube.Object, err error) {
		errs = append(errs, &ObjectError{Object: o.Ref, Source: o.Source, Err: err})
	}
	duplicate := func(o *kube.Object, first finding.Source) {
		where := ""
		if loc := first.String(); loc != "" {
			where = " (first at " + loc + ")"
		}
		fail(o, duplicateError{fmt.Sprintf("duplicate %s%s: using this one, as kubectl apply would", o.Ref.Kind, where)})
	}
	type bindingKey struct{ kind, namespace, name string }
	bindings := map[bindingKey]*binding{}
	var order []*binding

	for i := range objs {
		o := &objs[i]
		switch o.Ref.Kind {
		case "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding":
			if !strings.HasPrefix(o.Ref.APIVersion, rbacv1.GroupName+"/") {
				continue // a kind of the same name in another API group
			}
			if !rbacVersions[o.Ref.APIVersion] {
				fail(o, fmt.Errorf("unsupported apiVersion %q (want %s/v1)", o.Ref.APIVersion, rbacv1.GroupName))
				continue
			}
		case "ServiceAccount":
			if o.Ref.APIVersion != "v1" {
				continue
			}
			ref := o.Ref
			ref.Namespace = defaultNamespace(ref.Namespace)
			ix.serviceAccounts[nsName{ref.Namespace, ref.Name}] = ref
			continue
		default:
			continue
		}

		switch o.Ref.Kind {
		case "Role", "ClusterRole":
			// ClusterRole is Role plus aggregationRule: one decode serves both.
			var v rbacv1.ClusterRole
			if err := json.Unmarshal(o.Raw, &v); err != nil {
				fail(o, fmt.Errorf("decode %s: %w", o.Ref.Kind, err))
				continue
			}
			r := &role{ref: o.Ref, source: o.Source, labels: v.Labels, rules: v.Rules}
			if o.Ref.Kind == "ClusterRole" {
				r.ref.Namespace = ""
				r.aggregation = v.AggregationRule
				if old, ok := ix.clusterRoles[r.ref.Name]; ok {
					duplicate(o, old.source)
				}
				ix.clusterRoles[r.ref.Name] = r
				continue
			}
			r.ref.Namespace = defaultNamespace(r.ref.Namespace)
			key := nsName{r.ref.Namespace, r.ref.Name}
			if old, ok := ix.roles[key]; ok {
				duplicate(o, old.source)
			}
			ix.roles[key] = r
		case "RoleBinding", "ClusterRoleBinding":
			var v rbacv1.RoleBinding // ClusterRoleBinding has the same fields
			if err := json.Unmarshal(o.Raw, &v); err != nil {
				fail(o, fmt.Errorf("decode %s: %w", o.Ref.Kind, err))
				continue
			}
			b := &binding{ref: o.Ref, source: o.Source, seq: len(order), roleRef: v.RoleRef, subjects: v.Subjects}
			if o.Ref.Kind == "ClusterRoleBinding" {
				b.ref.Namespace = ""
			} else {
				b.ref.Namespace = defaultNamespace(b.ref.Namespace)
			}
			key := bindingKey{b.ref.Kind, b.ref.Namespace, b.ref.Name}
			if old, ok := bindings[key]; ok {
				duplicate(o, old.source)
				b.seq = old.seq
				*old = *b
				continue
			}
			bindings[key] = b
			order = append(order, b)
		}
	}

	errs = append(errs, aggregate(ix.clusterRoles)...)

	for _, b := range order {
		if b.ref.Namespace == "" {
			ix.clusterBindings = append(ix.clusterBindings, b)
		} else {
			ix.roleBindings[b.ref.Namespace] = append(ix.roleBindings[b.ref.Namespace], b)
		}
		for _, s := range b.subjects {
			sub, ok := normalize(s, b.ref.Namespace)
			if !ok {
				continue
			}
			switch sub.Kind {
			case rbacv1.GroupKind:
				ix.byGroup[sub.Name] = appendOnce(ix.byGroup[sub.Name], b)
			case rbacv1.UserKind:
				ix.byUser[sub.Name] = appendOnce(ix.byUser[sub.Name], b)
			case rbacv1.ServiceAccountKind:
				u := ServiceAccountUser(sub.Namespace, sub.Name)
				ix.byUser[u] = appendOnce(ix.byUser[u], b)
			}
		}
	}
	return ix, errs
}

func defaultNamespace(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}

// appendOnce appends b unless it is already last: bindings are indexed in
// order, so a binding naming the same subject twice would be the last one.
func appendOnce(bs []*binding, b *binding) []*binding {
	if len(bs) > 0 && bs[len(bs)-1] == b {
		return bs
	}
	return append(bs, b)
}

// normalize returns a binding subject as the authorizer matches it, and
// false for one that matches no one. As appliesToUser in the API server: a
// ServiceAccount without namespace is in the binding's namespace, so in a
// ClusterRoleBinding it matches no one; kinds are compared case-sensitively
// and apiGroup is not looked at.
func normalize(s rbacv1.Subject, bindingNamespace string) (Subject, bool) {
	switch s.Kind {
	case rbacv1.UserKind, rbacv1.GroupKind:
		return Subject{Kind: s.Kind, Name: s.Name}, true
	case rbacv1.ServiceAccountKind:
		ns := s.Namespace
		if ns == "" {
			ns = bindingNamespace
		}
		if ns == "" {
			return Subject{}, false
		}
		return Subject{Kind: s.Kind, Name: s.Name, Namespace: ns}, true
	}
	return Subject{}, false
}

// appliesTo returns the first subject of b that is the user or one of the
// groups, as the API server's appliesTo does. An empty user is no user.
func (b *binding) appliesTo(user string, groups []string) (Subject, bool) {
	for _, s := range b.subjects {
		sub, ok := normalize(s, b.ref.Namespace)
		if !ok {
			continue
		}
		switch sub.Kind {
		case rbacv1.UserKind:
			if user != "" && sub.Name == user {
				return sub, true
			}
		case rbacv1.GroupKind:
			if slices.Contains(groups, sub.Name) {
				return sub, true
			}
		case rbacv1.ServiceAccountKind:
			if user != "" && ServiceAccountUser(sub.Namespace, sub.Name) == user {
				return sub, true
			}
		}
	}
	return Subject{}, false
}

// role returns the role b references, or nil when it does not exist. A
// RoleBinding's Role is looked up in the binding's namespace; a
// ClusterRoleBinding cannot reference a Role (the API server looks in
// namespace "" and finds none). roleRef.apiGroup is not looked at.
func (ix *Index) role(b *binding) *role {
	switch b.roleRef.Kind {
	case "Role":
		if b.ref.Namespace == "" {
			return nil
		}
		return ix.roles[nsName{b.ref.Namespace, b.roleRef.Name}]
	case "ClusterRole":
		return ix.clusterRoles[b.roleRef.Name]
	}
	return nil
}

// appliesIn reports whether b's grants hold for a request whose
// RoleBinding namespace is ns: a ClusterRoleBinding's always, a
// RoleBinding's in its own namespace only.
func (b *binding) appliesIn(ns string) bool {
	return b.ref.Namespace == "" || b.ref.Namespace == ns
}

// Allowed reports whether RBAC allows the user with exactly these groups to
// make req, as a SubjectAccessReview with the same user, groups and
// attributes would. Groups are taken as given, as a SubjectAccessReview
// takes them: include system:authenticated (and for a service account the
// groups of ServiceAccountGroups) when the user would have them.
//
// It reads only the bindings naming the user or one of the groups.
func (ix *Index) Allowed(user string, groups []string, req Request) bool {
	ns := req.scope()
	check := func(bs []*binding) bool {
		for _, b := range bs {
			if !b.appliesIn(ns) {
				continue
			}
			r := ix.role(b)
			if r == nil {
				continue
			}
			for i := range r.rules {
				if ruleAllows(&r.rules[i], &req) {
					return true
				}
			}
		}
		return false
	}
	if check(ix.byUser[user]) {
		return true
	}
	for _, g := range groups {
		if check(ix.byGroup[g]) {
			return true
		}
	}
	return false
}

// WhoCan returns every subject of every binding that allows req, one Grant
// per subject and binding, with the first rule of the role that allows it.
// With req.Namespace empty only ClusterRoleBindings count: the subjects
// returned may make req cluster-wide, i.e. in every namespace. Groups are
// returned as groups (system:authenticated means everyone who
// authenticates), not expanded.
//
// Grants are ordered ClusterRoleBindings first, then RoleBindings, each in
// input order. WhoCan reads every binding that can apply.
func (ix *Index) WhoCan(req Request) []Grant {
	bs := ix.clusterBindings
	if ns := req.scope(); ns != "" {
		bs = append(slices.Clip(bs), ix.roleBindings[ns]...)
	}
	var out []Grant
	for _, b := range bs {
		r := ix.role(b)
		if r == nil {
			continue
		}
		i := slices.IndexFunc(r.rules, func(rule rbacv1.PolicyRule) bool { return ruleAllows(&rule, &req) })
		if i < 0 {
			continue
		}
		var seen []Subject
		for _, s := range b.subjects {
			sub, ok := normalize(s, b.ref.Namespace)
			if !ok || slices.Contains(seen, sub) {
				continue
			}
			seen = append(seen, sub)
			out = append(out, Grant{Subject: sub, Binding: b.ref, Role: r.ref, Rule: r.rules[i]})
		}
	}
	return out
}

// Rules returns everything s may do: one Grant per rule of every binding
// that applies to it, directly or through a group it is in. A
// ServiceAccount (Namespace required) is in system:serviceaccounts,
// system:serviceaccounts:NAMESPACE and system:authenticated; a User in
// system:authenticated (system:unauthenticated for system:anonymous); a
// Group is only itself. A user's other groups are given by its
// authenticator and cannot be known here: ask about each group too.
//
// Grant.Subject is the binding's subject that matched (for example Group
// system:authenticated); a grant holds in Grant.Binding.Namespace only, or
// everywhere when that is empty. Like `kubectl auth can-i --list`, the
// rules of a ClusterRole bound by a RoleBinding are listed whole, though
// its nonResourceURLs grant nothing there. Grants are ordered ClusterRoleBindings
// first, then RoleBindings by namespace, each in input order.
func (ix *Index) Rules(s Subject) []Grant {
	user, groups, ok := s.identity()
	if !ok {
		return nil
	}
	var bs []*binding
	if user != "" {
		bs = append(bs, ix.byUser[user]...)
	}
	for _, g := range groups {
		bs = append(bs, ix.byGroup[g]...)
	}
	slices.SortFunc(bs, func(a, b *binding) int {
		return cmp.Or(cmp.Compare(a.ref.Namespace, b.ref.Namespace), cmp.Compare(a.seq, b.seq))
	})
	bs = slices.Compact(bs)
	var out []Grant
	for _, b := range bs {
		sub, ok := b.appliesTo(user, groups)
		if !ok {
			continue
		}
		r := ix.role(b)
		if r == nil {
			continue
		}
		for _, rule := range r.rules {
			out = append(out, Grant{Subject: sub, Binding: b.ref, Role: r.ref, Rule: rule})
		}
	}
	return out
}

// ServiceAccount returns the ServiceAccount object of that name among the
// input objects, to tell a binding subject that names a missing account.
func (ix *Index) ServiceAccount(namespace, name string) (finding.ObjectRef, bool) {
	ref, ok := ix.serviceAccounts[nsName{defaultNamespace(namespace), name}]
	return ref, ok
}
