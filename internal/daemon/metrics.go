package daemon

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kustode/kustode/internal/finding"
)

// metrics are serve's Prometheus metrics (the API registers its own).
type metrics struct {
	findingsOpen      *prometheus.GaugeVec
	alerts            *prometheus.CounterVec
	eventsReceived    *prometheus.CounterVec
	eventsDropped     *prometheus.CounterVec
	auditLag          prometheus.Histogram
	informerSynced    *prometheus.GaugeVec
	informerForbidden *prometheus.GaugeVec
	storeErrors       prometheus.Counter
	evaluations       *prometheus.CounterVec
	evaluationSeconds prometheus.Histogram
	coverageOK        *prometheus.GaugeVec
	kubeletNodes      *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		findingsOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kustode_findings_open", Help: "Open posture findings by severity.",
		}, []string{"severity"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kustode_alerts_total", Help: "Alerts raised, by rule and severity.",
		}, []string{"rule", "severity"}),
		eventsReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kustode_events_received_total", Help: "Events accepted for detection, by source (webhook, file, kubernetes-events).",
		}, []string{"source"}),
		eventsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kustode_events_dropped_total", Help: "Events not evaluated, by source and reason (malformed, rejected, store).",
		}, []string{"source", "reason"}),
		auditLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kustode_audit_lag_seconds", Help: "Time from an audit event's stage timestamp to its evaluation.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		informerSynced: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kustode_informer_synced", Help: "1 when the kind's informer has synced.",
		}, []string{"kind"}),
		informerForbidden: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kustode_informer_forbidden", Help: "1 when the API server refuses to list or watch the kind (missing RBAC).",
		}, []string{"kind"}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kustode_store_errors_total", Help: "Store operations that failed.",
		}),
		evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kustode_posture_evaluations_total", Help: "Posture evaluations, full or partial.",
		}, []string{"mode"}),
		evaluationSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kustode_posture_evaluation_seconds", Help: "Duration of posture evaluations, storing included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		coverageOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kustode_coverage_ok", Help: "1 when a coverage self-check passes, 0 when kustode cannot see something.",
		}, []string{"check"}),
		kubeletNodes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kustode_kubelet_config_nodes",
			Help: "Nodes by the state of their kubelet configuration read (kubelet.readConfig): read, failed (kubelet unreachable), forbidden (RBAC).",
		}, []string{"state"}),
	}
	reg.MustRegister(m.kubeletNodes, m.findingsOpen, m.alerts, m.eventsReceived, m.eventsDropped, m.auditLag,
		m.informerSynced, m.informerForbidden, m.storeErrors, m.evaluations, m.evaluationSeconds, m.coverageOK)
	return m
}

// setOpenFindings sets the open-findings gauge, zero for severities without
// findings.
func (m *metrics) setOpenFindings(bySeverity map[string]int) {
	for _, s := range finding.Severities() {
		m.findingsOpen.WithLabelValues(s.String()).Set(float64(bySeverity[s.String()]))
	}
}
