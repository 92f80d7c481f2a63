package store_test

import (
	"bytes"
	"crypto/rand"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/store/bolt"
	"github.com/acmebridge/acmebridge/store/storetest"
)

func key(t *testing.T) []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}

// TestSealedPassesSuite: the sealing wrapper is transparent to the contract.
func TestSealedPassesSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		raw, err := bolt.Open(bolt.Options{Path: filepath.Join(t.TempDir(), "db")})
		require.NoError(t, err)
		s, err := store.Sealed(raw, key(t))
		require.NoError(t, err)
		return s
	})
}

// TestSecretsEncryptedAtRest: the driver holds ciphertext; the wrong key
// cannot read it; a ciphertext moved to another record does not open.
func TestSecretsEncryptedAtRest(t *testing.T) {
	raw, err := bolt.Open(bolt.Options{Path: filepath.Join(t.TempDir(), "db")})
	require.NoError(t, err)
	defer raw.Close()
	k := key(t)
	s, err := store.Sealed(raw, k)
	require.NoError(t, err)
	secret := bytes.Repeat([]byte{0x42}, 32)
	require.NoError(t, s.PutEABKey(t.Context(), &store.EABKey{ID: "k1", HMACKey: secret, CreatedAt: time.Now()}))

	got, err := s.GetEABKey(t.Context(), "k1")
	require.NoError(t, err)
	require.Equal(t, secret, got.HMACKey)

	stored, err := raw.GetEABKey(t.Context(), "k1")
	require.NoError(t, err)
	require.False(t, bytes.Contains(stored.HMACKey, secret), "the driver must not see the secret")

	other, err := store.Sealed(raw, key(t))
	require.NoError(t, err)
	_, err = other.GetEABKey(t.Context(), "k1")
	require.ErrorIs(t, err, store.ErrUnseal)

	// Moving k1's ciphertext to k2 does not make it k2's secret.
	require.NoError(t, raw.PutEABKey(t.Context(), &store.EABKey{ID: "k2", HMACKey: stored.HMACKey, CreatedAt: time.Now()}))
	_, err = s.GetEABKey(t.Context(), "k2")
	require.ErrorIs(t, err, store.ErrUnseal)

	_, err = store.Sealed(raw, []byte("short"))
	require.Error(t, err)
}

// TestNamedSecretsSealed: PutSecret values are ciphertext in the driver,
// bound to their name, and unreadable with another key.
func TestNamedSecretsSealed(t *testing.T) {
	raw, err := bolt.Open(bolt.Options{Path: filepath.Join(t.TempDir(), "db")})
	require.NoError(t, err)
	defer raw.Close()
	s, err := store.Sealed(raw, key(t))
	require.NoError(t, err)
	secret := []byte("-----BEGIN EC PRIVATE KEY----- account key")
	require.NoError(t, s.PutSecret(t.Context(), "upstream-acme/le", secret))
	got, err := s.GetSecret(t.Context(), "upstream-acme/le")
	require.NoError(t, err)
	require.Equal(t, secret, got)

	stored, err := raw.GetSecret(t.Context(), "upstream-acme/le")
	require.NoError(t, err)
	require.False(t, bytes.Contains(stored, secret), "the driver must not see the secret")
	require.ErrorIs(t, s.PutSecret(t.Context(), "upstream-acme/le", []byte("other")), store.ErrConflict)

	require.NoError(t, raw.PutSecret(t.Context(), "upstream-acme/moved", stored))
	_, err = s.GetSecret(t.Context(), "upstream-acme/moved")
	require.ErrorIs(t, err, store.ErrUnseal)
	other, err := store.Sealed(raw, key(t))
	require.NoError(t, err)
	_, err = other.GetSecret(t.Context(), "upstream-acme/le")
	require.ErrorIs(t, err, store.ErrUnseal)
}

// TestObservedPassesSuite: the timing wrapper is transparent to the
// contract and reports every call.
func TestObservedPassesSuite(t *testing.T) {
	var calls atomic.Int64
	storetest.Run(t, func(t *testing.T) store.Store {
		raw, err := bolt.Open(bolt.Options{Path: filepath.Join(t.TempDir(), "db")})
		require.NoError(t, err)
		return store.Observed(raw, func(op string, d time.Duration, err error) {
			if op != "" && d >= 0 {
				calls.Add(1)
			}
		})
	})
	require.Positive(t, calls.Load())
}
