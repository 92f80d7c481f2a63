package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/store/bolt"
	"github.com/acmebridge/acmebridge/upstream"
)

// gathered returns the value of the series of a metric family with the
// given labels (a subset), and whether it exists.
func gathered(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	for _, m := range matching(t, reg, name, labels) {
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

// matching are the series of metric name whose labels include labels.
func matching(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) []*dto.Metric {
	t.Helper()
	fams, err := reg.Gather()
	require.NoError(t, err)
	var out []*dto.Metric
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue series
				}
			}
			out = append(out, m)
		}
	}
	return out
}

// TestUnrenewedGauge: acmebridge_certificates_expiring_unrenewed counts the
// certificates near expiry that nothing renews, and stops counting one
// when an order replaces it (RFC 9773), newer certificates carry all its
// names, or it is revoked; a failed replacement counts it again.
func TestUnrenewedGauge(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()

	// The gauges' clock, moved past the cache after each change.
	clock := time.Now()
	e.metrics.renewal.now = func() time.Time { return clock }
	tick := func() { clock = clock.Add(renewalEvery + time.Second) }
	unrenewed := func(within string) float64 {
		v, ok := gathered(t, e.reg, "acmebridge_certificates_expiring_unrenewed", map[string]string{"within": within})
		require.True(t, ok, "within=%s is exported", within)
		return v
	}
	// age makes a stored certificate lifetime long with left to go.
	age := func(rec *store.Certificate, lifetime, left time.Duration) {
		rec.NotAfter = clock.Add(left)
		rec.NotBefore = rec.NotAfter.Add(-lifetime)
		require.NoError(t, e.st.UpdateCertificate(t.Context(), rec))
	}
	const day = 24 * time.Hour

	require.Equal(t, 0.0, unrenewed("7d"))
	leafA, a := issue(t, e, c, "a.example.com")
	_, b := issue(t, e, c, "b.example.com", "c.example.com")
	_, cc := issue(t, e, c, "d.example.com")
	_, short := issue(t, e, c, "s.example.com")
	_, shortLate := issue(t, e, c, "t.example.com")
	_, expired := issue(t, e, c, "x.example.com")
	_, fresh := issue(t, e, c, "f.example.com")
	age(a, 90*day, 3*day)
	age(b, 90*day, 3*day)
	age(cc, 90*day, day)
	age(short, day, 10*time.Hour)    // 2/9 of a day is 5h20m: not yet
	age(shortLate, day, 4*time.Hour) // past the end of its ARI window
	age(expired, 90*day, -time.Hour)
	age(fresh, 90*day, 60*day)
	require.Equal(t, 0.0, unrenewed("7d"), "cached for a minute")
	tick()
	require.Equal(t, 4.0, unrenewed("7d"), "a, b, d and t")
	require.Equal(t, 1.0, unrenewed("2d"), "d")

	// An order replacing a (ARI): a is being renewed.
	rec := c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("a.example.com"), "replaces": ariID(leafA)})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	tick()
	require.Equal(t, 3.0, unrenewed("7d"))

	// A newer certificate with one of b's two names is not b's renewal;
	// another account's newer certificate with the other completes it.
	issue(t, e, c, "b.example.com")
	tick()
	require.Equal(t, 3.0, unrenewed("7d"))
	other := e.newClient()
	other.register()
	issue(t, e, other, "c.example.com")
	tick()
	require.Equal(t, 2.0, unrenewed("7d"), "d and t")

	// The replacing order failed: a is unrenewed again.
	a, err := e.st.GetCertificate(t.Context(), a.ID)
	require.NoError(t, err)
	require.NotEmpty(t, a.ReplacedBy)
	o, err := e.st.GetOrder(t.Context(), a.ReplacedBy)
	require.NoError(t, err)
	o.Status = store.StatusInvalid
	require.NoError(t, e.st.UpdateOrder(t.Context(), o))
	tick()
	require.Equal(t, 3.0, unrenewed("7d"), "a, d and t")

	// Revoked certificates are not expiring.
	cc, err = e.st.GetCertificate(t.Context(), cc.ID)
	require.NoError(t, err)
	cc.RevokedAt = clock
	require.NoError(t, e.st.UpdateCertificate(t.Context(), cc))
	tick()
	require.Equal(t, 2.0, unrenewed("7d"), "a and t")
	require.Equal(t, 0.0, unrenewed("2d"))
}

// flakyIssuer fails with a transient error while down is set.
type flakyIssuer struct {
	upstream.Issuer
	down *atomic.Bool
}

func (f flakyIssuer) Issue(ctx context.Context, req *upstream.Request, setRef func(string) error) (*upstream.Result, error) {
	if f.down.Load() {
		return nil, acmeerr.New(acmeerr.Connection, "flaky: cannot reach the CA")
	}
	return f.Issuer.Issue(ctx, req, setRef)
}

// TestUpstreamUpGauge: acmebridge_upstream_up turns 0 when three orders in
// a row fail transiently at the upstream (the breaker opens) and back to 1
// when their retries succeed; the error counters start at zero.
func TestUpstreamUpGauge(t *testing.T) {
	down := &atomic.Bool{}
	wrapIssuer = func(i upstream.Issuer) upstream.Issuer { return flakyIssuer{Issuer: i, down: down} }
	defer func() { wrapIssuer = nil }()
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	up := func() float64 {
		v, ok := gathered(t, e.reg, "acmebridge_upstream_up", map[string]string{"upstream": "dev"})
		require.True(t, ok, "acmebridge_upstream_up{upstream=dev} is exported")
		return v
	}
	// The first order issues: the workers run, the upstream is up.
	issue(t, e, c, "up.example.com")
	require.Equal(t, 1.0, up())
	n, ok := gathered(t, e.reg, "acmebridge_upstream_errors_total", map[string]string{"upstream": "dev", "kind": "transient"})
	require.True(t, ok, "the error counter of every upstream starts at zero")
	require.Equal(t, 0.0, n)

	down.Store(true)
	var orders []string
	for _, name := range []string{"f1.example.com", "f2.example.com", "f3.example.com"} {
		url, o := c.readyOrder(dnsIDs(name)...)
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		c.post(o.Finalize, map[string]string{"csr": b64(makeCSR(t, key, "", []string{name}, nil))})
		orders = append(orders, url)
	}
	require.Eventually(t, func() bool { return up() == 0 }, 30*time.Second, 10*time.Millisecond,
		"three transient failures open the breaker")
	n, _ = gathered(t, e.reg, "acmebridge_upstream_errors_total", map[string]string{"upstream": "dev", "kind": "transient"})
	require.GreaterOrEqual(t, n, 3.0)

	// The CA is back: the retries issue and the breaker closes.
	down.Store(false)
	require.Eventually(t, func() bool { return up() == 1 }, 60*time.Second, 10*time.Millisecond,
		"a successful retry closes the breaker")
	for _, url := range orders {
		require.Eventually(t, func() bool { return decode[orderJSON](t, c.post(url, nil)).Status == "valid" },
			60*time.Second, 50*time.Millisecond)
	}
}

// TestReadyGauge: acmebridge_ready follows the store's ping; the counters
// alerts take rates of exist at zero from the start.
func TestReadyGauge(t *testing.T) {
	st, err := bolt.Open(bolt.Options{Path: filepath.Join(t.TempDir(), "db")})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	NewMetrics(reg, st)
	ready := func() float64 {
		v, ok := gathered(t, reg, "acmebridge_ready", nil)
		require.True(t, ok)
		return v
	}
	require.Equal(t, 1.0, ready())
	for _, typ := range challengeTypes {
		v, ok := gathered(t, reg, "acmebridge_validations_total", map[string]string{"type": typ, "result": "invalid"})
		require.True(t, ok, "%s invalid starts at zero", typ)
		require.Equal(t, 0.0, v)
	}
	_, ok := gathered(t, reg, "acmebridge_problems_total", map[string]string{"type": errNS + "rateLimited"})
	require.True(t, ok, "rateLimited starts at zero")

	require.NoError(t, st.Close())
	require.Equal(t, 0.0, ready(), "a closed store does not answer")
}

// TestInWindows: the windows shrink with a certificate's lifetime.
func TestInWindows(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	const day = 24 * time.Hour
	meta := func(lifetime, left time.Duration) certMeta {
		return certMeta{notBefore: now.Add(left - lifetime), notAfter: now.Add(left)}
	}
	for _, tc := range []struct {
		lifetime, left time.Duration
		want           int
	}{
		{90 * day, 8 * day, 0},
		{90 * day, 7 * day, 1},
		{90 * day, 3 * day, 1},
		{90 * day, 2 * day, 2},
		{90 * day, time.Minute, 2},
		{90 * day, 0, 0},
		{90 * day, -day, 0},
		{day, 6 * time.Hour, 0},
		{day, 5 * time.Hour, 1},
		{day, 2 * time.Hour, 2},
		{7 * day, 2 * day, 0},
		{7 * day, day, 1},
	} {
		require.Equal(t, tc.want, inWindows(meta(tc.lifetime, tc.left), now), "lifetime %s, %s left", tc.lifetime, tc.left)
	}
}
