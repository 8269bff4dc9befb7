package daemon

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kustode/kustode/internal/detect"
)

// A Warning Event converted by toAuditEvent raises the event rule it is
// about: the conversion honours the contract of internal/detect's
// rules/events.yaml.
func TestEventToAlert(t *testing.T) {
	engine, err := detect.NewEngine(detect.Options{Lists: map[string][]string{"allowed_registries": {"registry.k8s.io"}}})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	for _, tc := range []struct {
		name string
		ev   corev1.Event
		want string
	}{
		{"podsecurity", corev1.Event{
			Type: corev1.EventTypeWarning, Reason: "FailedCreate",
			Message: `Error creating: pods "web-x" is forbidden: violates PodSecurity "restricted:latest": privileged`,
			Source:  corev1.EventSource{Component: "replicaset-controller"},
		}, "event-podsecurity-rejected"},
		{"untrusted registry", corev1.Event{
			Type: corev1.EventTypeNormal, Reason: "Pulling", Message: `Pulling image "evil.example.com/miner:1"`,
			Source: corev1.EventSource{Component: "kubelet"},
		}, "event-image-untrusted-registry"},
		{"trusted registry", corev1.Event{
			Type: corev1.EventTypeNormal, Reason: "Pulling", Message: `Pulling image "registry.k8s.io/pause:3.10"`,
			Source: corev1.EventSource{Component: "kubelet"},
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.ev
			e.ObjectMeta = metav1.ObjectMeta{Name: "x.1", Namespace: "shop", UID: "u-1"}
			e.InvolvedObject = corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: "web-x"}
			e.LastTimestamp = now
			if !interesting(&e) {
				t.Fatal("event not considered")
			}
			ev, err := toAuditEvent(&e)
			if err != nil {
				t.Fatal(err)
			}
			alerts := engine.Evaluate(&ev)
			aboutInvolvedObject(alerts, &ev)
			var got []string
			for _, a := range alerts {
				got = append(got, a.Rule)
			}
			if tc.want == "" && len(got) > 0 || tc.want != "" && (len(got) != 1 || got[0] != tc.want) {
				t.Fatalf("alerts %v, want [%s]", got, tc.want)
			}
			if tc.want != "" && (alerts[0].Namespace != "shop" || alerts[0].AuditIDs[0] != "k8s-event:u-1" || alerts[0].Object != "pod web-x") {
				t.Errorf("alert entities: %+v", alerts[0])
			}
		})
	}
}

func TestWatermark(t *testing.T) {
	t0 := time.Unix(100000, 0)
	var w watermark
	w.add(t0, "a")
	w.add(t0.Add(-time.Minute), "b") // out of order
	for _, tc := range []struct {
		t    time.Time
		uid  string
		seen bool
	}{
		{t0, "a", true},
		{t0.Add(-time.Minute), "b", true},
		{t0, "c", false},
		{t0.Add(-2 * time.Minute), "d", false}, // late, within the slack
		{t0.Add(-watermarkSlack - time.Second), "e", true},
		{t0.Add(time.Hour), "a", true},
	} {
		if got := w.seen(tc.t, tc.uid); got != tc.seen {
			t.Errorf("seen(%s, %s) = %v, want %v", tc.t.Sub(t0), tc.uid, got, tc.seen)
		}
	}
	w.add(t0.Add(time.Hour), "z")
	w.prune()
	if len(w.Recent) != 1 {
		t.Errorf("prune kept %v, want only z", w.Recent)
	}
}
