package audit

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// gkeEntry is the part of a Cloud Logging LogEntry with a Cloud Audit Logs
// AuditLog payload that describes a Kubernetes API request. GKE writes one
// per audited request, at stage ResponseComplete (and ResponseStarted for
// long-running ones), to cloudaudit.googleapis.com/activity and
// data_access.
type gkeEntry struct {
	InsertID  string            `json:"insertId"`
	Timestamp string            `json:"timestamp"`
	Labels    map[string]string `json:"labels"`
	Operation struct {
		ID    string `json:"id"`
		First bool   `json:"first"`
		Last  bool   `json:"last"`
	} `json:"operation"`
	ProtoPayload struct {
		ServiceName        string `json:"serviceName"`
		MethodName         string `json:"methodName"`
		ResourceName       string `json:"resourceName"`
		AuthenticationInfo struct {
			PrincipalEmail   string `json:"principalEmail"`
			PrincipalSubject string `json:"principalSubject"`
		} `json:"authenticationInfo"`
		AuthorizationInfo []struct {
			Resource string `json:"resource"`
			Granted  *bool  `json:"granted"`
		} `json:"authorizationInfo"`
		RequestMetadata struct {
			CallerIP                string `json:"callerIp"` // also matches callerIP
			CallerSuppliedUserAgent string `json:"callerSuppliedUserAgent"`
		} `json:"requestMetadata"`
		Status *struct {
			Code    int32  `json:"code"`
			Message string `json:"message"`
		} `json:"status"`
		Request  json.RawMessage `json:"request"`
		Response json.RawMessage `json:"response"`
	} `json:"protoPayload"`
}

// decodeGKE maps a GKE Cloud Audit Logs entry to an Event, as closely as the
// entry allows:
//
//   - verb, resource and subresource from methodName
//     (io.k8s.core.v1.pods.exec.create: create pods/exec);
//   - API group and version, namespace and name from resourceName
//     (core/v1/namespaces/default/pods/web), or the first
//     authorizationInfo resource;
//   - requestURI rebuilt from them (without the query string, which GKE
//     does not log);
//   - user from authenticationInfo.principalEmail (GKE logs neither groups
//     nor UID), source IP and user agent from requestMetadata;
//   - the response code from the response Status object if logged, else
//     from the google.rpc status code, else 200 (201 for create), and 403
//     when authorizationInfo says the request was not granted;
//   - audit ID from operation.id (GKE's copy of the API server's audit
//     ID), annotations from the entry's labels, where GKE puts them;
//   - request and response (level Request/RequestResponse when present).
//
// Entries from other Google services are not audit events.
func decodeGKE(data []byte, e *Event) error {
	var le gkeEntry
	if err := json.Unmarshal(data, &le); err != nil {
		return fmt.Errorf("GKE log entry: %w", err)
	}
	pp := &le.ProtoPayload
	if pp.ServiceName != "k8s.io" && !strings.HasPrefix(pp.MethodName, "io.k8s.") {
		return fmt.Errorf("not a Kubernetes audit record: Google Cloud audit log of service %q, method %q", pp.ServiceName, pp.MethodName)
	}
	*e = Event{Kind: "Event", APIVersion: "audit.k8s.io/v1", Stage: StageResponseComplete}
	if le.Operation.First && !le.Operation.Last {
		e.Stage = StageResponseStarted
	}
	e.AuditID = le.Operation.ID
	if e.AuditID == "" {
		e.AuditID = le.InsertID
	}
	m := parseGKEMethod(pp.MethodName)
	e.Verb = m.verb

	resName := pp.ResourceName
	if resName == "" && len(pp.AuthorizationInfo) > 0 {
		resName = pp.AuthorizationInfo[0].Resource
	}
	if r, ok := parseGKEResource(resName, m.resource); ok {
		e.ObjectRef = r.ref
		if r.ref.Resource == "namespaces" && e.Verb == "create" {
			e.ObjectRef.Namespace = "" // posted to /api/v1/namespaces
		}
		e.RequestURI = r.uri(e.Verb)
	} else if m.resource != "" {
		e.ObjectRef = ObjectReference{Resource: m.resource, Subresource: m.subresource, APIGroup: m.group, APIVersion: m.version}
	}
	if e.ObjectRef.Resource == "" {
		e.ObjectRef.Resource = m.resource
	}
	if e.ObjectRef.Subresource == "" {
		e.ObjectRef.Subresource = m.subresource
	}
	if e.RequestURI == "" {
		switch {
		case strings.HasPrefix(resName, "/"):
			e.RequestURI = resName
		case m.nonResource != "":
			e.RequestURI = "/" + m.nonResource
		}
	}

	e.User.Username = pp.AuthenticationInfo.PrincipalEmail
	if e.User.Username == "" {
		e.User.Username = pp.AuthenticationInfo.PrincipalSubject
	}
	if ip := pp.RequestMetadata.CallerIP; ip != "" {
		e.SourceIPs = []string{ip}
	}
	e.UserAgent = pp.RequestMetadata.CallerSuppliedUserAgent

	if len(pp.Request) > 0 && string(pp.Request) != "null" {
		e.RequestObject = pp.Request
		e.Level = LevelRequest
	}
	if len(pp.Response) > 0 && string(pp.Response) != "null" {
		e.ResponseObject = pp.Response
		e.Level = LevelRequestResponse
	}
	if e.Level == "" {
		e.Level = LevelMetadata
	}
	e.ResponseStatus = gkeStatus(&le, e.Verb)
	if ts, ok := parseLogTime(le.Timestamp); ok {
		e.RequestReceivedTimestamp, e.StageTimestamp = ts, ts
	}
	if len(le.Labels) > 0 {
		e.Annotations = le.Labels
	}
	return nil
}

type gkeMethod struct {
	group, version, resource, subresource, verb string
	// nonResource is the path of a non-resource request (io.k8s.readyz).
	nonResource string
}

var apiVersionRE = regexp.MustCompile(`^v[0-9]+((alpha|beta)[0-9]+)?$`)

// parseGKEMethod splits io.k8s.GROUP.VERSION.RESOURCE[.SUBRESOURCE].VERB.
func parseGKEMethod(method string) gkeMethod {
	parts := strings.Split(strings.TrimPrefix(method, "io.k8s."), ".")
	v := -1
	for i, p := range parts {
		if apiVersionRE.MatchString(p) {
			v = i
			break
		}
	}
	if v < 0 || len(parts) < v+3 {
		// Non-resource: io.k8s.readyz, io.k8s.healthz.get.
		m := gkeMethod{verb: "get"}
		if n := len(parts); n > 1 && isVerb(parts[n-1]) {
			m.verb, parts = parts[n-1], parts[:n-1]
		}
		m.nonResource = strings.Join(parts, "/")
		return m
	}
	m := gkeMethod{
		group:    gkeGroup(strings.Join(parts[:v], ".")),
		version:  parts[v],
		resource: parts[v+1],
		verb:     parts[len(parts)-1],
	}
	if len(parts) > v+3 {
		m.subresource = strings.Join(parts[v+2:len(parts)-1], "/")
	}
	return m
}

func isVerb(s string) bool {
	switch s {
	case "get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "proxy":
		return true
	}
	return false
}

// gkeGroups maps the short group names of GKE method names to API groups.
var gkeGroups = map[string]string{
	"core":                  "",
	"admissionregistration": "admissionregistration.k8s.io",
	"apiextensions":         "apiextensions.k8s.io",
	"apiregistration":       "apiregistration.k8s.io",
	"authentication":        "authentication.k8s.io",
	"authorization":         "authorization.k8s.io",
	"certificates":          "certificates.k8s.io",
	"coordination":          "coordination.k8s.io",
	"discovery":             "discovery.k8s.io",
	"events":                "events.k8s.io",
	"flowcontrol":           "flowcontrol.apiserver.k8s.io",
	"networking":            "networking.k8s.io",
	"node":                  "node.k8s.io",
	"rbac":                  "rbac.authorization.k8s.io",
	"resource":              "resource.k8s.io",
	"scheduling":            "scheduling.k8s.io",
	"storage":               "storage.k8s.io",
}

func gkeGroup(g string) string {
	if full, ok := gkeGroups[g]; ok {
		return full
	}
	return g
}

type gkeResource struct {
	group, version string
	path           []string // after group/version: namespaces/NS/RESOURCE/NAME/SUB
	ref            ObjectReference
}

// parseGKEResource parses a resourceName such as
// core/v1/namespaces/default/pods/web/exec or
// rbac.authorization.k8s.io/v1/clusterroles/admin. resource, from the method
// name, tells a namespace object (core/v1/namespaces/NAME) from a namespaced
// collection.
func parseGKEResource(name, resource string) (gkeResource, bool) {
	segs := strings.Split(strings.Trim(name, "/"), "/")
	if len(segs) < 3 || !apiVersionRE.MatchString(segs[1]) {
		return gkeResource{}, false
	}
	r := gkeResource{group: segs[0], version: segs[1], path: segs[2:]}
	if r.group == "core" {
		r.group = ""
	}
	r.ref.APIGroup, r.ref.APIVersion = r.group, r.version
	rest := r.path
	if len(rest) >= 3 && rest[0] == "namespaces" && resource != "namespaces" {
		r.ref.Namespace, rest = rest[1], rest[2:]
	}
	r.ref.Resource = rest[0]
	if len(rest) > 1 {
		r.ref.Name = rest[1]
	}
	if len(rest) > 2 {
		r.ref.Subresource = strings.Join(rest[2:], "/")
	}
	if r.ref.Resource == "namespaces" && r.ref.Name != "" {
		r.ref.Namespace = r.ref.Name // as the API server records it
	}
	return r, true
}

// uri rebuilds the request path. A create is posted to the collection, so
// the new object's name is not part of it.
func (r gkeResource) uri(verb string) string {
	path := r.path
	if verb == "create" && r.ref.Subresource == "" && r.ref.Name != "" {
		path = path[:len(path)-1]
	}
	prefix := "/apis/" + r.group + "/" + r.version
	if r.group == "" {
		prefix = "/api/" + r.version
	}
	return prefix + "/" + strings.Join(path, "/")
}

// gkeStatus derives the HTTP response status.
func gkeStatus(le *gkeEntry, verb string) ResponseStatus {
	pp := &le.ProtoPayload
	var resp struct {
		Kind    string `json:"kind"`
		Code    int32  `json:"code"`
		Status  string `json:"status"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	}
	if len(pp.Response) > 0 && json.Unmarshal(pp.Response, &resp) == nil && resp.Kind == "Status" && resp.Code != 0 {
		return ResponseStatus{Code: resp.Code, Status: resp.Status, Reason: resp.Reason, Message: resp.Message}
	}
	if pp.Status != nil && pp.Status.Code != 0 {
		code := grpcToHTTP[pp.Status.Code]
		if code == 0 {
			code = 500
		}
		return ResponseStatus{Code: code, Status: "Failure", Message: pp.Status.Message}
	}
	for _, a := range pp.AuthorizationInfo {
		if a.Granted != nil && !*a.Granted {
			return ResponseStatus{Code: 403, Status: "Failure", Reason: "Forbidden"}
		}
	}
	if verb == "create" {
		return ResponseStatus{Code: 201}
	}
	return ResponseStatus{Code: 200}
}

// grpcToHTTP maps google.rpc.Code to the HTTP status the API server would
// have answered.
var grpcToHTTP = map[int32]int32{
	1:  499, // CANCELLED
	2:  500, // UNKNOWN
	3:  400, // INVALID_ARGUMENT
	4:  504, // DEADLINE_EXCEEDED
	5:  404, // NOT_FOUND
	6:  409, // ALREADY_EXISTS
	7:  403, // PERMISSION_DENIED
	8:  429, // RESOURCE_EXHAUSTED
	9:  400, // FAILED_PRECONDITION
	10: 409, // ABORTED
	11: 400, // OUT_OF_RANGE
	12: 501, // UNIMPLEMENTED
	13: 500, // INTERNAL
	14: 503, // UNAVAILABLE
	15: 500, // DATA_LOSS
	16: 401, // UNAUTHENTICATED
}

// parseLogTime parses RFC 3339, and the "2006-01-02 15:04:05.999" (UTC)
// form some exports (Panther, BigQuery) turn it into.
func parseLogTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, true
	}
	if t, err := time.Parse("2006-01-02 15:04:05.999999999", s); err == nil {
		return t, true
	}
	return time.Time{}, false
}
