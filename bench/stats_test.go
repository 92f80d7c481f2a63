package bench

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func msd(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}

// TestPercentile: nearest rank, the smallest sample with at least p% of
// the samples at or below it.
func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tc := range []struct {
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{nil, 50, 0},
		{msd(7), 50, 7 * time.Millisecond},
		{msd(7), 99, 7 * time.Millisecond},
		{msd(1, 2), 50, 1 * time.Millisecond},
		{msd(1, 2), 51, 2 * time.Millisecond},
		{msd(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{msd(1, 2, 3, 4), 75, 3 * time.Millisecond},
		{msd(1, 2, 3, 4), 100, 4 * time.Millisecond},
		{hundred, 50, 50 * time.Millisecond},
		{hundred, 95, 95 * time.Millisecond},
		{hundred, 99, 99 * time.Millisecond},
		{hundred, 99.5, 100 * time.Millisecond},
		{hundred, 0.1, 1 * time.Millisecond},
	} {
		require.Equal(t, tc.want, Percentile(tc.samples, tc.p), "p%v of %v", tc.p, tc.samples)
	}
}

// TestSummarize sorts unsorted samples and reports milliseconds.
func TestSummarize(t *testing.T) {
	require.Equal(t, Summary{}, Summarize(nil))
	s := Summarize([]time.Duration{30 * time.Millisecond, 10 * time.Millisecond, 20*time.Millisecond + 500*time.Microsecond, 40 * time.Millisecond})
	require.Equal(t, Summary{Count: 4, Mean: 25.125, P50: 20.5, P95: 40, P99: 40, Max: 40}, s)
}

// TestRecorder: concurrent adds, declared order kept, empty steps left out.
func TestRecorder(t *testing.T) {
	r := NewRecorder()
	r.Declare("a", "b", "c")
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			r.Add("c", time.Duration(i+1)*time.Millisecond)
			r.Add("a", time.Millisecond)
			r.Add("z", time.Millisecond)
		})
	}
	wg.Wait()
	steps, sums := r.Summaries()
	require.Equal(t, []string{"a", "c", "z"}, steps)
	require.Equal(t, 50, sums["c"].Count)
	require.Equal(t, 25.0, sums["c"].P50)
	require.Equal(t, 50.0, sums["c"].Max)
	require.NotContains(t, sums, "b")

	var c Counter
	require.Nil(t, c.Map())
	for i := range 5 {
		c.Inc(fmt.Sprint(i % 2))
	}
	require.Equal(t, map[string]int{"0": 3, "1": 2}, c.Map())
}

// TestParseProcStat reads utime+stime past a command name holding spaces
// and parentheses.
func TestParseProcStat(t *testing.T) {
	line := "4242 (my (odd) srv) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 8 0 12345 1000 10 18446744073709551615"
	d, name, err := parseProcStat(line)
	require.NoError(t, err)
	require.Equal(t, "my (odd) srv", name)
	require.Equal(t, 2870*time.Millisecond, d)
	_, _, err = parseProcStat("garbage")
	require.Error(t, err)
	_, _, err = parseProcStat("1 (x) S 1 2")
	require.Error(t, err)
}

// TestProcCPUSelf reads this process's own /proc entry (Linux).
func TestProcCPUSelf(t *testing.T) {
	if _, _, err := ProcCPU(1); err != nil {
		t.Skip("no /proc here")
	}
	d, _, err := ProcCPU(osGetpid())
	require.NoError(t, err)
	require.GreaterOrEqual(t, d, time.Duration(0))
	require.Positive(t, SelfCPU())
}
