package web

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the API's own metrics. The route label is the ServeMux
// pattern ("GET /api/v1/alerts/{id}"), "unmatched" for unknown paths, so
// its values are bounded by the code, never by what clients send.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kustode_api_requests_total",
			Help: "API requests answered, by status code and route.",
		}, []string{"code", "route"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kustode_api_request_duration_seconds",
			Help:    "Time to answer an API request, by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// serveHandler adapts a plain handler to a route; authorization happened in
// endpoint.
func serveHandler(h http.Handler) func(http.ResponseWriter, *http.Request, User) {
	return func(w http.ResponseWriter, r *http.Request, _ User) { h.ServeHTTP(w, r) }
}
