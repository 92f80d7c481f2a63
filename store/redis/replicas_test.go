package redis

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

// racers is how many goroutines race; rounds is how often each race runs.
const (
	racers = 8
	rounds = 20
)

// raceAll calls fn from n goroutines released at once and returns their
// errors.
func raceAll(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// oneWinner checks that exactly one error is nil and the others are loser,
// and returns the winner.
func oneWinner(t *testing.T, errs []error, loser error) int {
	t.Helper()
	w := -1
	for i, err := range errs {
		if err == nil {
			require.Equal(t, -1, w, "racers %d and %d both won", w, i)
			w = i
			continue
		}
		require.ErrorIs(t, err, loser, "racer %d", i)
	}
	require.NotEqual(t, -1, w, "no racer won")
	return w
}

// TestTwoReplicas: two Stores with their own clients (as two replicas have)
// share one Redis; racers alternate between them, and of those racing for
// one thing exactly one wins, every round. On a single server and on a
// Cluster.
func TestTwoReplicas(t *testing.T) {
	backends := map[string]func(t *testing.T) Options{
		"Single":  func(t *testing.T) Options { return Options{Addrs: []string{requireRedis(t)}} },
		"Cluster": func(t *testing.T) Options { return Options{Addrs: requireCluster(t)} },
	}
	for name, opts := range backends {
		t.Run(name, func(t *testing.T) {
			o := opts(t)
			o.KeyPrefix = freshPrefix()
			a, b := openOpts(t, o), openOpts(t, o)
			defer a.Close()
			defer b.Close()
			replicas := []*Store{a, b}
			on := func(i int) *Store { return replicas[i%2] }
			t.Run("UseNonce", func(t *testing.T) { raceNonce(t, on) })
			t.Run("BindEAB", func(t *testing.T) { raceEAB(t, on) })
			t.Run("EnqueueJob", func(t *testing.T) { raceEnqueue(t, on) })
			t.Run("UpdateOrder", func(t *testing.T) { raceOrderCAS(t, on) })
			t.Run("ClaimJob", func(t *testing.T) { raceClaim(t, on) })
		})
	}
}

func raceNonce(t *testing.T, on func(int) *Store) {
	ctx := context.Background()
	now := time.Now()
	for r := range rounds {
		n := fmt.Sprintf("nonce-%d-%s", r, freshPrefix())
		got := make([]bool, racers)
		errs := raceAll(racers, func(i int) error {
			var err error
			got[i], err = on(i).UseNonce(ctx, n, now.Add(time.Hour))
			return err
		})
		winners := 0
		for i := range racers {
			require.NoError(t, errs[i])
			if got[i] {
				winners++
			}
		}
		require.Equal(t, 1, winners, "round %d: nonce consumed %d times", r, winners)
	}
}

func raceEAB(t *testing.T, on func(int) *Store) {
	ctx := context.Background()
	now := time.Now().UTC()
	for r := range rounds {
		k := &store.EABKey{ID: fmt.Sprintf("kid-%d-%s", r, freshPrefix()), HMACKey: []byte("k"), CreatedAt: now}
		require.NoError(t, on(r).PutEABKey(ctx, k))
		accts := make([]*store.Account, racers)
		for i := range accts {
			accts[i] = &store.Account{ID: fmt.Sprintf("acct-%d-%d-%s", r, i, freshPrefix()), Status: store.StatusValid,
				KeyThumbprint: freshPrefix(), EABKeyID: k.ID, CreatedAt: now}
		}
		errs := raceAll(racers, func(i int) error { return on(i).CreateAccount(ctx, accts[i]) })
		w := oneWinner(t, errs, store.ErrConflict)
		got, err := on(r+1).GetEABKey(ctx, k.ID)
		require.NoError(t, err)
		require.Equal(t, accts[w].ID, got.AccountID)
		require.Equal(t, k.Version+1, got.Version)
		for i, a := range accts {
			_, err := on(i).GetAccountByKey(ctx, a.KeyThumbprint)
			if i == w {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, store.ErrNotFound, "loser %d stored", i)
			}
		}
	}
}

// readyOrder stores a new order and moves it to ready.
func readyOrder(t *testing.T, s *Store, now time.Time) *store.Order {
	t.Helper()
	o := &store.Order{ID: "order-" + freshPrefix(), AccountID: "acct-" + freshPrefix(), Status: store.StatusPending,
		Expires: now.Add(time.Hour), CreatedAt: now}
	require.NoError(t, s.CreateOrder(context.Background(), o, nil))
	o.Status = store.StatusReady
	require.NoError(t, s.UpdateOrder(context.Background(), o))
	return o
}

func raceEnqueue(t *testing.T, on func(int) *Store) {
	ctx := context.Background()
	now := time.Now().UTC()
	for r := range rounds {
		o := readyOrder(t, on(r), now)
		orders := make([]*store.Order, racers)
		for i := range orders {
			var err error
			orders[i], err = on(i).GetOrder(ctx, o.ID)
			require.NoError(t, err)
			orders[i].Status = store.StatusProcessing
			orders[i].Upstream = fmt.Sprint("upstream-", i)
		}
		errs := raceAll(racers, func(i int) error {
			return on(i).EnqueueJob(ctx, &store.Job{OrderID: o.ID, NotBefore: now, UpstreamRef: fmt.Sprint(i)}, orders[i])
		})
		w := oneWinner(t, errs, store.ErrConflict)
		got, err := on(r).GetOrder(ctx, o.ID)
		require.NoError(t, err)
		require.Equal(t, orders[w].Upstream, got.Upstream)
		require.Equal(t, o.Version+1, got.Version)
		j, err := on(r+1).GetJob(ctx, o.ID)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint(w), j.UpstreamRef)
		require.NoError(t, on(r).DeleteJob(ctx, o.ID))
	}
}

func raceOrderCAS(t *testing.T, on func(int) *Store) {
	ctx := context.Background()
	now := time.Now().UTC()
	for r := range rounds {
		o := readyOrder(t, on(r), now)
		copies := make([]*store.Order, racers)
		for i := range copies {
			c := *o
			c.Status = store.StatusInvalid
			c.Upstream = fmt.Sprint("upstream-", i)
			copies[i] = &c
		}
		errs := raceAll(racers, func(i int) error { return on(i).UpdateOrder(ctx, copies[i]) })
		w := oneWinner(t, errs, store.ErrConflict)
		got, err := on(r+1).GetOrder(ctx, o.ID)
		require.NoError(t, err)
		require.Equal(t, copies[w].Upstream, got.Upstream)
		require.Equal(t, o.Version+1, got.Version)
	}
}

func raceClaim(t *testing.T, on func(int) *Store) {
	ctx := context.Background()
	now := time.Now().UTC()
	for r := range rounds {
		o := readyOrder(t, on(r), now)
		o.Status = store.StatusProcessing
		require.NoError(t, on(r).EnqueueJob(ctx, &store.Job{OrderID: o.ID, NotBefore: now}, o))
		jobs := make([]*store.Job, racers)
		errs := raceAll(racers, func(i int) error {
			var err error
			jobs[i], err = on(i).ClaimJob(ctx, fmt.Sprint("worker-", i), now, time.Minute)
			return err
		})
		w := oneWinner(t, errs, store.ErrNoJob)
		require.Equal(t, o.ID, jobs[w].OrderID)
		require.Equal(t, fmt.Sprint("worker-", w), jobs[w].Owner)
		require.NoError(t, on(r).DeleteJob(ctx, o.ID))
	}
}
