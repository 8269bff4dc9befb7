// Package detect evaluates detection rules over Kubernetes audit events and
// raises alerts.
//
// Rules are data: YAML files with CEL conditions (the expression language
// Kubernetes itself uses), compiled once at load, with errors that name the
// file, line and rule. The engine indexes rules by verb and resource so that
// most rules never run for most events, applies structured exceptions, and
// keeps bounded state for the stateful kinds: threshold (N matching events
// by one key within a window) and firstSeen (a key not seen during a
// learning period). CEL stays the language and the reference: at load each
// expression is also translated, as far as it goes, into Go over the typed
// event (native.go), which answers for most events exactly as CEL would,
// and conditions that require the user, namespace or name to have given
// values are indexed by them too; CEL runs only where the translation
// cannot tell. The default rule pack is embedded (rules/*.yaml) and
// ships with rule tests (see RunTests). A rule file's lists can be set from
// configuration (Options.Lists), and rule tests set them with lists:.
//
// # Kubernetes Events
//
// rules/events.yaml holds rules over Kubernetes Events (core/v1 Event:
// OOM kills, crash loops, failed Secret mounts, Pod Security and admission
// rejections, evictions, image pulls). Whoever feeds them to the engine
// converts each Event into a synthetic audit event of this shape, which is
// the contract those rules rely on:
//
//	kind: Event, apiVersion: audit.k8s.io/v1, level: Request, stage: ResponseComplete
//	auditID: "k8s-event:<event uid>"
//	verb: create
//	requestURI: /api/v1/namespaces/<ns>/events
//	user.username: the reporting component (reportingController, else
//	               source.component: "kubelet", "replicaset-controller"); no groups
//	userAgent: "kustode/kubernetes-events"
//	objectRef: {apiVersion: v1, resource: events, namespace: <ns>, name: <event name>}
//	responseStatus.code: 201
//	annotations: {"kustode.io/source": "kubernetes-event"}
//	requestObject: the core/v1 Event as JSON (type, reason, message,
//	               involvedObject, source, reportingController, count, timestamps)
//	stageTimestamp, requestReceivedTimestamp: the event's lastTimestamp,
//	               else eventTime, else creationTimestamp
//
// Clients cannot set audit annotations, so the kustode.io/source annotation
// tells a synthetic event from a real request creating an Event with the
// same reason and message; every Event rule requires it. The image rule
// (event-image-untrusted-registry) is off until the list allowed_registries
// is set through Options.Lists.
package detect

//go:generate go run ../../hack/genruledocs -out ../../docs/rules
