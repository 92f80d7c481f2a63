package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

var validationCases = []testCase{
	{"StartAndGet", testValidationStart},
	{"StartStaleAuthz", testValidationStartStale},
	{"StartMissingAuthz", testValidationStartMissing},
	{"StartRace", testValidationStartRace},
	{"StartReplaces", testValidationStartReplaces},
	{"ClaimNothingDue", testValidationClaimNothing},
	{"ClaimAfterLease", testValidationClaimAfterLease},
	{"ClaimRace", testValidationClaimRace},
	{"ClaimSeveral", testValidationClaimSeveral},
	{"Finish", testValidationFinish},
	{"FinishStaleAuthz", testValidationFinishStale},
	{"FinishAfterTakeover", testValidationFinishTakeover},
	{"FinishIndexesValid", testValidationFinishIndexes},
	{"UpdateAuthzLeavesJob", testValidationUpdateAuthz},
	{"Delete", testValidationDelete},
	{"ReturnsCopies", testValidationCopies},
}

// startValidation creates an order with one authorization and starts the
// validation of its first challenge, leased to owner until now+lease; it
// returns the authorization and the job as stored.
func startValidation(t *testing.T, s store.Store, owner string, now time.Time) (*store.Authorization, *store.Validation) {
	t.Helper()
	_, az := createOrder(t, s, newID("acct"), now)
	v := processing(az, owner, now)
	require.NoError(t, s.StartValidation(t.Context(), az, v))
	return az, v
}

// processing moves az's first challenge to processing and returns its
// validation job, leased to owner until now+lease.
func processing(az *store.Authorization, owner string, now time.Time) *store.Validation {
	az.Challenges[0].Status = store.StatusProcessing
	az.Challenges[0].Started = now
	return &store.Validation{AuthzID: az.ID, ChallengeID: az.Challenges[0].ID,
		KeyAuthorization: az.Challenges[0].Token + "." + newID("thumbprint"), Attempts: 1, Owner: owner, LeaseUntil: now.Add(lease)}
}

// mustGetValidation reads a validation job that must exist.
func mustGetValidation(t *testing.T, s store.Store, authzID string) *store.Validation {
	t.Helper()
	v, err := s.GetValidation(t.Context(), authzID)
	require.NoError(t, err)
	return v
}

// mustGetAuthz reads an authorization that must exist.
func mustGetAuthz(t *testing.T, s store.Store, id string) *store.Authorization {
	t.Helper()
	a, err := s.GetAuthz(t.Context(), id)
	require.NoError(t, err)
	return a
}

// requireNoValidation checks that the authorization has no validation job.
func requireNoValidation(t *testing.T, s store.Store, authzID string) {
	t.Helper()
	_, err := s.GetValidation(t.Context(), authzID)
	require.ErrorIs(t, err, store.ErrNotFound)
}

// requireNoneDue checks that no validation job is due at now.
func requireNoneDue(t *testing.T, s store.Store, now time.Time, msgAndArgs ...any) {
	t.Helper()
	_, err := s.ClaimValidation(t.Context(), newID("worker"), now, lease)
	require.ErrorIs(t, err, store.ErrNoJob, msgAndArgs...)
}

// testValidationStart: the challenge's move to processing and the job are
// stored together.
func testValidationStart(t *testing.T, s store.Store) {
	now := wallNow()
	_, az := createOrder(t, s, newID("acct"), now)
	ver := az.Version
	v := processing(az, "w1", now)
	require.NoError(t, s.StartValidation(t.Context(), az, v))
	require.Equal(t, ver+1, az.Version)
	requireSameRecord(t, az, mustGetAuthz(t, s, az.ID))
	requireSameRecord(t, v, mustGetValidation(t, s, az.ID))
}

// testValidationStartStale: a stale authorization refuses the job.
func testValidationStartStale(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	_, az := createOrder(t, s, newID("acct"), now)
	stale := mustGetAuthz(t, s, az.ID)
	az.Status = store.StatusDeactivated
	require.NoError(t, s.UpdateAuthz(ctx, az))

	ver := stale.Version
	require.ErrorIs(t, s.StartValidation(ctx, stale, processing(stale, "w1", now)), store.ErrConflict)
	require.Equal(t, ver, stale.Version)
	requireSameRecord(t, az, mustGetAuthz(t, s, az.ID))
	requireNoValidation(t, s, az.ID)
	requireNoneDue(t, s, now.Add(2*lease))
}

// testValidationStartMissing: no job for an authorization that does not
// exist.
func testValidationStartMissing(t *testing.T, s store.Store) {
	now := wallNow()
	az := newAuthz(newID("acct"), "missing.example.com", now)
	require.ErrorIs(t, s.StartValidation(t.Context(), az, processing(az, "w1", now)), store.ErrNotFound)
	requireNoValidation(t, s, az.ID)
	requireNoneDue(t, s, now.Add(2*lease))
}

// testValidationStartRace: of racers starting a validation of one
// authorization, one wins, and the job is the winner's.
func testValidationStartRace(t *testing.T, s store.Store) {
	now := wallNow()
	_, az := createOrder(t, s, newID("acct"), now)
	copies := make([]*store.Authorization, racers)
	jobs := make([]*store.Validation, racers)
	for i := range racers {
		copies[i] = mustGetAuthz(t, s, az.ID)
		jobs[i] = processing(copies[i], newID("worker"), now)
	}
	errs := race(racers, func(i int) error { return s.StartValidation(t.Context(), copies[i], jobs[i]) })
	w := requireOneWinner(t, errs, store.ErrConflict)
	requireSameRecord(t, copies[w], mustGetAuthz(t, s, az.ID))
	requireSameRecord(t, jobs[w], mustGetValidation(t, s, az.ID))
}

// testValidationStartReplaces: a second validation of the same
// authorization (another challenge) replaces the first job; only it is
// claimed once its lease ends.
func testValidationStartReplaces(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	az, _ := startValidation(t, s, "w1", now)
	az.Challenges[1].Status = store.StatusProcessing
	second := &store.Validation{AuthzID: az.ID, ChallengeID: az.Challenges[1].ID, KeyAuthorization: "k2",
		Attempts: 1, Owner: "w2", LeaseUntil: now.Add(2 * lease)}
	require.NoError(t, s.StartValidation(ctx, az, second))
	requireSameRecord(t, second, mustGetValidation(t, s, az.ID))

	requireNoneDue(t, s, now.Add(lease+time.Second), "the first job's lease is no longer what counts")
	got, err := s.ClaimValidation(ctx, "w3", now.Add(2*lease+time.Second), lease)
	require.NoError(t, err)
	require.Equal(t, az.Challenges[1].ID, got.ChallengeID)
	require.Equal(t, "k2", got.KeyAuthorization)
	requireNoneDue(t, s, now.Add(2*lease+time.Second), "claimed twice")
}

func testValidationClaimNothing(t *testing.T, s store.Store) {
	now := wallNow()
	requireNoneDue(t, s, now)
	startValidation(t, s, "w1", now)
	requireNoneDue(t, s, now, "claimed a job its starter holds")
	requireNoneDue(t, s, now.Add(lease-time.Second), "claimed before the lease ended")
}

// testValidationClaimAfterLease: once the lease ended another worker
// claims the job: Owner, LeaseUntil and Attempts move; nobody claims it
// again until the new lease ends.
func testValidationClaimAfterLease(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	az, v := startValidation(t, s, "w1", now)

	at := now.Add(lease + time.Second)
	got, err := s.ClaimValidation(ctx, "w2", at, lease)
	require.NoError(t, err)
	want := *v
	want.Owner, want.LeaseUntil, want.Attempts = "w2", at.Add(lease), 2
	requireSameRecord(t, &want, got)
	requireSameRecord(t, &want, mustGetValidation(t, s, az.ID))

	requireNoneDue(t, s, at.Add(lease/2), "claimed while the new lease runs")
	later := at.Add(lease + time.Second)
	got, err = s.ClaimValidation(ctx, "w3", later, 2*lease)
	require.NoError(t, err)
	require.Equal(t, "w3", got.Owner)
	require.Equal(t, 3, got.Attempts)
	require.True(t, got.LeaseUntil.Equal(later.Add(2*lease)))
}

// testValidationClaimRace: of racers claiming one due job, one gets it.
func testValidationClaimRace(t *testing.T, s store.Store) {
	now := wallNow()
	az, _ := startValidation(t, s, "w1", now)
	at := now.Add(lease + time.Second)
	jobs := make([]*store.Validation, racers)
	errs := race(racers, func(i int) error {
		var err error
		jobs[i], err = s.ClaimValidation(t.Context(), newID("worker"), at, lease)
		return err
	})
	w := requireOneWinner(t, errs, store.ErrNoJob)
	require.Equal(t, az.ID, jobs[w].AuthzID)
	require.Equal(t, 2, jobs[w].Attempts)
	requireSameRecord(t, jobs[w], mustGetValidation(t, s, az.ID))
}

// testValidationClaimSeveral: each job whose lease ended is claimed once;
// one whose lease runs is left.
func testValidationClaimSeveral(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	want := map[string]bool{}
	for i := range 3 {
		az, _ := startValidation(t, s, "w1", now.Add(-time.Duration(i)*time.Second))
		want[az.ID] = true
	}
	startValidation(t, s, "w1", now.Add(time.Hour))
	at := now.Add(lease + time.Second)
	got := map[string]bool{}
	for range 3 {
		v, err := s.ClaimValidation(ctx, "w2", at, lease)
		require.NoError(t, err)
		require.False(t, got[v.AuthzID], "job %s claimed twice", v.AuthzID)
		got[v.AuthzID] = true
	}
	require.Equal(t, want, got)
	requireNoneDue(t, s, at)
}

// testValidationFinish: the outcome and the job's removal are stored
// together.
func testValidationFinish(t *testing.T, s store.Store) {
	now := wallNow()
	az, _ := startValidation(t, s, "w1", now)
	ver := az.Version
	az.Status = store.StatusInvalid
	az.Challenges[0].Status = store.StatusInvalid
	az.Challenges[0].Error = &store.Problem{Type: "urn:ietf:params:acme:error:connection", Detail: "refused"}
	require.NoError(t, s.FinishValidation(t.Context(), az))
	require.Equal(t, ver+1, az.Version)
	requireSameRecord(t, az, mustGetAuthz(t, s, az.ID))
	requireNoValidation(t, s, az.ID)
	requireNoneDue(t, s, now.Add(2*lease))
}

// testValidationFinishStale: a stale authorization records nothing and
// leaves the job.
func testValidationFinishStale(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	az, v := startValidation(t, s, "w1", now)
	stale := mustGetAuthz(t, s, az.ID)
	az.Status = store.StatusDeactivated
	require.NoError(t, s.UpdateAuthz(ctx, az))

	stale.Status = store.StatusValid
	stale.Challenges[0].Status = store.StatusValid
	require.ErrorIs(t, s.FinishValidation(ctx, stale), store.ErrConflict)
	requireSameRecord(t, az, mustGetAuthz(t, s, az.ID))
	requireSameRecord(t, v, mustGetValidation(t, s, az.ID))
	missing := newAuthz(newID("acct"), "missing.example.com", now)
	require.ErrorIs(t, s.FinishValidation(ctx, missing), store.ErrNotFound)
}

// testValidationFinishTakeover: the outcome removes the job whoever holds
// it (a worker whose lease ended may still finish first).
func testValidationFinishTakeover(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	az, _ := startValidation(t, s, "w1", now)
	_, err := s.ClaimValidation(ctx, "w2", now.Add(lease+time.Second), lease)
	require.NoError(t, err)
	az.Status = store.StatusValid
	az.Challenges[0].Status = store.StatusValid
	require.NoError(t, s.FinishValidation(ctx, az))
	requireNoValidation(t, s, az.ID)
	requireNoneDue(t, s, now.Add(3*lease))
}

// testValidationFinishIndexes: an authorization made valid by
// FinishValidation is found for reuse, as one made valid by UpdateAuthz.
func testValidationFinishIndexes(t *testing.T, s store.Store) {
	now := wallNow()
	az, _ := startValidation(t, s, "w1", now)
	az.Status = store.StatusValid
	az.Challenges[0].Status = store.StatusValid
	az.Challenges[0].Validated = now
	require.NoError(t, s.FinishValidation(t.Context(), az))
	got, err := s.FindValidAuthz(t.Context(), az.AccountID, az.Identifier, az.Wildcard, now)
	require.NoError(t, err)
	requireSameRecord(t, az, got)
}

// testValidationUpdateAuthz: UpdateAuthz (a deactivation) leaves the job.
func testValidationUpdateAuthz(t *testing.T, s store.Store) {
	now := wallNow()
	az, v := startValidation(t, s, "w1", now)
	az.Status = store.StatusDeactivated
	require.NoError(t, s.UpdateAuthz(t.Context(), az))
	requireSameRecord(t, v, mustGetValidation(t, s, az.ID))
}

// testValidationDelete: a deleted job is gone and not claimable; deleting
// a missing job is not an error.
func testValidationDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	az, _ := startValidation(t, s, "w1", now)
	require.NoError(t, s.DeleteValidation(ctx, az.ID))
	requireNoValidation(t, s, az.ID)
	requireNoneDue(t, s, now.Add(2*lease))
	require.NoError(t, s.DeleteValidation(ctx, az.ID))
	require.NoError(t, s.DeleteValidation(ctx, newID("authz")))
	requireSameRecord(t, az, mustGetAuthz(t, s, az.ID), "the authorization is left as it was")
}

func testValidationCopies(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	az, v := startValidation(t, s, "w1", now)
	want := canonical(v)
	v.Attempts = 99
	requireSameRecord(t, want, mustGetValidation(t, s, az.ID), "store shares memory with the started struct")

	got := mustGetValidation(t, s, az.ID)
	got.Owner = "mutated"
	requireSameRecord(t, want, mustGetValidation(t, s, az.ID), "store shares memory with a returned struct")

	claimed, err := s.ClaimValidation(ctx, "w2", now.Add(lease+time.Second), lease)
	require.NoError(t, err)
	wantClaimed := canonical(claimed)
	claimed.Owner = "mutated"
	requireSameRecord(t, wantClaimed, mustGetValidation(t, s, az.ID), "store shares memory with a claimed job")
}
