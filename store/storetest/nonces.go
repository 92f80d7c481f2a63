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
	{"RecordFull", testNonceRecordFull},
}

// NonceCapacity is the bound a driver that bounds its record of used
// nonces must be opened with for the suite (bolt: Options.MaxUsedNonces),
// so that the suite fills it. A driver without a bound ignores it.
const NonceCapacity = 64

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

// testNonceRecordFull: three times NonceCapacity uses, each nonce expiring
// a second after the one before (as nonces minted one after another do):
// every first use is accepted even once a bounded record is full (it
// refuses the oldest nonces, not the fresh one: store.Store.UseNonce), no
// nonce is accepted twice, and a nonce expiring after all of them is
// accepted.
func testNonceRecordFull(t *testing.T, s store.Store) {
	ctx := t.Context()
	start := wallNow().Add(10 * time.Minute)
	n := 3 * NonceCapacity
	nonces := make([]string, n)
	for i := range n {
		nonces[i] = newID("nonce")
		ok, err := s.UseNonce(ctx, nonces[i], start.Add(time.Duration(i)*time.Second))
		require.NoError(t, err)
		require.True(t, ok, "the first use of the freshest nonce (%d of %d) is accepted", i+1, n)
	}
	for i, nonce := range nonces {
		ok, err := s.UseNonce(ctx, nonce, start.Add(time.Duration(i)*time.Second))
		require.NoError(t, err)
		require.False(t, ok, "nonce %d of %d used twice", i+1, n)
	}
	ok, err := s.UseNonce(ctx, newID("nonce"), start.Add(time.Duration(n)*time.Second))
	require.NoError(t, err)
	require.True(t, ok, "a fresh nonce is accepted")
}
