package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/kube"
	"github.com/kustode/kustode/internal/manifest"
	"github.com/kustode/kustode/internal/rbac"
)

// rbacKinds are the kinds who-can and access read.
var rbacKinds = []string{"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "ServiceAccount"}

// rbacSource reads RBAC objects from files (-f) or a cluster (--cluster).
type rbacSource struct {
	files   []string
	cluster clusterFlags
}

func (r *rbacSource) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringSliceVarP(&r.files, "filename", "f", nil, "manifests to read RBAC objects from (files, directories, - for stdin)")
	r.cluster.addConnectionFlags(cmd, "read RBAC objects from the live cluster of the current kubeconfig context")
}

// load builds the RBAC index. Objects that could not be read are returned
// as problems; the answer is then incomplete and the command exits 2.
func (r *rbacSource) load(ctx context.Context, stdin io.Reader) (*rbac.Index, []error, error) {
	var objs []kube.Object
	var problems []error
	switch {
	case r.cluster.enabled && len(r.files) > 0:
		return nil, nil, usageError{fmt.Errorf("give -f or --cluster, not both")}
	case r.cluster.enabled:
		var err error
		if objs, problems, err = r.cluster.list(ctx, rbacKinds...); err != nil {
			return nil, nil, err
		}
	case len(r.files) > 0:
		objs, problems = manifest.Load(r.files, stdin)
		// Manifests bind the built-in roles without defining them.
		objs = rbac.WithBuiltinRoles(objs)
	default:
		return nil, nil, usageError{fmt.Errorf("no RBAC objects: give -f PATH (manifests) or --cluster")}
	}
	ix, errs := rbac.New(objs)
	return ix, append(problems, errs...), nil
}

// grantJSON is the stable JSON form of a grant.
type grantJSON struct {
	Subject grantSubject      `json:"subject"`
	Binding finding.ObjectRef `json:"binding"`
	Role    finding.ObjectRef `json:"role"`
	Rule    rbacv1.PolicyRule `json:"rule"`
}

type grantSubject struct {
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

func grantsJSON(gs []rbac.Grant) []grantJSON {
	out := make([]grantJSON, len(gs))
	for i, g := range gs {
		out[i] = grantJSON{
			Subject: grantSubject{Kind: g.Subject.Kind, Name: g.Subject.Name, Namespace: g.Subject.Namespace},
			Binding: g.Binding, Role: g.Role, Rule: g.Rule,
		}
	}
	return out
}

func refString(r finding.ObjectRef) string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// reportProblems prints what could not be read and exits 2 when the answer
// may be incomplete. Objects given twice are warnings only: the answer uses
// the later one, as the cluster would after applying both.
func reportProblems(w io.Writer, problems []error) error {
	failed := 0
	for _, p := range problems {
		if errors.Is(p, rbac.ErrDuplicate) {
			fmt.Fprintf(w, "kustode: warning: %v\n", p)
			continue
		}
		failed++
		fmt.Fprintf(w, "kustode: %v\n", p)
	}
	if failed > 0 {
		fmt.Fprintf(w, "kustode: %d object(s) could not be read: the answer may be incomplete\n", failed)
		return exitError{code: ExitUsage}
	}
	return nil
}

func newWhoCanCommand(s streams) *cobra.Command {
	output := newOutputFormat("table", "table", "json")
	var (
		src       rbacSource
		namespace string
		name      string
	)
	cmd := &cobra.Command{
		Use:   "who-can VERB RESOURCE[/SUBRESOURCE] | who-can VERB NON-RESOURCE-URL",
		Short: "List every user, group and service account RBAC allows to do something",
		Long: `List every subject (User, Group, ServiceAccount) that Kubernetes RBAC allows
to make a request, with the binding and role that allow it.

RESOURCE is named as kubectl names it: pods, pods/exec, deployments.apps,
deploy, clusterroles.rbac.authorization.k8s.io. A path starting with / asks
about a non-resource URL (/metrics, /healthz). Without -n the question is
cluster-wide: allowed in every namespace, which only ClusterRoleBindings give.

The answer follows the API server's RBAC authorizer exactly: aggregated
ClusterRoles, resourceNames, nonResourceURLs, RoleBindings to ClusterRoles
scoped to their namespace, */subresource rules. It does not include other
authorizers (Node, webhooks) or members of system:masters granted outside
RBAC. RBAC objects come from manifests (-f) or the cluster (--cluster); with
-f, the built-in ClusterRoles cluster-admin, admin, edit and view are assumed
as Kubernetes 1.37 defines them unless the manifests define them.`,
		Example: `  # who can read Secrets in kube-system, from the live cluster
  kustode who-can get secrets -n kube-system --cluster

  # who can exec into pods anywhere, from manifests
  kustode who-can create pods/exec -f rbac/

  # who can scrape metrics
  kustode who-can get /metrics --cluster -o json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := rbac.Request{Verb: args[0], Namespace: namespace, Name: name}
			if strings.HasPrefix(args[1], "/") {
				if namespace != "" || name != "" {
					return usageError{fmt.Errorf("a non-resource URL has no namespace or name")}
				}
				req.NonResourceURL = args[1]
			} else {
				var err error
				if req.APIGroup, req.Resource, req.Subresource, err = rbac.ParseResource(args[1]); err != nil {
					return usageError{err}
				}
			}
			ix, problems, err := src.load(cmd.Context(), s.in)
			if err != nil {
				return err
			}
			grants := ix.WhoCan(req)
			if output.value == "json" {
				if err := writeJSON(s.out, grantsJSON(grants)); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SUBJECT\tBINDING\tROLE")
				for _, g := range grants {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", g.Subject, refString(g.Binding), refString(g.Role))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				fmt.Fprintf(s.out, "\n%d grant(s) allow %s\n", len(grants), req)
			}
			return reportProblems(s.err, problems)
		},
	}
	output.addTo(cmd.Flags())
	src.addFlags(cmd)
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of the request (default: cluster-wide, i.e. every namespace)")
	cmd.Flags().StringVar(&name, "name", "", "name of the object (rules with resourceNames only allow named requests)")
	return cmd
}

// parseSubject reads user:NAME, group:NAME, serviceaccount:NAMESPACE:NAME
// (or sa:…), or a bare system:serviceaccount:NAMESPACE:NAME username.
func parseSubject(s string) (rbac.Subject, error) {
	if rest, ok := strings.CutPrefix(s, "system:serviceaccount:"); ok {
		s = "serviceaccount:" + rest
	}
	kind, rest, ok := strings.Cut(s, ":")
	if ok && rest != "" {
		switch strings.ToLower(kind) {
		case "user":
			return rbac.Subject{Kind: rbacv1.UserKind, Name: rest}, nil
		case "group":
			return rbac.Subject{Kind: rbacv1.GroupKind, Name: rest}, nil
		case "serviceaccount", "sa":
			if ns, name, ok := strings.Cut(rest, ":"); ok && ns != "" && name != "" {
				return rbac.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}, nil
			}
		}
	}
	return rbac.Subject{}, fmt.Errorf("subject %q: want user:NAME, group:NAME or serviceaccount:NAMESPACE:NAME", s)
}

func newAccessCommand(s streams) *cobra.Command {
	output := newOutputFormat("table", "table", "json")
	var src rbacSource
	cmd := &cobra.Command{
		Use:   "access SUBJECT",
		Short: "Show everything RBAC lets one user, group or service account do",
		Long: `Show every RBAC rule that applies to one subject, with the binding and role
that grant it and where it holds (a namespace, or cluster-wide).

SUBJECT is user:NAME, group:NAME or serviceaccount:NAMESPACE:NAME (sa: for
short; a system:serviceaccount:NS:NAME username works too). Grants through
the groups every such subject is in are included: system:authenticated for
users and service accounts, system:serviceaccounts and
system:serviceaccounts:NAMESPACE for service accounts. A user's other groups
come from its authenticator and cannot be known here: ask about them with
group:NAME.`,
		Example: `  kustode access serviceaccount:kube-system:replicaset-controller --cluster
  kustode access user:alice -f rbac/ -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			subject, err := parseSubject(args[0])
			if err != nil {
				return usageError{err}
			}
			ix, problems, err := src.load(cmd.Context(), s.in)
			if err != nil {
				return err
			}
			grants := ix.Rules(subject)
			if output.value == "json" {
				if err := writeJSON(s.out, grantsJSON(grants)); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "WHERE\tVERBS\tRESOURCES\tVIA")
				for _, g := range grants {
					where := "cluster-wide"
					if g.Binding.Namespace != "" {
						where = g.Binding.Namespace
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s → %s\n", where, strings.Join(g.Rule.Verbs, ","), ruleTargets(g.Rule),
						refString(g.Binding), refString(g.Role))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				fmt.Fprintf(s.out, "\n%d rule(s) apply to %s\n", len(grants), subject)
			}
			return reportProblems(s.err, problems)
		},
	}
	output.addTo(cmd.Flags())
	src.addFlags(cmd)
	return cmd
}

// ruleTargets renders what a rule applies to: resources with their API
// groups and names, or non-resource URLs.
func ruleTargets(r rbacv1.PolicyRule) string {
	if len(r.NonResourceURLs) > 0 {
		return strings.Join(r.NonResourceURLs, ",")
	}
	var groups []string
	for _, g := range r.APIGroups {
		if g == "" {
			g = "core"
		}
		groups = append(groups, g)
	}
	s := strings.Join(r.Resources, ",") + " [" + strings.Join(groups, ",") + "]"
	if len(r.ResourceNames) > 0 {
		s += " names=" + strings.Join(r.ResourceNames, ",")
	}
	return s
}
