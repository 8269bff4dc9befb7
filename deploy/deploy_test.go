package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/kustode/kustode/internal/config"
	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/kube"
	"github.com/kustode/kustode/internal/manifest"
	"github.com/kustode/kustode/internal/posture"
	"github.com/kustode/kustode/internal/posture/checks"
)

const (
	// manifestsFile is the plain install, rendered from the chart by
	// make deploy-manifests.
	manifestsFile = "kubernetes/kustode.yaml"
	chartDir      = "helm/kustode"
	// configPath is where the Deployment's args tell serve to read its config.
	configPath = "/etc/kustode/config.yaml"
)

// monitorRules is the monitor's ClusterRole as serve needs it (the contract
// with internal/daemon): list and watch only, one rule per API group,
// resources sorted, plus the two reviews that authenticate API users.
var monitorRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"configmaps", "events", "namespaces", "pods", "replicationcontrollers", "secrets", "serviceaccounts", "services"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{"apps"}, Resources: []string{"daemonsets", "deployments", "replicasets", "statefulsets"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{"batch"}, Resources: []string{"cronjobs", "jobs"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"clusterrolebindings", "clusterroles", "rolebindings", "roles"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{"node.k8s.io"}, Resources: []string{"runtimeclasses"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{"security.istio.io"}, Resources: []string{"peerauthentications"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
	{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
}

// kubeletRules is the kubelet-config ClusterRole the chart adds with
// kubelet.readConfig (daemon.KubeletPolicyRules): never in the default
// install, since get on nodes/proxy reaches every kubelet's API.
var kubeletRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{""}, Resources: []string{"nodes/proxy"}, Verbs: []string{"get"}},
}

// userResources are the kustode.io resources serve's SubjectAccessReviews name.
var userResources = []string{"alerts", "checks", "exceptions", "findings", "metrics", "posture", "readyz", "rules"}

// exemptions are the only kustode.io/exempt annotations the install may
// carry, by kind (names follow the release), each argued in its
// kustode.io/exempt-reason. A new one is a deliberate change to this list,
// never a quiet way past the no-high-finding rule.
var exemptions = map[string]string{
	"ClusterRoleBinding": "rbac-secrets-read",
	"Deployment":         "sa-token-automount",
	// with kubelet.readConfig only: the binding of nodes/proxy
	"ClusterRoleBinding/kubelet-config": "rbac-pod-exec",
}

// exemptionKey is o's key in exemptions.
func exemptionKey(o kube.Object) string {
	if o.Ref.Kind == "ClusterRoleBinding" && strings.HasSuffix(o.Ref.Name, "-kubelet-config") {
		return o.Ref.Kind + "/kubelet-config"
	}
	return o.Ref.Kind
}

// install is one rendering of the chart, decoded.
type install struct {
	objs  []kube.Object
	typed map[string]any // by ObjectRef.String()
}

// load reads a multi-document manifest file the way kustode scan does, and
// decodes every object strictly into its Go type: an unknown field (a
// misspelt securityContext, say) is an error, not silently dropped.
func load(t *testing.T, file string) install {
	t.Helper()
	objs, errs := manifest.Load([]string{file}, nil)
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
	if len(objs) == 0 {
		t.Fatalf("%s holds no object", file)
	}
	in := install{objs: objs, typed: map[string]any{}}
	for _, o := range objs {
		gv, err := schema.ParseGroupVersion(o.Ref.APIVersion)
		if err != nil {
			t.Fatalf("%s: %s: %v", o.Source, o.Ref, err)
		}
		typed, err := scheme.Scheme.New(gv.WithKind(o.Ref.Kind))
		if err != nil {
			t.Fatalf("%s: %s: not a built-in kind: %v", o.Source, o.Ref, err)
		}
		dec := json.NewDecoder(bytes.NewReader(o.Raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(typed); err != nil {
			t.Fatalf("%s: %s: %v", o.Source, o.Ref, err)
		}
		key := o.Ref.String()
		if _, dup := in.typed[key]; dup {
			t.Fatalf("%s: %s defined twice", o.Source, key)
		}
		in.typed[key] = typed
	}
	return in
}

// get returns the object kind/[namespace/]name, failing when it is absent.
func get[T any](t *testing.T, in install, key string) T {
	t.Helper()
	o, ok := in.typed[key]
	if !ok {
		t.Fatalf("no %s in the install", key)
	}
	v, ok := o.(T)
	if !ok {
		t.Fatalf("%s is a %T", key, o)
	}
	return v
}

// only returns the one object of type T.
func only[T any](t *testing.T, in install) T {
	t.Helper()
	var found []T
	for _, o := range in.typed {
		if v, ok := o.(T); ok {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want exactly one %T, have %d", zero, len(found))
	}
	return found[0]
}

// TestPlainManifests checks the committed deploy/kubernetes/kustode.yaml,
// helm or not: what it holds, the namespace's PSS enforcement, the exact
// monitor ClusterRole, the user roles, and every check in verify.
func TestPlainManifests(t *testing.T) {
	in := load(t, manifestsFile)
	var have []string
	for _, o := range in.objs {
		have = append(have, o.Ref.String())
	}
	want := []string{
		"Namespace/kustode",
		"NetworkPolicy/kustode/kustode",
		"ServiceAccount/kustode/kustode",
		"ConfigMap/kustode/kustode",
		"ClusterRole/kustode",
		"ClusterRole/kustode-viewer",
		"ClusterRole/kustode-editor",
		"ClusterRoleBinding/kustode",
		"Service/kustode/kustode",
		"Deployment/kustode/kustode",
	}
	if !slices.Equal(have, want) {
		t.Errorf("objects:\n have %v\n want %v", have, want)
	}

	ns := get[*corev1.Namespace](t, in, "Namespace/kustode")
	for _, mode := range []string{"enforce", "audit", "warn"} {
		if got := ns.Labels["pod-security.kubernetes.io/"+mode]; got != "restricted" {
			t.Errorf("namespace label pod-security.kubernetes.io/%s = %q, want restricted", mode, got)
		}
	}

	role := get[*rbacv1.ClusterRole](t, in, "ClusterRole/kustode")
	if diff := rulesDiff(role.Rules, monitorRules); diff != "" {
		t.Errorf("ClusterRole kustode is not what serve needs:\n%s", diff)
	}
	for i, r := range role.Rules {
		if !slices.IsSorted(r.Resources) {
			t.Errorf("ClusterRole kustode rule %d: resources not sorted: %v", i, r.Resources)
		}
	}
	if !strings.Contains(role.Annotations["kustode.io/description"], "metadata only") {
		t.Errorf("ClusterRole kustode: the description annotation must say that Secrets are read as metadata only")
	}
	crb := get[*rbacv1.ClusterRoleBinding](t, in, "ClusterRoleBinding/kustode")
	wantSubject := rbacv1.Subject{Kind: "ServiceAccount", Name: "kustode", Namespace: "kustode"}
	if crb.RoleRef.Name != "kustode" || len(crb.Subjects) != 1 || crb.Subjects[0] != wantSubject {
		t.Errorf("ClusterRoleBinding kustode binds %v to %v, want ClusterRole kustode to %v", crb.RoleRef, crb.Subjects, wantSubject)
	}

	viewer := get[*rbacv1.ClusterRole](t, in, "ClusterRole/kustode-viewer")
	wantViewer := []rbacv1.PolicyRule{{APIGroups: []string{"kustode.io"}, Resources: userResources, Verbs: []string{"get", "list"}}}
	if diff := rulesDiff(viewer.Rules, wantViewer); diff != "" {
		t.Errorf("ClusterRole kustode-viewer:\n%s", diff)
	}
	editor := get[*rbacv1.ClusterRole](t, in, "ClusterRole/kustode-editor")
	wantEditor := append(slices.Clone(wantViewer),
		rbacv1.PolicyRule{APIGroups: []string{"kustode.io"}, Resources: []string{"alerts", "exceptions"}, Verbs: []string{"update"}},
		rbacv1.PolicyRule{APIGroups: []string{"kustode.io"}, Resources: []string{"exceptions"}, Verbs: []string{"create"}})
	if diff := rulesDiff(editor.Rules, wantEditor); diff != "" {
		t.Errorf("ClusterRole kustode-editor:\n%s", diff)
	}
	for _, r := range []*rbacv1.ClusterRole{viewer, editor} {
		for k := range r.Labels {
			if strings.HasPrefix(k, "rbac.authorization.k8s.io/aggregate-to-") {
				t.Errorf("ClusterRole %s aggregates into a built-in role by default (%s)", r.Name, k)
			}
		}
	}

	// The plain manifests never carry a token: the Secret is the user's.
	for _, o := range in.objs {
		if o.Ref.Kind == "Secret" {
			t.Errorf("%s: the plain manifests must not ship a Secret", o.Ref)
		}
	}

	dep := get[*appsv1.Deployment](t, in, "Deployment/kustode/kustode")
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 1 || dep.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("Deployment: want 1 replica and strategy Recreate (SQLite has one writer)")
	}
	verify(t, in, "kustode")
}

// rulesDiff describes how have differs from want, rule by rule.
func rulesDiff(have, want []rbacv1.PolicyRule) string {
	var b strings.Builder
	for i := range max(len(have), len(want)) {
		var h, w string
		if i < len(have) {
			h = have[i].String()
		}
		if i < len(want) {
			w = want[i].String()
		}
		if h != w {
			fmt.Fprintf(&b, "rule %d:\n  have %s\n  want %s\n", i, h, w)
		}
	}
	return b.String()
}

// verify holds for every rendering of the chart: objects in the release
// namespace; the Deployment's pod admitted under PSS restricted by the API
// server's own code; no high or critical finding from kustode's checks, and
// only the argued exemptions; config.yaml's paths and ports are those the
// pod mounts and exposes; the Service and NetworkPolicy select the pod.
func verify(t *testing.T, in install, ns string) {
	t.Helper()
	for _, o := range in.objs {
		switch o.Ref.Kind {
		case "Namespace", "ClusterRole", "ClusterRoleBinding":
			if o.Ref.Namespace != "" {
				t.Errorf("%s: a cluster-scoped kind with a namespace", o.Ref)
			}
		default:
			if o.Ref.Namespace != ns {
				t.Errorf("%s: namespace %q, want the release namespace %q", o.Ref, o.Ref.Namespace, ns)
			}
		}
	}

	dep := only[*appsv1.Deployment](t, in)
	pod := &dep.Spec.Template
	eval, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	results := eval.EvaluatePod(api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}, &pod.ObjectMeta, &pod.Spec)
	if agg := policy.AggregateCheckResults(results); !agg.Allowed {
		t.Errorf("Deployment %s: pod template violates PSS restricted: %s (%s)", dep.Name, agg.ForbiddenReason(), agg.ForbiddenDetail())
	}

	all, err := checks.All(checks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	engine, err := posture.NewEngine(all)
	if err != nil {
		t.Fatal(err)
	}
	findings, errs := engine.Run(in.objs)
	if err := errors.Join(errs...); err != nil {
		t.Errorf("posture: %v", err)
	}
	for _, f := range findings {
		if f.Severity >= finding.High {
			t.Errorf("posture: %s %s on %s: %s", f.Severity, f.CheckID, f.Object, f.Message)
		} else {
			t.Logf("posture (accepted, below high): %s %s on %s: %s", f.Severity, f.CheckID, f.Object, f.Message)
		}
	}
	for _, o := range in.objs {
		exempt, ok := o.Annotations[posture.ExemptAnnotation]
		if !ok {
			continue
		}
		if want := exemptions[exemptionKey(o)]; exempt != want {
			t.Errorf("%s: kustode.io/exempt %q, want only the argued %q", o.Ref, exempt, want)
		}
		if strings.TrimSpace(o.Annotations[posture.ExemptReasonAnnotation]) == "" {
			t.Errorf("%s: kustode.io/exempt without kustode.io/exempt-reason", o.Ref)
		}
	}

	verifyConfig(t, in, ns, pod)

	svc := only[*corev1.Service](t, in)
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) || len(svc.Spec.Selector) == 0 {
		t.Errorf("Service %s selector %v does not select the pod (%v)", svc.Name, svc.Spec.Selector, pod.Labels)
	}
	ports := containerPorts(pod)
	for _, p := range svc.Spec.Ports {
		if _, ok := ports[p.TargetPort.String()]; !ok {
			t.Errorf("Service %s port %s targets %s, which the container does not expose", svc.Name, p.Name, p.TargetPort.String())
		}
	}
	for _, o := range in.typed {
		np, ok := o.(*networkingv1.NetworkPolicy)
		if !ok {
			continue
		}
		sel, err := metav1LabelSelector(np)
		if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
			t.Errorf("NetworkPolicy %s does not select the pod: %v", np.Name, err)
		}
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				if p.Port == nil || p.Port.Type != intstr.String {
					continue
				}
				if _, ok := ports[p.Port.StrVal]; !ok {
					t.Errorf("NetworkPolicy %s admits port %q, which the container does not name", np.Name, p.Port.StrVal)
				}
			}
		}
	}
}

func metav1LabelSelector(np *networkingv1.NetworkPolicy) (labels.Selector, error) {
	return labels.ValidatedSelectorFromSet(np.Spec.PodSelector.MatchLabels)
}

// containerPorts maps the kustode container's port names (and numbers) to
// their numbers.
func containerPorts(pod *corev1.PodTemplateSpec) map[string]int32 {
	out := map[string]int32{}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			out[p.Name] = p.ContainerPort
			out[strconv.Itoa(int(p.ContainerPort))] = p.ContainerPort
		}
	}
	return out
}

// verifyConfig checks that serve, started as the Deployment says, finds its
// config, listens on the ports the pod exposes, writes to a writable volume,
// and reads the token and TLS files from the Secrets meant for them.
func verifyConfig(t *testing.T, in install, ns string, pod *corev1.PodTemplateSpec) {
	t.Helper()
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("want one container, have %d", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	if want := []string{"serve", "--config", configPath}; !slices.Equal(c.Args, want) {
		t.Errorf("container args %v, want %v", c.Args, want)
	}
	files, writable := mountedFiles(pod)
	src, ok := files[configPath]
	if !ok {
		t.Fatalf("%s is not mounted (files: %v)", configPath, files)
	}
	cmName, key, _ := strings.Cut(strings.TrimPrefix(src, "configMap/"), "/")
	cfgText := get[*corev1.ConfigMap](t, in, "ConfigMap/"+ns+"/"+cmName).Data[key]
	if !strings.HasPrefix(src, "configMap/") || cfgText == "" {
		t.Fatalf("%s comes from %s, which is empty or absent", configPath, src)
	}
	// serve's own loader: strict, so an unknown or misplaced key fails here.
	cfgFile := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatalf("serve cannot load the chart's config.yaml: %v\n%s", err, cfgText)
	}
	if cfg.Store != "" {
		t.Errorf("config store %q: a store URL may hold a password and belongs in a Secret (KUSTODE_STORE)", cfg.Store)
	}
	if cfg.Audit.WebhookListen == "" {
		t.Errorf("config: the audit webhook is off")
	}
	// Every KUSTODE_ variable the pod sets is one serve reads.
	envs := map[string]bool{}
	for _, st := range config.Settings() {
		envs[st.Env()] = true
	}
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "KUSTODE_") && !envs[e.Name] {
			t.Errorf("container env %s is not a setting of kustode serve", e.Name)
		}
	}
	ports := containerPorts(pod)
	if cfg.Listen != fmt.Sprintf(":%d", ports["api"]) || ports["api"] == 0 {
		t.Errorf("config listen %q, but the container's api port is %d", cfg.Listen, ports["api"])
	}
	if cfg.Audit.WebhookListen != fmt.Sprintf(":%d", ports["audit-webhook"]) || ports["audit-webhook"] == 0 {
		t.Errorf("config audit.webhookListen %q, but the container's audit-webhook port is %d", cfg.Audit.WebhookListen, ports["audit-webhook"])
	}
	if !slices.Contains(writable, cfg.DataDir) {
		t.Errorf("config dataDir %q is not a writable volume mount (%v)", cfg.DataDir, writable)
	}
	if !slices.Contains(writable, "/tmp") {
		t.Errorf("/tmp is not writable: SQLite needs it with a read-only root filesystem")
	}
	secretFile := func(what, file, wantKey string) {
		t.Helper()
		src, ok := files[file]
		if !ok {
			t.Errorf("config %s %q is not a mounted file (files: %v)", what, file, files)
			return
		}
		if !strings.HasPrefix(src, "secret/") || !strings.HasSuffix(src, "/"+wantKey) {
			t.Errorf("config %s %q comes from %s, want key %s of a Secret", what, file, src, wantKey)
		}
	}
	secretFile("audit.webhookTokenFile", cfg.Audit.WebhookTokenFile, "token")
	for what, pair := range map[string][2]string{
		"api":   {cfg.API.TLSCertFile, cfg.API.TLSKeyFile},
		"audit": {cfg.Audit.WebhookTLSCertFile, cfg.Audit.WebhookTLSKeyFile},
	} {
		if (pair[0] == "") != (pair[1] == "") {
			t.Errorf("config %s TLS: certificate %q and key %q must be set together", what, pair[0], pair[1])
		}
		if pair[0] != "" {
			secretFile(what+" TLS certificate", pair[0], "tls.crt")
			secretFile(what+" TLS key", pair[1], "tls.key")
		}
	}
	wantScheme := corev1.URISchemeHTTP
	if cfg.API.TLSCertFile != "" {
		wantScheme = corev1.URISchemeHTTPS
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		wantPath := map[string]string{"liveness": "/healthz", "readiness": "/readyz"}[name]
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != wantPath || p.HTTPGet.Port.String() != "api" || p.HTTPGet.Scheme != wantScheme {
			t.Errorf("%s probe: want GET %s %s on port api, have %+v", name, wantScheme, wantPath, p)
		}
	}
	if c.Resources.Limits.Memory().IsZero() || c.Resources.Limits.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("container resources: want memory and CPU limits and a memory request, have %v", c.Resources)
	}
	// The Go runtime's soft limit sits below the container's hard one,
	// leaving room for memory the runtime does not manage.
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" })
	if i < 0 {
		t.Errorf("container env: no GOMEMLIMIT, want one below the memory limit %s", c.Resources.Limits.Memory())
	} else if n, err := strconv.ParseInt(c.Env[i].Value, 10, 64); err != nil || n <= c.Resources.Limits.Memory().Value()/2 || n >= c.Resources.Limits.Memory().Value() {
		t.Errorf("container env GOMEMLIMIT=%q: want a number of bytes between half the memory limit %s and the limit", c.Env[i].Value, c.Resources.Limits.Memory())
	}
	sc := pod.Spec.SecurityContext
	if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 65532 || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("pod securityContext: want runAsNonRoot and runAsUser 65532 (the image's nonroot user)")
	}
	if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Errorf("container securityContext: want readOnlyRootFilesystem")
	}
	if pod.Spec.AutomountServiceAccountToken == nil || !*pod.Spec.AutomountServiceAccountToken {
		t.Errorf("pod: automountServiceAccountToken must be true: serve talks to the API server")
	}
}

// mountedFiles returns the files the container sees from ConfigMaps and
// Secrets (path → "configMap/NAME/KEY" or "secret/NAME/KEY") and the mount
// paths it may write to.
func mountedFiles(pod *corev1.PodTemplateSpec) (files map[string]string, writable []string) {
	files = map[string]string{}
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		vols[v.Name] = v
	}
	add := func(dir, kind, name string, items []corev1.KeyToPath) {
		for _, it := range items {
			files[path.Join(dir, it.Path)] = kind + "/" + name + "/" + it.Key
		}
	}
	for _, m := range pod.Spec.Containers[0].VolumeMounts {
		v := vols[m.Name]
		switch {
		case v.ConfigMap != nil:
			add(m.MountPath, "configMap", v.ConfigMap.Name, v.ConfigMap.Items)
		case v.Secret != nil:
			add(m.MountPath, "secret", v.Secret.SecretName, v.Secret.Items)
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				if s.ConfigMap != nil {
					add(m.MountPath, "configMap", s.ConfigMap.Name, s.ConfigMap.Items)
				}
				if s.Secret != nil {
					add(m.MountPath, "secret", s.Secret.Name, s.Secret.Items)
				}
			}
		case (v.EmptyDir != nil || v.PersistentVolumeClaim != nil) && !m.ReadOnly:
			writable = append(writable, m.MountPath)
		}
	}
	return files, writable
}

// helmPath returns the helm binary hack/helm.sh builds (or KUSTODE_HELM). It
// skips the test when there is none, except under CI, which must build it.
func helmPath(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("KUSTODE_HELM")
	if bin == "" {
		out, err := exec.CommandContext(t.Context(), "bash", "../hack/helm.sh", "--print-path").Output()
		if err != nil {
			t.Fatalf("hack/helm.sh --print-path: %v", err)
		}
		bin = strings.TrimSpace(string(out))
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("no helm at %s: CI must run hack/helm.sh before the tests", bin)
		}
		t.Skipf("no helm at %s: run hack/helm.sh (a few minutes, once) to test the chart itself", bin)
	}
	return bin
}

func run(t *testing.T, name string, args []string, env ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

// TestChartRendersPlainManifests renders the chart exactly as
// make deploy-manifests does (by running it, into a temporary file) and
// compares with the committed deploy/kubernetes/kustode.yaml.
func TestChartRendersPlainManifests(t *testing.T) {
	helm := helmPath(t)
	out := filepath.Join(t.TempDir(), "kustode.yaml")
	run(t, "make", []string{"-s", "--no-print-directory", "-C", "..", "deploy-manifests", "DEPLOY_MANIFESTS=" + out}, "KUSTODE_HELM="+helm)
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(manifestsFile)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got, want) {
		return
	}
	diff, _ := exec.CommandContext(t.Context(), "diff", "-u", manifestsFile, out).CombinedOutput()
	t.Errorf("deploy/kubernetes/kustode.yaml is not what the chart renders: run make deploy-manifests\n%s", diff)
}

// TestChart lints the chart and renders it with the values people set,
// each rendering held to verify.
func TestChart(t *testing.T) {
	helm := helmPath(t)
	tests := []struct {
		name      string
		release   string
		namespace string
		args      []string
		// wantKinds are kinds the rendering must hold beyond the defaults.
		wantKinds []string
		// check, when set, checks more of the rendering.
		check func(t *testing.T, in install)
	}{
		{name: "defaults", release: "kustode", namespace: "kustode",
			wantKinds: []string{"Secret"}},
		{name: "plain manifests", release: "kustode", namespace: "kustode",
			args: []string{"--values", "helm/plain-manifests.values.yaml"}, wantKinds: []string{"Namespace"}},
		{name: "another release and namespace", release: "prod", namespace: "security"},
		{name: "persistence, TLS and PostgreSQL", release: "kustode", namespace: "kustode",
			args: []string{"--set", "persistence.enabled=true,api.tls.secretName=kustode-api-tls,auditWebhook.tls.secretName=kustode-audit-tls," +
				"store.postgres.url=postgres://kustode@db.example:5432/kustode,networkPolicy.egress.extraPorts[0].port=5432"},
			wantKinds: []string{"PersistentVolumeClaim"}},
		{name: "existing secrets and claim", release: "kustode", namespace: "kustode",
			args: []string{"--set", "auditWebhook.token.existingSecret=my-token,store.postgres.existingSecret=my-db,persistence.enabled=true,persistence.existingClaim=my-data"}},
		{name: "no network policy, aggregated roles", release: "kustode", namespace: "kustode",
			args: []string{"--set", "networkPolicy.enabled=false,rbac.aggregateToDefaultRoles=true,config.log.level=debug"}},
		{name: "memory limit in decimal units", release: "kustode", namespace: "kustode",
			args: []string{"--set", "resources.limits.memory=3G,resources.requests.memory=2G"}},
		{name: "kubelet configuration", release: "prod", namespace: "security",
			args: []string{"--set", "kubelet.readConfig=true,kubelet.configInterval=30m"}, check: checkKubeletRole},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run(t, helm, append([]string{"lint", "--strict", chartDir, "--namespace", tt.namespace}, tt.args...))
			out := run(t, helm, append([]string{"template", tt.release, chartDir, "--namespace", tt.namespace}, tt.args...))
			file := filepath.Join(t.TempDir(), "rendered.yaml")
			if err := os.WriteFile(file, out, 0o600); err != nil {
				t.Fatal(err)
			}
			in := load(t, file)
			kinds := map[string]bool{}
			for _, o := range in.objs {
				kinds[o.Ref.Kind] = true
			}
			for _, k := range tt.wantKinds {
				if !kinds[k] {
					t.Errorf("no %s rendered", k)
				}
			}
			verify(t, in, tt.namespace)
			if tt.check != nil {
				tt.check(t, in)
			} else if _, ok := in.typed["ClusterRole/"+tt.release+"-kustode-kubelet-config"]; ok {
				t.Errorf("the kubelet-config ClusterRole rendered without kubelet.readConfig")
			}
		})
	}
}

// checkKubeletRole: with kubelet.readConfig the chart grants exactly
// kubeletRules in a ClusterRole of their own, bound to the monitor's
// service account, leaves the monitor's role as it is, and turns the
// setting on in config.yaml.
func checkKubeletRole(t *testing.T, in install) {
	t.Helper()
	const name = "prod-kustode-kubelet-config"
	role := get[*rbacv1.ClusterRole](t, in, "ClusterRole/"+name)
	if diff := rulesDiff(role.Rules, kubeletRules); diff != "" {
		t.Errorf("ClusterRole %s:\n%s", name, diff)
	}
	monitor := get[*rbacv1.ClusterRole](t, in, "ClusterRole/prod-kustode")
	if diff := rulesDiff(monitor.Rules, monitorRules); diff != "" {
		t.Errorf("ClusterRole prod-kustode changed with kubelet.readConfig:\n%s", diff)
	}
	crb := get[*rbacv1.ClusterRoleBinding](t, in, "ClusterRoleBinding/"+name)
	wantSubject := rbacv1.Subject{Kind: "ServiceAccount", Name: "prod-kustode", Namespace: "security"}
	if crb.RoleRef.Name != name || len(crb.Subjects) != 1 || crb.Subjects[0] != wantSubject {
		t.Errorf("ClusterRoleBinding %s binds %v to %v, want ClusterRole %s to %v", name, crb.RoleRef, crb.Subjects, name, wantSubject)
	}
	cm := get[*corev1.ConfigMap](t, in, "ConfigMap/security/prod-kustode")
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, []byte(cm.Data["config.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Kubelet.ReadConfig || cfg.Kubelet.ConfigInterval != 30*time.Minute {
		t.Errorf("config.yaml kubelet %+v, want readConfig on every 30m", cfg.Kubelet)
	}
}

// The chart refuses config.kubelet.readConfig: that would turn the
// setting on without the permissions it needs.
func TestChartKubeletThroughConfig(t *testing.T) {
	helm := helmPath(t)
	cmd := exec.CommandContext(t.Context(), helm, "template", "kustode", chartDir, "--set", "config.kubelet.readConfig=true")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "set the chart value kubelet.readConfig") {
		t.Errorf("helm template with config.kubelet.readConfig: %v\n%s", err, out)
	}
}
