package proxy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestUpstreamHealth: the dashboard sees the breaker the workers keep, and
// nothing once they stopped.
func TestUpstreamHealth(t *testing.T) {
	s := &Server{}
	n, until := s.UpstreamHealth("le")
	require.Zero(t, n)
	require.True(t, until.IsZero())

	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := &breaker{now: func() time.Time { return now }, health: map[string]*upstreamHealth{}}
	breakers.Store(s, b)
	defer breakers.Delete(s)
	b.failure("le")
	n, until = s.UpstreamHealth("le")
	require.Equal(t, 1, n)
	require.True(t, until.IsZero(), "not skipped yet")
	b.failure("le")
	b.failure("le")
	n, until = s.UpstreamHealth("le")
	require.Equal(t, breakerThreshold, n)
	require.Equal(t, now.Add(breakerCooldown), until)
	n, _ = s.UpstreamHealth("other")
	require.Zero(t, n)
	b.success("le")
	n, until = s.UpstreamHealth("le")
	require.Zero(t, n)
	require.True(t, until.IsZero())
}
