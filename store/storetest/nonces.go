package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

var nonceCases = []testCase{
	{"ConsumedOnce", testNonceConsumedOnce},
	{"Expired", testNonceExpired},
	{"Race", testNonceRace},
}

// testNonceConsumedOnce: a nonce is good once; unknown nonces are not.
func testNonceConsumedOnce(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	n1, n2 := newID("nonce"), newID("nonce")
	require.NoError(t, s.AddNonce(ctx, n1, now.Add(time.Hour)))
	require.NoError(t, s.AddNonce(ctx, n2, now.Add(time.Hour)))

	ok, err := s.ConsumeNonce(ctx, n1, now)
	require.NoError(t, err)
	require.True(t, ok, "fresh nonce")
	ok, err = s.ConsumeNonce(ctx, n1, now)
	require.NoError(t, err)
	require.False(t, ok, "nonce consumed twice")

	ok, err = s.ConsumeNonce(ctx, newID("nonce"), now)
	require.NoError(t, err)
	require.False(t, ok, "unknown nonce")

	ok, err = s.ConsumeNonce(ctx, n2, now.Add(time.Minute))
	require.NoError(t, err)
	require.True(t, ok, "second nonce is independent of the first")
}

// testNonceExpired: a nonce past its expiry is refused, and consuming it
// removes it.
func testNonceExpired(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	n := newID("nonce")
	exp := now.Add(time.Minute)
	require.NoError(t, s.AddNonce(ctx, n, exp))

	ok, err := s.ConsumeNonce(ctx, n, exp.Add(time.Second))
	require.NoError(t, err)
	require.False(t, ok, "expired nonce accepted")
	ok, err = s.ConsumeNonce(ctx, n, now)
	require.NoError(t, err)
	require.False(t, ok, "an expired nonce is removed when consumed")
}

// testNonceRace: of racers consuming one nonce at once, exactly one wins.
func testNonceRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	for range 5 {
		n := newID("nonce")
		require.NoError(t, s.AddNonce(ctx, n, now.Add(time.Hour)))
		got := make([]bool, racers)
		errs := race(racers, func(i int) error {
			var err error
			got[i], err = s.ConsumeNonce(ctx, n, now)
			return err
		})
		winners := 0
		for i := range racers {
			require.NoError(t, errs[i])
			if got[i] {
				winners++
			}
		}
		require.Equal(t, 1, winners, "nonce consumed by %d racers", winners)
	}
}
