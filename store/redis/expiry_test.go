package redis

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

// eachBackend runs fn on a store on the plain server and on one on the
// Cluster.
func eachBackend(t *testing.T, fn func(t *testing.T, s *Store)) {
	t.Run("Single", func(t *testing.T) { fn(t, openSingle(t)) })
	t.Run("Cluster", func(t *testing.T) {
		s := openOpts(t, Options{Addrs: requireCluster(t)})
		t.Cleanup(func() { _ = s.Close() })
		fn(t, s)
	})
}

// noTTL is what PTTL answers for a key that does not expire.
const noTTL = time.Duration(-1)

// requireTTL checks that key expires in about want.
func requireTTL(t *testing.T, s *Store, key string, want time.Duration) {
	t.Helper()
	got, err := s.c.PTTL(context.Background(), key).Result()
	require.NoError(t, err)
	require.Greater(t, got, time.Duration(0), "%s does not expire (PTTL %v)", key, got)
	require.InDelta(t, float64(want), float64(got), float64(time.Minute), "%s: TTL %v, want about %v", key, got, want)
}

// requirePermanent checks that key exists and does not expire.
func requirePermanent(t *testing.T, s *Store, key string) {
	t.Helper()
	got, err := s.c.PTTL(context.Background(), key).Result()
	require.NoError(t, err)
	require.Equal(t, noTTL, got, "%s: PTTL %v, want no TTL", key)
}

// newPending returns a pending order with one new authorization, both
// expiring at exp, unstored.
func newPending(now, exp time.Time) (*store.Order, *store.Authorization) {
	acct := "acct-" + freshPrefix()
	az := &store.Authorization{ID: "az-" + freshPrefix(), AccountID: acct, Status: store.StatusPending,
		Identifier: store.Identifier{Type: "dns", Value: "a.example.com"}, Expires: exp,
		Challenges: []store.Challenge{{ID: "c", Type: "http-01", Status: store.StatusPending, Token: "t"}}}
	o := &store.Order{ID: "order-" + freshPrefix(), AccountID: acct, Status: store.StatusPending,
		Identifiers: []store.Identifier{az.Identifier}, AuthzIDs: []string{az.ID}, Expires: exp, CreatedAt: now}
	return o, az
}

// TestTTLs: nonces expire; pending orders and authorizations expire at
// Expires plus the grace period, refreshed on update; a valid order and its
// authorizations, and certificates, are kept.
func TestTTLs(t *testing.T) {
	eachBackend(t, testTTLs)
}

func testTTLs(t *testing.T, s *Store) {
	ctx := context.Background()
	now := time.Now().UTC()

	// A used nonce is remembered until it expires, then forgotten.
	ok, err := s.UseNonce(ctx, "n1", now.Add(time.Hour))
	require.NoError(t, err)
	require.True(t, ok)
	requireTTL(t, s, s.key(kindNonce, "n1"), time.Hour)

	week := 7 * 24 * time.Hour
	o, az := newPending(now, now.Add(week))
	require.NoError(t, s.CreateOrder(ctx, o, []*store.Authorization{az}))
	requireTTL(t, s, s.key(kindOrder, o.ID), 2*week)
	requireTTL(t, s, s.key(kindAuthz, az.ID), 2*week)
	_, err = s.c.ZScore(ctx, s.global(keyExpiring), expiringMember(o)).Result()
	require.NoError(t, err, "pending order not in the expiring set")

	// Updates refresh the TTL from Expires.
	az.Status = store.StatusValid
	az.Expires = now.Add(30 * 24 * time.Hour)
	require.NoError(t, s.UpdateAuthz(ctx, az))
	requireTTL(t, s, s.key(kindAuthz, az.ID), 30*24*time.Hour+week)
	o.Status = store.StatusReady
	require.NoError(t, s.UpdateOrder(ctx, o))
	requireTTL(t, s, s.key(kindOrder, o.ID), 2*week)

	// Valid: the order and its authorizations are kept, and stay kept.
	o.Status = store.StatusValid
	require.NoError(t, s.UpdateOrder(ctx, o))
	requirePermanent(t, s, s.key(kindOrder, o.ID))
	requirePermanent(t, s, s.key(kindAuthz, az.ID))
	_, err = s.c.ZScore(ctx, s.global(keyExpiring), expiringMember(o)).Result()
	require.True(t, isNil(err), "valid order still in the expiring set: %v", err)
	az.Status = store.StatusDeactivated
	require.NoError(t, s.UpdateAuthz(ctx, az))
	requirePermanent(t, s, s.key(kindAuthz, az.ID))

	// The same through PutCertificate, the worker's way to valid.
	o2, az2 := newPending(now, now.Add(week))
	require.NoError(t, s.CreateOrder(ctx, o2, []*store.Authorization{az2}))
	o2.Status = store.StatusProcessing
	require.NoError(t, s.EnqueueJob(ctx, &store.Job{OrderID: o2.ID, NotBefore: now}, o2))
	requireTTL(t, s, s.key(kindOrder, o2.ID), 2*week)
	c := &store.Certificate{ID: "cert-" + freshPrefix(), OrderID: o2.ID, Serial: "0b" + freshPrefix(), IssuedAt: now}
	o2.Status, o2.CertificateID = store.StatusValid, c.ID
	require.NoError(t, s.PutCertificate(ctx, c, o2))
	for _, key := range []string{s.key(kindOrder, o2.ID), s.key(kindAuthz, az2.ID), s.key(kindCert, c.ID), s.key(kindSerial, c.Serial)} {
		requirePermanent(t, s, key)
	}

	// An invalid order expires; one stored past its grace gets the minimum.
	o3, az3 := newPending(now, now.Add(-30*24*time.Hour))
	require.NoError(t, s.CreateOrder(ctx, o3, []*store.Authorization{az3}))
	requireTTL(t, s, s.key(kindOrder, o3.ID), minRecordTTL)
	requireTTL(t, s, s.key(kindAuthz, az3.ID), minRecordTTL)
	o3.Status = store.StatusInvalid
	require.NoError(t, s.UpdateOrder(ctx, o3))
	requireTTL(t, s, s.key(kindOrder, o3.ID), minRecordTTL)

	// Accounts and EAB keys do not expire.
	k := &store.EABKey{ID: "kid-" + freshPrefix(), CreatedAt: now}
	require.NoError(t, s.PutEABKey(ctx, k))
	a := &store.Account{ID: "acct-" + freshPrefix(), KeyThumbprint: freshPrefix(), EABKeyID: k.ID, CreatedAt: now}
	require.NoError(t, s.CreateAccount(ctx, a))
	for _, key := range []string{s.key(kindEAB, k.ID), s.key(kindAccount, a.ID), s.key(kindAccountKey, a.KeyThumbprint)} {
		requirePermanent(t, s, key)
	}
}

// shortLived makes s store expiring orders and authorizations for ttl past
// their Expires (at least ttl).
func shortLived(s *Store, ttl time.Duration) {
	s.grace, s.minTTL = 0, ttl
}

// waitGone waits until none of keys exists.
func waitGone(t *testing.T, s *Store, keys ...string) {
	t.Helper()
	require.Eventually(t, func() bool {
		n, err := s.c.Exists(context.Background(), keys...).Result()
		return err == nil && n == 0
	}, 10*time.Second, 20*time.Millisecond, "keys did not expire: %v", keys)
}

// TestExpiredOrdersLeaveIndexes: when orders expire, their listing entries
// and expiring-set members go too: skipped and dropped by ListOrders, swept
// by later CreateOrders.
func TestExpiredOrdersLeaveIndexes(t *testing.T) {
	eachBackend(t, testExpiredOrdersLeaveIndexes)
}

func testExpiredOrdersLeaveIndexes(t *testing.T, s *Store) {
	shortLived(s, 300*time.Millisecond)
	ctx := context.Background()
	now := time.Now().UTC()

	short1, az1 := newPending(now, now)
	long, azLong := newPending(now, now.Add(time.Hour))
	long.AccountID, azLong.AccountID = short1.AccountID, short1.AccountID
	short2, az2 := newPending(now, now)
	for _, o := range []struct {
		o  *store.Order
		az *store.Authorization
	}{{short1, az1}, {long, azLong}, {short2, az2}} {
		require.NoError(t, s.CreateOrder(ctx, o.o, []*store.Authorization{o.az}))
	}
	list1, list2 := s.key(kindOrderList, short1.AccountID), s.key(kindOrderList, short2.AccountID)
	require.EqualValues(t, 2, s.c.ZCard(ctx, list1).Val())
	require.EqualValues(t, 3, s.c.ZCard(ctx, s.global(keyExpiring)).Val())

	waitGone(t, s, s.key(kindOrder, short1.ID), s.key(kindAuthz, az1.ID), s.key(kindOrder, short2.ID))

	// Listing skips the expired order and drops its entry.
	page, err := s.ListOrders(ctx, short1.AccountID, "", 10)
	require.NoError(t, err)
	require.Equal(t, []string{long.ID}, page.IDs)
	require.Empty(t, page.Next)
	require.EqualValues(t, 1, s.c.ZCard(ctx, list1).Val())

	// The next CreateOrder sweeps the other account's listing, which nobody
	// reads, and the expiring set.
	require.EqualValues(t, 1, s.c.Exists(ctx, list2).Val())
	require.Eventually(t, func() bool {
		o, az := newPending(time.Now(), time.Now().Add(time.Hour))
		if err := s.CreateOrder(ctx, o, []*store.Authorization{az}); err != nil {
			t.Errorf("CreateOrder: %v", err)
			return true
		}
		return s.c.Exists(ctx, list2).Val() == 0
	}, 5*time.Second, 50*time.Millisecond, "expired order not swept from its listing")
	members, err := s.c.ZRange(ctx, s.global(keyExpiring), 0, -1).Result()
	require.NoError(t, err)
	require.NotContains(t, members, expiringMember(short1))
	require.NotContains(t, members, expiringMember(short2))
	require.Contains(t, members, expiringMember(long))
	// The sweep took them out of the listing of all orders too, which
	// nobody listed.
	all, err := s.c.ZRange(ctx, s.listKey(store.KindOrder), 0, -1).Result()
	require.NoError(t, err)
	require.NotContains(t, all, short1.ID)
	require.NotContains(t, all, short2.ID)
	require.Contains(t, all, long.ID)
}

// TestListSkipsExpiredOrders: List of orders leaves out orders that have
// expired, drops their entries, and pages across them; the other listings
// keep what does not expire.
func TestListSkipsExpiredOrders(t *testing.T) {
	eachBackend(t, testListSkipsExpiredOrders)
}

func testListSkipsExpiredOrders(t *testing.T, s *Store) {
	shortLived(s, 300*time.Millisecond)
	ctx := context.Background()
	now := time.Now().UTC()
	var orders []*store.Order
	for _, exp := range []time.Time{now.Add(time.Hour), now, now, now.Add(time.Hour), now} {
		o, az := newPending(now, exp)
		require.NoError(t, s.CreateOrder(ctx, o, []*store.Authorization{az}))
		orders = append(orders, o)
	}
	c := &store.Certificate{ID: "cert-" + freshPrefix(), OrderID: orders[0].ID, Serial: "0d" + freshPrefix(),
		IssuedAt: now, NotAfter: now.Add(time.Hour)}
	next := *orders[0]
	next.Status, next.CertificateID = store.StatusValid, c.ID
	require.NoError(t, s.PutCertificate(ctx, c, &next))
	all := s.listKey(store.KindOrder)
	require.EqualValues(t, 5, s.c.ZCard(ctx, all).Val())
	waitGone(t, s, s.key(kindOrder, orders[1].ID), s.key(kindOrder, orders[2].ID), s.key(kindOrder, orders[4].ID))

	newest, err := s.ListNewest(ctx, store.KindOrder, "", 1)
	require.NoError(t, err)
	require.Equal(t, []string{orders[3].ID}, newest.IDs, "newest first skips the expired newest")
	newest, err = s.ListNewest(ctx, store.KindOrder, newest.Next, 5)
	require.NoError(t, err)
	require.Equal(t, store.Page{IDs: []string{orders[0].ID}}, newest)
	require.EqualValues(t, 2, s.c.ZCard(ctx, all).Val(), "expired entries not dropped")

	page, err := s.List(ctx, store.KindOrder, "", 1)
	require.NoError(t, err)
	require.Equal(t, []string{orders[0].ID}, page.IDs)
	require.NotEmpty(t, page.Next)
	page, err = s.List(ctx, store.KindOrder, page.Next, 1)
	require.NoError(t, err)
	require.Equal(t, store.Page{IDs: []string{orders[3].ID}}, page)
	require.EqualValues(t, 2, s.c.ZCard(ctx, all).Val(), "expired entries not dropped")

	page, err = s.List(ctx, store.KindCertificate, "", 10)
	require.NoError(t, err)
	require.Equal(t, store.Page{IDs: []string{c.ID}}, page)
	page, err = s.ListExpiring(ctx, now.Add(2*time.Hour), "", 10)
	require.NoError(t, err)
	require.Equal(t, store.Page{IDs: []string{c.ID}}, page)
}

// TestClaimJobDropsOrphans: a job whose order expired is deleted, with its
// queue entry, when ClaimJob meets it; a live job behind it is claimed.
func TestClaimJobDropsOrphans(t *testing.T) {
	eachBackend(t, testClaimJobDropsOrphans)
}

func testClaimJobDropsOrphans(t *testing.T, s *Store) {
	shortLived(s, 300*time.Millisecond)
	ctx := context.Background()
	now := time.Now().UTC()

	orphan, az := newPending(now, now)
	require.NoError(t, s.CreateOrder(ctx, orphan, []*store.Authorization{az}))
	orphan.Status = store.StatusProcessing
	require.NoError(t, s.EnqueueJob(ctx, &store.Job{OrderID: orphan.ID, NotBefore: now.Add(-time.Second)}, orphan))
	waitGone(t, s, s.key(kindOrder, orphan.ID))

	live, azLive := newPending(now, now.Add(time.Hour))
	require.NoError(t, s.CreateOrder(ctx, live, []*store.Authorization{azLive}))
	live.Status = store.StatusProcessing
	require.NoError(t, s.EnqueueJob(ctx, &store.Job{OrderID: live.ID, NotBefore: now}, live))

	j, err := s.ClaimJob(ctx, "worker", now, time.Minute)
	require.NoError(t, err)
	require.Equal(t, live.ID, j.OrderID)
	_, err = s.GetJob(ctx, orphan.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.EqualValues(t, 1, s.c.ZCard(ctx, s.global(keyJobQueue)).Val())
	_, err = s.ClaimJob(ctx, "worker", now, time.Minute)
	require.ErrorIs(t, err, store.ErrNoJob)
}

// TestAuthzIndexTTL: the index of valid authorizations carries the longest
// TTL of the authorizations added to it, loses an entry whose
// authorization stops being valid, and goes with its authorizations.
func TestAuthzIndexTTL(t *testing.T) {
	eachBackend(t, testAuthzIndexTTL)
}

func testAuthzIndexTTL(t *testing.T, s *Store) {
	ctx := context.Background()
	now := time.Now().UTC()
	week := 7 * 24 * time.Hour

	o, az := newPending(now, now.Add(week))
	require.NoError(t, s.CreateOrder(ctx, o, []*store.Authorization{az}))
	index := s.authzIndexKey(az.AccountID, az.Identifier, az.Wildcard)
	require.EqualValues(t, 0, s.c.Exists(ctx, index).Val(), "pending authorization indexed")
	az.Status = store.StatusValid
	require.NoError(t, s.UpdateAuthz(ctx, az))
	requireTTL(t, s, index, 2*week)
	require.Equal(t, []string{az.ID}, s.c.ZRange(ctx, index, 0, -1).Val())

	// A longer-lived authorization extends the index; a shorter one does
	// not shorten it.
	long := &store.Authorization{ID: "az-" + freshPrefix(), AccountID: az.AccountID, Status: store.StatusValid,
		Identifier: az.Identifier, Expires: now.Add(4 * week)}
	require.NoError(t, s.CreateAuthz(ctx, long))
	requireTTL(t, s, index, 5*week)
	short := &store.Authorization{ID: "az-" + freshPrefix(), AccountID: az.AccountID, Status: store.StatusValid,
		Identifier: az.Identifier, Expires: now.Add(time.Hour)}
	require.NoError(t, s.CreateAuthz(ctx, short))
	requireTTL(t, s, index, 5*week)
	require.Equal(t, []string{az.ID, long.ID, short.ID}, s.c.ZRange(ctx, index, 0, -1).Val())

	// Leaving valid leaves the index.
	for _, a := range []*store.Authorization{az, long, short} {
		a.Status = store.StatusDeactivated
		require.NoError(t, s.UpdateAuthz(ctx, a))
	}
	require.EqualValues(t, 0, s.c.Exists(ctx, index).Val(), "deactivated authorizations left in the index")

	// An entry whose authorization is gone is dropped when read.
	gone := &store.Authorization{ID: "az-" + freshPrefix(), AccountID: "acct-" + freshPrefix(), Status: store.StatusValid,
		Identifier: az.Identifier, Expires: now.Add(time.Hour)}
	require.NoError(t, s.CreateAuthz(ctx, gone))
	goneIndex := s.authzIndexKey(gone.AccountID, gone.Identifier, false)
	require.NoError(t, s.c.Del(ctx, s.key(kindAuthz, gone.ID)).Err())
	_, err := s.FindValidAuthz(ctx, gone.AccountID, gone.Identifier, false, now)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.EqualValues(t, 0, s.c.Exists(ctx, goneIndex).Val(), "entry of a missing authorization not dropped")

	// Short-lived: the index expires with its authorization.
	shortLived(s, 300*time.Millisecond)
	brief := &store.Authorization{ID: "az-" + freshPrefix(), AccountID: "acct-" + freshPrefix(), Status: store.StatusValid,
		Identifier: az.Identifier, Expires: time.Now().Add(time.Second)}
	require.NoError(t, s.CreateAuthz(ctx, brief))
	require.EqualValues(t, 1, s.c.Exists(ctx, s.authzIndexKey(brief.AccountID, brief.Identifier, false)).Val())
	waitGone(t, s, s.key(kindAuthz, brief.ID), s.authzIndexKey(brief.AccountID, brief.Identifier, false))
}

// TestRateBucketTTL: a rate-limit bucket expires when it is full again (at
// its TAT), so Redis keeps only buckets in debt; one filled by a refund is
// deleted at once.
func TestRateBucketTTL(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		lim := store.Limit{Count: 4, Period: time.Hour} // 15 minutes per event
		d, err := s.SpendRates(ctx, []store.RateSpend{{Key: "ttl", Cost: 2, Limit: lim}}, time.Now())
		require.NoError(t, err)
		require.True(t, d[0].Allowed)
		requireTTL(t, s, s.key(kindRate, "ttl"), 30*time.Minute)
		_, err = s.SpendRates(ctx, []store.RateSpend{{Key: "ttl", Cost: -2, Limit: lim}}, time.Now())
		require.NoError(t, err)
		n, err := s.c.Exists(ctx, s.key(kindRate, "ttl")).Result()
		require.NoError(t, err)
		require.Zero(t, n, "a full bucket is deleted")
	})
}
