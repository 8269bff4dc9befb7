//go:build scale

package scale

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	"github.com/kustode/kustode/internal/config"
	"github.com/kustode/kustode/internal/controlplane"
	"github.com/kustode/kustode/internal/daemon"
)

const (
	// defaultPods is the size of each population; KUSTODE_SCALE_PODS
	// overrides it.
	defaultPods = 10000
	// nodes is the number of kwok nodes the pods are spread over (200 pods
	// a node at 10,000).
	nodes = 50
	// workers bounds the concurrent create and delete requests.
	workers = 32
	// replicasPerRS is the replicas of every ReplicaSet of the owned
	// population: small services, as most Deployments are.
	replicasPerRS = 5
	// settle is how long serve runs after it became ready before the
	// second memory reading; steady, before the third: after the Go
	// runtime's periodic GC (every two minutes when nothing allocates)
	// and the scavenger have run.
	settle = 10 * time.Second
	steady = 2*time.Minute + 10*time.Second
	// readyWithin bounds the wait for serve's /readyz.
	readyWithin = 15 * time.Minute
	serveToken  = "scale-static-token-0123456789abcdef"
	kwokTaint   = "kwok.x-k8s.io/node"
	// outputEnv names a directory that keeps serve's logs and the heap
	// profiles; unset, the logs are temporary and no profile is taken.
	outputEnv = "KUSTODE_SCALE_OUTPUT"
	// serveEnvEnv, when set, holds VAR=value pairs (e.g. "GOGC=50") with
	// which every state of the cluster is measured a second time.
	serveEnvEnv = "KUSTODE_SCALE_SERVE_ENV"
	// populationsEnv, when set, names the populations to measure
	// ("owned", "bare" or both, comma-separated; default both): one
	// population takes half the time.
	populationsEnv = "KUSTODE_SCALE_POPULATIONS"
)

// quietAuditPolicy records nothing: serve reads no audit feed here, and an
// audit log of every pod creation and kwok status patch would only slow the
// API server down on a shared machine.
var quietAuditPolicy = []byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n")

// TestServeScale runs `kustode serve` as its own process against a cluster
// without pods (the base), then with N pods owned by ReplicaSets (kustode
// judges the ReplicaSets and keeps only the pods' names), then with N bare
// pods (kustode keeps each pod, trimmed and encoded), and reports serve's time to its
// first full posture and its resident memory per pod above the base.
//
// No controller-manager runs (no garbage collector or ReplicaSet controller
// touches the pods) and no scheduler (pods are created bound to kwok nodes).
func TestServeScale(t *testing.T) {
	pods := podsPerPopulation(t)
	if os.Getenv(outputEnv) != "" {
		// Sample every 64 KiB allocated rather than 512 KiB: a finer
		// profile of the daemon's retained memory.
		runtime.MemProfileRate = 64 << 10
	}
	ctx := t.Context()
	bin := buildKustode(t)

	start := time.Now()
	cp, err := controlplane.Start(ctx, controlplane.Options{Kwok: true, Progress: os.Stderr, AuditPolicy: quietAuditPolicy})
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Errorf("stop control plane: %v", err)
		}
	})
	t.Logf("control plane ready in %s (pids %v)", time.Since(start).Round(time.Millisecond), cp.PIDs())
	kubeconfig, err := cp.WriteKubeconfig(controlplane.AdminUser)
	if err != nil {
		t.Fatal(err)
	}
	b := &bench{t: t, cp: cp, bin: bin, kubeconfig: kubeconfig, plan: plan(pods)}
	b.clients()
	b.createNodes(ctx)
	for _, ns := range b.plan {
		if err := cp.EnsureNamespace(ctx, ns.name); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d pods per population in %d namespaces of 100-500 pods, on %d kwok nodes", pods, len(b.plan), nodes)

	// Each state of the cluster is measured with serve as built, then, when
	// KUSTODE_SCALE_SERVE_ENV is set, again with that environment added.
	extraEnv := strings.Fields(os.Getenv(serveEnvEnv))
	measure := func(name, label string, pods int) []serveRun {
		r := b.runServe(ctx, label, pods, nil)
		b.profile(ctx, name, &r)
		out := []serveRun{r}
		if len(extraEnv) > 0 {
			out = append(out, b.runServe(ctx, label+" "+strings.Join(extraEnv, " "), pods, extraEnv))
		}
		return out
	}
	base := measure("base", "base (no pods)", 0)

	runs := slices.Clone(base)
	var pairs [][2]serveRun // (base, population) run with the same environment
	for _, owned := range populations(t) {
		name, label := "bare", "bare pods"
		if owned {
			name, label = "owned", "ReplicaSet-owned pods"
		}
		created := b.createPopulation(ctx, owned)
		b.waitSettled(ctx, pods)
		popRuns := measure(name, label, pods)
		b.checkPopulation(base[0], popRuns[0], created)
		if owned {
			b.deletePopulation(ctx)
		}
		runs = append(runs, popRuns...)
		for i := range base {
			pairs = append(pairs, [2]serveRun{base[i], popRuns[i]})
		}
	}
	b.report(runs, pairs)
	t.Logf("whole benchmark took %s", time.Since(start).Round(time.Second))
}

// populations returns the populations to measure, in order: true for the
// ReplicaSet-owned pods, false for the bare ones.
func populations(t *testing.T) []bool {
	s := os.Getenv(populationsEnv)
	if s == "" {
		return []bool{true, false}
	}
	var out []bool
	for p := range strings.SplitSeq(s, ",") {
		switch strings.TrimSpace(p) {
		case "owned":
			out = append(out, true)
		case "bare":
			out = append(out, false)
		default:
			t.Fatalf("%s=%q: want owned, bare or owned,bare", populationsEnv, s)
		}
	}
	return out
}

func podsPerPopulation(t *testing.T) int {
	s := os.Getenv("KUSTODE_SCALE_PODS")
	if s == "" {
		return defaultPods
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < replicasPerRS {
		t.Fatalf("KUSTODE_SCALE_PODS=%q: want a number of pods of at least %d", s, replicasPerRS)
	}
	return n
}

// bench is the cluster and the kustode binary under test.
type bench struct {
	t          *testing.T
	cp         *controlplane.ControlPlane
	bin        string
	kubeconfig string
	plan       []nsPlan
	client     *kubernetes.Clientset
	meta       metadata.Interface
}

// nsPlan is one namespace and how many pods of a population go there.
type nsPlan struct {
	name string
	pods int
}

// plan spreads total pods over namespaces of 100, 200, 300, 400 and 500
// pods, in turn; the last takes what is left.
func plan(total int) []nsPlan {
	sizes := []int{100, 200, 300, 400, 500}
	var out []nsPlan
	for i := 0; total > 0; i++ {
		n := min(sizes[i%len(sizes)], total)
		out = append(out, nsPlan{name: fmt.Sprintf("scale-%02d", i), pods: n})
		total -= n
	}
	return out
}

func (b *bench) clients() {
	cfg := b.cp.Config(controlplane.AdminUser)
	cfg.QPS, cfg.Burst = 1000, 2000
	cfg.WarningHandler = rest.NoWarnings{}
	meta, err := metadata.NewForConfig(cfg)
	if err != nil {
		b.t.Fatal(err)
	}
	cfg = rest.CopyConfig(cfg)
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.t.Fatal(err)
	}
	b.client, b.meta = client, meta
}

func nodeName(i int) string { return fmt.Sprintf("kwok-node-%02d", i%nodes) }

// createNodes creates the kwok nodes, shaped as kwok manages them (see
// test/e2e/smoke_test.go), and waits until every one is Ready.
func (b *bench) createNodes(ctx context.Context) {
	t := b.t
	err := parallel(ctx, nodes, func(ctx context.Context, i int) error {
		name := nodeName(i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Labels:      map[string]string{"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
				Annotations: map[string]string{kwokTaint: "fake"},
			},
			Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: kwokTaint, Value: "fake", Effect: corev1.TaintEffectNoSchedule}}},
		}
		_, err := b.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("create nodes: %v", err)
	}
	b.poll(ctx, time.Second, 2*time.Minute, "kwok nodes Ready", func(ctx context.Context) (bool, string, error) {
		list, err := b.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, "", err
		}
		ready := 0
		for _, n := range list.Items {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready == nodes, fmt.Sprintf("%d/%d Ready", ready, nodes), nil
	})
}

// flaws are the misconfigurations of one workload, chosen by its index so
// that every population has the same share of findings: a tenth of the
// workloads privileged, a tenth running as root, a tenth mounting the
// container runtime's socket, a tenth without limits, a twentieth on
// :latest.
type flaws struct {
	privileged, root, runtimeSocket, noLimits, latest bool
}

func flawsOf(k int) flaws {
	return flaws{privileged: k%10 == 0, root: k%10 == 3, runtimeSocket: k%10 == 6, noLimits: k%10 == 8, latest: k%20 == 9}
}

// privilegedAmong counts the privileged workloads among indexes [0, n).
func privilegedAmong(n int) int { return (n + 9) / 10 }

var (
	podsGVR   = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	eventsGVR = schema.GroupVersionResource{Version: "v1", Resource: "events"}
)

var (
	teams = []string{"checkout", "search", "payments", "identity", "catalog", "platform"}
	tiers = []string{"frontend", "backend", "worker"}
)

// template is a realistic pod template for workload k: an application
// container and a proxy sidecar, with resources, probes, environment and
// the hardening a careful team applies, minus k's flaws.
func template(app string, k int) corev1.PodTemplateSpec {
	f := flawsOf(k)
	version := fmt.Sprintf("1.%d.%d", k%7, k%13)
	image := "registry.example.com/shop/" + app + ":" + version
	if f.latest {
		image = "registry.example.com/shop/" + app + ":latest"
	}
	podSC := &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr(true),
		RunAsUser:      ptr(int64(10001)),
		RunAsGroup:     ptr(int64(10001)),
		FSGroup:        ptr(int64(10001)),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	appSC := &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr(false),
		ReadOnlyRootFilesystem:   ptr(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	switch {
	case f.privileged:
		appSC = &corev1.SecurityContext{Privileged: ptr(true)}
	case f.root:
		podSC = &corev1.PodSecurityContext{SeccompProfile: podSC.SeccompProfile}
		appSC.RunAsUser = ptr(int64(0))
	}
	appResources := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
	}
	if f.noLimits {
		appResources.Limits = nil
	}
	volumes := []corev1.Volume{
		{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: app + "-config"}, Optional: ptr(true),
		}}},
	}
	mounts := []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}, {Name: "config", MountPath: "/etc/app", ReadOnly: true}}
	if f.runtimeSocket {
		volumes = append(volumes, corev1.Volume{Name: "runtime", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
			Path: "/var/run/containerd/containerd.sock", Type: ptr(corev1.HostPathSocket),
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "runtime", MountPath: "/run/containerd/containerd.sock"})
	}
	probe := func(path string) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http")}},
			PeriodSeconds: 10, TimeoutSeconds: 2, FailureThreshold: 3,
		}
	}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{
			Labels: map[string]string{
				"app.kubernetes.io/name":    app,
				"app.kubernetes.io/part-of": "shop",
				"app.kubernetes.io/version": version,
				"team":                      teams[k%len(teams)],
				"tier":                      tiers[k%len(tiers)],
			},
			Annotations: map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
		},
		Spec: corev1.PodSpec{
			NodeSelector:                  map[string]string{"type": "kwok"},
			Tolerations:                   []corev1.Toleration{{Key: kwokTaint, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
			SecurityContext:               podSC,
			TerminationGracePeriodSeconds: ptr(int64(30)),
			Volumes:                       volumes,
			Containers: []corev1.Container{
				{
					Name:            "app",
					Image:           image,
					ImagePullPolicy: corev1.PullIfNotPresent,
					Args:            []string{"--config=/etc/app/config.yaml", "--listen=:8080"},
					Ports: []corev1.ContainerPort{
						{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
						{Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolTCP},
					},
					Env: []corev1.EnvVar{
						{Name: "LOG_LEVEL", Value: "info"},
						{Name: "DB_HOST", Value: "postgres.data.svc.cluster.local"},
						{Name: "FEATURE_FLAGS", Value: "checkout-v2,fast-search"},
						{Name: "OTEL_EXPORTER_OTLP_ENDPOINT", Value: "http://otel-collector.observability:4317"},
						{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
						{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
							LocalObjectReference: corev1.LocalObjectReference{Name: app + "-db"}, Key: "password",
						}}},
					},
					Resources:       appResources,
					VolumeMounts:    mounts,
					LivenessProbe:   probe("/healthz"),
					ReadinessProbe:  probe("/readyz"),
					SecurityContext: appSC,
				},
				{
					Name:            "proxy",
					Image:           "registry.example.com/platform/proxy:2.4.1",
					ImagePullPolicy: corev1.PullIfNotPresent,
					Args:            []string{"proxy", "sidecar", "--concurrency=2"},
					Ports:           []corev1.ContainerPort{{Name: "proxy-metrics", ContainerPort: 15090, Protocol: corev1.ProtocolTCP}},
					Env: []corev1.EnvVar{
						{Name: "PROXY_CONFIG", Value: `{"holdApplicationUntilProxyStarts":true}`},
						{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
					},
					Resources: corev1.ResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
						Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
					},
					SecurityContext: &corev1.SecurityContext{
						AllowPrivilegeEscalation: ptr(false),
						ReadOnlyRootFilesystem:   ptr(true),
						RunAsUser:                ptr(int64(1337)),
						Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
					},
				},
			},
		},
	}
}

// suffix is a pod-name suffix of five base-36 characters, as the ReplicaSet
// controller makes.
func suffix(i int) string {
	s := strconv.FormatInt(int64(i)*7919+104729, 36)
	if len(s) < 5 {
		s = strings.Repeat("0", 5-len(s)) + s
	}
	return s[len(s)-5:]
}

// group is one unit of creation work: a ReplicaSet and its pods, or a few
// bare pods.
type group struct {
	ns    string
	k     int   // the ReplicaSet's index (owned) or unused (bare)
	pods  []int // global pod indexes
	owned bool
}

// created is what a population consists of, for the checks.
type created struct {
	owned       bool
	pods        int
	replicaSets int
	// privileged is the number of objects kustode should judge privileged:
	// ReplicaSets for the owned population, pods for the bare one.
	privileged int
}

// createPopulation creates one population: ReplicaSets of replicasPerRS
// replicas and their pods (owned), or bare pods, in every namespace of the
// plan, bound to the kwok nodes.
func (b *bench) createPopulation(ctx context.Context, owned bool) created {
	t := b.t
	var groups []group
	pod, rs := 0, 0
	for _, ns := range b.plan {
		for left := ns.pods; left > 0; {
			n := min(replicasPerRS, left)
			g := group{ns: ns.name, k: rs, owned: owned}
			for range n {
				g.pods = append(g.pods, pod)
				pod++
			}
			groups = append(groups, g)
			rs++
			left -= n
		}
	}
	res := created{owned: owned, pods: pod}
	if owned {
		res.replicaSets, res.privileged = rs, privilegedAmong(rs)
	} else {
		res.privileged = privilegedAmong(pod)
	}
	what := "bare pods"
	if owned {
		what = fmt.Sprintf("ReplicaSet-owned pods (%d ReplicaSets)", rs)
	}
	var done atomic.Int64
	stop := b.progress(what+" created", pod, &done)
	err := parallel(ctx, len(groups), func(ctx context.Context, i int) error {
		return b.createGroup(ctx, groups[i], &done)
	})
	took := stop()
	if err != nil {
		t.Fatalf("create %s: %v", what, err)
	}
	t.Logf("created %d %s in %s: %.0f pods/s", pod, what, took.Round(time.Millisecond), float64(pod)/took.Seconds())
	return res
}

func (b *bench) createGroup(ctx context.Context, g group, done *atomic.Int64) error {
	var owner []metav1.OwnerReference
	var rsName, hash string
	if g.owned {
		app := fmt.Sprintf("svc-%04d", g.k)
		hash = fmt.Sprintf("%08x", uint32(g.k)*2654435761) + "bc"
		rsName = app + "-" + hash
		tpl := template(app, g.k)
		tpl.Labels["pod-template-hash"] = hash
		rs := &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: rsName, Namespace: g.ns, Labels: tpl.Labels},
			Spec: appsv1.ReplicaSetSpec{
				Replicas: ptr(int32(len(g.pods))),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": app, "pod-template-hash": hash}},
				Template: tpl,
			},
		}
		var out *appsv1.ReplicaSet
		err := createRetrying(ctx, func() (err error) {
			out, err = b.client.AppsV1().ReplicaSets(g.ns).Create(ctx, rs, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) { // an earlier try that timed out
				out, err = b.client.AppsV1().ReplicaSets(g.ns).Get(ctx, rsName, metav1.GetOptions{})
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("replicaset %s/%s: %w", g.ns, rsName, err)
		}
		owner = []metav1.OwnerReference{{
			APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rsName, UID: out.UID,
			Controller: ptr(true), BlockOwnerDeletion: ptr(true),
		}}
	}
	for _, i := range g.pods {
		var tpl corev1.PodTemplateSpec
		var name string
		if g.owned {
			tpl = template(fmt.Sprintf("svc-%04d", g.k), g.k)
			tpl.Labels["pod-template-hash"] = hash
			name = rsName + "-" + suffix(i)
		} else {
			app := fmt.Sprintf("batch-%05d", i)
			tpl = template(app, i)
			name = app + "-" + suffix(i)
		}
		p := &corev1.Pod{ObjectMeta: tpl.ObjectMeta, Spec: tpl.Spec}
		p.Name, p.Namespace, p.OwnerReferences = name, g.ns, owner
		p.Spec.NodeName = nodeName(i)
		err := createRetrying(ctx, func() error {
			_, err := b.client.CoreV1().Pods(g.ns).Create(ctx, p, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) { // an earlier try that timed out
				return nil
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("pod %s/%s: %w", g.ns, name, err)
		}
		done.Add(1)
	}
	return nil
}

// waitSettled waits until kwok has made every pod Running and the Events it
// reports about them stopped arriving, so that serve is measured on a
// cluster at rest.
func (b *bench) waitSettled(ctx context.Context, pods int) {
	start := time.Now()
	var lastEvents, stable int
	b.poll(ctx, 2*time.Second, 15*time.Minute, "pods Running and Events settled", func(ctx context.Context) (bool, string, error) {
		// resourceVersion 0: from the API server's cache, cheap enough to
		// poll; the final answer is confirmed with a consistent read.
		notRunning, err := b.meta.Resource(podsGVR).List(ctx, metav1.ListOptions{FieldSelector: "status.phase!=Running", ResourceVersion: "0"})
		if err != nil {
			return false, "", err
		}
		ev, err := b.meta.Resource(eventsGVR).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err != nil {
			return false, "", err
		}
		if len(ev.Items) == lastEvents {
			stable++
		} else {
			stable, lastEvents = 0, len(ev.Items)
		}
		detail := fmt.Sprintf("%d of %d pods not Running yet, %d Events", len(notRunning.Items), pods, len(ev.Items))
		if len(notRunning.Items) > 0 || stable < 3 {
			return false, detail, nil
		}
		check, err := b.meta.Resource(podsGVR).List(ctx, metav1.ListOptions{FieldSelector: "status.phase!=Running", Limit: 1})
		if err != nil {
			return false, "", err
		}
		return len(check.Items) == 0, detail, nil
	})
	b.t.Logf("all %d pods Running, %d Events in the cluster, %s after the last pod was created",
		pods, lastEvents, time.Since(start).Round(time.Second))
}

// deletePopulation deletes every pod, ReplicaSet and Event of the plan's
// namespaces (grace period 0: no kubelet or garbage collector is needed),
// keeping the namespaces, and waits until no pod is left. Pods are deleted
// one by one on the worker pool: a DeleteCollection of 500 pods outlives
// the API server's request timeout on a busy machine.
func (b *bench) deletePopulation(ctx context.Context) {
	t := b.t
	start := time.Now()
	now := metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}
	var pods []types.NamespacedName
	for _, ns := range b.plan {
		list, err := b.meta.Resource(podsGVR).Namespace(ns.name).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("list pods in %s: %v", ns.name, err)
		}
		for _, p := range list.Items {
			pods = append(pods, types.NamespacedName{Namespace: p.Namespace, Name: p.Name})
		}
	}
	var done atomic.Int64
	stop := b.progress("pods deleted", len(pods), &done)
	err := parallel(ctx, len(pods), func(ctx context.Context, i int) error {
		err := b.client.CoreV1().Pods(pods[i].Namespace).Delete(ctx, pods[i].Name, now)
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete pod %s: %w", pods[i], err)
		}
		done.Add(1)
		return nil
	})
	stop()
	if err != nil {
		t.Fatal(err)
	}
	err = parallel(ctx, len(b.plan), func(ctx context.Context, i int) error {
		ns := b.plan[i].name
		if err := b.client.AppsV1().ReplicaSets(ns).DeleteCollection(ctx, now, metav1.ListOptions{}); err != nil {
			return fmt.Errorf("delete replicasets in %s: %w", ns, err)
		}
		if err := b.client.CoreV1().Events(ns).DeleteCollection(ctx, now, metav1.ListOptions{}); err != nil {
			return fmt.Errorf("delete events in %s: %w", ns, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b.poll(ctx, time.Second, 5*time.Minute, "every pod deleted", func(ctx context.Context) (bool, string, error) {
		l, err := b.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{Limit: 1})
		if err != nil {
			return false, "", err
		}
		return len(l.Items) == 0, fmt.Sprintf("%d+ pods left", len(l.Items)), nil
	})
	t.Logf("population deleted in %s", time.Since(start).Round(time.Millisecond))
}

// serveRun is what one run of `kustode serve` measured.
type serveRun struct {
	label string
	pods  int
	// ready: from the process start to /readyz 200 (every informer synced
	// and the first full posture stored).
	ready time.Duration
	// synced: from the process start until /readyz first showed every
	// informer synced; lastSynced names the informer that synced last.
	synced     time.Duration
	lastSynced string
	// hwmSynced is the peak resident set (VmHWM) when /readyz first
	// showed every informer synced: the peak of the informers' initial
	// lists, before the first full posture.
	hwmSynced int64
	// From the first "posture evaluated" log line with full=true.
	postureTook     time.Duration
	postureObjects  int
	postureFindings int
	// Resident memory and CPU time used (user and system) at ready,
	// settle and steady later. The CPU time does not depend on how busy
	// the machine is; the wall times do.
	atReady, settled, steady memory
	cpuReady, cpuSettled     time.Duration
	// From /metrics, settle and steady after ready.
	heapInuse, heapInuseSteady, goSys, partialEvals float64
	// goResidentSteady: what the Go runtime holds from the system (its
	// Sys less the heap it released), steady after ready; the rest of
	// RssAnon is memory the Go runtime does not manage (SQLite's).
	goResidentSteady float64

	// From /api/v1/posture at ready.
	open    int
	byCheck map[string]int
	// The SQLite store after serve stopped.
	storeBytes int64
	errorLines []string
	// liveHeap is the live heap of the same daemon run in the test process,
	// after a forced GC (zero when not profiled).
	liveHeap uint64
}

// runServe starts `kustode serve` as a subprocess, waits for /readyz, takes
// its measurements and stops it with SIGTERM.
func (b *bench) runServe(ctx context.Context, label string, pods int, extraEnv []string) serveRun {
	t := b.t
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	tokenFile := filepath.Join(dir, "api-token")
	if err := os.WriteFile(tokenFile, []byte(serveToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "serve.log")
	if out := os.Getenv(outputEnv); out != "" {
		name := strings.Join(slices.Concat(strings.Fields(label)[:1], extraEnv), "-")
		logPath = filepath.Join(out, "serve-"+name+".log")
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	addr := freeAddr(t)
	cmd := exec.Command(b.bin, "serve", //nolint:gosec // the binary this test built
		"--kubeconfig", b.kubeconfig,
		"--listen", addr,
		"--data-dir", dataDir,
		"--api-token-file", tokenFile,
		"--log-format", "json")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(envWithout("KUSTODE_"), extraEnv...)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start serve: %v", err)
	}
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	running := true
	t.Cleanup(func() {
		if running { // the test failed before the SIGTERM below
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	t.Logf("%s: kustode serve started (pid %d) on %s", label, pid, addr)

	api := &apiClient{base: "http://" + addr, http: &http.Client{Timeout: 30 * time.Second}}
	r := serveRun{label: label, pods: pods}
	deadline := time.Now().Add(readyWithin)
	syncedAt := map[string]time.Duration{}
	for {
		code, body, err := api.get(ctx, "/readyz")
		at := time.Since(start)
		if code == http.StatusOK || code == http.StatusServiceUnavailable {
			r.noteSynced(body, at, syncedAt)
			if r.synced != 0 && r.hwmSynced == 0 {
				r.hwmSynced = procMemory(t, pid).hwm
			}
		}
		if err == nil && code == http.StatusOK {
			r.ready = at
			break
		}
		select {
		case err := <-exited:
			running = false
			t.Fatalf("%s: serve exited before it was ready: %v\n%s", label, err, tailFile(logPath))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: serve not ready within %s: %d %s %v\n%s", label, readyWithin, code, body, err, tailFile(logPath))
		}
	}
	r.atReady, r.cpuReady = procMemory(t, pid), procCPU(t, pid)
	t.Logf("%s: ready in %s (informers synced after %s, the last %s), peak RSS %s",
		label, r.ready.Round(time.Millisecond), r.synced.Round(time.Millisecond), r.lastSynced, mib(r.atReady.hwm))

	var posture struct {
		Summary struct {
			Open    int            `json:"open"`
			ByCheck map[string]int `json:"byCheck"`
		} `json:"summary"`
	}
	if err := api.getJSON(ctx, "/api/v1/posture", &posture); err != nil {
		t.Fatalf("%s: %v", label, err)
	}
	r.open, r.byCheck = posture.Summary.Open, posture.Summary.ByCheck

	select {
	case err := <-exited:
		running = false
		t.Fatalf("%s: serve exited while running: %v\n%s", label, err, tailFile(logPath))
	case <-time.After(settle):
	}
	r.settled, r.cpuSettled = procMemory(t, pid), procCPU(t, pid)
	m, err := api.metrics(ctx)
	if err != nil {
		t.Fatalf("%s: %v", label, err)
	}
	r.heapInuse, r.goSys = m["go_memstats_heap_inuse_bytes"], m["go_memstats_sys_bytes"]
	t.Logf("%s: %s later: RSS %s (anon %s), heap in use %s; next reading %s after ready",
		label, settle, mib(r.settled.rss), mib(r.settled.anon), mib(int64(r.heapInuse)), steady)

	select {
	case err := <-exited:
		running = false
		t.Fatalf("%s: serve exited while running: %v\n%s", label, err, tailFile(logPath))
	case <-time.After(steady - settle):
	}
	r.steady = procMemory(t, pid)
	if m, err = api.metrics(ctx); err != nil {
		t.Fatalf("%s: %v", label, err)
	}
	r.heapInuseSteady = m["go_memstats_heap_inuse_bytes"]
	r.goResidentSteady = m["go_memstats_sys_bytes"] - m["go_memstats_heap_released_bytes"]
	r.partialEvals = m[`kustode_posture_evaluations_total{mode="partial"}`]

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("%s: SIGTERM serve (pid %d): %v", label, pid, err)
	}
	select {
	case <-exited:
		running = false
	case <-time.After(time.Minute):
		t.Fatalf("%s: serve (pid %d) did not exit within a minute of SIGTERM\n%s", label, pid, tailFile(logPath))
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("%s: serve exited %d after SIGTERM, want 0\n%s", label, code, tailFile(logPath))
	}
	r.storeBytes = dirSize(dataDir)
	b.readLog(logPath, &r)
	if r.postureObjects == 0 && r.postureTook == 0 {
		t.Errorf("%s: no `posture evaluated` log line with full=true", label)
	}
	t.Logf("%s: full posture of %d objects (%d findings) took %s; CPU time %s to ready, %s 10 s later; RSS %s %s after ready (peak %s, anon %s); heap in use %s",
		label, r.postureObjects, r.postureFindings, r.postureTook, r.cpuReady, r.cpuSettled, mib(r.steady.rss), steady, mib(r.steady.hwm), mib(r.steady.anon),
		mib(int64(r.heapInuseSteady)))
	if len(r.errorLines) > 0 {
		t.Logf("%s: %d ERROR log lines, the first: %s", label, len(r.errorLines), strings.Join(r.errorLines[:min(5, len(r.errorLines))], "\n"))
	}
	return r
}

// noteSynced records, from a /readyz answer, when each informer was first
// seen synced, and when all of them were.
func (r *serveRun) noteSynced(body []byte, at time.Duration, syncedAt map[string]time.Duration) {
	var ready struct {
		Conditions []struct {
			Name string `json:"name"`
			OK   bool   `json:"ok"`
		} `json:"conditions"`
	}
	if json.Unmarshal(body, &ready) != nil {
		return
	}
	all, informers := true, 0
	for _, c := range ready.Conditions {
		if !strings.HasPrefix(c.Name, "informer/") && c.Name != "events" {
			continue
		}
		informers++
		if !c.OK {
			all = false
			continue
		}
		if _, ok := syncedAt[c.Name]; !ok {
			syncedAt[c.Name] = at
			r.lastSynced = c.Name
		}
	}
	if all && informers > 0 && r.synced == 0 {
		r.synced = at
	}
}

// readLog finds the first full posture evaluation and the ERROR lines in
// serve's JSON log.
func (b *bench) readLog(path string, r *serveRun) {
	f, err := os.Open(path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	found := false
	for sc.Scan() {
		var line struct {
			Level    string  `json:"level"`
			Msg      string  `json:"msg"`
			Full     bool    `json:"full"`
			Objects  int     `json:"objects"`
			Findings int     `json:"findings"`
			Took     float64 `json:"took"` // slog writes durations as nanoseconds
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		if line.Level == "ERROR" {
			r.errorLines = append(r.errorLines, sc.Text())
		}
		if !found && line.Msg == "posture evaluated" && line.Full {
			found = true
			r.postureTook = time.Duration(line.Took)
			r.postureObjects, r.postureFindings = line.Objects, line.Findings
		}
	}
	if err := sc.Err(); err != nil {
		b.t.Fatalf("read serve log: %v", err)
	}
}

// checkPopulation asserts what must hold at any scale: the population's
// misconfigured workloads are found, and owned pods are judged at their
// ReplicaSet, bare pods each on their own.
func (b *bench) checkPopulation(base, run serveRun, c created) {
	t := b.t
	if run.open <= base.open {
		t.Errorf("%s: %d open findings, want more than the %d of the base", run.label, run.open, base.open)
	}
	if got := run.byCheck["pss-privileged"] - base.byCheck["pss-privileged"]; got != c.privileged {
		t.Errorf("%s: %d pss-privileged findings above the base, want %d (one per privileged %s)",
			run.label, got, c.privileged, map[bool]string{true: "ReplicaSet", false: "pod"}[c.owned])
	}
	judged := c.pods
	if c.owned {
		judged = c.replicaSets
	}
	if got := run.postureObjects - base.postureObjects; got != judged {
		t.Errorf("%s: the full posture judged %d objects above the base, want %d", run.label, got, judged)
	}
}

// profile writes a heap profile of the daemon run in this process against
// the cluster as it is now, when KUSTODE_SCALE_OUTPUT names a directory: serve itself has no profiling endpoint, and the subprocess
// measurements above stay free of the profiler.
func (b *bench) profile(ctx context.Context, name string, r *serveRun) {
	dir := os.Getenv(outputEnv)
	if dir == "" {
		return
	}
	t := b.t
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A CPU profile from the start to the first full posture: what the
	// time to ready is spent on.
	cpuPath := filepath.Join(dir, "cpu-"+name+".pb.gz")
	cpuFile, err := os.Create(cpuPath)
	if err != nil {
		t.Fatal(err)
	}
	defer cpuFile.Close()
	if err := pprof.StartCPUProfile(cpuFile); err != nil {
		t.Fatal(err)
	}
	d, err := daemon.New(ctx, cfg, b.cp.Config(controlplane.AdminUser), slog.New(slog.DiscardHandler))
	if err != nil {
		pprof.StopCPUProfile()
		t.Fatalf("profile %s: daemon.New: %v", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Start(ctx) }()
	b.poll(ctx, 100*time.Millisecond, readyWithin, "in-process daemon's first full posture", func(context.Context) (bool, string, error) {
		return !d.FirstFullPosture().IsZero(), "", nil
	})
	pprof.StopCPUProfile()
	if err := cpuFile.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(settle)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	path := filepath.Join(dir, "heap-"+name+".pb.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("profile %s: in-process daemon stopped with %v", name, err)
	}
	r.liveHeap = ms.HeapAlloc
	t.Logf("profile %s: %s (live heap after GC %s), %s", name, path, mib(int64(ms.HeapAlloc)), cpuPath)
}

// report prints the measurements as tables.
func (b *bench) report(runs []serveRun, pairs [][2]serveRun) {
	var sb strings.Builder
	w := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "run\tpods\tready\tsynced\tfull posture\tobjects\tfindings\topen\tCPU to ready\tpartial evals\tstore\t")
	for _, r := range runs {
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%.0f\t%s\t\n",
			r.label, r.pods, r.ready.Round(10*time.Millisecond), r.synced.Round(10*time.Millisecond), r.postureTook,
			r.postureObjects, r.postureFindings, r.open, r.cpuReady, r.partialEvals, mib(r.storeBytes))
	}
	_ = w.Flush()
	sb.WriteString("\nmemory:\n")
	w = tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "run\tpeak RSS\tpeak at sync\tRSS at ready\tRSS +10 s\tanon +10 s\theap in use +10 s\tRSS +130 s\tanon +130 s\tfile +130 s\theap in use +130 s\tGo held +130 s\tnot Go +130 s\tGo sys\tlive heap\t")
	for _, r := range runs {
		live := "-"
		if r.liveHeap > 0 {
			live = mib(int64(r.liveHeap))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			r.label, mib(r.steady.hwm), mib(r.hwmSynced), mib(r.atReady.rss), mib(r.settled.rss), mib(r.settled.anon), mib(int64(r.heapInuse)),
			mib(r.steady.rss), mib(r.steady.anon), mib(r.steady.file), mib(int64(r.heapInuseSteady)),
			mib(int64(r.goResidentSteady)), mib(r.steady.anon-int64(r.goResidentSteady)), mib(int64(r.goSys)), live)
	}
	_ = w.Flush()
	sb.WriteString("\nper pod above the base (goal: at most 2 KiB of RSS a pod):\n")
	w = tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "run\tpeak RSS\tpeak at sync\tRSS at ready\tRSS +10 s\tRSS +130 s\tanon +130 s\tGo held +130 s\theap in use +130 s\tlive heap\t")
	for _, pair := range pairs {
		base, r := pair[0], pair[1]
		per := func(v, baseV float64) string { return fmt.Sprintf("%.2f KiB", (v-baseV)/float64(r.pods)/1024) }
		live := "-"
		if r.liveHeap > 0 && base.liveHeap > 0 {
			live = per(float64(r.liveHeap), float64(base.liveHeap))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.label,
			per(float64(r.steady.hwm), float64(base.steady.hwm)), per(float64(r.hwmSynced), float64(base.hwmSynced)), per(float64(r.atReady.rss), float64(base.atReady.rss)),
			per(float64(r.settled.rss), float64(base.settled.rss)), per(float64(r.steady.rss), float64(base.steady.rss)),
			per(float64(r.steady.anon), float64(base.steady.anon)), per(r.goResidentSteady, base.goResidentSteady),
			per(r.heapInuseSteady, base.heapInuseSteady), live)
	}
	_ = w.Flush()
	fmt.Fprintf(&sb, "\nready: process start to /readyz 200; synced: to every informer synced; full posture: its log line's took;\n"+
		"CPU: user+system to ready; peak RSS: VmHWM; peak at sync: VmHWM when every informer was synced; anon and file: RssAnon and RssFile; heap in use, Go sys: serve's /metrics;\n"+
		"Go held: Go sys less the heap released to the system; not Go: anon less Go held (SQLite's memory, roughly);\n"+
		"live heap: the daemon run in the test process, after a forced GC (only with %s)\n", outputEnv)
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&sb, "%s, GOMAXPROCS %d, load average now %s", runtime.Version(), runtime.GOMAXPROCS(0), strings.TrimSpace(string(load)))
	b.t.Logf("kustode serve at scale:\n%s", sb.String())
}

// progress logs done/total and the rate every five seconds until the
// returned stop is called; stop returns the time since the start.
func (b *bench) progress(what string, total int, done *atomic.Int64) (stop func() time.Duration) {
	start := time.Now()
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				n := done.Load()
				b.t.Logf("%s: %d/%d (%.0f/s)", what, n, total, float64(n)/time.Since(start).Seconds())
			}
		}
	})
	return func() time.Duration {
		close(quit)
		wg.Wait()
		return time.Since(start)
	}
}

// poll calls cond every interval until it reports done, and fails the test
// after within with cond's last detail.
func (b *bench) poll(ctx context.Context, interval, within time.Duration, what string, cond func(context.Context) (bool, string, error)) {
	t := b.t
	t.Helper()
	deadline := time.Now().Add(within)
	lastLog := time.Now()
	for {
		ok, detail, err := cond(ctx)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s %v", what, within, detail, err)
		}
		if err != nil && ctx.Err() != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if time.Since(lastLog) >= 10*time.Second && detail != "" {
			t.Logf("waiting for %s: %s", what, detail)
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, ctx.Err())
		case <-time.After(interval):
		}
	}
}

// parallel calls do for 0..n-1 on up to workers goroutines and returns the
// first error; after an error the remaining calls get a cancelled context.
// createRetrying calls create until it succeeds, fails for a reason other
// than an overloaded API server (a timeout, an internal error such as
// "resource quota evaluation timed out", too many requests), or has failed
// five times: a shared machine's API server falls behind now and then.
func createRetrying(ctx context.Context, create func() error) error {
	var err error
	for try := range 5 {
		err = create()
		overloaded := apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsInternalError(err) || apierrors.IsTooManyRequests(err)
		if !overloaded {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(try+1) * time.Second):
		}
	}
	return err
}

func parallel(ctx context.Context, n int, do func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				if err := do(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}

// buildKustode builds the kustode binary from this module.
func buildKustode(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kustode")
	start := time.Now()
	out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "github.com/kustode/kustode/cmd/kustode").CombinedOutput()
	if err != nil {
		t.Fatalf("go build kustode: %v\n%s", err, out)
	}
	t.Logf("built %s in %s", bin, time.Since(start).Round(time.Millisecond))
	return bin
}

// apiClient calls serve's API with the static token.
type apiClient struct {
	base string
	http *http.Client
}

func (c *apiClient) get(ctx context.Context, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+serveToken)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

func (c *apiClient) getJSON(ctx context.Context, path string, out any) error {
	code, body, err := c.get(ctx, path)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: decode: %w", path, err)
	}
	return nil
}

// metrics returns serve's /metrics samples without labels by name, and
// those with labels by name{labels}.
func (c *apiClient) metrics(ctx context.Context) (map[string]float64, error) {
	code, body, err := c.get(ctx, "/metrics")
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %d %s", code, body)
	}
	out := map[string]float64{}
	for line := range bytes.Lines(body) {
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		i := bytes.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(string(bytes.TrimSpace(line[i+1:])), 64)
		if err != nil {
			continue
		}
		out[string(line[:i])] = v
	}
	return out, nil
}

// memory is a process's resident memory from /proc/PID/status, in bytes.
type memory struct {
	// hwm is the peak resident set (VmHWM), rss the current one (VmRSS):
	// anon, the process's own memory (RssAnon), plus file, the mapped
	// pages of its binary and libraries (RssFile).
	hwm, rss, anon, file int64
}

func procMemory(t *testing.T, pid int) memory {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var m memory
	fields := map[string]*int64{"VmHWM": &m.hwm, "VmRSS": &m.rss, "RssAnon": &m.anon, "RssFile": &m.file}
	for line := range strings.Lines(string(b)) {
		name, value, ok := strings.Cut(line, ":")
		if !ok || fields[name] == nil {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			t.Fatalf("/proc/%d/status %s: %v", pid, name, err)
		}
		*fields[name] = kb << 10
	}
	if m.hwm == 0 || m.rss == 0 {
		t.Fatalf("/proc/%d/status: no VmHWM or VmRSS", pid)
	}
	return m
}

// procCPU returns the CPU time (user and system) a process has used, from
// /proc/PID/stat, in the kernel's fixed 100 ticks a second.
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name in parentheses: state is field 3,
	// utime 14 and stime 15.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		t.Fatalf("/proc/%d/stat: unexpected %q", pid, b)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("/proc/%d/stat: %v", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// envWithout is this process's environment without the variables starting
// with prefix (serve reads its settings from KUSTODE_* variables).
func envWithout(prefix string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			out = append(out, kv)
		}
	}
	return out
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil //nolint:nilerr // a file removed while walking counts as empty
		}
		if info, err := d.Info(); err == nil && !d.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}

// tailFile returns the last 8 KiB of a file, for failure messages.
func tailFile(path string) string {
	const n = 8 << 10
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func ptr[T any](v T) *T { return &v }
