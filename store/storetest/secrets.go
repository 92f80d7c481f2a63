package storetest

import (
	"bytes"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

var secretCases = []testCase{
	{"PutAndGet", testSecretPutGet},
	{"CreateOnce", testSecretCreateOnce},
	{"ReturnsCopies", testSecretCopies},
	{"CreateRace", testSecretRace},
}

// testSecretPutGet: a secret round-trips byte for byte (binary included)
// and names are distinct keys.
func testSecretPutGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	name := newID("upstream-acme/le")
	value := []byte("-----BEGIN EC PRIVATE KEY-----\n\x00\x01\xff binary\n")
	require.NoError(t, s.PutSecret(ctx, name, value))
	got, err := s.GetSecret(ctx, name)
	require.NoError(t, err)
	require.Equal(t, value, got)

	_, err = s.GetSecret(ctx, name+"-other")
	require.ErrorIs(t, err, store.ErrNotFound)
	other := []byte("another")
	require.NoError(t, s.PutSecret(ctx, name+"-other", other))
	got, err = s.GetSecret(ctx, name+"-other")
	require.NoError(t, err)
	require.Equal(t, other, got)
}

// testSecretCreateOnce: a second PutSecret of a name is ErrConflict and
// leaves the first value.
func testSecretCreateOnce(t *testing.T, s store.Store) {
	ctx := t.Context()
	name := newID("secret")
	require.NoError(t, s.PutSecret(ctx, name, []byte("first")))
	require.ErrorIs(t, s.PutSecret(ctx, name, []byte("second")), store.ErrConflict)
	got, err := s.GetSecret(ctx, name)
	require.NoError(t, err)
	require.Equal(t, []byte("first"), got, "a refused PutSecret overwrote the secret")
}

// testSecretCopies: the store keeps its own copy: changing the slice passed
// in or returned changes nothing stored.
func testSecretCopies(t *testing.T, s store.Store) {
	ctx := t.Context()
	name := newID("secret")
	value := []byte("value")
	require.NoError(t, s.PutSecret(ctx, name, value))
	value[0] = 'X'
	got, err := s.GetSecret(ctx, name)
	require.NoError(t, err)
	require.Equal(t, []byte("value"), got)
	got[0] = 'Y'
	again, err := s.GetSecret(ctx, name)
	require.NoError(t, err)
	require.Equal(t, []byte("value"), again)
}

// testSecretRace: of racers creating the same secret exactly one wins, the
// others get ErrConflict, and every one then reads the winner's value.
func testSecretRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	name := newID("secret")
	var wg sync.WaitGroup
	errs := make([]error, racers)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.PutSecret(ctx, name, []byte{byte('a' + i)})
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		if err == nil {
			require.Equal(t, -1, winner, "two PutSecret calls won")
			winner = i
			continue
		}
		require.True(t, errors.Is(err, store.ErrConflict), "racer %d: %v", i, err)
	}
	require.NotEqual(t, -1, winner, "no PutSecret call won")
	got, err := s.GetSecret(ctx, name)
	require.NoError(t, err)
	require.True(t, bytes.Equal([]byte{byte('a' + winner)}, got), "stored %q, the winner wrote %q", got, 'a'+winner)
}
