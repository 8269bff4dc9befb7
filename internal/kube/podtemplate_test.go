package kube

import (
	"strings"
	"testing"
)

func TestPodTemplateEveryKindAndOldAPIVersions(t *testing.T) {
	spec := `{"containers":[{"name":"c","image":"busybox","securityContext":{"privileged":true}}]}`
	tmpl := `{"metadata":{"labels":{"app":"x"}},"spec":` + spec + `}`
	tests := []struct {
		kind, raw string
	}{
		{"Pod", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"app":"x"}},"spec":` + spec + `}`},
		{"Deployment", `{"apiVersion":"extensions/v1beta1","kind":"Deployment","spec":{"template":` + tmpl + `}}`},
		{"Deployment", `{"apiVersion":"apps/v1beta2","kind":"Deployment","spec":{"template":` + tmpl + `}}`},
		{"ReplicaSet", `{"apiVersion":"apps/v1","kind":"ReplicaSet","spec":{"template":` + tmpl + `}}`},
		{"ReplicationController", `{"apiVersion":"v1","kind":"ReplicationController","spec":{"template":` + tmpl + `}}`},
		{"StatefulSet", `{"apiVersion":"apps/v1beta1","kind":"StatefulSet","spec":{"template":` + tmpl + `}}`},
		{"DaemonSet", `{"apiVersion":"extensions/v1beta1","kind":"DaemonSet","spec":{"template":` + tmpl + `}}`},
		{"Job", `{"apiVersion":"batch/v1","kind":"Job","spec":{"template":` + tmpl + `}}`},
		{"CronJob", `{"apiVersion":"batch/v1beta1","kind":"CronJob","spec":{"jobTemplate":{"spec":{"template":` + tmpl + `}}}}`},
		{"PodTemplate", `{"apiVersion":"v1","kind":"PodTemplate","template":` + tmpl + `}`},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			got, ok, err := PodTemplate(tt.kind, []byte(tt.raw))
			if err != nil || !ok {
				t.Fatalf("PodTemplate = ok %v, err %v", ok, err)
			}
			if len(got.Spec.Containers) != 1 || got.Spec.Containers[0].SecurityContext == nil ||
				got.Spec.Containers[0].SecurityContext.Privileged == nil || !*got.Spec.Containers[0].SecurityContext.Privileged {
				t.Errorf("privileged container not found in %+v", got.Spec)
			}
			if got.Labels["app"] != "x" {
				t.Errorf("template labels = %v", got.Labels)
			}
		})
	}
}

func TestPodTemplateNotAWorkloadOrMissing(t *testing.T) {
	if _, ok, err := PodTemplate("Service", []byte(`{}`)); ok || err != nil {
		t.Errorf("Service: ok %v err %v, want not a workload", ok, err)
	}
	if _, ok, err := PodTemplate("CronJob", []byte(`{"spec":{}}`)); !ok || err == nil || !strings.Contains(err.Error(), "jobTemplate") {
		t.Errorf("CronJob without template: ok %v err %v", ok, err)
	}
	if !IsWorkload("StatefulSet") || IsWorkload("Secret") {
		t.Error("IsWorkload wrong")
	}
}
