package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The Prometheus metrics of a running server, scraped after real issuances.

// noServeProvider "presents" an http-01 challenge without serving it, so
// the validation fails.
type noServeProvider struct{}

func (noServeProvider) Present(context.Context, string, string, string) error { return nil }
func (noServeProvider) CleanUp(context.Context, string, string, string) error { return nil }

// TestMetricsScraped scrapes the admin listener's /metrics after issuances,
// a refused order and a failed validation.
func TestMetricsScraped(t *testing.T) {
	quietLego(t)
	s := startServer(t, adminAuditYAML)
	c, u := legoAccount(t, s, "metrics@example.com", nil)

	issued := []string{"m1.metrics.e2e.test", "m2.metrics.e2e.test"}
	for _, n := range issued {
		res := legoObtain(t, c, n)
		s.verifyChain(t, res.Certificate, []string{n})
	}
	_, err := legoObtainErr(c, "x.forbidden.e2e.test")
	requireProblem(t, err, "rejectedIdentifier")

	// A challenge nobody answers: the validation fails.
	bad := newLegoClient(t, s, u)
	require.NoError(t, bad.Challenge.SetHTTP01Provider(noServeProvider{}))
	_, err = legoObtainErr(bad, "nobody.metrics.e2e.test")
	require.Error(t, err, "a challenge nobody answers must fail")
	// The client looks at the order: it is invalid (RFC 8555 §7.1.6).
	var orders listing[orderRec]
	s.adminJSON(t, &orders, "order", "list", "--identifier", "nobody.metrics.e2e.test")
	require.Len(t, orders.Items, 1)
	ocode, obody := s.postAsGet(t, u, s.BaseURL+"/acme/order/"+orders.Items[0].ID)
	require.Equal(t, http.StatusOK, ocode, "%s", obody)
	var order struct {
		Status string `json:"status"`
	}
	require.NoError(t, json.Unmarshal(obody, &order))
	require.Equal(t, "invalid", order.Status, "%s", obody)

	code, body := httpGet(t, s.AdminURL+"/healthz")
	require.Equal(t, http.StatusOK, code, body)
	code, body = httpGet(t, s.AdminURL+"/readyz")
	require.Equal(t, http.StatusOK, code, body)

	code, body = httpGet(t, s.AdminURL+"/metrics")
	require.Equal(t, http.StatusOK, code, body)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err, "/metrics is not Prometheus text:\n%s", body)
	m := scraped(fams)

	t.Logf("acmebridge metrics:\n%s", grepLines(body, "acmebridge_"))

	newOrder := func(code string) float64 {
		return m.sum(t, "acmebridge_requests_total", func(l map[string]string) bool {
			return strings.Contains(l["endpoint"], "new-order") && l["method"] == "POST" && l["code"] == code
		})
	}
	require.Equal(t, float64(len(issued)+1), newOrder("201"), "new-order 201s: two issued and the failed validation")
	require.GreaterOrEqual(t, newOrder("400"), 1.0, "new-order refused (rejectedIdentifier is 400)")

	require.GreaterOrEqual(t, m.sum(t, "acmebridge_problems_total", labels("type", "urn:ietf:params:acme:error:rejectedIdentifier")), 1.0)
	require.Equal(t, float64(len(issued)), m.sum(t, "acmebridge_orders_total", labels("state", "valid")))
	// Not fatal, so the other metrics are still checked.
	if assert.True(t, m.has("acmebridge_orders_total", labels("state", "invalid")),
		"the order whose challenge failed entered invalid: acmebridge_orders_total{state=\"invalid\"} is missing") {
		assert.Equal(t, 1.0, m.sum(t, "acmebridge_orders_total", labels("state", "invalid")))
	}
	require.Equal(t, float64(len(issued)), m.sum(t, "acmebridge_issuance_seconds_count", labels("upstream", "dev")))
	require.GreaterOrEqual(t, m.sum(t, "acmebridge_validations_total", labels("result", "invalid")), 1.0)
	require.Equal(t, 1.0, m.sum(t, "acmebridge_validations_total", func(l map[string]string) bool {
		return l["result"] == "invalid" && l["type"] == "http-01"
	}))
	require.GreaterOrEqual(t, m.sum(t, "acmebridge_validations_total", labels("result", "valid")), float64(len(issued)))
	require.Equal(t, 0.0, m.sum(t, "acmebridge_certificates_expiring", labels("within", "30d")))
	require.Equal(t, 0.0, m.sum(t, "acmebridge_certificates_expiring", labels("within", "7d")))
	require.True(t, m.has("acmebridge_certificates_expiring", labels("within", "30d")), "the 30d gauge is exported")

	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes", "acmebridge_store_seconds"} {
		require.Contains(t, fams, name, "%s is exported", name)
	}
}

// metricSet is a parsed scrape.
type metricSet map[string]*dto.MetricFamily

func scraped(f map[string]*dto.MetricFamily) metricSet { return metricSet(f) }

func labels(k, v string) func(map[string]string) bool {
	return func(l map[string]string) bool { return l[k] == v }
}

// sample is one series' value; a histogram is addressed as NAME_count or
// NAME_sum.
func (m metricSet) samples(name string) []struct {
	l map[string]string
	v float64
} {
	var out []struct {
		l map[string]string
		v float64
	}
	fam, suffix := m[name], ""
	if fam == nil {
		for _, sfx := range []string{"_count", "_sum"} {
			if base, ok := strings.CutSuffix(name, sfx); ok && m[base] != nil {
				fam, suffix = m[base], sfx
			}
		}
	}
	if fam == nil {
		return nil
	}
	for _, x := range fam.GetMetric() {
		l := map[string]string{}
		for _, lp := range x.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		var v float64
		switch {
		case x.Counter != nil:
			v = x.GetCounter().GetValue()
		case x.Gauge != nil:
			v = x.GetGauge().GetValue()
		case x.Untyped != nil:
			v = x.GetUntyped().GetValue()
		case x.Histogram != nil && suffix == "_sum":
			v = x.GetHistogram().GetSampleSum()
		case x.Histogram != nil:
			v = float64(x.GetHistogram().GetSampleCount())
		}
		out = append(out, struct {
			l map[string]string
			v float64
		}{l, v})
	}
	return out
}

// sum adds the series of name whose labels pass keep; the metric must exist.
func (m metricSet) sum(t *testing.T, name string, keep func(map[string]string) bool) float64 {
	t.Helper()
	ss := m.samples(name)
	require.NotEmpty(t, ss, "metric %s is not exported", name)
	var total float64
	for _, s := range ss {
		if keep(s.l) {
			total += s.v
		}
	}
	return total
}

func (m metricSet) has(name string, keep func(map[string]string) bool) bool {
	return slices.ContainsFunc(m.samples(name), func(s struct {
		l map[string]string
		v float64
	}) bool {
		return keep(s.l)
	})
}

func grepLines(s, prefix string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			fmt.Fprintln(&b, l)
		}
	}
	return b.String()
}
