package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

var approvalCases = []testCase{
	{"PutAndGet", testApprovalPutGet},
	{"UpdateCompareAndSet", testApprovalCAS},
	{"CreateRace", testApprovalCreateRace},
	{"ByAccount", testApprovalByAccount},
	{"Listed", testApprovalListed},
}

func newApproval(now time.Time, account string) *store.ApprovalRequest {
	return &store.ApprovalRequest{
		ID: newID("apr"), Directory: "tenant", AccountID: account, EABKey: "kid-1", Group: "team-a",
		Names: []string{"a.corp.example.com", "b.corp.example.com"}, Rule: "printers", Remote: "192.0.2.7",
		FirstAttempt: now, LastAttempt: now, Attempts: 1, Status: store.ApprovalPending, PendingUntil: now.Add(7 * 24 * time.Hour),
	}
}

func testApprovalPutGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := newApproval(wallNow(), newID("acct"))
	require.NoError(t, s.PutApproval(ctx, r))
	got, err := s.GetApproval(ctx, r.ID)
	require.NoError(t, err)
	requireSameRecord(t, r, got)

	dup := newApproval(wallNow(), "other")
	dup.ID = r.ID
	require.ErrorIs(t, s.PutApproval(ctx, dup), store.ErrConflict)
	got, err = s.GetApproval(ctx, r.ID)
	require.NoError(t, err)
	requireSameRecord(t, r, got, "a refused PutApproval overwrote the request")
	_, err = s.GetApproval(ctx, newID("apr"))
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testApprovalCAS(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	r := newApproval(now, newID("acct"))
	require.NoError(t, s.PutApproval(ctx, r))
	stale := *r

	v := r.Version
	r.Status, r.DecidedBy, r.DecidedAt, r.Reason, r.Pattern = store.ApprovalApproved, "admin", now.Add(1), "ok", "*.corp.example.com"
	require.NoError(t, s.UpdateApproval(ctx, r))
	require.Equal(t, v+1, r.Version)
	got, err := s.GetApproval(ctx, r.ID)
	require.NoError(t, err)
	requireSameRecord(t, r, got)

	// A stale writer (a retry refreshing LastAttempt) cannot undo the
	// decision.
	stale.LastAttempt = now.Add(time.Minute)
	require.ErrorIs(t, s.UpdateApproval(ctx, &stale), store.ErrConflict)
	got, err = s.GetApproval(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, store.ApprovalApproved, got.Status)

	missing := newApproval(now, "x")
	require.ErrorIs(t, s.UpdateApproval(ctx, missing), store.ErrNotFound)
}

func testApprovalCreateRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := newApproval(wallNow(), newID("acct"))
	errs := race(racers, func(int) error { c := *r; return s.PutApproval(ctx, &c) })
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else {
			require.ErrorIs(t, err, store.ErrConflict)
		}
	}
	require.Equal(t, 1, ok, "exactly one replica creates the request")
	got, err := s.AccountApprovals(ctx, r.AccountID, 10)
	require.NoError(t, err)
	require.Len(t, got, 1, "the account's index holds the request once")
}

func testApprovalByAccount(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	acct, other := newID("acct"), newID("acct")
	var ids []string
	for range 3 {
		r := newApproval(now, acct)
		require.NoError(t, s.PutApproval(ctx, r))
		ids = append(ids, r.ID)
	}
	require.NoError(t, s.PutApproval(ctx, newApproval(now, other)))
	got, err := s.AccountApprovals(ctx, acct, 10)
	require.NoError(t, err)
	var gotIDs []string
	for _, r := range got {
		gotIDs = append(gotIDs, r.ID)
		require.Equal(t, acct, r.AccountID)
	}
	require.Equal(t, ids, gotIDs, "the account's requests, oldest first")
	got, err = s.AccountApprovals(ctx, acct, 2)
	require.NoError(t, err)
	require.Len(t, got, 2)
	got, err = s.AccountApprovals(ctx, newID("acct"), 10)
	require.NoError(t, err)
	require.Empty(t, got)
}

func testApprovalListed(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := newApproval(wallNow(), newID("acct")), newApproval(wallNow(), newID("acct"))
	require.NoError(t, s.PutApproval(ctx, a))
	require.NoError(t, s.PutApproval(ctx, b))
	page, err := s.List(ctx, store.KindApproval, "", 10)
	require.NoError(t, err)
	require.Equal(t, []string{a.ID, b.ID}, page.IDs)
	page, err = s.ListNewest(ctx, store.KindApproval, "", 10)
	require.NoError(t, err)
	require.Equal(t, []string{b.ID, a.ID}, page.IDs)
}
