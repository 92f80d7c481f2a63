package proxy

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
)

// TestGiveUpError: what an order ends with when no upstream could issue.
func TestGiveUpError(t *testing.T) {
	rl := &acmeerr.Error{Kind: acmeerr.RateLimited, Detail: "acme le: the CA rate-limits this request", RetryAfter: time.Hour}
	require.Same(t, rl, giveUpError([]string{"le"}, rl), "rateLimited passes through")

	down := acmeerr.New(acmeerr.Connection, "acme le2: placing the order: cannot reach the CA at ca2")
	e := giveUpError([]string{"le", "le2"}, down)
	p := toProblem(e, "rid")
	require.Equal(t, errNS+"serverInternal", p.Type)
	require.Equal(t, 503, p.Status)
	require.Equal(t, "no upstream could issue (tried le, le2): acme le2: placing the order: cannot reach the CA at ca2; request id rid", p.Detail)

	internal := giveUpError([]string{"le"}, acmeerr.New(acmeerr.Internal, "secret internals"))
	require.NotContains(t, toProblem(internal, "rid").Detail, "secret internals")
	require.Equal(t, acmeerr.Internal, acmeerr.KindOf(giveUpError(nil, errors.New("plain"))))
}

// TestBreaker: three transient failures in a row open the breaker for the
// cool-down; a success closes it; the cool-down's end lets the upstream be
// tried again, and one more failure opens it again at once.
func TestBreaker(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	b := &breaker{now: func() time.Time { return now }, health: map[string]*upstreamHealth{}}
	require.False(t, b.failure("le"))
	require.False(t, b.failure("le"))
	require.False(t, b.isOpen("le"))
	require.True(t, b.failure("le"), "the third failure opens it")
	require.True(t, b.isOpen("le"))
	require.False(t, b.failure("le"), "already open")
	require.Equal(t, []string{"le"}, b.open())
	require.False(t, b.isOpen("zerossl"))

	now = now.Add(breakerCooldown + time.Second)
	require.False(t, b.isOpen("le"), "tried again after the cool-down")
	require.True(t, b.failure("le"), "and skipped again after one more failure")
	b.success("le")
	require.False(t, b.isOpen("le"))
	require.Empty(t, b.open())
	require.False(t, b.failure("le"), "a success starts the count again")
}
