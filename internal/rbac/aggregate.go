package rbac

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// aggregate sets the rules of every ClusterRole with an aggregationRule to
// the rules the API server serves for it once kube-controller-manager's
// clusterrole-aggregation controller has run, which is what the RBAC
// authorizer then evaluates (it never looks at aggregationRule itself).
//
// The controller REPLACES the role's rules, it does not add to them: the
// new rules are, for each selector in order, the rules of every other
// ClusterRole the selector matches, roles taken by name, each distinct rule
// once. A role's own rules therefore count only in one case: when the
// selectors select no rules at all. The controller then server-side-applies
// a ClusterRole without rules, which removes only rules the controller
// itself set before; rules written by whoever created the role stay. So
// for manifests (never aggregated yet) and for a cluster dump (whose rules
// are already the controller's) alike, an empty union keeps the rules as
// given.
//
// The controller reads roles it may have aggregated already, so an
// aggregated role can feed another (bootstrap "edit" feeds "admin"). The
// loop below runs the controller's step over all aggregated roles until
// nothing changes; for roles that select each other in a cycle the
// controller may never settle, and neither does this: that is reported as
// an error with the rules of the last round kept.
//
// A selector that is not a valid label selector makes the controller fail
// for that role and leave its rules as they are; so does aggregate, and
// reports it.
func aggregate(clusterRoles map[string]*role) []error {
	var errs []error
	all := make([]*role, 0, len(clusterRoles))
	for _, r := range clusterRoles {
		all = append(all, r)
	}
	slices.SortFunc(all, func(a, b *role) int { return strings.Compare(a.ref.Name, b.ref.Name) })

	type aggregated struct {
		role      *role
		selectors []labels.Selector
	}
	var work []aggregated
	for _, r := range all {
		if r.aggregation == nil {
			continue
		}
		a := aggregated{role: r}
		for i := range r.aggregation.ClusterRoleSelectors {
			sel, err := metav1.LabelSelectorAsSelector(&r.aggregation.ClusterRoleSelectors[i])
			if err != nil {
				errs = append(errs, &ObjectError{Object: r.ref, Source: r.source,
					Err: fmt.Errorf("aggregationRule.clusterRoleSelectors[%d]: %w", i, err)})
				a.selectors = nil
				break
			}
			a.selectors = append(a.selectors, sel)
		}
		if a.selectors != nil {
			work = append(work, a)
		}
	}

	for round := 0; ; round++ {
		var changed []*role
		for _, a := range work {
			var rules []rbacv1.PolicyRule
			for _, sel := range a.selectors {
				for _, other := range all {
					if other == a.role || !sel.Matches(labels.Set(other.labels)) {
						continue
					}
					for _, rule := range other.rules {
						if !slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool { return equality.Semantic.DeepEqual(r, rule) }) {
							rules = append(rules, rule)
						}
					}
				}
			}
			if len(rules) == 0 || equality.Semantic.DeepEqual(rules, a.role.rules) {
				continue
			}
			a.role.rules = rules
			changed = append(changed, a.role)
		}
		if len(changed) == 0 {
			return errs
		}
		// Without a cycle every round settles at least one more role.
		if round > len(work) {
			for _, r := range changed {
				errs = append(errs, &ObjectError{Object: r.ref, Source: r.source,
					Err: errors.New("aggregationRule: aggregated ClusterRoles select each other and their rules never settle")})
			}
			return errs
		}
	}
}
