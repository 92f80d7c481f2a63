package ra

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/core"
)

// TestGiveUpError: what an order ends with when no upstream could issue.
func TestGiveUpError(t *testing.T) {
	rl := &acmeerr.Error{Kind: acmeerr.RateLimited, Detail: "acme le: the CA rate-limits this request", RetryAfter: time.Hour}
	require.Same(t, rl, giveUpError([]string{"le"}, rl), "rateLimited passes through")

	down := acmeerr.New(acmeerr.Connection, "acme le2: placing the order: cannot reach the CA at ca2")
	e := giveUpError([]string{"le", "le2"}, down)
	p := acmeerr.ToProblem(e, "rid")
	require.Equal(t, core.ErrorNS+"serverInternal", p.Type)
	require.Equal(t, 503, p.Status)
	require.Equal(t, "no upstream could issue (tried le, le2): acme le2: placing the order: cannot reach the CA at ca2; request id rid", p.Detail)

	internal := giveUpError([]string{"le"}, acmeerr.New(acmeerr.Internal, "secret internals"))
	require.NotContains(t, acmeerr.ToProblem(internal, "rid").Detail, "secret internals")
	require.Equal(t, acmeerr.Internal, acmeerr.KindOf(giveUpError(nil, errors.New("plain"))))
}
