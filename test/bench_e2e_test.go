package test

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/bench"
)

// TestBenchCommand runs `acmebridge bench` (the load generator) against
// the built server: 2 clients x 3 issuances with http-01 on the port the
// server validates on, the server's CPU counted by its pid. The JSON
// report must show every issuance done, each step timed, and CPU on both
// sides.
func TestBenchCommand(t *testing.T) {
	s := startServer(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "bench", "--directory", s.DirectoryURL, "--ca-bundle", s.CAFile,
		"--clients", "2", "--orders", "3", "--challenge", "http-01", "--http-port", itoa(s.HTTPPort),
		"--server-pid", itoa(s.cmd.Process.Pid), "--label", "e2e", "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "bench failed:\n%s\n%s", stdout.String(), stderr.String())

	var res bench.Result
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &res), stdout.String())
	require.Equal(t, "e2e", res.Label)
	require.Equal(t, 2, res.Clients)
	require.Equal(t, 6, res.Issued, "first error: %s", res.FirstError)
	require.Zero(t, res.Failed)
	require.Empty(t, res.Errors)
	require.Positive(t, res.Throughput)
	for _, step := range []string{bench.StepNewAccount, bench.StepNewOrder, bench.StepAuthz, bench.StepChallenge,
		bench.StepFinalize, bench.StepDownload, bench.StepTotal} {
		require.Contains(t, res.Latency, step)
		require.Positive(t, res.Latency[step].P50, step)
	}
	require.Equal(t, 2, res.Latency[bench.StepNewAccount].Count)
	require.Equal(t, 6, res.Latency[bench.StepTotal].Count)
	require.GreaterOrEqual(t, res.RequestsPerIssuance, 5.0, "newOrder, authz, challenge, finalize, download")
	require.Positive(t, res.ClientCPU.Seconds)
	require.Len(t, res.Server.Processes, 1)
	require.Equal(t, "acmebridge", res.Server.Processes[0].Name)
	require.Empty(t, res.Server.Processes[0].Error)
}
