package bolt

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/acmebridge/acmebridge/store"
)

// TestRatesSurviveReopen: rate-limit buckets are in the file, so a restart
// does not hand a client a fresh allowance.
func TestRatesSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acmebridge.db")
	lim := store.Limit{Count: 2, Period: time.Hour}
	now := time.Now()
	s, err := Open(Options{Path: path})
	require.NoError(t, err)
	d, err := s.SpendRates(t.Context(), []store.RateSpend{{Key: "k", Cost: 2, Limit: lim}}, now)
	require.NoError(t, err)
	require.True(t, d[0].Allowed)
	require.NoError(t, s.Close())

	s, err = Open(Options{Path: path})
	require.NoError(t, err)
	defer s.Close()
	d, err = s.SpendRates(t.Context(), []store.RateSpend{{Key: "k", Cost: 1, Limit: lim}}, now)
	require.NoError(t, err)
	require.False(t, d[0].Allowed, "the spent bucket came back from the file")
}

// TestRatesSwept: buckets that are full again are dropped from the file
// (on the spend that fills them, and by the periodic sweep), so the file
// holds only buckets in debt.
func TestRatesSwept(t *testing.T) {
	s, err := Open(Options{Path: filepath.Join(t.TempDir(), "acmebridge.db")})
	require.NoError(t, err)
	defer s.Close()
	lim := store.Limit{Count: 1, Period: time.Minute}
	now := time.Now()
	for i := range 100 {
		_, err := s.SpendRates(t.Context(), []store.RateSpend{{Key: "k" + strconv.Itoa(i), Cost: 1, Limit: lim}}, now)
		require.NoError(t, err)
	}
	require.Equal(t, 100, s.rateKeys(t))
	d, err := s.SpendRates(t.Context(), []store.RateSpend{{Key: "k0", Cost: -1, Limit: lim}}, now)
	require.NoError(t, err)
	require.EqualValues(t, 1, d[0].Remaining)
	require.Equal(t, 99, s.rateKeys(t), "a refund that fills the bucket drops it")

	later := now.Add(2 * time.Minute)
	for s.rateSpends.Load()%sweepEvery != sweepEvery-1 {
		s.rateSpends.Add(1)
	}
	_, err = s.SpendRates(t.Context(), []store.RateSpend{{Key: "fresh", Cost: 1, Limit: lim}}, later)
	require.NoError(t, err)
	require.Equal(t, 1, s.rateKeys(t), "the sweep dropped the 99 full buckets")
}

func (s *Store) rateKeys(t *testing.T) int {
	n := 0
	require.NoError(t, s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketRates).Stats().KeyN
		return nil
	}))
	return n
}
