package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

var jobCases = []testCase{
	{"EnqueueAndGet", testJobEnqueue},
	{"EnqueueTwice", testJobEnqueueTwice},
	{"EnqueueStaleOrder", testJobEnqueueStale},
	{"EnqueueUnchanged", testJobEnqueueUnchanged},
	{"EnqueueRace", testJobEnqueueRace},
	{"ClaimNothingDue", testJobClaimNothing},
	{"ClaimRespectsNotBefore", testJobClaimNotBefore},
	{"ClaimLease", testJobClaimLease},
	{"ClaimRace", testJobClaimRace},
	{"ClaimSeveral", testJobClaimSeveral},
	{"UpdateByOwnerOnly", testJobUpdateOwner},
	{"UpdateExtendsLease", testJobExtendLease},
	{"UpdateReleases", testJobRelease},
	{"UpdateAfterTakeover", testJobTakeover},
	{"Delete", testJobDelete},
	{"ReturnsCopies", testJobCopies},
}

const lease = time.Minute

// testJobEnqueue: the job and the order's move to processing are stored
// together.
func testJobEnqueue(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	o := createOrderIn(t, s, store.StatusReady, now)
	v := o.Version
	o.Status = store.StatusProcessing
	o.CSR = []byte{0x30, 0x82}
	j := &store.Job{OrderID: o.ID, NotBefore: now.Add(123)}
	require.NoError(t, s.EnqueueJob(ctx, j, o))
	require.Equal(t, v+1, o.Version)

	requireSameRecord(t, o, mustGetOrder(t, s, o.ID))
	requireSameRecord(t, j, mustGetJob(t, s, o.ID))
}

// testJobEnqueueTwice: an order has at most one job, even when the second
// enqueue carries the order's current Version.
func testJobEnqueueTwice(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	o, j := processingOrder(t, s, now)

	again := mustGetOrder(t, s, o.ID)
	again.Upstream = "second"
	j2 := &store.Job{OrderID: o.ID, NotBefore: now.Add(time.Hour), UpstreamRef: "second"}
	require.ErrorIs(t, s.EnqueueJob(ctx, j2, again), store.ErrConflict)
	require.Equal(t, o.Version, again.Version)
	requireSameRecord(t, o, mustGetOrder(t, s, o.ID))
	requireSameRecord(t, j, mustGetJob(t, s, o.ID))
}

// testJobEnqueueUnchanged: a job is stored only while the records the
// finalize decided on (store.Unchanged) are as it read them: an
// authorization deactivated, an EAB key revoked, or one gone since refuse
// it, and nothing is written.
func testJobEnqueueUnchanged(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	o, az := createOrder(t, s, newID("acct"), now)
	o.Status = store.StatusReady
	require.NoError(t, s.UpdateOrder(ctx, o))
	authzRead, err := s.GetAuthz(ctx, az.ID)
	require.NoError(t, err)
	key := newEABKey(now)
	require.NoError(t, s.PutEABKey(ctx, key))
	keyRead, err := s.GetEABKey(ctx, key.ID)
	require.NoError(t, err)

	refused := func(why string, unchanged ...store.Unchanged) {
		t.Helper()
		try := *o
		try.Status = store.StatusProcessing
		require.ErrorIs(t, s.EnqueueJob(ctx, &store.Job{OrderID: o.ID, NotBefore: now}, &try, unchanged...), store.ErrConflict, why)
		require.Equal(t, o.Version, try.Version, why)
		_, err := s.GetJob(ctx, o.ID)
		require.ErrorIs(t, err, store.ErrNotFound, why)
		requireSameRecord(t, o, mustGetOrder(t, s, o.ID))
	}
	refused("an EAB key that does not exist", store.AuthzUnchanged(authzRead), store.Unchanged{EABKey: newID("kid"), Version: 1})
	refused("an authorization that does not exist", store.Unchanged{Authz: newID("authz"), Version: 1})

	moved := *keyRead
	moved.RevokedAt = now
	require.NoError(t, s.UpdateEABKey(ctx, &moved))
	refused("the EAB key revoked", store.AuthzUnchanged(authzRead), store.EABKeyUnchanged(keyRead))

	deactivated := *authzRead
	deactivated.Status = store.StatusDeactivated
	require.NoError(t, s.UpdateAuthz(ctx, &deactivated))
	refused("the authorization deactivated", store.AuthzUnchanged(authzRead), store.EABKeyUnchanged(&moved))

	// As read now, both hold: the job is stored.
	o.Status = store.StatusProcessing
	j := &store.Job{OrderID: o.ID, NotBefore: now}
	require.NoError(t, s.EnqueueJob(ctx, j, o, store.AuthzUnchanged(&deactivated), store.EABKeyUnchanged(&moved)))
	requireSameRecord(t, o, mustGetOrder(t, s, o.ID))
	requireSameRecord(t, j, mustGetJob(t, s, o.ID))
}

// testJobEnqueueStale: a stale order refuses the job.
func testJobEnqueueStale(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	o := createOrderIn(t, s, store.StatusReady, now)
	stale := mustGetOrder(t, s, o.ID)
	o.Status = store.StatusInvalid
	require.NoError(t, s.UpdateOrder(ctx, o))

	stale.Status = store.StatusProcessing
	require.ErrorIs(t, s.EnqueueJob(ctx, &store.Job{OrderID: o.ID, NotBefore: now}, stale), store.ErrConflict)
	_, err := s.GetJob(ctx, o.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	requireSameRecord(t, o, mustGetOrder(t, s, o.ID))
}

// testJobEnqueueRace: of racers finalizing one order, one wins.
func testJobEnqueueRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	o := createOrderIn(t, s, store.StatusReady, now)
	orders := make([]*store.Order, racers)
	jobs := make([]*store.Job, racers)
	for i := range racers {
		orders[i] = mustGetOrder(t, s, o.ID)
		orders[i].Status = store.StatusProcessing
		orders[i].CSR = []byte{byte(i)}
		jobs[i] = &store.Job{OrderID: o.ID, NotBefore: now.Add(time.Duration(i))}
	}
	errs := race(racers, func(i int) error { return s.EnqueueJob(ctx, jobs[i], orders[i]) })
	w := requireOneWinner(t, errs, store.ErrConflict)

	requireSameRecord(t, orders[w], mustGetOrder(t, s, o.ID))
	requireSameRecord(t, jobs[w], mustGetJob(t, s, o.ID))
}

func testJobClaimNothing(t *testing.T, s store.Store) {
	_, err := s.ClaimJob(t.Context(), "worker", wallNow(), lease)
	require.ErrorIs(t, err, store.ErrNoJob)
}

// testJobClaimNotBefore: a job is not due before its NotBefore.
func testJobClaimNotBefore(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	o := createOrderIn(t, s, store.StatusReady, now)
	o.Status = store.StatusProcessing
	j := &store.Job{OrderID: o.ID, NotBefore: now.Add(time.Minute)}
	require.NoError(t, s.EnqueueJob(ctx, j, o))

	_, err := s.ClaimJob(ctx, "worker", now, lease)
	require.ErrorIs(t, err, store.ErrNoJob, "claimed before NotBefore")
	got, err := s.ClaimJob(ctx, "worker", now.Add(time.Minute+time.Second), lease)
	require.NoError(t, err)
	require.Equal(t, o.ID, got.OrderID)
}

// testJobClaimLease: a claim sets Owner, LeaseUntil and Attempts; nobody
// else claims the job while the lease runs; after it, another worker does.
func testJobClaimLease(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	o, _ := processingOrder(t, s, now)

	got, err := s.ClaimJob(ctx, "w1", now, lease)
	require.NoError(t, err)
	require.Equal(t, o.ID, got.OrderID)
	require.Equal(t, "w1", got.Owner)
	require.True(t, got.LeaseUntil.Equal(now.Add(lease)), "LeaseUntil %v, want %v", got.LeaseUntil, now.Add(lease))
	require.Equal(t, 1, got.Attempts)
	requireSameRecord(t, got, mustGetJob(t, s, o.ID))

	_, err = s.ClaimJob(ctx, "w2", now.Add(lease/2), lease)
	require.ErrorIs(t, err, store.ErrNoJob, "claimed while the lease runs")

	later := now.Add(lease + time.Second)
	got, err = s.ClaimJob(ctx, "w2", later, lease)
	require.NoError(t, err, "not claimable after the lease ended")
	require.Equal(t, o.ID, got.OrderID)
	require.Equal(t, "w2", got.Owner)
	require.True(t, got.LeaseUntil.Equal(later.Add(lease)))
	require.Equal(t, 2, got.Attempts)
	requireSameRecord(t, got, mustGetJob(t, s, o.ID))
}

// testJobClaimRace: of racers claiming one due job, one gets it.
func testJobClaimRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	o, _ := processingOrder(t, s, now)
	jobs := make([]*store.Job, racers)
	errs := race(racers, func(i int) error {
		var err error
		jobs[i], err = s.ClaimJob(ctx, newID("worker"), now, lease)
		return err
	})
	w := requireOneWinner(t, errs, store.ErrNoJob)
	require.Equal(t, o.ID, jobs[w].OrderID)
	require.Equal(t, 1, jobs[w].Attempts)
	requireSameRecord(t, jobs[w], mustGetJob(t, s, o.ID))
}

// testJobClaimSeveral: each due job is claimed once; a job not yet due is
// left.
func testJobClaimSeveral(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	want := map[string]bool{}
	for i := range 3 {
		o, _ := processingOrder(t, s, now.Add(-time.Duration(i)*time.Second))
		want[o.ID] = true
	}
	future := createOrderIn(t, s, store.StatusReady, now)
	future.Status = store.StatusProcessing
	require.NoError(t, s.EnqueueJob(ctx, &store.Job{OrderID: future.ID, NotBefore: now.Add(time.Hour)}, future))

	got := map[string]bool{}
	for range 3 {
		j, err := s.ClaimJob(ctx, "worker", now, lease)
		require.NoError(t, err)
		require.False(t, got[j.OrderID], "job %s claimed twice", j.OrderID)
		got[j.OrderID] = true
	}
	require.Equal(t, want, got)
	_, err := s.ClaimJob(ctx, "worker", now, lease)
	require.ErrorIs(t, err, store.ErrNoJob)
}

// testJobUpdateOwner: only the lease holder updates a job.
func testJobUpdateOwner(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	o, _ := processingOrder(t, s, now)
	unclaimed, _ := processingOrder(t, s, now.Add(time.Hour)) // not due at now

	j, err := s.ClaimJob(ctx, "w1", now, lease)
	require.NoError(t, err)
	require.Equal(t, o.ID, j.OrderID)

	j.UpstreamRef = "https://ca.example/order/1"
	require.NoError(t, s.UpdateJob(ctx, j, "w1"))
	requireSameRecord(t, j, mustGetJob(t, s, o.ID))

	other := *j
	other.UpstreamRef = "hijack"
	other.Owner = "w2"
	require.ErrorIs(t, s.UpdateJob(ctx, &other, "w2"), store.ErrConflict)
	requireSameRecord(t, j, mustGetJob(t, s, o.ID))

	u := mustGetJob(t, s, unclaimed.ID)
	u.Owner = "w1"
	u.UpstreamRef = "hijack"
	require.ErrorIs(t, s.UpdateJob(ctx, u, "w1"), store.ErrConflict, "updated a job nobody claimed")
	require.Empty(t, mustGetJob(t, s, unclaimed.ID).UpstreamRef)
}

// testJobExtendLease: the owner moves LeaseUntil and others wait for it.
func testJobExtendLease(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	o, _ := processingOrder(t, s, now)
	j, err := s.ClaimJob(ctx, "w1", now, lease)
	require.NoError(t, err)

	j.LeaseUntil = now.Add(5 * lease)
	require.NoError(t, s.UpdateJob(ctx, j, "w1"))
	_, err = s.ClaimJob(ctx, "w2", now.Add(2*lease), lease)
	require.ErrorIs(t, err, store.ErrNoJob, "claimed during an extended lease")
	got, err := s.ClaimJob(ctx, "w2", now.Add(5*lease+time.Second), lease)
	require.NoError(t, err)
	require.Equal(t, o.ID, got.OrderID)
	require.Equal(t, "w2", got.Owner)
}

// testJobRelease: Owner "" ends the lease; a later NotBefore delays the next
// claim, which counts another attempt.
func testJobRelease(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	o, _ := processingOrder(t, s, now)
	j, err := s.ClaimJob(ctx, "w1", now, lease)
	require.NoError(t, err)

	j.Owner = ""
	j.LeaseUntil = time.Time{}
	j.NotBefore = now.Add(10 * lease)
	j.UpstreamRef = "vault-request-7"
	require.NoError(t, s.UpdateJob(ctx, j, "w1"))
	requireSameRecord(t, j, mustGetJob(t, s, o.ID))

	stale := *j
	stale.Owner = "w1"
	require.ErrorIs(t, s.UpdateJob(ctx, &stale, "w1"), store.ErrConflict, "updated after releasing")

	_, err = s.ClaimJob(ctx, "w2", now.Add(5*lease), lease)
	require.ErrorIs(t, err, store.ErrNoJob, "claimed before the released job's NotBefore")
	at := now.Add(10*lease + time.Second)
	got, err := s.ClaimJob(ctx, "w2", at, lease)
	require.NoError(t, err)
	require.Equal(t, "w2", got.Owner)
	require.Equal(t, 2, got.Attempts)
	require.Equal(t, "vault-request-7", got.UpstreamRef)
	require.True(t, got.LeaseUntil.Equal(at.Add(lease)))
}

// testJobTakeover: once another worker has claimed an expired lease, the
// first one can no longer update the job.
func testJobTakeover(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	o, _ := processingOrder(t, s, now)
	j1, err := s.ClaimJob(ctx, "w1", now, lease)
	require.NoError(t, err)
	j2, err := s.ClaimJob(ctx, "w2", now.Add(2*lease), lease)
	require.NoError(t, err)

	j1.UpstreamRef = "late"
	require.ErrorIs(t, s.UpdateJob(ctx, j1, "w1"), store.ErrConflict)
	requireSameRecord(t, j2, mustGetJob(t, s, o.ID))
}

// testJobDelete: a deleted job is gone and not claimable; deleting a missing
// job is not an error.
func testJobDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	o, _ := processingOrder(t, s, now)
	require.NoError(t, s.DeleteJob(ctx, o.ID))
	_, err := s.GetJob(ctx, o.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.ClaimJob(ctx, "worker", now.Add(time.Hour), lease)
	require.ErrorIs(t, err, store.ErrNoJob)
	require.NoError(t, s.DeleteJob(ctx, o.ID))
	require.NoError(t, s.DeleteJob(ctx, newID("order")))

	// A claimed job can be deleted too, and the order can then take a new one.
	o2, _ := processingOrder(t, s, now)
	_, err = s.ClaimJob(ctx, "worker", now, lease)
	require.NoError(t, err)
	require.NoError(t, s.DeleteJob(ctx, o2.ID))
	_, err = s.ClaimJob(ctx, "worker", now.Add(time.Hour), lease)
	require.ErrorIs(t, err, store.ErrNoJob)
	o2.Error = &store.Problem{Type: "urn:ietf:params:acme:error:serverInternal", Detail: "retry"}
	require.NoError(t, s.EnqueueJob(ctx, &store.Job{OrderID: o2.ID, NotBefore: now}, o2))
}

func testJobCopies(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	o, j := processingOrder(t, s, now)
	want := canonical(j)
	j.Attempts = 99
	requireSameRecord(t, want, mustGetJob(t, s, o.ID), "store shares memory with the enqueued struct")

	got := mustGetJob(t, s, o.ID)
	got.Owner = "mutated"
	got.Attempts = 99
	requireSameRecord(t, want, mustGetJob(t, s, o.ID), "store shares memory with a returned struct")

	claimed, err := s.ClaimJob(ctx, "w1", now, lease)
	require.NoError(t, err)
	wantClaimed := canonical(claimed)
	claimed.Owner = "mutated"
	requireSameRecord(t, wantClaimed, mustGetJob(t, s, o.ID), "store shares memory with a claimed job")
}
