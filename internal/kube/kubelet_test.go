package kube

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// KubeletConfigs against an HTTP server answering as the API server does:
// one node serves its configz through the proxy, one does not.
func TestKubeletConfigs(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/nodes":
			_, _ = w.Write([]byte(`{"kind":"NodeList","apiVersion":"v1","items":[{"metadata":{"name":"n1"}},{"metadata":{"name":"n2"}},{"metadata":{"name":"n3"}}]}`))
		case "/api/v1/nodes/n1/proxy/configz":
			_, _ = w.Write([]byte(`{"kubeletconfig":{"authentication":{"anonymous":{"enabled":true}},"readOnlyPort":10255}}`))
		case "/api/v1/nodes/n3/proxy/configz":
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"nodes \"n3\" is forbidden: User \"kustode\" cannot get resource \"nodes/proxy\" in API group \"\" at the cluster scope","reason":"Forbidden","details":{"name":"n3","kind":"nodes"},"code":403}`))
		case "/api/v1/nodes/n2/proxy/configz":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"error trying to reach service: dial tcp 10.0.0.2:10250: connect: connection refused","code":503}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	client, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	objs, errs := KubeletConfigs(t.Context(), client)
	if len(objs) != 1 || objs[0].Ref.Kind != KubeletConfigKind || objs[0].Ref.Name != "n1" {
		t.Fatalf("objects %+v, want n1's KubeletConfiguration", objs)
	}
	if raw := string(objs[0].Raw); !strings.Contains(raw, `"readOnlyPort":10255`) || !strings.Contains(raw, `"kind":"KubeletConfiguration"`) {
		t.Errorf("raw %s", raw)
	}
	var ke *KubeletError
	if len(errs) != 2 || !errors.As(errs[0], &ke) || ke.Node != "n2" || !strings.Contains(errs[0].Error(), "connection refused") {
		t.Fatalf("errors %v, want n2's and n3's, naming the cause", errs)
	}
	// The API server's refusal is a Forbidden callers can tell apart, with
	// its message (not the Status JSON).
	if !errors.As(errs[1], &ke) || ke.Node != "n3" || !apierrors.IsForbidden(errs[1]) || !strings.Contains(errs[1].Error(), `cannot get resource "nodes/proxy"`) ||
		strings.Contains(errs[1].Error(), `"kind":"Status"`) {
		t.Errorf("n3: %v, want a Forbidden naming nodes/proxy", errs[1])
	}
	if apierrors.IsForbidden(errs[0]) {
		t.Errorf("n2 unreachable reported as forbidden: %v", errs[0])
	}
}
