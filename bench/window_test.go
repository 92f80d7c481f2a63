package bench

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWindows: every Window issuances close one window with that
// window's latencies (not the run's), the running total and the server's
// memory.
func TestWindows(t *testing.T) {
	var got []Window
	w := newWindows(4, []int{os.Getpid()}, func(win Window) { got = append(got, win) })
	for i := 1; i <= 10; i++ {
		w.add(time.Duration(i) * time.Millisecond)
	}
	require.Len(t, got, 2, "10 issuances close two windows of 4")
	require.Equal(t, 1, got[0].Index)
	require.Equal(t, 4, got[0].Issued)
	require.Equal(t, 8, got[1].Issued)
	require.InDelta(t, 4.0, got[0].P99Ms, 0.01)
	require.InDelta(t, 8.0, got[1].P99Ms, 0.01, "the second window's own latencies")
	require.Greater(t, got[0].ServerRSSMiB, 1.0, "this process's RSS")
	require.Greater(t, got[0].ServerAnonMiB, 0.5)
	require.LessOrEqual(t, got[0].ServerAnonMiB, got[0].ServerRSSMiB)
	require.Equal(t, got, w.list())
	var off *windows
	off.add(time.Second) // no windows asked for
	require.Nil(t, off.list())
}

func TestStatusKB(t *testing.T) {
	status := "Name:\tx\nVmRSS:\t    2048 kB\nRssAnon:\t  512 kB\nThreads: 3\n"
	require.Equal(t, int64(2048<<10), statusKB(status, "VmRSS:"))
	require.Equal(t, int64(512<<10), statusKB(status, "RssAnon:"))
	require.Zero(t, statusKB("Name:\tx\n", "VmRSS:"))
}
