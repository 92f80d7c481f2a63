package test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// Parts of PromQL expressions the alert checks read.
var (
	// promSelector is an acmebridge metric with its optional {matchers}.
	promSelector = regexp.MustCompile(`\b(acmebridge_[a-z_]+)(\{[^}]*\})?`)
	// promMatcher is one label matcher inside braces.
	promMatcher = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"`)
	// promGrouping is a by (...) or without (...) clause.
	promGrouping = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// Labels that Prometheus adds (job, instance) or histograms carry (le).
var targetLabels = []string{"job", "instance", "le"}

// alertExprs returns each alert's expression from configs/alerts.yaml.
func alertExprs(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../configs/alerts.yaml")
	require.NoError(t, err)
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(b, &f))
	out := map[string]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out[r.Alert] = r.Expr
		}
	}
	require.NotEmpty(t, out)
	return out
}

// family is the metric family a series name belongs to (a histogram's
// _bucket, _count and _sum are its family's).
func family(m metricSet, name string) string {
	if m[name] != nil {
		return name
	}
	for _, sfx := range []string{"_bucket", "_count", "_sum"} {
		if base, ok := strings.CutSuffix(name, sfx); ok && m[base] != nil {
			return base
		}
	}
	return name
}

// hasLabel reports whether some series of the family carries the label.
func hasLabel(m metricSet, fam, label string) bool {
	for _, x := range m[fam].GetMetric() {
		for _, lp := range x.GetLabel() {
			if lp.GetName() == label {
				return true
			}
		}
	}
	return false
}

// TestAlertMetricsExported: every metric configs/alerts.yaml uses, and every
// label it selects or groups by, is exported by a running server that has
// issued a certificate; the health gauges read healthy.
func TestAlertMetricsExported(t *testing.T) {
	quietLego(t)
	s := startServer(t, "")
	c, _ := legoAccount(t, s, "alerts@example.com", nil)
	res := legoObtain(t, c, "alerts.e2e.test")
	s.verifyChain(t, res.Certificate, []string{"alerts.e2e.test"})

	code, body := httpGet(t, s.AdminURL+"/metrics")
	require.Equal(t, 200, code, body)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err, "/metrics is not Prometheus text")
	m := scraped(fams)

	used := map[string]bool{}
	for alert, expr := range alertExprs(t) {
		var famsInExpr []string
		for _, sel := range promSelector.FindAllStringSubmatch(expr, -1) {
			fam := family(m, sel[1])
			used[fam] = true
			require.Contains(t, fams, fam, "%s uses %s, which the server does not export", alert, sel[1])
			require.NotEmpty(t, m[fam].GetMetric(), "%s uses %s, which has no series", alert, sel[1])
			famsInExpr = append(famsInExpr, fam)
			for _, mt := range promMatcher.FindAllStringSubmatch(sel[2], -1) {
				if slices.Contains(targetLabels, mt[1]) {
					continue
				}
				require.True(t, hasLabel(m, fam, mt[1]), "%s selects %s by label %s, which it does not carry", alert, fam, mt[1])
			}
		}
		for _, g := range promGrouping.FindAllStringSubmatch(expr, -1) {
			for _, l := range strings.Split(g[1], ",") {
				l = strings.TrimSpace(l)
				if l == "" || slices.Contains(targetLabels, l) || len(famsInExpr) == 0 {
					continue
				}
				require.True(t, slices.ContainsFunc(famsInExpr, func(f string) bool { return hasLabel(m, f, l) }),
					"%s groups by %s, which none of %v carries", alert, l, famsInExpr)
			}
		}
	}
	// The rules use the metrics of every area (not a vacuous pass).
	for _, want := range []string{"acmebridge_certificates_expiring_unrenewed", "acmebridge_upstream_up",
		"acmebridge_upstream_errors_total", "acmebridge_issuance_seconds", "acmebridge_ready",
		"acmebridge_validations_total", "acmebridge_problems_total", "acmebridge_requests_total", "acmebridge_store_seconds",
		"acmebridge_notifications_oldest_seconds"} {
		require.True(t, used[want], "the rules use %s", want)
	}

	// A healthy server after one issuance: no alert's condition holds.
	require.Equal(t, 1.0, m.sum(t, "acmebridge_ready", func(map[string]string) bool { return true }))
	require.Equal(t, 1.0, m.sum(t, "acmebridge_upstream_up", labels("upstream", "dev")))
	require.Equal(t, 1.0, m.sum(t, "acmebridge_issuance_seconds_count", labels("upstream", "dev")))
	require.Equal(t, 0.0, m.sum(t, "acmebridge_upstream_errors_total", labels("upstream", "dev")))
	require.Equal(t, 0.0, m.sum(t, "acmebridge_certificates_expiring_unrenewed", labels("within", "7d")))
	require.Equal(t, 0.0, m.sum(t, "acmebridge_certificates_expiring_unrenewed", labels("within", "2d")))
	require.Equal(t, 0.0, m.sum(t, "acmebridge_validations_total", labels("result", "invalid")))
	require.Equal(t, 0.0, m.sum(t, "acmebridge_store_writes_not_replicated_total", func(map[string]string) bool { return true }))
	require.Equal(t, 0.0, m.sum(t, "acmebridge_store_master_changes_total", func(map[string]string) bool { return true }))
	require.Equal(t, 0.0, m.sum(t, "acmebridge_notifications_oldest_seconds", func(map[string]string) bool { return true }))
}
