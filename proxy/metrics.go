package proxy

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/core"
	"github.com/acmebridge/acmebridge/store"
)

// Metrics are the server's Prometheus measurements. The alerting rules in
// configs/alerts.yaml are written against these names; a test scrapes a
// running server for every name they use.
type Metrics struct {
	requests       *prometheus.CounterVec
	problems       *prometheus.CounterVec
	orders         *prometheus.CounterVec
	issuance       *prometheus.HistogramVec
	upstreamErrors *prometheus.CounterVec
	validations    *prometheus.CounterVec
	retained       *prometheus.CounterVec
	storeOps       *prometheus.HistogramVec
	upstreams      *upstreamCollector
	reload         *reloadMetrics
	// renewal is nil without a store.
	renewal *renewalCache
}

// metricsStore is the part of the store the gauges read: expiring
// certificates, the orders that replace them, and reachability.
type metricsStore interface {
	ListExpiring(ctx context.Context, before time.Time, cursor string, limit int) (store.Page, error)
	GetCertificate(ctx context.Context, id string) (*store.Certificate, error)
	GetOrder(ctx context.Context, id string) (*store.Order, error)
	Ping(ctx context.Context) error
}

// readyTimeout bounds the store ping behind acmebridge_ready (as /readyz).
const readyTimeout = 2 * time.Second

// Label values set to zero at start, so that rate() and increase() see a
// series' first event (a series born at 1 has no increase to show).
var (
	challengeTypes    = core.ChallengeTypes
	validationResults = []string{"valid", "invalid"}
	orderStates       = []string{store.StatusPending, store.StatusProcessing, store.StatusValid, store.StatusInvalid}
	zeroProblems      = []string{errNS + "rateLimited"}
)

// unrenewedWindows are the windows of acmebridge_certificates_expiring_unrenewed:
// a certificate is counted once less than the window remains, or, when it
// is short-lived, less than share of its lifetime (7d: the end of its ARI
// renewal window, see Server.window; 2d: half of that).
var unrenewedWindows = []struct {
	label string
	d     time.Duration
	share float64
}{
	{"7d", 7 * 24 * time.Hour, 2.0 / 9},
	{"2d", 2 * 24 * time.Hour, 1.0 / 9},
}

// NewMetrics registers the server's metrics with reg. The gauges of
// certificates expiring within 7 and 30 days, of those nothing renews, and
// of readiness read st (the expiry gauges are cached for a minute).
func NewMetrics(reg prometheus.Registerer, st metricsStore) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "acmebridge_requests_total",
			Help: "ACME requests by directory, endpoint, method and HTTP status."}, []string{"directory", "endpoint", "method", "code"}),
		problems: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "acmebridge_problems_total",
			Help: "Problem documents sent, by ACME error type."}, []string{"type"}),
		orders: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "acmebridge_orders_total",
			Help: "Orders entering each state (pending at creation, processing at finalize, valid, invalid), by directory."}, []string{"directory", "state"}),
		// 5 ms to 11 minutes: a local CA answers in milliseconds, a public
		// CA solving dns-01 in minutes (an attempt is cut at issueDeadline).
		issuance: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "acmebridge_issuance_seconds",
			Help: "Time an upstream took to issue, by directory and upstream.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 18)}, []string{"directory", "upstream"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "acmebridge_upstream_errors_total",
			Help: "Failed upstream issuance attempts, by upstream and error kind (transient or permanent)."}, []string{"upstream", "kind"}),
		validations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "acmebridge_validations_total",
			Help: "Challenge validations by type and result."}, []string{"type", "result"}),
		storeOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "acmebridge_store_seconds",
			Help: "Store operation latency by operation and outcome.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)},
			[]string{"op", "result"}),
		upstreams: &upstreamCollector{desc: prometheus.NewDesc("acmebridge_upstream_up",
			"1 while the upstream is healthy, 0 from its circuit breaker's opening (3 transient failures in a row) "+
				"until an issuance or a health probe succeeds; as this replica's workers saw it.", []string{"upstream"}, nil)},
	}
	reg.MustRegister(m.requests, m.problems, m.orders, m.issuance, m.upstreamErrors, m.validations, m.storeOps, m.upstreams)
	m.retained = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "acmebridge_retention_removed_total",
		Help: "Records the retention sweep removed, by kind (order, authorization, certificate)."}, []string{"kind"})
	reg.MustRegister(m.retained)
	for _, kind := range []string{"order", "authorization", "certificate"} {
		m.retained.WithLabelValues(kind)
	}
	m.reload = newReloadMetrics(reg, m)
	for _, typ := range challengeTypes {
		for _, res := range validationResults {
			m.validations.WithLabelValues(typ, res)
		}
	}
	for _, typ := range zeroProblems {
		m.problems.WithLabelValues(typ)
	}
	if st == nil {
		return m
	}
	c := &expiryCache{st: st}
	for _, days := range []int{7, 30} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "acmebridge_certificates_expiring",
			Help:        "Unrevoked certificates expiring within the window (or already expired).",
			ConstLabels: prometheus.Labels{"within": strconv.Itoa(days) + "d"}},
			func() float64 { return c.count(time.Duration(days) * 24 * time.Hour) }))
	}
	m.renewal = &renewalCache{st: st, now: time.Now}
	for i, w := range unrenewedWindows {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "acmebridge_certificates_expiring_unrenewed",
			Help: "Unrevoked, unexpired certificates with less than the window left (for short-lived ones: past the end " +
				"of their ARI renewal window) that nothing renews: no live order names them in replaces, and no newer " +
				"certificate carries all their names. Recomputed at most once a minute.",
			ConstLabels: prometheus.Labels{"within": w.label}},
			func() float64 { return m.renewal.count(i) }))
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "acmebridge_ready",
		Help: "1 while the store answers a ping (what /readyz checks), 0 while it does not; checked at each scrape."},
		func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
			defer cancel()
			if st.Ping(ctx) != nil {
				return 0
			}
			return 1
		}))
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

// request counts an ACME request. dir is the label of a served directory
// (dirLabel), or "" for a path naming none: a client's path never becomes
// a label value.
func (m *Metrics) request(dir, endpoint, method string, code int) {
	switch method {
	case "GET", "HEAD", "POST":
	default:
		method = "other" // the method is the client's: keep the label set small
	}
	if m != nil {
		m.requests.WithLabelValues(dir, endpoint, method, strconv.Itoa(code)).Inc()
	}
}

// dirLabel is a directory's label value: its name, "/" for the top level
// (as the admin API and the CLI name it).
func dirLabel(name string) string { return audit.DirectoryLabel(name) }

func (m *Metrics) problem(typ string) {
	if m != nil {
		m.problems.WithLabelValues(typ).Inc()
	}
}

// Order counts an order of a directory reaching state.
func (m *Metrics) Order(directory, state string) {
	if m != nil {
		m.orders.WithLabelValues(dirLabel(directory), state).Inc()
	}
}

// Issued observes an issuance by directory and upstream and how long it
// took.
func (m *Metrics) Issued(directory, upstream string, d time.Duration) {
	if m != nil {
		m.issuance.WithLabelValues(dirLabel(directory), upstream).Observe(d.Seconds())
	}
}

// UpstreamError counts an upstream failure, transient or permanent.
func (m *Metrics) UpstreamError(upstream string, transient bool) {
	if m != nil {
		kind := "permanent"
		if transient {
			kind = "transient"
		}
		m.upstreamErrors.WithLabelValues(upstream, kind).Inc()
	}
}

// Validation counts a validation by challenge type and result.
func (m *Metrics) Validation(typ, result string) {
	if m != nil {
		m.validations.WithLabelValues(typ, result).Inc()
	}
}

// Retained counts records the retention sweep removed, by kind
// (ra.RetentionObserver).
func (m *Metrics) Retained(kind string, n int) {
	if m != nil && n > 0 {
		m.retained.WithLabelValues(kind).Add(float64(n))
	}
}

// watchUpstreams makes acmebridge_upstream_up report s's upstreams (Run
// calls it) and starts their error counters, the issuance histograms and
// the order counters of every directory at zero, so an alert's rate() sees
// the first failure.
func (m *Metrics) watchUpstreams(s *Server) {
	if m == nil {
		return
	}
	dirs := s.ra.Directories()
	for _, dir := range dirs {
		for _, state := range orderStates {
			m.orders.WithLabelValues(dirLabel(dir), state)
		}
	}
	for _, name := range s.ra.Upstreams() {
		for _, dir := range dirs {
			m.issuance.WithLabelValues(dirLabel(dir), name)
		}
		m.upstreamErrors.WithLabelValues(name, "transient")
		m.upstreamErrors.WithLabelValues(name, "permanent")
	}
	m.upstreams.src.Store(s)
}

// upstreamCollector exports acmebridge_upstream_up from the circuit
// breaker of the server being watched.
type upstreamCollector struct {
	desc *prometheus.Desc
	src  atomic.Pointer[Server]
}

// Describe implements prometheus.Collector.
func (c *upstreamCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *upstreamCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Load()
	if s == nil {
		return
	}
	for _, name := range s.ra.Upstreams() {
		up := 1.0
		if s.upstreamFailing(name) {
			up = 0
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, up, name)
	}
}

// upstreamFailing reports whether the upstream has failed transiently
// ra.BreakerThreshold times in a row since its last success: its breaker
// opened and nothing has worked since (the cool-down letting an order try
// it again does not make it healthy).
func (s *Server) upstreamFailing(name string) bool { return s.ra.Breaker().Failing(name) }

// expiryCache counts expiring certificates at most once a minute per window.
type expiryCache struct {
	st metricsStore
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

// Bounds of the renewal pass.
const (
	// renewalEvery is how often the unrenewed counts are recomputed.
	renewalEvery = time.Minute
	// renewalBudget bounds one pass; a pass cut short keeps what it
	// learnt and the previous counts, and the next scrape goes on.
	renewalBudget = 5 * time.Second
	// listHorizon reaches past every certificate's expiry.
	listHorizon = 100 * 365 * 24 * time.Hour
)

// renewalCache counts the certificates expiring soon that nothing renews.
// A pass lists every unrevoked certificate by expiry (IDs only), reads the
// ones it has not seen before (their names and lifetime are kept, so a
// steady state costs the listing and the few certificates in a window),
// and for each certificate in a window checks whether a newer certificate
// carries all its names or a live order replaces it (RFC 9773 §5). The
// listing is bounded by maxCounted certificates, soonest expiry first.
type renewalCache struct {
	st  metricsStore
	now func() time.Time
	mu  sync.Mutex
	at  time.Time
	n   []float64
	// meta is what a pass needs of each certificate, by ID; certificates
	// that left the listing (revoked) are dropped.
	meta map[string]certMeta
}

// certMeta is the part of a certificate a renewal pass keeps.
type certMeta struct {
	names               []string // lower case; nil once expired
	notBefore, notAfter time.Time
}

// count returns the count of window i, recomputing all windows when the
// last pass is older than renewalEvery.
func (c *renewalCache) count(i int) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.n != nil && now.Sub(c.at) < renewalEvery && !now.Before(c.at) {
		return c.n[i]
	}
	ctx, cancel := context.WithTimeout(context.Background(), renewalBudget)
	defer cancel()
	n, err := c.pass(ctx, now)
	if err != nil {
		if c.n == nil {
			return 0
		}
		return c.n[i]
	}
	c.at, c.n = now, n
	return n[i]
}

// pass computes the count of every window.
func (c *renewalCache) pass(ctx context.Context, now time.Time) ([]float64, error) {
	in, err := c.unrenewed(ctx, now)
	if err != nil {
		return nil, err
	}
	n := make([]float64, len(unrenewedWindows))
	for _, k := range in {
		for i := range k {
			n[i]++
		}
	}
	return n, nil
}

// Unrenewed lists the certificates acmebridge_certificates_expiring_unrenewed
// counts now, each with the smallest window it is in ("7d", "2d"): what
// the certificate.expiring notification is sent for (the same definition
// as the alert rules). Nil without a store.
func (m *Metrics) Unrenewed(ctx context.Context) (map[string]string, error) {
	if m == nil || m.renewal == nil {
		return nil, nil
	}
	c := m.renewal
	c.mu.Lock()
	defer c.mu.Unlock()
	in, err := c.unrenewed(ctx, c.now())
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(in))
	for id, k := range in {
		out[id] = unrenewedWindows[k-1].label
	}
	return out, nil
}

// unrenewed returns, for each certificate in a window that nothing
// renews, how many of unrenewedWindows it is in. The caller holds c.mu.
func (c *renewalCache) unrenewed(ctx context.Context, now time.Time) (map[string]int, error) {
	if c.meta == nil {
		c.meta = map[string]certMeta{}
	}
	seen := map[string]bool{}
	for cursor := ""; len(seen) < maxCounted; {
		p, err := c.st.ListExpiring(ctx, now.Add(listHorizon), cursor, 1000)
		if err != nil {
			return nil, err
		}
		for _, id := range p.IDs {
			if _, ok := c.meta[id]; !ok {
				cert, err := c.st.GetCertificate(ctx, id)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					return nil, err
				}
				c.meta[id] = metaOf(cert)
			}
			seen[id] = true
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	// The latest expiry of each name among the live certificates.
	latest := map[string]time.Time{}
	for id, m := range c.meta {
		if !seen[id] {
			delete(c.meta, id)
			continue
		}
		if !m.notAfter.After(now) {
			m.names = nil
			c.meta[id] = m
			continue
		}
		for _, name := range m.names {
			if m.notAfter.After(latest[name]) {
				latest[name] = m.notAfter
			}
		}
	}
	out := map[string]int{}
	for id, m := range c.meta {
		in := inWindows(m, now)
		if in == 0 || renewedByNewer(m, latest) {
			continue
		}
		replaced, err := c.replaced(ctx, id, now)
		if err != nil {
			return nil, err
		}
		if replaced {
			continue
		}
		out[id] = in
	}
	return out, nil
}

// metaOf keeps what a pass needs of a certificate.
func metaOf(c *store.Certificate) certMeta {
	names := make([]string, len(c.Names))
	for i, n := range c.Names {
		names[i] = strings.ToLower(n)
	}
	return certMeta{names: names, notBefore: c.NotBefore, notAfter: c.NotAfter}
}

// inWindows returns how many of unrenewedWindows (which shrink from the
// first) the unexpired certificate is in: 0 for none.
func inWindows(m certMeta, now time.Time) int {
	left := m.notAfter.Sub(now)
	if left <= 0 {
		return 0
	}
	life := m.notAfter.Sub(m.notBefore)
	in := 0
	for _, w := range unrenewedWindows {
		if left > min(w.d, time.Duration(float64(life)*w.share)) {
			break
		}
		in++
	}
	return in
}

// renewedByNewer reports whether every name of the certificate is on a
// certificate that expires later.
func renewedByNewer(m certMeta, latest map[string]time.Time) bool {
	for _, name := range m.names {
		if !latest[name].After(m.notAfter) {
			return false
		}
	}
	return len(m.names) > 0
}

// replaced reports whether a live order replaces the certificate (RFC 9773
// §5: the order that named it in "replaces"), or it is gone or revoked.
// The certificate is read again: ReplacedBy is set after issuance.
func (c *renewalCache) replaced(ctx context.Context, id string, now time.Time) (bool, error) {
	cert, err := c.st.GetCertificate(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if !cert.RevokedAt.IsZero() {
		return true, nil
	}
	if cert.ReplacedBy == "" {
		return false, nil
	}
	o, err := c.st.GetOrder(ctx, cert.ReplacedBy)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	switch o.Status {
	case store.StatusValid, store.StatusProcessing:
		return true, nil
	case store.StatusPending, store.StatusReady:
		// An order the client abandoned renews nothing.
		return o.Expires.After(now), nil
	}
	return false, nil
}
