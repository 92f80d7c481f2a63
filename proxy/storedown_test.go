package proxy

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

// downStore fails every call while down is set (an in-process fault for
// the error path; the real outage is tested with Redis).
type downStore struct {
	store.Store
	down atomic.Bool
}

var errDown = errors.New("connection refused")

func (d *downStore) GetAccount(ctx context.Context, id string) (*store.Account, error) {
	if d.down.Load() {
		return nil, errDown
	}
	return d.Store.GetAccount(ctx, id)
}

func (d *downStore) UseNonce(ctx context.Context, n string, until time.Time) (bool, error) {
	if d.down.Load() {
		return false, errDown
	}
	return d.Store.UseNonce(ctx, n, until)
}

func (d *downStore) CreateOrder(ctx context.Context, o *store.Order, a []*store.Authorization) error {
	if d.down.Load() {
		return errDown
	}
	return d.Store.CreateOrder(ctx, o, a)
}

// TestStoreDownIs503WithRetryAfter: a store outage is a 503 serverInternal
// with Retry-After, never a hang or a stack, and no cause leaks out.
func TestStoreDownIs503WithRetryAfter(t *testing.T) {
	var ds *downStore
	e := newEnvWith(t, nil, func(s store.Store) store.Store { ds = &downStore{Store: s}; return ds })
	c := e.newClient()
	c.register()
	body := c.sign(testBase+pathNewOrder, []byte(`{"identifiers":[{"type":"dns","value":"a.example.com"}]}`), false)
	ds.down.Store(true)
	rec := e.do(http.MethodPost, pathNewOrder, "application/jose+json", body)
	p := requireProblem(t, rec, http.StatusServiceUnavailable, "serverInternal")
	require.Equal(t, "5", rec.Header().Get("Retry-After"))
	require.NotContains(t, p.Detail, "connection refused")
	ds.down.Store(false)
	rec = c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("a.example.com")})
	require.Equal(t, http.StatusCreated, rec.Code, "the server recovers by itself")
}

func (d *downStore) NonceKey(ctx context.Context) ([]byte, error) {
	if d.down.Load() {
		return nil, errDown
	}
	return d.Store.NonceKey(ctx)
}

// TestNewNonceWhileStoreDown: before the nonce key was read no nonce can
// be handed out, so newNonce is a 503 with Retry-After rather than a 200
// without a nonce; once read, minting needs no store (the POST that uses
// the nonce is where the outage shows).
func TestNewNonceWhileStoreDown(t *testing.T) {
	var ds *downStore
	e := newEnvWith(t, nil, func(s store.Store) store.Store { ds = &downStore{Store: s}; return ds })
	ds.down.Store(true)
	rec := e.do(http.MethodHead, pathNewNonce, "", nil)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Equal(t, "5", rec.Header().Get("Retry-After"))
	requireProblem(t, e.do(http.MethodGet, pathNewNonce, "", nil), http.StatusServiceUnavailable, "serverInternal")
	ds.down.Store(false)
	require.Equal(t, http.StatusNoContent, e.do(http.MethodGet, pathNewNonce, "", nil).Code)
	ds.down.Store(true)
	rec = e.do(http.MethodHead, pathNewNonce, "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	require.NotEmpty(t, rec.Header().Get("Replay-Nonce"))
}
