package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

var osGetpid = os.Getpid

func sampleResult(label string, tp, p50 float64) Result {
	return Result{
		Label: label, Directory: "https://127.0.0.1:1/directory", Challenge: HTTP01, Clients: 2, Orders: 3,
		Issued: 5, Failed: 1, WallSeconds: 0.5, Throughput: tp,
		Steps: []string{StepNewOrder, StepTotal},
		Latency: map[string]Summary{
			StepNewOrder: {Count: 6, Mean: 2, P50: 1.5, P95: 4, P99: 4, Max: 4},
			StepTotal:    {Count: 5, Mean: p50, P50: p50, P95: p50 * 2, P99: p50 * 3, Max: p50 * 3},
		},
		RequestsPerIssuance: 6, PollsPerIssuance: 0.5,
		Errors:     map[string]int{"rejectedIdentifier": 1},
		Problems:   map[string]int{"badNonce": 2, "rejectedIdentifier": 1},
		FirstError: "c1-o2.bench.test: acme: error: 400",
		ClientCPU:  CPU{Seconds: 0.01, MsPerIssuance: 2},
		Server: ServerCPU{CPU: CPU{Seconds: 0.02, MsPerIssuance: 4},
			Processes: []ProcessCPU{{PID: 42, Name: "acmebridge", Seconds: 0.02}, {PID: 43, Error: "gone"}}},
	}
}

// TestWriteText: the headline, one row per step (total as "end to end"),
// CPU of client and server, failures and problems by type.
func TestWriteText(t *testing.T) {
	r := sampleResult("ab", 10, 20)
	var b bytes.Buffer
	require.NoError(t, r.WriteText(&b))
	out := b.String()
	for _, want := range []string{
		"ab: http-01, 2 clients x 3 orders",
		"issued 5, failed 1 in 0.50s: 10.0 issuances/s",
		"newOrder      6      2.0     1.5     4.0     4.0     4.0",
		"end to end      5     20.0    20.0    40.0    60.0    60.0",
		"requests/issuance 6.0, polls/issuance 0.50",
		"client CPU: 2.00 ms/issuance (0.01s)",
		"server CPU: 4.00 ms/issuance (pid 42 acmebridge 0.02s, pid 43: gone)",
		"failures by type:\n  rejectedIdentifier           1",
		"problem documents received (retries included):\n  badNonce                     2\n  rejectedIdentifier           1",
		"first failure: c1-o2.bench.test",
	} {
		require.Contains(t, out, want)
	}

	r.Server = ServerCPU{}
	b.Reset()
	require.NoError(t, r.WriteText(&b))
	require.Contains(t, b.String(), "server CPU: not measured")
}

// TestWriteJSON round-trips, with the field names scripts read.
func TestWriteJSON(t *testing.T) {
	r := sampleResult("ab", 10, 20)
	var b bytes.Buffer
	require.NoError(t, r.WriteJSON(&b))
	var raw map[string]any
	require.NoError(t, json.Unmarshal(b.Bytes(), &raw))
	for _, k := range []string{"issuances_per_second", "latency", "client_cpu", "server_cpu", "errors", "requests_per_issuance"} {
		require.Contains(t, raw, k)
	}
	require.Equal(t, 20.0, raw["latency"].(map[string]any)["total"].(map[string]any)["p50_ms"])
	var back Result
	require.NoError(t, json.Unmarshal(b.Bytes(), &back))
	require.Equal(t, r, back)
}

// TestCompare: medians over rounds, rows in first-seen order, ratios
// against the baseline, both renderings.
func TestCompare(t *testing.T) {
	results := []Result{
		sampleResult("acmebridge", 100, 30), sampleResult("step-ca", 50, 100),
		sampleResult("acmebridge", 120, 20), sampleResult("step-ca", 70, 90),
		sampleResult("acmebridge", 110, 25), sampleResult("step-ca", 60, 80),
		sampleResult("pebble", 30, 200), sampleResult("pebble", 40, 100),
	}
	rows := Compare(results, "acmebridge")
	require.Len(t, rows, 3)
	require.Equal(t, "acmebridge", rows[0].Label)
	require.Equal(t, 3, rows[0].Rounds)
	require.Equal(t, 110.0, rows[0].Throughput)
	require.Equal(t, 100.0, rows[0].ThroughputMin)
	require.Equal(t, 120.0, rows[0].ThroughputMax)
	require.Equal(t, 1.0, rows[0].Ratio)
	require.Equal(t, 25.0, rows[0].P50)
	require.Equal(t, 15, rows[0].Issued)
	require.Equal(t, 3, rows[0].Failed)
	require.InDelta(t, 60.0/110, rows[1].Ratio, 1e-9)
	require.Equal(t, 90.0, rows[1].P50)
	require.Equal(t, 35.0, rows[2].Throughput, "median of an even count is the mean of the middle two")
	require.Equal(t, 150.0, rows[2].P50)

	var b bytes.Buffer
	require.NoError(t, WriteComparison(&b, rows, "acmebridge", false))
	require.Contains(t, b.String(), "x acmebridge")
	require.Contains(t, b.String(), "110.0 (100.0-120.0)")
	require.Contains(t, b.String(), "0.55")
	b.Reset()
	require.NoError(t, WriteComparison(&b, rows, "acmebridge", true))
	lines := bytes.Split(bytes.TrimSpace(b.Bytes()), []byte("\n"))
	require.Len(t, lines, 5)
	require.True(t, bytes.HasPrefix(lines[1], []byte("| --- |")))
	require.Contains(t, string(lines[2]), "| acmebridge | 3 | 110.0 (100.0-120.0) | 1.00 | 25.0 |")

	require.Zero(t, Compare(results, "absent")[0].Ratio)
}
