package bolt

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// countChallengeTokens counts the entries of both challenge-token buckets.
func countChallengeTokens(t *testing.T, s *Store) (tokens, index int) {
	t.Helper()
	require.NoError(t, s.db.View(func(tx *bolt.Tx) error {
		tokens = tx.Bucket(bucketChallengeTokens).Stats().KeyN
		index = tx.Bucket(bucketChallengeTokenExpiry).Stats().KeyN
		return nil
	}))
	return tokens, index
}

// TestChallengeTokensSwept: expired tokens leave the file at the next
// PutChallengeToken, unexpired ones stay, and a token stored again keeps
// one index entry (the store's size is bounded by the tokens within one
// ttl, not by every token ever presented).
func TestChallengeTokensSwept(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := context.Background()
	for i := range 20 {
		require.NoError(t, s.PutChallengeToken(ctx, fmt.Sprintf("short-%d", i), "k", 200*time.Millisecond))
	}
	require.NoError(t, s.PutChallengeToken(ctx, "long", "k", time.Minute))
	require.NoError(t, s.PutChallengeToken(ctx, "long", "k2", time.Hour))
	tokens, index := countChallengeTokens(t, s)
	require.Equal(t, 21, tokens)
	require.Equal(t, 21, index, "a replaced token keeps one index entry")

	time.Sleep(400 * time.Millisecond)
	require.NoError(t, s.PutChallengeToken(ctx, "new", "k", time.Minute))
	tokens, index = countChallengeTokens(t, s)
	require.Equal(t, 2, tokens, "the expired tokens were swept")
	require.Equal(t, 2, index)
	got, err := s.GetChallengeToken(ctx, "long")
	require.NoError(t, err)
	require.Equal(t, "k2", got)

	require.NoError(t, s.DeleteChallengeToken(ctx, "long"))
	tokens, index = countChallengeTokens(t, s)
	require.Equal(t, 1, tokens)
	require.Equal(t, 1, index, "deleting a token drops its index entry")
}
