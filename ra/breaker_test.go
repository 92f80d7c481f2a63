package ra

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBreaker: three transient failures in a row open the breaker for the
// cool-down; a success closes it; the cool-down's end lets the upstream be
// tried again, and one more failure opens it again at once.
func TestBreaker(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	b := NewBreaker(func() time.Time { return now })
	require.False(t, b.Failure("le"))
	require.False(t, b.Failure("le"))
	require.False(t, b.IsOpen("le"))
	require.True(t, b.Failure("le"), "the third failure opens it")
	require.True(t, b.IsOpen("le"))
	require.False(t, b.Failure("le"), "already open")
	require.Equal(t, []string{"le"}, b.Open())
	require.False(t, b.IsOpen("zerossl"))

	now = now.Add(BreakerCooldown + time.Second)
	require.False(t, b.IsOpen("le"), "tried again after the cool-down")
	require.True(t, b.Failure("le"), "and skipped again after one more failure")
	b.Success("le")
	require.False(t, b.IsOpen("le"))
	require.Empty(t, b.Open())
	require.False(t, b.Failure("le"), "a success starts the count again")
}
