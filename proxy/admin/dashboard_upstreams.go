package admin

// The sections of the dashboard about upstreams: health, issuance and
// latency, refusals and failures.

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/store"
)

// latencies are order-to-certificate times by upstream: by hour of the
// window and over all of it.
type latencies struct {
	byHour map[string]map[int64][]float64
	all    map[string][]float64
	sample int
}

// latencies reads the newest certificates issued in the window (at most
// maxLatencySample) and their orders: the time from the order's creation
// to the certificate.
// Only one directory's certificates count unless dir is "".
func (d *dashboard) latencies(ctx context.Context, now time.Time, dir string) (*latencies, error) {
	since := now.Add(-window).Truncate(time.Hour)
	ids, _, err := newestIDs(func(c string, l int) (store.Page, error) {
		return d.api.Store.ListNewest(ctx, store.KindCertificate, c, l)
	}, maxLatencySample)
	if err != nil {
		return nil, err
	}
	certs, err := fetch(ctx, ids, d.api.Store.GetCertificate)
	if err != nil {
		return nil, err
	}
	var keep []*store.Certificate
	var orderIDs []string
	for _, c := range certs {
		if c != nil && !c.IssuedAt.Before(since) && inDirectory(c.Directory, dir) {
			keep = append(keep, c)
			orderIDs = append(orderIDs, c.OrderID)
		}
	}
	orders, err := fetch(ctx, orderIDs, d.api.Store.GetOrder)
	if err != nil {
		return nil, err
	}
	l := &latencies{byHour: map[string]map[int64][]float64{}, all: map[string][]float64{}}
	for i, c := range keep {
		o := orders[i]
		if o == nil || o.CreatedAt.IsZero() || c.IssuedAt.Before(o.CreatedAt) {
			continue
		}
		s := c.IssuedAt.Sub(o.CreatedAt).Seconds()
		h := c.IssuedAt.UTC().Truncate(time.Hour).Unix()
		if l.byHour[c.Upstream] == nil {
			l.byHour[c.Upstream] = map[int64][]float64{}
		}
		l.byHour[c.Upstream][h] = append(l.byHour[c.Upstream][h], s)
		l.all[c.Upstream] = append(l.all[c.Upstream], s)
		l.sample++
	}
	return l, nil
}

// quantile of a sample (sorted in place); NaN when empty.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	sort.Float64s(xs)
	i := int(math.Ceil(q*float64(len(xs)))) - 1 // nearest rank
	return xs[min(max(i, 0), len(xs)-1)]
}

// fmtSeconds writes a latency; "—" for none.
func fmtSeconds(s float64) string {
	switch {
	case math.IsNaN(s):
		return "—"
	case s < 1:
		return strconv.Itoa(int(math.Round(s*1000))) + " ms"
	case s < 120:
		return strconv.FormatFloat(s, 'f', 1, 64) + " s"
	default:
		return (time.Duration(s) * time.Second).Round(time.Second).String()
	}
}

// upstreamMetrics are one upstream's counters since the process started.
type upstreamMetrics struct {
	issued               uint64
	buckets              []*dto.Bucket
	transient, permanent float64
}

// processMetrics reads the issuance histogram (of one directory's label,
// or of every directory's when dir is "") and the upstream error counters
// (an upstream's, whatever the directory) from the registry.
func (d *dashboard) processMetrics(dir string) map[string]*upstreamMetrics {
	out := map[string]*upstreamMetrics{}
	fams, err := d.reg.Gather()
	if err != nil {
		d.log.Warn("dashboard: gather metrics", "err", err)
	}
	get := func(m *dto.Metric, label string) *upstreamMetrics {
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				um := out[l.GetValue()]
				if um == nil {
					um = &upstreamMetrics{}
					out[l.GetValue()] = um
				}
				return um
			}
		}
		return &upstreamMetrics{}
	}
	for _, f := range fams {
		switch f.GetName() {
		case "acmebridge_issuance_seconds":
			for _, m := range f.GetMetric() {
				if dir != "" && labelOf(m, "directory") != dir {
					continue
				}
				um := get(m, "upstream")
				um.issued += m.GetHistogram().GetSampleCount()
				um.buckets = addBuckets(um.buckets, m.GetHistogram().GetBucket())
			}
		case "acmebridge_upstream_errors_total":
			for _, m := range f.GetMetric() {
				um := get(m, "upstream")
				for _, l := range m.GetLabel() {
					if l.GetName() == "kind" && l.GetValue() == "permanent" {
						um.permanent += m.GetCounter().GetValue()
					} else if l.GetName() == "kind" {
						um.transient += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	return out
}

// labelOf is the value of a series' label.
func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// addBuckets adds the cumulative counts of b to those of sum (the series
// of one histogram share their bounds).
func addBuckets(sum, b []*dto.Bucket) []*dto.Bucket {
	if sum == nil {
		out := make([]*dto.Bucket, len(b))
		for i, x := range b {
			upper, n := x.GetUpperBound(), x.GetCumulativeCount()
			out[i] = &dto.Bucket{UpperBound: &upper, CumulativeCount: &n}
		}
		return out
	}
	for i := range min(len(sum), len(b)) {
		n := sum[i].GetCumulativeCount() + b[i].GetCumulativeCount()
		sum[i].CumulativeCount = &n
	}
	return sum
}

// histQuantile estimates a quantile from cumulative buckets (linear within
// a bucket, as Prometheus' histogram_quantile).
func histQuantile(q float64, count uint64, buckets []*dto.Bucket) float64 {
	if count == 0 {
		return math.NaN()
	}
	rank := q * float64(count)
	lower, below := 0.0, 0.0
	for _, b := range buckets {
		upper, cum := b.GetUpperBound(), float64(b.GetCumulativeCount())
		if math.IsInf(upper, 1) {
			return lower
		}
		if cum >= rank {
			if cum == below {
				return upper
			}
			return lower + (upper-lower)*(rank-below)/(cum-below)
		}
		lower, below = upper, cum
	}
	return lower
}

// upstreamRows fills the health table.
func (d *dashboard) upstreamRows(p *pageData, sum *audit.Summary, lat *latencies, col *colors, configured []string) {
	pm := d.processMetrics(p.Directory)
	types := d.api.upstreamTypes()
	for _, n := range col.names {
		r := upstreamRow{Name: n, Type: types[n], Color: col.of(n), State: "unknown", Configured: slices.Contains(configured, n)}
		switch {
		case !r.Configured:
			r.State, r.StateDetail = "removed", "not in the configuration any more"
		case d.opts.Health != nil:
			failures, until := d.opts.Health(n)
			switch {
			case until.After(p.Now):
				r.State, r.StateDetail = "skipped", fmt.Sprintf("%d failures in a row; skipped until %s", failures, until.UTC().Format("15:04:05"))
			case failures > 0:
				r.State, r.StateDetail = "failing", fmt.Sprintf("%d failures in a row", failures)
			default:
				r.State = "healthy"
			}
		}
		if sum != nil {
			r.Issued24h = sum.Issued.Get(n)
		}
		if m := pm[n]; m != nil {
			r.IssuedTotal, r.ErrorsTransient, r.ErrorsPermanent = countInt(m.issued), int(m.transient), int(m.permanent)
			r.UpstreamP50, r.UpstreamP95 = fmtSeconds(histQuantile(0.5, m.issued, m.buckets)), fmtSeconds(histQuantile(0.95, m.issued, m.buckets))
		} else {
			r.UpstreamP50, r.UpstreamP95 = "—", "—"
		}
		if attempts := r.IssuedTotal + r.ErrorsTransient + r.ErrorsPermanent; attempts > 0 {
			r.ErrorRate = strconv.FormatFloat(float64(r.ErrorsTransient+r.ErrorsPermanent)/float64(attempts)*100, 'f', 1, 64) + "%"
		} else {
			r.ErrorRate = "—"
		}
		r.OrderP50, r.OrderP95 = "—", "—"
		if lat != nil {
			r.OrderP50, r.OrderP95 = fmtSeconds(quantile(lat.all[n], 0.5)), fmtSeconds(quantile(lat.all[n], 0.95))
		}
		p.Upstreams = append(p.Upstreams, r)
	}
}

// issuanceCharts draws issuance per hour (audit log) and the hourly median
// order-to-certificate time (store) by upstream.
func (d *dashboard) issuanceCharts(p *pageData, sum *audit.Summary, lat *latencies, col *colors) {
	ss := col.series()
	if sum != nil && len(sum.Buckets) > 0 {
		cols := make([]column, len(sum.Buckets))
		for i, b := range sum.Buckets {
			cols[i] = column{Title: b.Start.Format("2006-01-02 15:00") + "–" + b.Start.Add(time.Hour).Format("15:00"), Values: make([]float64, len(ss))}
			if b.Start.Hour()%3 == 0 {
				cols[i].Label = b.Start.Format("15:00")
			}
			for si, s := range ss {
				cols[i].Values[si] = float64(b.Issued.Get(s.Name))
			}
		}
		p.Issuance.Total, p.Issuance.Revoked = sum.Issued.Total(), sum.Revoked.Total()
		p.Issuance.Chart = stackedBars("issuance-chart", "Certificates issued per hour over the last 24 hours, by upstream", cols, ss, 1200, 150)
		if lat != nil && lat.sample > 0 {
			lcols := make([]column, len(sum.Buckets))
			for i, b := range sum.Buckets {
				lcols[i] = column{Title: cols[i].Title, Label: cols[i].Label, Values: make([]float64, len(ss))}
				for si, s := range ss {
					lcols[i].Values[si] = quantile(lat.byHour[s.Name][b.Start.Unix()], 0.5)
				}
			}
			p.Issuance.Sample = lat.sample
			p.Issuance.LatencyChart = lineChart("latency-chart", "Median time from order to certificate per hour, by upstream", lcols, ss, "s", 1200, 130)
		}
	}
}

// refusalCharts draws refusals by problem type and by rule.
func (d *dashboard) refusalCharts(p *pageData, sum *audit.Summary, rec *recentAudit) {
	if sum != nil {
		p.Refusals.Total = sum.Refused.Total()
		top := func(t audit.Tally) []hbar {
			var out []hbar
			for _, c := range t[:min(len(t), 10)] {
				out = append(out, hbar{Label: c.Key, N: c.N})
			}
			return out
		}
		if p.Refusals.Total > 0 {
			p.Refusals.ByType = hbars("refusals-by-type", "Refusals by problem type, last 24 hours", top(sum.Refused), "#D55E00", 460)
			p.Refusals.ByRule = hbars("refusals-by-rule", "Refusals by policy rule, last 24 hours", top(sum.RefusedByRule), "#CC79A7", 460)
		}
		if sum.OrdersInvalid.Total() > 0 {
			p.FailuresByType = hbars("failures-by-type", "Failed orders by problem type, last 24 hours", top(sum.OrdersInvalid), "#E69F00", 460)
		}
	}
	if rec != nil {
		for _, e := range newestFirst(rec.refusals, recentEvents) {
			p.Refusals.Latest = append(p.Refusals.Latest, eventOf(e))
		}
		for _, e := range newestFirst(rec.failures, recentEvents) {
			p.Failures = append(p.Failures, eventOf(e))
		}
	}
}

// countInt is a histogram's sample count as an int, capped at math.MaxInt.
func countInt(n uint64) int {
	if n > math.MaxInt {
		return math.MaxInt
	}
	return int(n)
}
