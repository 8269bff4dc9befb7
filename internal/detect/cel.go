package detect

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"

	"github.com/kustode/kustode/internal/audit"
)

// The CEL environment rules are written against. Each top-level field of an
// audit event is a variable, built only when a rule reads it:
//
//	verb, stage, requestURI, userAgent      string
//	sourceIPs                               list(string)
//	user, impersonatedUser                  {username, uid, groups, extra}
//	objectRef                               {resource, subresource, namespace, name, apiGroup, apiVersion}
//	responseStatus                          {code (int), status, reason, message}
//	annotations                             map(string, string)
//	requestObject, responseObject           the recorded objects (null when absent)
//	lists                                   the rule file's lists by name
//
// Helper functions over a recorded workload object (any kind, any
// apiVersion; false or empty for other objects):
//
//	privileged(obj)          bool: a container runs privileged
//	hostNamespaces(obj)      list(string): "hostNetwork", "hostPID", "hostIPC" set
//	hostPaths(obj)           list(string): hostPath volume paths
//	addedCapabilities(obj)   list(string): capabilities added by any container
//	execCommand(requestURI, requestObject)
//	                         list(string): an exec request's command and
//	                         arguments (see execCommand)
//	inCIDR(ip, cidrs)        bool: ip is inside one of the CIDRs
//	glob(s, pattern)         bool: shell-style match (*, ?)
//	imageRegistry(image)     string: the registry host an image reference
//	                         pulls from ("nginx" → "docker.io")
//	imageRepository(image)   string: the full repository, without tag or
//	                         digest ("nginx:1" → "docker.io/library/nginx")
func newEnv() (*cel.Env, error) {
	mapSD := cel.MapType(cel.StringType, cel.DynType)
	return cel.NewEnv(
		ext.Strings(), // lowerAscii, split, ... as in Kubernetes' own CEL
		cel.Variable("verb", cel.StringType),
		cel.Variable("stage", cel.StringType),
		cel.Variable("requestURI", cel.StringType),
		cel.Variable("userAgent", cel.StringType),
		cel.Variable("sourceIPs", cel.ListType(cel.StringType)),
		cel.Variable("user", mapSD),
		cel.Variable("impersonatedUser", mapSD),
		cel.Variable("objectRef", mapSD),
		cel.Variable("responseStatus", mapSD),
		cel.Variable("annotations", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("requestObject", cel.DynType),
		cel.Variable("responseObject", cel.DynType),
		cel.Variable("lists", cel.MapType(cel.StringType, cel.ListType(cel.StringType))),
		podFunc("privileged", cel.BoolType, func(s *podSecurity) ref.Val { return types.Bool(isPrivileged(s)) }),
		podFunc("hostNamespaces", cel.ListType(cel.StringType), func(s *podSecurity) ref.Val {
			return types.DefaultTypeAdapter.NativeToValue(hostNamespaces(s))
		}),
		podFunc("hostPaths", cel.ListType(cel.StringType), func(s *podSecurity) ref.Val {
			return types.DefaultTypeAdapter.NativeToValue(hostPaths(s))
		}),
		podFunc("addedCapabilities", cel.ListType(cel.StringType), func(s *podSecurity) ref.Val {
			return types.DefaultTypeAdapter.NativeToValue(addedCapabilities(s))
		}),
		cel.Function("inCIDR",
			cel.Overload("inCIDR_string_list", []*cel.Type{cel.StringType, cel.ListType(cel.StringType)}, cel.BoolType,
				cel.BinaryBinding(func(ip, cidrs ref.Val) ref.Val {
					addr, err := netip.ParseAddr(string(ip.(types.String)))
					if err != nil {
						return types.False
					}
					list, err := cidrs.ConvertToNative(stringSliceType)
					if err != nil {
						return types.NewErr("inCIDR: %v", err)
					}
					for _, c := range list.([]string) {
						if p, err := netip.ParsePrefix(c); err == nil && p.Contains(addr) {
							return types.True
						}
					}
					return types.False
				}))),
		cel.Function("execCommand",
			cel.Overload("execCommand_string_dyn", []*cel.Type{cel.StringType, cel.DynType}, cel.ListType(cel.StringType),
				cel.BinaryBinding(func(uri, obj ref.Val) ref.Val {
					return types.DefaultTypeAdapter.NativeToValue(execCommand(string(uri.(types.String)), obj.Value()))
				}))),
		cel.Function("glob",
			cel.MemberOverload("string_glob_string", []*cel.Type{cel.StringType, cel.StringType}, cel.BoolType,
				cel.BinaryBinding(func(s, pattern ref.Val) ref.Val {
					ok, _ := path.Match(string(pattern.(types.String)), string(s.(types.String)))
					return types.Bool(ok)
				}))),
		cel.Function("imageRegistry",
			cel.Overload("imageRegistry_string", []*cel.Type{cel.StringType}, cel.StringType,
				cel.UnaryBinding(func(image ref.Val) ref.Val {
					return types.String(imageRegistry(string(image.(types.String))))
				}))),
		cel.Function("imageRepository",
			cel.Overload("imageRepository_string", []*cel.Type{cel.StringType}, cel.StringType,
				cel.UnaryBinding(func(image ref.Val) ref.Val {
					return types.String(imageRepository(string(image.(types.String))))
				}))),
	)
}

// execCommand returns the command of an exec request, with its arguments:
// the command parameters of the request URI, which is where the API server
// records them (kubectl exec web -- cat /etc/passwd is
// ...?command=cat&command=%2Fetc%2Fpasswd), or, when the URI has none, the
// command list of the recorded object (obj, as decodeRaw decodes it), where
// some exports keep it (GKE's request field). Empty when neither has one.
func execCommand(uri string, obj any) []string {
	if _, query, ok := strings.Cut(uri, "?"); ok {
		values, _ := url.ParseQuery(query) // the well-formed pairs, even if some are not
		if cmd := values["command"]; len(cmd) > 0 {
			return cmd
		}
	}
	out := []string{}
	m, _ := obj.(map[string]any)
	list, _ := m["command"].([]any)
	for _, v := range list {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// imageRegistry returns the registry host of an image reference as the
// container runtime resolves it (the rules of the reference grammar in
// github.com/distribution/reference): the first path component is a
// registry when it contains "." or ":" or is "localhost"; otherwise the
// image is on Docker Hub, "docker.io". Hosts are case-insensitive and come
// back in lower case; Docker Hub's legacy name index.docker.io is
// docker.io. An empty reference has no registry: "".
func imageRegistry(image string) string {
	host, _ := splitImage(image)
	return host
}

// imageRepository returns an image reference's repository in full, without
// tag or digest, as the runtime resolves it: "nginx:1.27" is
// "docker.io/library/nginx", "ghcr.io/acme/app@sha256:…" is
// "ghcr.io/acme/app"; "" for an empty reference.
func imageRepository(image string) string {
	host, repo := splitImage(image)
	if host == "" {
		return ""
	}
	return host + "/" + repo
}

// splitImage returns the registry host and the repository path of an image
// reference (tag and digest dropped; Docker Hub's official images under
// "library/").
func splitImage(image string) (host, repo string) {
	image = strings.TrimSpace(image)
	if image == "" {
		return "", ""
	}
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndexByte(image, ':'); i > strings.LastIndexByte(image, '/') {
		image = image[:i] // a tag, not a registry port
	}
	first, rest, hasPath := strings.Cut(image, "/")
	// Repository paths are lower case, so an upper-case first component
	// can only be a host.
	if !hasPath || !strings.ContainsAny(first, ".:") && first != "localhost" && strings.ToLower(first) == first {
		host, rest = "docker.io", image
	} else {
		host = strings.ToLower(first)
	}
	if host == "index.docker.io" {
		host = "docker.io"
	}
	if host == "docker.io" && !strings.Contains(rest, "/") {
		rest = "library/" + rest
	}
	return host, rest
}

// podFunc declares a function of one recorded object computed from its pod
// template.
func podFunc(name string, result *cel.Type, fn func(*podSecurity) ref.Val) cel.EnvOption {
	return cel.Function(name, cel.Overload(name+"_dyn", []*cel.Type{cel.DynType}, result,
		cel.UnaryBinding(func(obj ref.Val) ref.Val {
			spec := podSpecOf(obj)
			if spec == nil {
				spec = &podSecurity{}
			}
			return fn(spec)
		})))
}

// lastPod caches the pod spec of the last object the pod helpers decoded:
// several rules ask about the same request object in a row. The entry holds
// the object itself, so its address cannot be reused while cached.
var lastPod atomic.Pointer[podCacheEntry]

type podCacheEntry struct {
	obj  map[string]any
	spec *podSecurity
}

// podSpecOf finds the pod spec in a recorded object of any workload kind.
func podSpecOf(obj ref.Val) *podSecurity {
	// requestObject and responseObject are the Go values decodeRaw made;
	// Value returns them as they are.
	m, ok := obj.Value().(map[string]any)
	if !ok {
		return nil
	}
	if c := lastPod.Load(); c != nil && reflect.ValueOf(c.obj).Pointer() == reflect.ValueOf(m).Pointer() {
		return c.spec
	}
	spec := decodePodSpec(m)
	lastPod.Store(&podCacheEntry{obj: m, spec: spec})
	return spec
}

func decodePodSpec(m map[string]any) *podSecurity {
	raw, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	var head struct {
		Kind string `json:"kind"`
	}
	if json.Unmarshal(raw, &head) != nil {
		return nil
	}
	spec, ok, err := podSecurityOf(head.Kind, raw)
	if !ok || err != nil {
		return nil
	}
	return spec
}

// podSecurity is what the pod helpers read of a pod spec, with corev1's
// field names and types, so that its values are the ones a decode into a
// corev1.PodSpec gives. Decoding only these fields, and skipping the rest
// (resources, probes, environment: quantities and unions that are slow to
// decode), makes a workload rule's cost a fraction of a whole typed decode.
// The one difference is that a malformed field the helpers do not read
// (an integer where corev1 wants a string, say) does not make the whole
// spec unreadable; the API server rejects such an object anyway.
type podSecurity struct {
	HostNetwork         bool                `json:"hostNetwork"`
	HostPID             bool                `json:"hostPID"`
	HostIPC             bool                `json:"hostIPC"`
	Volumes             []podVolume         `json:"volumes"`
	InitContainers      []containerSecurity `json:"initContainers"`
	Containers          []containerSecurity `json:"containers"`
	EphemeralContainers []containerSecurity `json:"ephemeralContainers"`
}

type podVolume struct {
	HostPath *hostPathSource `json:"hostPath"`
}

type hostPathSource struct {
	Path string `json:"path"`
}

type containerSecurity struct {
	SecurityContext *securityContext `json:"securityContext"`
}

type securityContext struct {
	Privileged   *bool         `json:"privileged"`
	Capabilities *capabilities `json:"capabilities"`
}

type capabilities struct {
	Add []string `json:"add"`
}

// podSecurityOf decodes the pod spec of a workload of the given kind, as
// kube.PodTemplate finds it: ok is false for a kind without one; a
// workload without its template is an error.
func podSecurityOf(kind string, raw []byte) (spec *podSecurity, ok bool, err error) {
	type template struct {
		Spec podSecurity `json:"spec"`
	}
	switch kind {
	case "Pod":
		var pod template
		if err := json.Unmarshal(raw, &pod); err != nil {
			return nil, true, fmt.Errorf("decode Pod: %w", err)
		}
		return &pod.Spec, true, nil
	case "Deployment", "ReplicaSet", "ReplicationController", "StatefulSet", "DaemonSet", "Job":
		var w struct {
			Spec struct {
				Template *template `json:"template"`
			} `json:"spec"`
		}
		if err := json.Unmarshal(raw, &w); err != nil {
			return nil, true, fmt.Errorf("decode %s: %w", kind, err)
		}
		if w.Spec.Template == nil {
			return nil, true, fmt.Errorf("%s has no spec.template", kind)
		}
		return &w.Spec.Template.Spec, true, nil
	case "CronJob":
		var cj struct {
			Spec struct {
				JobTemplate struct {
					Spec struct {
						Template *template `json:"template"`
					} `json:"spec"`
				} `json:"jobTemplate"`
			} `json:"spec"`
		}
		if err := json.Unmarshal(raw, &cj); err != nil {
			return nil, true, fmt.Errorf("decode CronJob: %w", err)
		}
		if cj.Spec.JobTemplate.Spec.Template == nil {
			return nil, true, fmt.Errorf("CronJob has no spec.jobTemplate.spec.template")
		}
		return &cj.Spec.JobTemplate.Spec.Template.Spec, true, nil
	case "PodTemplate":
		var pt struct {
			Template *template `json:"template"`
		}
		if err := json.Unmarshal(raw, &pt); err != nil {
			return nil, true, fmt.Errorf("decode PodTemplate: %w", err)
		}
		if pt.Template == nil {
			return nil, true, fmt.Errorf("PodTemplate has no template")
		}
		return &pt.Template.Spec, true, nil
	}
	return nil, false, nil
}

func isPrivileged(s *podSecurity) bool {
	for _, c := range allContainers(s) {
		if c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
			return true
		}
	}
	return false
}

func hostNamespaces(s *podSecurity) []string {
	out := []string{}
	if s.HostNetwork {
		out = append(out, "hostNetwork")
	}
	if s.HostPID {
		out = append(out, "hostPID")
	}
	if s.HostIPC {
		out = append(out, "hostIPC")
	}
	return out
}

func hostPaths(s *podSecurity) []string {
	out := []string{}
	for _, v := range s.Volumes {
		if v.HostPath != nil {
			out = append(out, v.HostPath.Path)
		}
	}
	return out
}

func addedCapabilities(s *podSecurity) []string {
	out := []string{}
	for _, c := range allContainers(s) {
		if c.SecurityContext != nil && c.SecurityContext.Capabilities != nil {
			for _, cap := range c.SecurityContext.Capabilities.Add {
				out = append(out, strings.TrimPrefix(strings.ToUpper(cap), "CAP_"))
			}
		}
	}
	return out
}

func allContainers(s *podSecurity) []containerSecurity {
	return slices.Concat(s.InitContainers, s.Containers, s.EphemeralContainers)
}

// activation resolves CEL variables from one event, building each value on
// first use: most rules read two or three fields, and the recorded objects
// are decoded only for the rules that look at them.
type activation struct {
	ev    *audit.Event
	lists map[string][]string
	cache map[string]any
	// frame, when set, holds the recorded objects already decoded.
	frame *frame
}

var _ interpreter.Activation = (*activation)(nil)

// reset forgets the event, keeping the cache's memory for the next one.
func (a *activation) reset() {
	a.ev, a.lists, a.frame = nil, nil, nil
	clear(a.cache)
}

func (a *activation) Parent() interpreter.Activation { return nil }

func (a *activation) ResolveName(name string) (any, bool) {
	if v, ok := a.cache[name]; ok {
		return v, true
	}
	v, ok := a.resolve(name)
	if ok {
		if a.cache == nil {
			a.cache = map[string]any{}
		}
		a.cache[name] = v
	}
	return v, ok
}

func (a *activation) resolve(name string) (any, bool) {
	ev := a.ev
	switch name {
	case "verb":
		return ev.Verb, true
	case "stage":
		return string(ev.Stage), true
	case "requestURI":
		return ev.RequestURI, true
	case "userAgent":
		return ev.UserAgent, true
	case "sourceIPs":
		return nonNil(ev.SourceIPs), true
	case "user":
		return userMap(&ev.User), true
	case "impersonatedUser":
		if ev.ImpersonatedUser == nil {
			return userMap(&audit.UserInfo{}), true
		}
		return userMap(ev.ImpersonatedUser), true
	case "objectRef":
		o := ev.ObjectRef
		return map[string]any{
			"resource": o.Resource, "subresource": o.Subresource, "namespace": o.Namespace,
			"name": o.Name, "apiGroup": o.APIGroup, "apiVersion": o.APIVersion,
		}, true
	case "responseStatus":
		r := ev.ResponseStatus
		return map[string]any{"code": int64(r.Code), "status": r.Status, "reason": r.Reason, "message": r.Message}, true
	case "annotations":
		if ev.Annotations == nil {
			return map[string]string{}, true
		}
		return ev.Annotations, true
	case "requestObject", "responseObject":
		if a.frame != nil {
			return a.frame.object(objectIndex(name)).value, true
		}
		if name == "requestObject" {
			return decodeRaw(ev.RequestObject), true
		}
		return decodeRaw(ev.ResponseObject), true
	case "lists":
		return a.lists, true
	}
	return nil, false
}

func userMap(u *audit.UserInfo) map[string]any {
	extra := map[string][]string{}
	for k, v := range u.Extra {
		extra[k] = v
	}
	return map[string]any{"username": u.Username, "uid": u.UID, "groups": nonNil(u.Groups), "extra": extra}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func decodeRaw(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil
	}
	return v
}

var macroRef = regexp.MustCompile(`@([a-zA-Z_][a-zA-Z0-9_]*)`)

// expandMacros replaces @name with the macro's expression, in parentheses,
// recursively (a macro may use others); cycles are an error.
func expandMacros(expr string, macros map[string]string) (string, error) {
	for depth := 0; macroRef.MatchString(expr); depth++ {
		if depth > 16 {
			return "", fmt.Errorf("macros nest more than 16 deep (a cycle?)")
		}
		var missing string
		expr = macroRef.ReplaceAllStringFunc(expr, func(m string) string {
			body, ok := macros[m[1:]]
			if !ok {
				missing = m
				return m
			}
			return "(" + body + ")"
		})
		if missing != "" {
			return "", fmt.Errorf("unknown macro %s", missing)
		}
	}
	return expr, nil
}

var (
	stringSliceType = reflect.TypeOf([]string(nil))
)

func parseAddr(s string) (netip.Addr, error) { return netip.ParseAddr(s) }
