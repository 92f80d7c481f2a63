package ra

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/core"
	"github.com/acmebridge/acmebridge/store"
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

// TestLeaseStopReleasesContext: a lease's context is released when the
// lease stops, so it does not stay registered with the workers' long-lived
// context: before, every job left its context (and Done channel) there for
// the life of the process, a heap growing with every issuance (make soak:
// 35 MiB after 33,000 issuances).
func TestLeaseStopReleasesContext(t *testing.T) {
	core, err := New(Options{Config: configs.Default(), Store: memStore{}})
	require.NoError(t, err)
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := core.leaseKeeper(parent, &store.Job{OrderID: "o"})
	require.NoError(t, l.ctx.Err(), "running")
	l.stop()
	require.Error(t, l.ctx.Err(), "released with the lease")
	require.NoError(t, parent.Err())
	l.stop() // idempotent
}

// memStore is a store none of whose methods the test calls.
type memStore struct{ store.Store }
