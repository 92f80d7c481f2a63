package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Row is one server in a comparison: the medians over its rounds.
type Row struct {
	Label  string `json:"label"`
	Rounds int    `json:"rounds"`
	// Throughput is the median issuances per second; Min and Max the
	// extremes over the rounds; Ratio the median over the baseline's.
	Throughput    float64 `json:"issuances_per_second"`
	ThroughputMin float64 `json:"issuances_per_second_min"`
	ThroughputMax float64 `json:"issuances_per_second_max"`
	Ratio         float64 `json:"ratio"`
	// P50, P95 and P99 are end-to-end latencies in ms (medians over rounds).
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
	// ServerCPU and ClientCPU are ms of CPU per issuance.
	ServerCPU           float64 `json:"server_cpu_ms_per_issuance"`
	ClientCPU           float64 `json:"client_cpu_ms_per_issuance"`
	RequestsPerIssuance float64 `json:"requests_per_issuance"`
	Issued              int     `json:"issued"`
	Failed              int     `json:"failed"`
}

// Compare groups results by label (rows in the order labels first
// appear) and takes the median of each figure over the rounds, so that
// alternating rounds cancel the machine's drift. Ratios are against the
// row labelled baseline (0 when it is absent).
func Compare(results []Result, baseline string) []Row {
	var labels []string
	by := map[string][]Result{}
	for _, r := range results {
		if _, ok := by[r.Label]; !ok {
			labels = append(labels, r.Label)
		}
		by[r.Label] = append(by[r.Label], r)
	}
	rows := make([]Row, 0, len(labels))
	for _, l := range labels {
		rs := by[l]
		pick := func(f func(Result) float64) []float64 {
			out := make([]float64, len(rs))
			for i, r := range rs {
				out[i] = f(r)
			}
			return out
		}
		tp := pick(func(r Result) float64 { return r.Throughput })
		row := Row{
			Label: l, Rounds: len(rs),
			Throughput: median(tp), ThroughputMin: slices.Min(tp), ThroughputMax: slices.Max(tp),
			P50:                 median(pick(func(r Result) float64 { return r.Latency[StepTotal].P50 })),
			P95:                 median(pick(func(r Result) float64 { return r.Latency[StepTotal].P95 })),
			P99:                 median(pick(func(r Result) float64 { return r.Latency[StepTotal].P99 })),
			ServerCPU:           median(pick(func(r Result) float64 { return r.Server.MsPerIssuance })),
			ClientCPU:           median(pick(func(r Result) float64 { return r.ClientCPU.MsPerIssuance })),
			RequestsPerIssuance: median(pick(func(r Result) float64 { return r.RequestsPerIssuance })),
		}
		for _, r := range rs {
			row.Issued += r.Issued
			row.Failed += r.Failed
		}
		rows = append(rows, row)
	}
	for i := range rows {
		for _, b := range rows {
			if b.Label == baseline && b.Throughput > 0 {
				rows[i].Ratio = rows[i].Throughput / b.Throughput
			}
		}
	}
	return rows
}

// median returns the median of xs (the mean of the middle two for an even
// count); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

var compareHeader = []string{"server", "rounds", "issuances/s", "ratio", "p50 ms", "p95 ms", "p99 ms",
	"server CPU ms/iss", "client CPU ms/iss", "req/iss", "failed"}

func rowCells(r Row) []string {
	ratio := "-"
	if r.Ratio > 0 {
		ratio = fmt.Sprintf("%.2f", r.Ratio)
	}
	cpu := func(v float64) string {
		if v == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", v)
	}
	return []string{
		r.Label, fmt.Sprint(r.Rounds),
		fmt.Sprintf("%.1f (%.1f-%.1f)", r.Throughput, r.ThroughputMin, r.ThroughputMax), ratio,
		fmt.Sprintf("%.1f", r.P50), fmt.Sprintf("%.1f", r.P95), fmt.Sprintf("%.1f", r.P99),
		cpu(r.ServerCPU), cpu(r.ClientCPU), fmt.Sprintf("%.1f", r.RequestsPerIssuance),
		fmt.Sprintf("%d/%d", r.Failed, r.Issued+r.Failed),
	}
}

// WriteComparison writes rows as an aligned text table, or as a Markdown
// table when markdown is set; the ratio column is headed by the baseline's
// label.
func WriteComparison(w io.Writer, rows []Row, baseline string, markdown bool) error {
	header := slices.Clone(compareHeader)
	header[3] = "x " + baseline
	var b strings.Builder
	if markdown {
		b.WriteString("| " + strings.Join(header, " | ") + " |\n")
		b.WriteString("|" + strings.Repeat(" --- |", len(header)) + "\n")
		for _, r := range rows {
			b.WriteString("| " + strings.Join(rowCells(r), " | ") + " |\n")
		}
		_, err := io.WriteString(w, b.String())
		return err
	}
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(rowCells(r), "\t")+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}
