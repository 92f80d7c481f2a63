package redis

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

// TestValidationJobsExpire: a validation job expires with its
// authorization; ClaimValidation drops the queue entry it left and claims
// a live job behind it.
func TestValidationJobsExpire(t *testing.T) {
	eachBackend(t, testValidationJobsExpire)
}

func testValidationJobsExpire(t *testing.T, s *Store) {
	shortLived(s, 300*time.Millisecond)
	ctx := context.Background()
	now := time.Now().UTC()
	start := func(exp, leaseUntil time.Time) *store.Authorization {
		o, az := newPending(now, exp)
		require.NoError(t, s.CreateOrder(ctx, o, []*store.Authorization{az}))
		az.Challenges[0].Status = store.StatusProcessing
		require.NoError(t, s.StartValidation(ctx, az, &store.Validation{AuthzID: az.ID, ChallengeID: "c",
			KeyAuthorization: "t.tp", Attempts: 1, Owner: "dead", LeaseUntil: leaseUntil}))
		return az
	}

	orphan := start(now, now.Add(-time.Second))
	left, err := s.c.PTTL(ctx, s.key(kindValidation, orphan.ID)).Result()
	require.NoError(t, err)
	require.Greater(t, left, time.Duration(0), "the job does not expire")
	waitGone(t, s, s.key(kindAuthz, orphan.ID), s.key(kindValidation, orphan.ID))

	live := start(now.Add(time.Hour), now) // its entry sorts after the orphan's
	requireTTL(t, s, s.key(kindValidation, live.ID), time.Hour)
	v, err := s.ClaimValidation(ctx, "worker", now, time.Minute)
	require.NoError(t, err)
	require.Equal(t, live.ID, v.AuthzID)
	require.EqualValues(t, 1, s.c.ZCard(ctx, s.global(keyValidationQueue)).Val(), "the orphan's entry was not dropped")
	_, err = s.ClaimValidation(ctx, "worker", now, time.Minute)
	require.ErrorIs(t, err, store.ErrNoJob)
}
