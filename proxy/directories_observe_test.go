package proxy

import (
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/audit"
)

// seriesCount is the sample count of a histogram's or the value of a
// counter's series with the given labels (a subset), summed.
func seriesCount(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	sum := 0.0
	for _, m := range matching(t, reg, name, labels) {
		if m.Histogram != nil {
			sum += float64(m.GetHistogram().GetSampleCount())
		} else {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// labelValues are the values a label takes in a metric's series.
func labelValues(t *testing.T, reg prometheus.Gatherer, name, label string) map[string]bool {
	t.Helper()
	fams, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]bool{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					out[l.GetValue()] = true
				}
			}
		}
	}
	return out
}

// TestDirectoryInAuditAndMetrics: the audit events of a directory's
// accounts, orders, validations (background work) and issuance (the
// worker) carry the directory; the top level's carry none. The order,
// issuance and request metrics have a directory label ("/" the top
// level), every configured directory's order series start at zero, and a
// path naming no served directory never becomes a label value.
func TestDirectoryInAuditAndMetrics(t *testing.T) {
	e := newEnv(t, twoDirectories)
	pub := e.newClientIn("public")
	pub.register()
	pub.issued("www.example.net")
	top := e.newClient()
	top.register()
	top.issued("top.example.net")

	for _, typ := range []string{audit.AccountCreated, audit.OrderCreated, audit.ChallengeValid, audit.CertIssued} {
		evs := e.audit.of(typ)
		require.Len(t, evs, 2, typ)
		dirs := map[string]bool{}
		for _, ev := range evs {
			dirs[ev.Directory] = true
		}
		require.Equal(t, map[string]bool{"public": true, "": true}, dirs, typ)
	}

	require.Equal(t, 1.0, seriesCount(t, e.reg, "acmebridge_orders_total", map[string]string{"directory": "public", "state": "valid"}))
	require.Equal(t, 1.0, seriesCount(t, e.reg, "acmebridge_orders_total", map[string]string{"directory": "/", "state": "valid"}))
	require.Equal(t, 0.0, seriesCount(t, e.reg, "acmebridge_orders_total", map[string]string{"directory": "devices"}))
	require.True(t, labelValues(t, e.reg, "acmebridge_orders_total", "directory")["devices"], "a configured directory's series start at zero")
	require.Equal(t, 1.0, seriesCount(t, e.reg, "acmebridge_issuance_seconds", map[string]string{"directory": "public", "upstream": "dev"}))
	require.Equal(t, 1.0, seriesCount(t, e.reg, "acmebridge_issuance_seconds", map[string]string{"directory": "/", "upstream": "dev"}))
	require.Positive(t, seriesCount(t, e.reg, "acmebridge_requests_total", map[string]string{"directory": "public", "endpoint": pathNewOrder}))

	// A client's path is never a label value.
	for _, p := range []string{"/nope" + pathDirectory, "/nope" + pathNewNonce, "/other-tenant" + pathNewOrder} {
		require.Equal(t, http.StatusNotFound, e.do(http.MethodGet, p, "", nil).Code, p)
	}
	for _, name := range []string{"acmebridge_requests_total", "acmebridge_orders_total", "acmebridge_issuance_seconds"} {
		vals := labelValues(t, e.reg, name, "directory")
		require.False(t, vals["nope"] || vals["other-tenant"], "%s: %v", name, vals)
	}
	require.Equal(t, 3.0, seriesCount(t, e.reg, "acmebridge_requests_total", map[string]string{"directory": "", "code": "404"}))
}
