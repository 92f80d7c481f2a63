package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

var retentionCases = []testCase{
	{"RemovesDueKeepsNotDue", testSweepDue},
	{"CertificatesAfterNotAfter", testSweepCerts},
	{"ReusedAuthzKeptWhileOrderNamesIt", testSweepReusedAuthz},
	{"LiveOrdersKept", testSweepLive},
	{"BoundedBatch", testSweepBatch},
	{"ZeroKeepsForever", testSweepZero},
}

// retention is the suite's retention: short, so the sweeps' times stay
// near the fixtures'.
var retention = store.Retention{Orders: 24 * time.Hour, Certificates: 48 * time.Hour}

// sweepAll sweeps at now until a batch comes back short, and returns the
// sum.
func sweepAll(t *testing.T, s store.Store, now time.Time, r store.Retention) store.Swept {
	t.Helper()
	var total store.Swept
	for range 1000 {
		got, err := s.Sweep(t.Context(), now, r, 100)
		require.NoError(t, err)
		total = total.Add(got)
		if got.Examined < 100 {
			return total
		}
	}
	t.Fatal("sweep never came back short")
	return total
}

// requireGone: the order, or authorization, is gone from every getter and
// listing.
func requireOrderGone(t *testing.T, s store.Store, o *store.Order) {
	t.Helper()
	ctx := t.Context()
	_, err := s.GetOrder(ctx, o.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "order %s", o.ID)
	page, err := s.ListOrders(ctx, o.AccountID, "", 100)
	require.NoError(t, err)
	require.NotContains(t, page.IDs, o.ID, "account's listing")
	require.NotContains(t, listAll(t, s, store.KindOrder), o.ID, "listing of all orders")
}

// listAll lists every ID of kind.
func listAll(t *testing.T, s store.Store, kind store.Kind) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for {
		page, err := s.List(t.Context(), kind, cursor, 50)
		require.NoError(t, err)
		ids = append(ids, page.IDs...)
		if page.Next == "" {
			return ids
		}
		cursor = page.Next
	}
}

// validOrder stores an order with a valid authorization, valid with its
// certificate: what an issuance leaves.
func validOrder(t *testing.T, s store.Store, now time.Time) (*store.Order, *store.Authorization, *store.Certificate) {
	t.Helper()
	ctx := t.Context()
	o, az := createOrder(t, s, newID("acct"), now)
	az.Status = store.StatusValid
	az.Challenges[0].Status = store.StatusValid
	az.Challenges[0].Validated = now
	require.NoError(t, s.UpdateAuthz(ctx, az))
	o.Status = store.StatusProcessing
	require.NoError(t, s.EnqueueJob(ctx, &store.Job{OrderID: o.ID, NotBefore: now}, o))
	c, next := issued(o, now)
	require.NoError(t, s.PutCertificate(ctx, c, next))
	return next, az, c
}

// testSweepDue: an order and its authorization are removed once retention
// passed after their Expires, with their index entries (listings, the
// reuse index), not a moment before; the certificate stays.
func testSweepDue(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	o, az, c := validOrder(t, s, now)
	invalid := createOrderIn(t, s, store.StatusInvalid, now)
	due := o.Expires.Add(retention.Orders)

	got := sweepAll(t, s, due.Add(-time.Second), retention)
	require.Zero(t, got.Removed(), "nothing is due a second early")
	mustGetOrder(t, s, o.ID)
	mustGetAuthz(t, s, az.ID)
	_, err := s.FindValidAuthz(ctx, az.AccountID, az.Identifier, false, now)
	require.NoError(t, err, "the authorization is still found for reuse")

	got = sweepAll(t, s, due, retention)
	require.Equal(t, 2, got.Orders, "both orders removed: %+v", got)
	require.Equal(t, 2, got.Authorizations, "both authorizations removed: %+v", got)
	require.Zero(t, got.Certificates)
	requireOrderGone(t, s, o)
	requireOrderGone(t, s, invalid)
	_, err = s.GetAuthz(ctx, az.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.FindValidAuthz(ctx, az.AccountID, az.Identifier, false, now)
	require.ErrorIs(t, err, store.ErrNotFound, "a removed authorization leaves the reuse index")

	gotCert, err := s.GetCertificateBySerial(ctx, c.Serial)
	require.NoError(t, err, "the certificate outlives its order")
	require.Equal(t, c.ID, gotCert.ID)
	require.Zero(t, sweepAll(t, s, due, retention).Removed(), "a second sweep finds nothing")
}

// testSweepCerts: certificates, revoked ones too, are removed retention
// after NotAfter, with their serial, listing and expiry entries.
func testSweepCerts(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	_, _, c := validOrder(t, s, now)
	_, _, revoked := validOrder(t, s, now)
	revoked.RevokedAt, revoked.RevocationReason = now, 1
	require.NoError(t, s.UpdateCertificate(ctx, revoked))
	due := c.NotAfter.Add(retention.Certificates)

	require.Zero(t, sweepAll(t, s, due.Add(-time.Second), retention).Certificates)
	page, err := s.ListExpiring(ctx, due, "", 10)
	require.NoError(t, err)
	require.Equal(t, []string{c.ID}, page.IDs)

	got := sweepAll(t, s, due, retention)
	require.Equal(t, 2, got.Certificates, "%+v", got)
	for _, x := range []*store.Certificate{c, revoked} {
		_, err := s.GetCertificate(ctx, x.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = s.GetCertificateBySerial(ctx, x.Serial)
		require.ErrorIs(t, err, store.ErrNotFound, "serial index")
		require.NotContains(t, listAll(t, s, store.KindCertificate), x.ID)
	}
	page, err = s.ListExpiring(ctx, due, "", 10)
	require.NoError(t, err)
	require.Empty(t, page.IDs, "expiry index")
}

// testSweepReusedAuthz: an authorization reused by a later order stays
// until that order is removed, though its own Expires passed long before.
func testSweepReusedAuthz(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	first, az, _ := validOrder(t, s, now)
	later := now.Add(6 * 24 * time.Hour)
	second := newOrder(az.AccountID, later, az.ID)
	second.Identifiers = []store.Identifier{az.Identifier}
	require.NoError(t, s.CreateOrder(ctx, second, nil))
	require.True(t, second.Expires.After(az.Expires))

	got := sweepAll(t, s, az.Expires.Add(retention.Orders), retention)
	require.Equal(t, 1, got.Orders, "%+v", got)
	require.Zero(t, got.Authorizations, "the second order still names the authorization")
	requireOrderGone(t, s, first)
	mustGetOrder(t, s, second.ID)
	mustGetAuthz(t, s, az.ID)

	due := second.Expires.Add(retention.Orders)
	require.Zero(t, sweepAll(t, s, due.Add(-time.Second), retention).Removed())
	mustGetAuthz(t, s, az.ID)
	got = sweepAll(t, s, due, retention)
	require.Equal(t, 1, got.Orders, "%+v", got)
	require.Equal(t, 1, got.Authorizations, "%+v", got)
	_, err := s.GetAuthz(ctx, az.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
}

// testSweepLive: an order in processing with its job, and one whose
// authorization has a validation job, are kept (and their authorizations
// with them) however old; once they ended they go.
func testSweepLive(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	proc, job := processingOrder(t, s, now)
	vaz, _ := startValidation(t, s, "owner", now)
	far := now.Add(365 * 24 * time.Hour)

	got := sweepAll(t, s, far, retention)
	require.Zero(t, got.Removed(), "%+v", got)
	require.Positive(t, got.Examined)
	mustGetOrder(t, s, proc.ID)
	mustGetJob(t, s, proc.ID)
	for _, id := range proc.AuthzIDs {
		mustGetAuthz(t, s, id)
	}
	mustGetAuthz(t, s, vaz.ID)
	require.Zero(t, sweepAll(t, s, far, retention).Examined, "deferred entries are not looked at again at once")

	// The job ends without a certificate, the validation is recorded.
	require.NoError(t, s.DeleteJob(ctx, job.OrderID))
	proc.Status = store.StatusInvalid
	require.NoError(t, s.UpdateOrder(ctx, proc))
	vaz.Status = store.StatusInvalid
	require.NoError(t, s.FinishValidation(ctx, vaz))
	got = sweepAll(t, s, far.Add(store.SweepRetry), retention)
	require.Equal(t, 2, got.Orders, "%+v", got)
	require.Equal(t, 2, got.Authorizations, "%+v", got)
	requireOrderGone(t, s, proc)
}

// testSweepBatch: a sweep looks at no more than its limit.
func testSweepBatch(t *testing.T, s store.Store) {
	now := wallNow()
	for range 5 {
		createOrderIn(t, s, store.StatusInvalid, now)
	}
	due := now.Add(7*24*time.Hour + retention.Orders)
	got, err := s.Sweep(t.Context(), due, retention, 3)
	require.NoError(t, err)
	require.Equal(t, store.Swept{Orders: 3, Examined: 3}, got)
	got, err = s.Sweep(t.Context(), due, retention, 3)
	require.NoError(t, err)
	require.Equal(t, 3, got.Examined, "%+v", got)
	require.Equal(t, 5, got.Orders+3, "%+v", got)
	rest := sweepAll(t, s, due, retention)
	require.Equal(t, 5, rest.Authorizations+got.Authorizations, "%+v %+v", got, rest)
	require.Empty(t, listAll(t, s, store.KindOrder))
	_, err = s.Sweep(t.Context(), due, retention, 0)
	require.Error(t, err, "limit 0")
}

// testSweepZero: a zero retention keeps that kind for good.
func testSweepZero(t *testing.T, s store.Store) {
	now := wallNow()
	o, az, c := validOrder(t, s, now)
	far := now.Add(10 * 365 * 24 * time.Hour)
	require.Zero(t, sweepAll(t, s, far, store.Retention{}).Removed())
	got := sweepAll(t, s, far, store.Retention{Certificates: time.Hour})
	require.Equal(t, store.Swept{Certificates: 1, Examined: 1}, got)
	mustGetOrder(t, s, o.ID)
	mustGetAuthz(t, s, az.ID)
	_, err := s.GetCertificate(t.Context(), c.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
}
