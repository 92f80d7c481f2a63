package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

var nonceCases = []testCase{
	{"Key", testNonceKey},
	{"UsedOnce", testNonceUsedOnce},
	{"Race", testNonceRace},
}

// testNonceKey: the nonce key is at least 128 bits and the same at every
// call.
func testNonceKey(t *testing.T, s store.Store) {
	k1, err := s.NonceKey(t.Context())
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(k1), 16)
	k2, err := s.NonceKey(t.Context())
	require.NoError(t, err)
	require.Equal(t, k1, k2)
}

// testNonceUsedOnce: a nonce's first use is reported, later ones are not;
// nonces are independent.
func testNonceUsedOnce(t *testing.T, s store.Store) {
	ctx := t.Context()
	until := wallNow().Add(time.Hour)
	n1, n2 := newID("nonce"), newID("nonce")
	ok, err := s.UseNonce(ctx, n1, until)
	require.NoError(t, err)
	require.True(t, ok, "first use")
	ok, err = s.UseNonce(ctx, n1, until)
	require.NoError(t, err)
	require.False(t, ok, "nonce used twice")
	ok, err = s.UseNonce(ctx, n2, until)
	require.NoError(t, err)
	require.True(t, ok, "second nonce is independent of the first")
}

// testNonceRace: of racers using one nonce at once, exactly one wins.
func testNonceRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	until := wallNow().Add(time.Hour)
	for range 5 {
		n := newID("nonce")
		got := make([]bool, racers)
		errs := race(racers, func(i int) error {
			var err error
			got[i], err = s.UseNonce(ctx, n, until)
			return err
		})
		winners := 0
		for i := range racers {
			require.NoError(t, errs[i])
			if got[i] {
				winners++
			}
		}
		require.Equal(t, 1, winners, "nonce used by %d racers", winners)
	}
}
