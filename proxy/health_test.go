package proxy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/ra"
)

// TestUpstreamHealth: the dashboard sees the breaker the workers keep.
func TestUpstreamHealth(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	core, err := ra.New(ra.Options{Store: &downStore{}, Clock: func() time.Time { return now }})
	require.NoError(t, err)
	s := &Server{ra: core}
	n, until := s.UpstreamHealth("le")
	require.Zero(t, n)
	require.True(t, until.IsZero())

	b := core.Breaker()
	b.Failure("le")
	n, until = s.UpstreamHealth("le")
	require.Equal(t, 1, n)
	require.True(t, until.IsZero(), "not skipped yet")
	b.Failure("le")
	b.Failure("le")
	n, until = s.UpstreamHealth("le")
	require.Equal(t, ra.BreakerThreshold, n)
	require.Equal(t, now.Add(ra.BreakerCooldown), until)
	require.True(t, s.upstreamFailing("le"))
	n, _ = s.UpstreamHealth("other")
	require.Zero(t, n)
	b.Success("le")
	n, until = s.UpstreamHealth("le")
	require.Zero(t, n)
	require.True(t, until.IsZero())
}
