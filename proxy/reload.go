package proxy

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/acmebridge/acmebridge/ra"
)

// Reload applies a new configuration (ra.Reload): the ACME resources
// follow it at once (directories are looked up per request, trusted
// proxies and pre-authorization read from the configuration in force), and
// the metrics of upstreams it adds start at zero. The attempt is counted
// (ConfigReload). It returns the new generation.
func (s *Server) Reload(opts ra.ReloadOptions) (int64, error) {
	gen, err := s.ra.Reload(opts)
	s.metrics.ConfigReload(err == nil)
	if err != nil {
		return 0, err
	}
	s.metrics.watchUpstreams(s)
	return gen, nil
}

// reloadMetrics are the configuration reload's measurements.
type reloadMetrics struct {
	total *prometheus.CounterVec
	last  prometheus.Gauge
}

// newReloadMetrics registers the reload metrics with reg;
// acmebridge_config_generation reads the core's generation at each scrape.
func newReloadMetrics(reg prometheus.Registerer, m *Metrics) *reloadMetrics {
	r := &reloadMetrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "acmebridge_config_reload_total",
			Help: "Configuration reloads (SIGHUP, acmebridge reload, POST /api/v1/reload, the file watcher) by result: " +
				"success, or failure (the file did not load or validate, a key needs a restart, an upstream did not start)."},
			[]string{"result"}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{Name: "acmebridge_config_last_reload_successful",
			Help: "1 when the latest reload succeeded (or none was tried), 0 when it failed: the file on disk is not what runs."}),
	}
	r.total.WithLabelValues("success")
	r.total.WithLabelValues("failure")
	r.last.Set(1)
	reg.MustRegister(r.total, r.last, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "acmebridge_config_generation",
		Help: "The generation of the configuration this replica runs: 1 at start, one more at each successful reload."},
		func() float64 {
			if s := m.upstreams.src.Load(); s != nil {
				return float64(s.ra.Generation())
			}
			return 0
		}))
	return r
}

// ConfigReload counts a reload attempt: ok when the new configuration is
// in force, not when it was refused.
func (m *Metrics) ConfigReload(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.reload.total.WithLabelValues("success").Inc()
		m.reload.last.Set(1)
		return
	}
	m.reload.total.WithLabelValues("failure").Inc()
	m.reload.last.Set(0)
}
