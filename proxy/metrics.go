package proxy

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acmebridge/acmebridge/store"
)

// Metrics are the server's Prometheus measurements.
type Metrics struct {
	requests       *prometheus.CounterVec
	problems       *prometheus.CounterVec
	orders         *prometheus.CounterVec
	issuance       *prometheus.HistogramVec
	upstreamErrors *prometheus.CounterVec
	validations    *prometheus.CounterVec
	storeOps       *prometheus.HistogramVec
}

// expiryCounter is the part of the store the expiry gauges read.
type expiryCounter interface {
	ListExpiring(ctx context.Context, before time.Time, cursor string, limit int) (store.Page, error)
}

// NewMetrics registers the server's metrics with reg. The gauges of
// certificates expiring within 7 and 30 days read st (cached for a minute).
func NewMetrics(reg prometheus.Registerer, st expiryCounter) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "acmebridge_requests_total",
			Help: "ACME requests by endpoint, method and HTTP status."}, []string{"endpoint", "method", "code"}),
		problems: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "acmebridge_problems_total",
			Help: "Problem documents sent, by ACME error type."}, []string{"type"}),
		orders: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "acmebridge_orders_total",
			Help: "Orders entering each state (pending at creation, processing at finalize, valid, invalid)."}, []string{"state"}),
		issuance: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "acmebridge_issuance_seconds",
			Help: "Time an upstream took to issue, by upstream.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}, []string{"upstream"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "acmebridge_upstream_errors_total",
			Help: "Failed upstream issuance attempts, by upstream and error kind (transient or permanent)."}, []string{"upstream", "kind"}),
		validations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "acmebridge_validations_total",
			Help: "Challenge validations by type and result."}, []string{"type", "result"}),
		storeOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "acmebridge_store_seconds",
			Help: "Store operation latency by operation and outcome.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)},
			[]string{"op", "result"}),
	}
	reg.MustRegister(m.requests, m.problems, m.orders, m.issuance, m.upstreamErrors, m.validations, m.storeOps)
	if st != nil {
		c := &expiryCache{st: st}
		for _, days := range []int{7, 30} {
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "acmebridge_certificates_expiring",
				Help:        "Unrevoked certificates expiring within the window (or already expired).",
				ConstLabels: prometheus.Labels{"within": strconv.Itoa(days) + "d"}},
				func() float64 { return c.count(time.Duration(days) * 24 * time.Hour) }))
		}
	}
	return m
}

// ObserveStore records one store operation (a store.Observer).
func (m *Metrics) ObserveStore(op string, d time.Duration, err error) {
	if m == nil {
		return
	}
	result := "ok"
	switch {
	case err == nil:
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNoJob):
		result = "miss"
	default:
		result = "error"
	}
	m.storeOps.WithLabelValues(op, result).Observe(d.Seconds())
}

func (m *Metrics) request(endpoint, method string, code int) {
	switch method {
	case "GET", "HEAD", "POST":
	default:
		method = "other" // the method is the client's: keep the label set small
	}
	if m != nil {
		m.requests.WithLabelValues(endpoint, method, strconv.Itoa(code)).Inc()
	}
}

func (m *Metrics) problem(typ string) {
	if m != nil {
		m.problems.WithLabelValues(typ).Inc()
	}
}

func (m *Metrics) order(state string) {
	if m != nil {
		m.orders.WithLabelValues(state).Inc()
	}
}

func (m *Metrics) issued(upstream string, d time.Duration) {
	if m != nil {
		m.issuance.WithLabelValues(upstream).Observe(d.Seconds())
	}
}

func (m *Metrics) upstreamError(upstream string, transient bool) {
	if m != nil {
		kind := "permanent"
		if transient {
			kind = "transient"
		}
		m.upstreamErrors.WithLabelValues(upstream, kind).Inc()
	}
}

func (m *Metrics) validation(typ, result string) {
	if m != nil {
		m.validations.WithLabelValues(typ, result).Inc()
	}
}

// expiryCache counts expiring certificates at most once a minute per window.
type expiryCache struct {
	st expiryCounter
	mu sync.Mutex
	at map[time.Duration]time.Time
	n  map[time.Duration]float64
}

// maxCounted bounds the count (the gauge saturates there).
const maxCounted = 100000

func (c *expiryCache) count(window time.Duration) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at == nil {
		c.at, c.n = map[time.Duration]time.Time{}, map[time.Duration]float64{}
	}
	if time.Since(c.at[window]) < time.Minute {
		return c.n[window]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, cursor := 0, ""
	for n < maxCounted {
		p, err := c.st.ListExpiring(ctx, time.Now().Add(window), cursor, 1000)
		if err != nil {
			return c.n[window]
		}
		n += len(p.IDs)
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	c.at[window], c.n[window] = time.Now(), float64(n)
	return float64(n)
}
