package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

// postCases check ReadPOST (the store's part of a signed POST in one
// operation) and a job enqueued already leased (the hand-over of a job to
// the local worker).
var postCases = []testCase{
	{"NonceUsedOnce", testPOSTNonceUsedOnce},
	{"KeyMismatchLeavesNonce", testPOSTKeyMismatch},
	{"NoAccountLeavesNonce", testPOSTNoAccount},
	{"NonceRace", testPOSTNonceRace},
	{"Records", testPOSTRecords},
	{"MissingRecords", testPOSTMissing},
	{"JobEnqueuedLeased", testJobEnqueuedLeased},
}

func storedAccount(t *testing.T, s store.Store) *store.Account {
	t.Helper()
	a := newAccount(wallNow())
	require.NoError(t, s.CreateAccount(t.Context(), a))
	return a
}

// testPOSTNonceUsedOnce: with the account's key thumbprint the nonce is
// used, once, and UseNonce and ReadPOST share the record of uses.
func testPOSTNonceUsedOnce(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := storedAccount(t, s)
	until := wallNow().Add(time.Hour)
	q := &store.POSTRead{AccountID: a.ID, Nonce: newID("nonce"), NonceUntil: until, KeyThumbprint: a.KeyThumbprint}
	r, err := s.ReadPOST(ctx, q)
	require.NoError(t, err)
	requireSameRecord(t, a, r.Account)
	require.True(t, r.NonceChecked)
	require.True(t, r.NonceFresh, "first use")
	r, err = s.ReadPOST(ctx, q)
	require.NoError(t, err)
	require.True(t, r.NonceChecked)
	require.False(t, r.NonceFresh, "used twice")
	ok, err := s.UseNonce(ctx, q.Nonce, until)
	require.NoError(t, err)
	require.False(t, ok, "UseNonce sees ReadPOST's use")

	q.Nonce = newID("nonce")
	ok, err = s.UseNonce(ctx, q.Nonce, until)
	require.NoError(t, err)
	require.True(t, ok)
	r, err = s.ReadPOST(ctx, q)
	require.NoError(t, err)
	require.True(t, r.NonceChecked)
	require.False(t, r.NonceFresh, "ReadPOST sees UseNonce's use")
}

// testPOSTKeyMismatch: another key thumbprint (a key changed since the
// caller looked), or none, reads the account but leaves the nonce unused.
func testPOSTKeyMismatch(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := storedAccount(t, s)
	until := wallNow().Add(time.Hour)
	for _, tp := range []string{newID("tp"), ""} {
		n := newID("nonce")
		r, err := s.ReadPOST(ctx, &store.POSTRead{AccountID: a.ID, Nonce: n, NonceUntil: until, KeyThumbprint: tp})
		require.NoError(t, err)
		requireSameRecord(t, a, r.Account)
		require.False(t, r.NonceChecked)
		require.False(t, r.NonceFresh)
		ok, err := s.UseNonce(ctx, n, until)
		require.NoError(t, err)
		require.True(t, ok, "the nonce was left unused")
	}
}

// testPOSTNoAccount: no account, no nonce used.
func testPOSTNoAccount(t *testing.T, s store.Store) {
	ctx := t.Context()
	until := wallNow().Add(time.Hour)
	n := newID("nonce")
	r, err := s.ReadPOST(ctx, &store.POSTRead{AccountID: newID("acct"), Nonce: n, NonceUntil: until, KeyThumbprint: newID("tp")})
	require.NoError(t, err)
	require.Nil(t, r.Account)
	require.False(t, r.NonceChecked)
	ok, err := s.UseNonce(ctx, n, until)
	require.NoError(t, err)
	require.True(t, ok)
}

// testPOSTNonceRace: of racers using one nonce at once, half through
// ReadPOST and half through UseNonce, exactly one wins.
func testPOSTNonceRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := storedAccount(t, s)
	until := wallNow().Add(time.Hour)
	for range 5 {
		n := newID("nonce")
		got := make([]bool, racers)
		errs := race(racers, func(i int) error {
			if i%2 == 0 {
				ok, err := s.UseNonce(ctx, n, until)
				got[i] = ok
				return err
			}
			r, err := s.ReadPOST(ctx, &store.POSTRead{AccountID: a.ID, Nonce: n, NonceUntil: until, KeyThumbprint: a.KeyThumbprint})
			if err == nil {
				got[i] = r.NonceFresh
			}
			return err
		})
		wins := 0
		for i := range racers {
			require.NoError(t, errs[i])
			if got[i] {
				wins++
			}
		}
		require.Equal(t, 1, wins, "exactly one first use")
	}
}

// testPOSTRecords: the order with its authorizations (new and reused, in
// AuthzIDs order), an authorization and a certificate read as the Get
// methods read them.
func testPOSTRecords(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	a := storedAccount(t, s)
	_, reused := createOrder(t, s, a.ID, now)
	az := newAuthz(a.ID, newID("host")+".example.com", now)
	o := newOrder(a.ID, now, az.ID, reused.ID)
	require.NoError(t, s.CreateOrder(ctx, o, []*store.Authorization{az}))

	r, err := s.ReadPOST(ctx, &store.POSTRead{AccountID: a.ID, OrderID: o.ID, OrderAuthzs: true})
	require.NoError(t, err)
	requireSameRecord(t, a, r.Account)
	require.False(t, r.NonceChecked, "no nonce given")
	requireSameRecord(t, mustGetOrder(t, s, o.ID), r.Order)
	require.Len(t, r.Authzs, 2)
	requireSameRecord(t, mustGetAuthz(t, s, az.ID), r.Authzs[0])
	requireSameRecord(t, mustGetAuthz(t, s, reused.ID), r.Authzs[1])
	require.Nil(t, r.Authz)
	require.Nil(t, r.Certificate)

	r, err = s.ReadPOST(ctx, &store.POSTRead{AccountID: a.ID, OrderID: o.ID})
	require.NoError(t, err)
	requireSameRecord(t, mustGetOrder(t, s, o.ID), r.Order)
	require.Empty(t, r.Authzs, "authorizations only when asked for")

	r, err = s.ReadPOST(ctx, &store.POSTRead{AccountID: a.ID, AuthzID: az.ID})
	require.NoError(t, err)
	requireSameRecord(t, mustGetAuthz(t, s, az.ID), r.Authz)
	require.Nil(t, r.Order)

	po, _ := processingOrder(t, s, now)
	c, next := issued(po, now)
	require.NoError(t, s.PutCertificate(ctx, c, next))
	r, err = s.ReadPOST(ctx, &store.POSTRead{AccountID: a.ID, CertificateID: c.ID})
	require.NoError(t, err)
	got, err := s.GetCertificate(ctx, c.ID)
	require.NoError(t, err)
	requireSameRecord(t, got, r.Certificate)
}

// testPOSTMissing: records that do not exist are nil, not errors; an
// order's missing authorization is left out.
func testPOSTMissing(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	r, err := s.ReadPOST(ctx, &store.POSTRead{AccountID: newID("acct"), OrderID: newID("order"), OrderAuthzs: true})
	require.NoError(t, err)
	require.Nil(t, r.Account)
	require.Nil(t, r.Order)
	require.Empty(t, r.Authzs)
	r, err = s.ReadPOST(ctx, &store.POSTRead{AccountID: newID("acct"), AuthzID: newID("authz")})
	require.NoError(t, err)
	require.Nil(t, r.Authz)
	r, err = s.ReadPOST(ctx, &store.POSTRead{AccountID: newID("acct"), CertificateID: newID("cert")})
	require.NoError(t, err)
	require.Nil(t, r.Certificate)

	a := storedAccount(t, s)
	o := newOrder(a.ID, now)
	o.AuthzIDs = nil
	require.NoError(t, s.CreateOrder(ctx, o, nil))
	r, err = s.ReadPOST(ctx, &store.POSTRead{AccountID: a.ID, OrderID: o.ID, OrderAuthzs: true})
	require.NoError(t, err)
	require.NotNil(t, r.Order)
	require.Empty(t, r.Authzs, "an order without authorizations")
}

// testJobEnqueuedLeased: a job enqueued with an owner and a lease is held
// by that owner from the start: nobody claims it before the lease ends,
// its owner may update it, and it is claimable once the lease ended.
func testJobEnqueuedLeased(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	o := createOrderIn(t, s, store.StatusReady, now)
	o.Status = store.StatusProcessing
	j := &store.Job{OrderID: o.ID, NotBefore: now, Attempts: 1, Owner: "w1", LeaseUntil: now.Add(lease)}
	require.NoError(t, s.EnqueueJob(ctx, j, o))
	requireSameRecord(t, j, mustGetJob(t, s, o.ID))

	_, err := s.ClaimJob(ctx, "w2", now.Add(lease/2), lease)
	require.ErrorIs(t, err, store.ErrNoJob, "claimed while the lease it was enqueued with runs")
	j.UpstreamRef = "ref"
	require.NoError(t, s.UpdateJob(ctx, j, "w1"), "its owner holds it")
	require.ErrorIs(t, s.UpdateJob(ctx, &store.Job{OrderID: o.ID, NotBefore: now}, "w2"), store.ErrConflict)

	got, err := s.ClaimJob(ctx, "w2", now.Add(lease+time.Second), lease)
	require.NoError(t, err, "claimable once the lease ended")
	require.Equal(t, o.ID, got.OrderID)
	require.Equal(t, 2, got.Attempts)
	require.Equal(t, "ref", got.UpstreamRef)
}
