package bolt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/store/storetest"
)

func openTemp(t testing.TB) *Store {
	t.Helper()
	return openTempWith(t, Options{})
}

// openTempWith opens a store in a new temporary directory with opts (its
// Path is set here).
func openTempWith(t testing.TB, opts Options) *Store {
	t.Helper()
	opts.Path = filepath.Join(t.TempDir(), "data", "acmebridge.db")
	s, err := Open(opts)
	require.NoError(t, err)
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTempWith(t, Options{MaxUsedNonces: storetest.NonceCapacity})
	})
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "dir")
	path := filepath.Join(dir, "acmebridge.db")
	s, err := Open(Options{Path: path})
	require.NoError(t, err)
	require.NoError(t, s.Close())

	fi, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	fi, err = os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm()&^0o022, "file mode %v", fi.Mode())
	require.Zero(t, fi.Mode().Perm()&0o077, "file readable by others: %v", fi.Mode())
}

// TestOpenInUse: a second Open of a held file fails quickly and says why.
func TestOpenInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acmebridge.db")
	s, err := Open(Options{Path: path})
	require.NoError(t, err)
	defer s.Close()

	start := time.Now()
	_, err = Open(Options{Path: path})
	require.EqualError(t, err, "store/bolt: "+path+" is in use by another process")
	require.Less(t, time.Since(start), 5*time.Second)
}

func TestOpenErrors(t *testing.T) {
	_, err := Open(Options{})
	require.ErrorContains(t, err, "store/bolt: ")

	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err = Open(Options{Path: filepath.Join(file, "acmebridge.db")})
	require.Error(t, err)
	require.True(t, strings.HasPrefix(err.Error(), "store/bolt: "), err.Error())

	notBolt := filepath.Join(t.TempDir(), "garbage.db")
	require.NoError(t, os.WriteFile(notBolt, []byte(strings.Repeat("not a bolt file ", 1024)), 0o600))
	_, err = Open(Options{Path: notBolt})
	require.Error(t, err)
	require.True(t, strings.HasPrefix(err.Error(), "store/bolt: "), err.Error())
}

// TestErrors: sentinels come back as they are; other errors carry the
// driver's prefix, and so does the error of a closed store.
func TestErrors(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	_, err := s.GetOrder(ctx, "missing")
	require.Same(t, store.ErrNotFound, err)

	_, err = s.ListOrders(ctx, "acct", "", 0)
	require.ErrorContains(t, err, "store/bolt: ")

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	err = s.Ping(canceled)
	require.ErrorIs(t, err, context.Canceled)
	require.True(t, strings.HasPrefix(err.Error(), "store/bolt: "), err.Error())

	require.NoError(t, s.Close())
	err = s.Ping(ctx)
	require.Error(t, err)
	require.True(t, strings.HasPrefix(err.Error(), "store/bolt: "), err.Error())
	err = s.UpdateOrder(ctx, &store.Order{ID: "x"})
	require.Error(t, err)
	require.True(t, strings.HasPrefix(err.Error(), "store/bolt: "), err.Error())
}

// TestListOrdersCursor: this driver's cursor is the last order ID of the
// page, and a cursor that is not one of the account's orders is refused.
func TestListOrdersCursor(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := context.Background()
	var ids []string
	for i := range 3 {
		o := &store.Order{ID: fmt.Sprintf("o%d", i), AccountID: "a"}
		require.NoError(t, s.CreateOrder(ctx, o, nil))
		ids = append(ids, o.ID)
	}
	require.NoError(t, s.CreateOrder(ctx, &store.Order{ID: "b0", AccountID: "b"}, nil))

	page, err := s.ListOrders(ctx, "a", "", 2)
	require.NoError(t, err)
	require.Equal(t, store.Page{IDs: ids[:2], Next: ids[1]}, page)
	page, err = s.ListOrders(ctx, "a", ids[0], 5)
	require.NoError(t, err)
	require.Equal(t, store.Page{IDs: ids[1:]}, page)
	_, err = s.ListOrders(ctx, "a", "b0", 5)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.ListOrders(ctx, "a", "nope", 5)
	require.ErrorIs(t, err, store.ErrNotFound)
}

// TestCreateOrderReusesMissingAuthz: a reused authorization must exist.
func TestCreateOrderReusesMissingAuthz(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := context.Background()
	o := &store.Order{ID: "o", AccountID: "a", AuthzIDs: []string{"gone"}}
	require.ErrorIs(t, s.CreateOrder(ctx, o, nil), store.ErrNotFound)
	_, err := s.GetOrder(ctx, "o")
	require.ErrorIs(t, err, store.ErrNotFound)

	az := &store.Authorization{ID: "unlisted"}
	require.ErrorContains(t, s.CreateOrder(ctx, &store.Order{ID: "o", AccountID: "a"}, []*store.Authorization{az}), "not listed")
}

// TestReopen: everything but nonces survives closing and reopening the file.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "acmebridge.db")
	now := time.Now().UTC()
	s, err := Open(Options{Path: path})
	require.NoError(t, err)

	k := &store.EABKey{ID: "kid", HMACKey: []byte("secret"), CreatedAt: now}
	require.NoError(t, s.PutEABKey(ctx, k))
	a := &store.Account{ID: "acct", Status: store.StatusValid, KeyThumbprint: "tp", EABKeyID: "kid", CreatedAt: now}
	require.NoError(t, s.CreateAccount(ctx, a))
	az := &store.Authorization{ID: "az", AccountID: "acct", Status: store.StatusValid, Expires: now.Add(time.Hour)}
	o1 := &store.Order{ID: "o1", AccountID: "acct", Status: store.StatusReady, AuthzIDs: []string{"az"}, CreatedAt: now}
	require.NoError(t, s.CreateOrder(ctx, o1, []*store.Authorization{az}))
	o2 := &store.Order{ID: "o2", AccountID: "acct", Status: store.StatusReady, AuthzIDs: []string{"az"}, CreatedAt: now}
	require.NoError(t, s.CreateOrder(ctx, o2, nil))
	o1.Status = store.StatusProcessing
	require.NoError(t, s.EnqueueJob(ctx, &store.Job{OrderID: "o1", NotBefore: now}, o1))
	o2.Status = store.StatusProcessing
	require.NoError(t, s.EnqueueJob(ctx, &store.Job{OrderID: "o2", NotBefore: now}, o2))
	c := &store.Certificate{ID: "c", OrderID: "o2", Serial: "0a", IssuedAt: now}
	o2.Status, o2.CertificateID = store.StatusValid, "c"
	require.NoError(t, s.PutCertificate(ctx, c, o2))
	j, err := s.ClaimJob(ctx, "w1", now, time.Minute)
	require.NoError(t, err)
	require.Equal(t, "o1", j.OrderID)
	ok, err := s.UseNonce(ctx, "n", now.Add(time.Hour))
	require.NoError(t, err)
	require.True(t, ok)
	key1, err := s.NonceKey(ctx)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	s, err = Open(Options{Path: path})
	require.NoError(t, err)
	defer s.Close()
	gotA, err := s.GetAccountByKey(ctx, "tp")
	require.NoError(t, err)
	require.Equal(t, a.ID, gotA.ID)
	gotK, err := s.GetEABKey(ctx, "kid")
	require.NoError(t, err)
	require.Equal(t, "acct", gotK.AccountID)
	gotO, err := s.GetOrder(ctx, "o2")
	require.NoError(t, err)
	require.Equal(t, o2.Version, gotO.Version)
	require.Equal(t, "c", gotO.CertificateID)
	_, err = s.GetAuthz(ctx, "az")
	require.NoError(t, err)
	gotC, err := s.GetCertificateBySerial(ctx, "0a")
	require.NoError(t, err)
	require.True(t, gotC.IssuedAt.Equal(now))
	page, err := s.ListOrders(ctx, "acct", "", 10)
	require.NoError(t, err)
	require.Equal(t, []string{"o1", "o2"}, page.IDs)

	// The lease survives too: nobody takes o1 before it ends.
	_, err = s.ClaimJob(ctx, "w2", now.Add(30*time.Second), time.Minute)
	require.ErrorIs(t, err, store.ErrNoJob)
	j, err = s.ClaimJob(ctx, "w2", now.Add(2*time.Minute), time.Minute)
	require.NoError(t, err)
	require.Equal(t, "o1", j.OrderID)
	require.Equal(t, 2, j.Attempts)

	// Orders created after the reopen list after the older ones.
	require.NoError(t, s.CreateOrder(ctx, &store.Order{ID: "o0", AccountID: "acct"}, nil))
	page, err = s.ListOrders(ctx, "acct", "", 10)
	require.NoError(t, err)
	require.Equal(t, []string{"o1", "o2", "o0"}, page.IDs)

	// Used nonces are kept in memory only, so the nonce key is new: every
	// nonce minted before the restart is invalid.
	key2, err := s.NonceKey(ctx)
	require.NoError(t, err)
	require.NotEqual(t, key1, key2, "a reopened store must not accept the nonces of the last run")
	ok, err = s.UseNonce(ctx, "n", now.Add(time.Hour))
	require.NoError(t, err)
	require.True(t, ok, "the record of used nonces was not kept (the key changed instead)")
}

// TestNonceCacheBounded: expired uses are swept as new ones arrive, and
// the map never passes its cap: full of live uses, it forgets the quarter
// that expires first and refuses every nonce expiring no later (a
// forgotten use must not become replayable), while a nonce expiring later
// is accepted.
func TestNonceCacheBounded(t *testing.T) {
	c := newNonceCache(discardLogger(), 0)
	require.Equal(t, DefaultMaxUsedNonces, c.max)
	now := time.Now()
	for i := range 10 * minSweep {
		require.True(t, c.use(fmt.Sprint("expired", i), now.Add(-time.Second), now))
		require.LessOrEqual(t, len(c.m), minSweep)
	}

	c = newNonceCache(discardLogger(), 100)
	future := now.Add(time.Hour)
	exp := func(i int) time.Time { return future.Add(time.Duration(i) * time.Second) }
	for i := range 100 {
		require.True(t, c.use(fmt.Sprint("live", i), exp(i), now))
	}
	require.True(t, c.use("one-more", exp(100), now), "full: the fresh nonce is accepted")
	require.LessOrEqual(t, len(c.m), 100)
	require.True(t, exp(24).Equal(c.floor), "the oldest quarter is forgotten: floor %s", c.floor)
	for i := range 101 {
		name := fmt.Sprint("live", i)
		if i == 100 {
			name = "one-more"
		}
		require.False(t, c.use(name, exp(i), now), "%s accepted twice", name)
	}
	require.False(t, c.use("never-used-old", exp(24), now), "at the floor: refused")
	require.True(t, c.use("never-used-newer", exp(25), now), "above the floor: accepted")

	// All of one expiry (a burst within a second): all are forgotten, and
	// that second's nonces refused; the next second's are accepted.
	c = newNonceCache(discardLogger(), 10)
	for i := range 10 {
		require.True(t, c.use(fmt.Sprint("burst", i), future, now))
	}
	require.False(t, c.use("same-second", future, now))
	require.Empty(t, c.m)
	require.True(t, c.use("next-second", future.Add(time.Second), now))
	require.False(t, c.use("burst0", future, now), "a forgotten use stays refused")
}

// TestUsedNonceRecordFull (issue 14, hole 4): a bolt store whose record of
// used nonces is full still accepts the first use of a fresh nonce, and
// refuses an old nonce (never used, minted before everything recorded)
// instead; before, it refused every new use until the record's nonces
// expired (an hour), locking out every client.
func TestUsedNonceRecordFull(t *testing.T) {
	const capacity = 16
	s := openTempWith(t, Options{MaxUsedNonces: capacity})
	defer s.Close()
	ctx := t.Context()
	start := time.Now().Add(time.Hour)
	at := func(i int) time.Time { return start.Add(time.Duration(i) * time.Second) }
	// The old nonce was minted first and is used last.
	for i := 1; i <= 4*capacity; i++ {
		ok, err := s.UseNonce(ctx, fmt.Sprint("flood", i), at(i))
		require.NoError(t, err)
		require.True(t, ok, "use %d: the fresh nonce is accepted", i)
	}
	ok, err := s.UseNonce(ctx, "fresh", at(4*capacity+1))
	require.NoError(t, err)
	require.True(t, ok, "a fresh nonce is accepted with the record full")
	ok, err = s.UseNonce(ctx, "old", at(0))
	require.NoError(t, err)
	require.False(t, ok, "the oldest nonces are refused to make room")
	ok, err = s.UseNonce(ctx, "flood1", at(1))
	require.NoError(t, err)
	require.False(t, ok, "a forgotten use is not accepted again")
	require.LessOrEqual(t, len(s.nonces.m), capacity)
}

// TestBatchedWritesStayAtomic drives many concurrent conflicting writes so
// that bbolt groups them (and re-runs groups when one fails): every create
// must land exactly once and every loser must see ErrConflict.
func TestBatchedWritesStayAtomic(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := context.Background()
	const n = 64
	var won atomic.Int64
	errs := make(chan error, 2*n)
	done := make(chan struct{})
	for i := range 2 * n {
		go func() {
			defer func() { done <- struct{}{} }()
			a := &store.Account{ID: fmt.Sprint("acct", i), KeyThumbprint: fmt.Sprint("tp", i%n)}
			err := s.CreateAccount(ctx, a)
			switch {
			case err == nil:
				won.Add(1)
			case !errors.Is(err, store.ErrConflict):
				errs <- err
			}
		}()
	}
	for range 2 * n {
		<-done
	}
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.EqualValues(t, n, won.Load())
	for i := range n {
		a, err := s.GetAccountByKey(ctx, fmt.Sprint("tp", i))
		require.NoError(t, err)
		require.Zero(t, a.Version)
	}
}

func BenchmarkCreateOrder(b *testing.B) {
	s := openTemp(b)
	defer s.Close()
	ctx := context.Background()
	now := time.Now().UTC()
	var seq atomic.Int64
	b.ReportAllocs()
	// Many requests in flight, as on a busy server, so writes are batched.
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			az := &store.Authorization{
				ID: fmt.Sprint("az", i), AccountID: "acct", Status: store.StatusPending,
				Identifier: store.Identifier{Type: "dns", Value: "www.example.com"},
				Expires:    now.Add(time.Hour),
				Challenges: []store.Challenge{{ID: "c", Type: "http-01", Status: store.StatusPending, Token: "token"}},
			}
			o := &store.Order{
				ID: fmt.Sprint("o", i), AccountID: fmt.Sprint("acct", i%16), Status: store.StatusPending,
				Identifiers: []store.Identifier{az.Identifier}, AuthzIDs: []string{az.ID},
				Expires: now.Add(time.Hour), CreatedAt: now,
			}
			if err := s.CreateOrder(ctx, o, []*store.Authorization{az}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkUseNonce(b *testing.B) {
	s := openTemp(b)
	defer s.Close()
	ctx := context.Background()
	now := time.Now()
	var seq atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := fmt.Sprint("nonce", seq.Add(1))
			if ok, err := s.UseNonce(ctx, n, now.Add(time.Minute)); err != nil || !ok {
				b.Fatal("nonce refused", err)
			}
		}
	})
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// listAll reads every page of a listing (pages of 2).
func listAll(t *testing.T, list func(cursor string) (store.Page, error)) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for {
		page, err := list(cursor)
		require.NoError(t, err)
		ids = append(ids, page.IDs...)
		if page.Next == "" {
			return ids
		}
		cursor = page.Next
	}
}

// TestUpgradeSchema1: a file of schema 1, which had no listing buckets, is
// upgraded when opened: accounts and EAB keys list by CreatedAt,
// certificates by IssuedAt, orders in creation order, and unrevoked
// certificates by expiry; writes after the upgrade list after them. A file
// of a later schema is refused.
func TestUpgradeSchema1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "acmebridge.db")
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	s, err := Open(Options{Path: path})
	require.NoError(t, err)
	// Created in an order that is not the CreatedAt order, so the upgrade
	// (which has only CreatedAt) is seen to sort.
	for i, id := range []string{"acct-b", "acct-c", "acct-a"} {
		created := now.Add(time.Duration([]int{2, 3, 1}[i]) * time.Minute)
		require.NoError(t, s.CreateAccount(ctx, &store.Account{ID: id, KeyThumbprint: "tp-" + id, CreatedAt: created}))
		require.NoError(t, s.PutEABKey(ctx, &store.EABKey{ID: "kid-" + id, CreatedAt: created}))
	}
	for _, id := range []string{"o2", "o3", "o1"} {
		require.NoError(t, s.CreateOrder(ctx, &store.Order{ID: id, AccountID: "acct-a"}, nil))
	}
	for i, id := range []string{"c2", "c1", "c3"} {
		issued := now.Add(time.Duration([]int{2, 1, 3}[i]) * time.Hour)
		c := &store.Certificate{ID: id, OrderID: "o" + id[1:], Serial: "0" + id, IssuedAt: issued,
			NotAfter: issued.Add(time.Duration(10-i) * 24 * time.Hour)}
		if id == "c3" {
			c.RevokedAt = issued
		}
		o, err := s.GetOrder(ctx, c.OrderID)
		require.NoError(t, err)
		require.NoError(t, s.PutCertificate(ctx, c, o))
	}
	require.NoError(t, s.Close())

	// Back to schema 1: no listing buckets.
	db, err := bbolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketAccountList, bucketOrderList, bucketCertList, bucketEABList, bucketCertExpiry} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchema, []byte("1"))
	}))
	require.NoError(t, db.Close())

	s, err = Open(Options{Path: path})
	require.NoError(t, err)
	list := func(kind store.Kind) []string {
		return listAll(t, func(cursor string) (store.Page, error) { return s.List(ctx, kind, cursor, 2) })
	}
	expiring := func() []string {
		return listAll(t, func(cursor string) (store.Page, error) {
			return s.ListExpiring(ctx, now.Add(365*24*time.Hour), cursor, 2)
		})
	}
	require.Equal(t, []string{"acct-a", "acct-b", "acct-c"}, list(store.KindAccount))
	require.Equal(t, []string{"kid-acct-a", "kid-acct-b", "kid-acct-c"}, list(store.KindEABKey))
	require.Equal(t, []string{"o2", "o3", "o1"}, list(store.KindOrder))
	require.Equal(t, []string{"c1", "c2", "c3"}, list(store.KindCertificate))
	require.Equal(t, []string{"c1", "c2"}, expiring()) // c1 expires a day before c2; c3 is revoked

	require.NoError(t, s.CreateAccount(ctx, &store.Account{ID: "acct-0", KeyThumbprint: "tp-0", CreatedAt: now}))
	require.NoError(t, s.CreateOrder(ctx, &store.Order{ID: "o0", AccountID: "acct-0"}, nil))
	require.Equal(t, []string{"acct-a", "acct-b", "acct-c", "acct-0"}, list(store.KindAccount))
	require.Equal(t, []string{"o2", "o3", "o1", "o0"}, list(store.KindOrder))
	require.NoError(t, s.Close())

	// Upgraded for good: reopening changes nothing.
	s, err = Open(Options{Path: path})
	require.NoError(t, err)
	require.Equal(t, []string{"acct-a", "acct-b", "acct-c", "acct-0"}, list(store.KindAccount))
	require.NoError(t, s.Close())

	db, err = bbolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, []byte("3"))
	}))
	require.NoError(t, db.Close())
	_, err = Open(Options{Path: path})
	require.ErrorContains(t, err, `schema version "3"`)
}

// TestListCursors: this driver's cursors are a base-36 sequence (List) and
// a base64url index key (ListExpiring); other strings are ErrNotFound, and
// the kind is checked before the limit.
func TestListCursors(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		require.NoError(t, s.CreateAccount(ctx, &store.Account{ID: id, KeyThumbprint: "tp-" + id}))
	}
	page, err := s.List(ctx, store.KindAccount, "", 1)
	require.NoError(t, err)
	require.Equal(t, store.Page{IDs: []string{"a"}, Next: "1"}, page)
	page, err = s.List(ctx, store.KindAccount, "2", 5)
	require.NoError(t, err)
	require.Equal(t, store.Page{IDs: []string{"c"}}, page)
	page, err = s.List(ctx, store.KindAccount, "zzz", 5)
	require.NoError(t, err)
	require.Empty(t, page.IDs)
	for _, bad := range []string{"-1", "1 ", "3w5e11264sgsg", "a_b"} {
		_, err = s.List(ctx, store.KindAccount, bad, 5)
		require.Same(t, store.ErrNotFound, err, "cursor %q", bad)
	}
	_, err = s.List(ctx, "authz", "", 0)
	require.Same(t, store.ErrNotFound, err)
	_, err = s.List(ctx, store.KindAccount, "", 0)
	require.ErrorContains(t, err, "store/bolt: ")

	for _, bad := range []string{"AAAA", "AAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAA="} {
		_, err = s.ListExpiring(ctx, time.Now(), bad, 5)
		require.Same(t, store.ErrNotFound, err, "cursor %q", bad)
	}
	_, err = s.ListExpiring(ctx, time.Now(), "", 0)
	require.ErrorContains(t, err, "store/bolt: ")
}

// TestBackfillAuthzIndex: a file written before the index of valid
// authorizations existed gets one when opened: valid, unexpired
// authorizations in the order their challenges were validated.
func TestBackfillAuthzIndex(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "acmebridge.db")
	now := time.Now().UTC()
	s, err := Open(Options{Path: path})
	require.NoError(t, err)
	id := store.Identifier{Type: "dns", Value: "a.example.com"}
	mk := func(name, status string, validated, expires time.Time) *store.Authorization {
		az := &store.Authorization{ID: name, AccountID: "acct", Status: status, Identifier: id, Expires: expires,
			Challenges: []store.Challenge{{ID: "c-" + name, Type: "http-01", Status: status, Token: "t", Validated: validated}}}
		require.NoError(t, s.CreateAuthz(ctx, az))
		return az
	}
	// Created (and so indexed) in an order that is not the validation
	// order, so the backfill is seen to sort.
	mk("az-late", store.StatusValid, now.Add(-time.Minute), now.Add(time.Hour))
	mk("az-early", store.StatusValid, now.Add(-time.Hour), now.Add(2*time.Hour))
	mk("az-expired", store.StatusValid, now, now.Add(-time.Second))
	mk("az-off", store.StatusDeactivated, now, now.Add(time.Hour))
	require.NoError(t, s.Close())

	db, err := bbolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketAuthzValid, bucketAuthzValidPos} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, db.Close())

	s, err = Open(Options{Path: path})
	require.NoError(t, err)
	defer s.Close()
	got, err := s.FindValidAuthz(ctx, "acct", id, false, now)
	require.NoError(t, err)
	require.Equal(t, "az-late", got.ID)
	got, err = s.FindValidAuthz(ctx, "acct", id, false, now.Add(90*time.Minute))
	require.NoError(t, err)
	require.Equal(t, "az-early", got.ID)
	got.Status = store.StatusDeactivated
	require.NoError(t, s.UpdateAuthz(ctx, got))
	_, err = s.FindValidAuthz(ctx, "acct", id, false, now.Add(90*time.Minute))
	require.ErrorIs(t, err, store.ErrNotFound)
	require.NoError(t, s.db.View(func(tx *bbolt.Tx) error {
		require.Equal(t, 1, tx.Bucket(bucketAuthzValid).Stats().KeyN, "only az-late stays indexed")
		return nil
	}))
}

// BenchmarkNonceRecordMemory is the memory the record of used nonces takes
// per nonce (a full record holds DefaultMaxUsedNonces of them).
func BenchmarkNonceRecordMemory(b *testing.B) {
	const n = 200_000
	nonces := make([]string, n)
	for i := range nonces {
		nonces[i] = fmt.Sprintf("AAAAAGlYk0Zq%031d", i) // as long as a minted nonce
	}
	until := time.Now().Add(time.Hour)
	var perNonce float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c := newNonceCache(discardLogger(), DefaultMaxUsedNonces)
		for _, s := range nonces {
			c.use(s, until, time.Now())
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perNonce = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(c)
	}
	b.ReportMetric(perNonce, "B/nonce")
}
