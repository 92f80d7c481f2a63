package redis

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/store/storetest"
)

// openOpts opens a store with opts and a fresh key prefix, closed when t
// ends.
func openOpts(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = freshPrefix()
	}
	s, err := Open(context.Background(), opts)
	require.NoError(t, err)
	return s
}

// openSingle opens a store on the plain server, closed when t ends.
func openSingle(t testing.TB) *Store {
	t.Helper()
	s := openOpts(t, Options{Addrs: []string{requireRedis(t)}})
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// suiteOpen adapts opts to storetest.Run, which closes each store.
func suiteOpen(opts func(t *testing.T) Options) func(t *testing.T) store.Store {
	return func(t *testing.T) store.Store { return openOpts(t, opts(t)) }
}

func TestStore(t *testing.T) {
	storetest.Run(t, suiteOpen(func(t *testing.T) Options {
		return Options{Addrs: []string{requireRedis(t)}}
	}))
}

// TestStoreCluster runs the suite on a Redis Cluster of three masters, with
// the Cluster client NewUniversalClient picks for several addresses.
func TestStoreCluster(t *testing.T) {
	storetest.Run(t, suiteOpen(func(t *testing.T) Options {
		return Options{Addrs: requireCluster(t)}
	}))
}

// TestStoreSentinel runs the suite through a Sentinel.
func TestStoreSentinel(t *testing.T) {
	storetest.Run(t, suiteOpen(func(t *testing.T) Options {
		return Options{Addrs: []string{requireSentinel(t)}, MasterName: sentinelMaster}
	}))
}

// TestClusterOneSlot: everything a store writes on a Cluster is in one hash
// slot, on one master.
func TestClusterOneSlot(t *testing.T) {
	addrs := requireCluster(t)
	prefix := freshPrefix()
	s := openOpts(t, Options{Addrs: addrs, KeyPrefix: prefix})
	defer s.Close()
	_, ok := s.c.(*redis.ClusterClient)
	require.True(t, ok, "three addresses should make a Cluster client, got %T", s.c)
	issueOne(t, s, time.Now().UTC())

	cc := s.c.(*redis.ClusterClient)
	ctx := context.Background()
	slots := map[int64]bool{}
	nodes := 0
	var keys []string
	var mu sync.Mutex // ForEachMaster calls in parallel
	err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		found, err := node.Keys(ctx, prefix+"*").Result()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if len(found) > 0 {
			nodes++
		}
		for _, k := range found {
			slot, err := node.ClusterKeySlot(ctx, k).Result()
			if err != nil {
				return err
			}
			slots[slot] = true
		}
		keys = append(keys, found...)
		return nil
	})
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(keys), 8, "keys: %v", keys)
	require.Len(t, slots, 1, "keys in several slots: %v", keys)
	require.Equal(t, 1, nodes)
	for _, k := range keys {
		require.True(t, strings.HasPrefix(k, prefix+"{acmebridge}:"), k)
	}
}

// issueOne takes one order through every step, from nonce to certificate,
// and returns the order as stored at the end.
func issueOne(t testing.TB, s *Store, now time.Time) *store.Order {
	t.Helper()
	ctx := context.Background()
	nonce := "nonce-" + freshPrefix()
	ok, err := s.UseNonce(ctx, nonce, now.Add(time.Hour))
	require.NoError(t, err)
	require.True(t, ok)

	k := &store.EABKey{ID: "kid-" + freshPrefix(), HMACKey: []byte("secret"), CreatedAt: now}
	require.NoError(t, s.PutEABKey(ctx, k))
	a := &store.Account{ID: "acct-" + freshPrefix(), Status: store.StatusValid, KeyThumbprint: "tp-" + freshPrefix(),
		EABKeyID: k.ID, CreatedAt: now}
	require.NoError(t, s.CreateAccount(ctx, a))

	az := &store.Authorization{ID: "az-" + freshPrefix(), AccountID: a.ID, Status: store.StatusPending,
		Identifier: store.Identifier{Type: "dns", Value: "a.example.com"}, Expires: now.Add(7 * 24 * time.Hour),
		Challenges: []store.Challenge{{ID: "c1", Type: "http-01", Status: store.StatusPending, Token: "tok"}}}
	o := &store.Order{ID: "order-" + freshPrefix(), AccountID: a.ID, Status: store.StatusPending,
		Identifiers: []store.Identifier{az.Identifier}, AuthzIDs: []string{az.ID},
		Expires: now.Add(7 * 24 * time.Hour), CreatedAt: now}
	require.NoError(t, s.CreateOrder(ctx, o, []*store.Authorization{az}))
	az.Status = store.StatusValid
	az.Challenges[0].Status = store.StatusValid
	require.NoError(t, s.UpdateAuthz(ctx, az))
	o.Status = store.StatusReady
	require.NoError(t, s.UpdateOrder(ctx, o))
	o.Status = store.StatusProcessing
	require.NoError(t, s.EnqueueJob(ctx, &store.Job{OrderID: o.ID, NotBefore: now}, o))
	j, err := s.ClaimJob(ctx, "worker", now, time.Minute)
	require.NoError(t, err)
	require.Equal(t, o.ID, j.OrderID)
	c := &store.Certificate{ID: "cert-" + freshPrefix(), AccountID: a.ID, OrderID: o.ID, Serial: "0a" + freshPrefix(),
		Names: []string{"a.example.com"}, IssuedAt: now}
	o.Status, o.CertificateID = store.StatusValid, c.ID
	require.NoError(t, s.PutCertificate(ctx, c, o))
	return o
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	_, err := Open(ctx, Options{})
	require.ErrorContains(t, err, "store/redis: ")

	_, err = Open(ctx, Options{Addrs: []string{"127.0.0.1:1"}, KeyPrefix: "a{b}:"})
	require.ErrorContains(t, err, "store/redis: ")
	require.ErrorContains(t, err, "'{'")

	// Nothing listens on a port just closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	start := time.Now()
	_, err = Open(ctx, Options{Addrs: []string{addr}, DialTimeout: 200 * time.Millisecond})
	require.Error(t, err)
	require.True(t, strings.HasPrefix(err.Error(), "store/redis: "), err.Error())
	require.Less(t, time.Since(start), 5*time.Second)
}

// TestPrefix: keys start with the prefix and the hash tag; an empty prefix
// is the default, and NewFromClient drops braces.
func TestPrefix(t *testing.T) {
	addr := requireRedis(t)
	s := NewFromClient(redis.NewClient(&redis.Options{Addr: addr}), "")
	require.Equal(t, "acmebridge:{acmebridge}:order:x", s.key(kindOrder, "x"))
	require.NoError(t, s.Close())
	s = NewFromClient(redis.NewClient(&redis.Options{Addr: addr}), "a{b}:")
	require.Equal(t, "ab:{acmebridge}:jobs", s.global(keyJobQueue))
	require.NoError(t, s.Ping(context.Background()))
	require.NoError(t, s.Close())
}

// TestErrors: sentinels come back as they are; other errors carry the
// driver's prefix, and so does the error of a closed store.
func TestErrors(t *testing.T) {
	s := openSingle(t)
	ctx := context.Background()
	_, err := s.GetOrder(ctx, "missing")
	require.Same(t, store.ErrNotFound, err)
	_, err = s.GetJob(ctx, "missing")
	require.Same(t, store.ErrNotFound, err)
	_, err = s.ClaimJob(ctx, "w", time.Now(), time.Minute)
	require.Same(t, store.ErrNoJob, err)
	require.Same(t, store.ErrNotFound, s.UpdateOrder(ctx, &store.Order{ID: "missing", AccountID: "a"}))

	_, err = s.ListOrders(ctx, "acct", "", 0)
	require.ErrorContains(t, err, "store/redis: ")
	_, err = s.ListOrders(ctx, "acct", "not a cursor!", 10)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.ErrorContains(t, err, "store/redis: ")
	for _, kind := range []store.Kind{store.KindAccount, "authz"} {
		_, err = s.List(ctx, kind, "not a cursor!", 10)
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorContains(t, err, "store/redis: ")
	}
	_, err = s.List(ctx, store.KindOrder, "", 0)
	require.ErrorContains(t, err, "store/redis: ")
	_, err = s.ListExpiring(ctx, time.Now(), "", -1)
	require.ErrorContains(t, err, "store/redis: ")
	// A cursor must decode to an index member: lower-case hex time, ':', an ID.
	for _, bad := range []string{"x", "AAAA", "MDEyMzQ1Njc4OUFCQ0RFRjAxMjM0NTY3Omlk", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3Og"} {
		_, err = s.ListExpiring(ctx, time.Now(), bad, 10)
		require.ErrorIs(t, err, store.ErrNotFound, bad)
	}
	require.ErrorContains(t, s.UpdateJob(ctx, &store.Job{OrderID: "o", Owner: "b"}, "a"), "store/redis: ")
	require.ErrorContains(t, s.EnqueueJob(ctx, &store.Job{OrderID: "o"}, &store.Order{ID: "p"}), "store/redis: ")

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	err = s.Ping(canceled)
	require.ErrorIs(t, err, context.Canceled)
	require.True(t, strings.HasPrefix(err.Error(), "store/redis: "), err.Error())
	err = s.CreateAccount(canceled, &store.Account{ID: "a", KeyThumbprint: "tp"})
	require.ErrorIs(t, err, context.Canceled)
	require.True(t, strings.HasPrefix(err.Error(), "store/redis: "), err.Error())

	require.NoError(t, s.Close())
	for name, err := range map[string]error{
		"Ping":        s.Ping(ctx),
		"UpdateOrder": s.UpdateOrder(ctx, &store.Order{ID: "x"}),
		"UseNonce":    useErr(s.UseNonce(ctx, "n", time.Now().Add(time.Minute))),
	} {
		require.Error(t, err, name)
		require.True(t, strings.HasPrefix(err.Error(), "store/redis: "), "%s: %v", name, err)
	}
}

// TestListOrdersCursor: the cursor is opaque but stable: a page's Next
// continues after the page even when orders are created in between.
func TestListOrdersCursor(t *testing.T) {
	s := openSingle(t)
	ctx := context.Background()
	now := time.Now().UTC()
	var ids []string
	for i := range 3 {
		o := &store.Order{ID: fmt.Sprintf("o%d", i), AccountID: "a", Status: store.StatusPending, Expires: now.Add(time.Hour)}
		require.NoError(t, s.CreateOrder(ctx, o, nil))
		ids = append(ids, o.ID)
	}
	require.NoError(t, s.CreateOrder(ctx, &store.Order{ID: "b0", AccountID: "b"}, nil))

	page, err := s.ListOrders(ctx, "a", "", 2)
	require.NoError(t, err)
	require.Equal(t, ids[:2], page.IDs)
	require.NotEmpty(t, page.Next)
	require.NoError(t, s.CreateOrder(ctx, &store.Order{ID: "o3", AccountID: "a"}, nil))
	page, err = s.ListOrders(ctx, "a", page.Next, 5)
	require.NoError(t, err)
	require.Equal(t, store.Page{IDs: []string{"o2", "o3"}}, page)
}

// TestCreateOrderReusesMissingAuthz: a reused authorization must exist.
func TestCreateOrderReusesMissingAuthz(t *testing.T) {
	s := openSingle(t)
	ctx := context.Background()
	o := &store.Order{ID: "o", AccountID: "a", AuthzIDs: []string{"gone"}}
	require.ErrorIs(t, s.CreateOrder(ctx, o, nil), store.ErrNotFound)
	_, err := s.GetOrder(ctx, "o")
	require.ErrorIs(t, err, store.ErrNotFound)

	az := &store.Authorization{ID: "unlisted"}
	require.ErrorContains(t, s.CreateOrder(ctx, &store.Order{ID: "o", AccountID: "a"}, []*store.Authorization{az}), "not listed")
}

// TestRecoversAfterRestart: while Redis is down, Ping and operations fail
// quickly with prefixed errors; once it is back (with an empty script
// cache), the same Store works again without being reopened.
func TestRecoversAfterRestart(t *testing.T) {
	requireRedis(t)
	srv, err := startServer(nil)
	require.NoError(t, err)
	defer srv.stop()
	s := openOpts(t, Options{Addrs: []string{srv.addr}, DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond})
	defer s.Close()
	ctx := context.Background()
	now := time.Now().UTC()
	issueOne(t, s, now)

	srv.stop()
	start := time.Now()
	err = s.Ping(ctx)
	require.Error(t, err)
	require.True(t, strings.HasPrefix(err.Error(), "store/redis: "), err.Error())
	_, err = s.GetOrder(ctx, "x")
	require.Error(t, err)
	require.NotErrorIs(t, err, store.ErrNotFound)
	require.Less(t, time.Since(start), 5*time.Second)

	require.NoError(t, srv.start(), "restart on the same port")
	require.Eventually(t, func() bool { return s.Ping(ctx) == nil }, 10*time.Second, 50*time.Millisecond)
	// The restarted server has no scripts cached: EVALSHA falls back to EVAL.
	issueOne(t, s, now)
}

// TestClusterOneSeed: Options.Cluster makes a Cluster client from one seed
// address.
func TestClusterOneSeed(t *testing.T) {
	addrs := requireCluster(t)
	s := openOpts(t, Options{Addrs: addrs[2:], Cluster: true})
	defer s.Close()
	_, ok := s.c.(*redis.ClusterClient)
	require.True(t, ok, "got %T", s.c)
	issueOne(t, s, time.Now().UTC())
}

// useErr is UseNonce's error.
func useErr(_ bool, err error) error { return err }
