package proxy

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/core"
	"github.com/acmebridge/acmebridge/store"
)

// countingStore counts UseNonce and NonceKey calls.
type countingStore struct {
	store.Store
	uses, keys atomic.Int64
}

func (c *countingStore) UseNonce(ctx context.Context, n string, until time.Time) (bool, error) {
	c.uses.Add(1)
	return c.Store.UseNonce(ctx, n, until)
}

func (c *countingStore) NonceKey(ctx context.Context) ([]byte, error) {
	c.keys.Add(1)
	return c.Store.NonceKey(ctx)
}

// TestNonces: a minted nonce is good once; forged, truncated, expired and
// foreign nonces are refused without a store round trip; minting writes
// nothing (the key is read once and cached).
func TestNonces(t *testing.T) {
	var cs *countingStore
	e := newEnvWith(t, nil, func(s store.Store) store.Store { cs = &countingStore{Store: s}; return cs })
	ctx := t.Context()
	var minted []string
	for range 100 {
		rec := e.do(http.MethodHead, pathNewNonce, "", nil)
		require.Equal(t, http.StatusOK, rec.Code)
		minted = append(minted, rec.Header().Get("Replay-Nonce"))
	}
	require.EqualValues(t, 1, cs.keys.Load(), "the key is read once")
	require.Zero(t, cs.uses.Load(), "minting records nothing")
	require.Len(t, dedupe(minted), 100, "unique")

	n := minted[0]
	ok, err := e.srv.useNonce(ctx, n)
	require.NoError(t, err)
	require.True(t, ok, "a fresh nonce")
	ok, err = e.srv.useNonce(ctx, n)
	require.NoError(t, err)
	require.False(t, ok, "used twice")
	require.EqualValues(t, 2, cs.uses.Load())

	raw, err := base64.RawURLEncoding.DecodeString(minted[1])
	require.NoError(t, err)
	forge := func(f func(b []byte) []byte) string {
		b := append([]byte(nil), raw...)
		return base64.RawURLEncoding.EncodeToString(f(b))
	}
	for name, bad := range map[string]string{
		"MAC flipped":        forge(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }),
		"random part edited": forge(func(b []byte) []byte { b[10] ^= 1; return b }),
		"expiry extended":    forge(func(b []byte) []byte { b[7]++; return b }),
		"truncated":          forge(func(b []byte) []byte { return b[:len(b)-1] }),
		"padded":             minted[1] + "=",
		"not base64":         "!!!!",
		"empty":              "",
		"random":             core.RandomID(),
	} {
		ok, err := e.srv.useNonce(ctx, bad)
		require.NoError(t, err, name)
		require.False(t, ok, name)
	}
	require.EqualValues(t, 2, cs.uses.Load(), "refused before the store")

	// Another server (another store, another key) refuses this one's nonces.
	other := newEnv(t, nil)
	ok, err = other.srv.useNonce(ctx, minted[2])
	require.NoError(t, err)
	require.False(t, ok, "a nonce under another key")

	// Expired, and expiring too far ahead: made with the server's own key,
	// so only the expiry is wrong.
	key, err := e.st.NonceKey(ctx)
	require.NoError(t, err)
	withExpiry := func(exp time.Time) string {
		b := make([]byte, nonceLen)
		binary.BigEndian.PutUint64(b, uint64(exp.Unix()))
		copy(b[8+nonceRandLen:], nonceMAC(key, b[:8+nonceRandLen]))
		return base64.RawURLEncoding.EncodeToString(b)
	}
	now := time.Now()
	for name, n := range map[string]string{
		"expired":       withExpiry(now.Add(-time.Second)),
		"too far out":   withExpiry(now.Add(3 * nonceLifetime)),
		"control: good": withExpiry(now.Add(time.Minute)),
	} {
		ok, err := e.srv.useNonce(ctx, n)
		require.NoError(t, err, name)
		require.Equal(t, name == "control: good", ok, name)
	}
}

func dedupe(ss []string) map[string]bool {
	m := map[string]bool{}
	for _, s := range ss {
		m[s] = true
	}
	return m
}
