package redis

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/internal/testutil"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/store/storetest"
)

// pair is a master and its replica, started for one test. The replica
// replicates through link, which the test can freeze (a replica that lags)
// and cut (what was in flight is lost).
type pair struct {
	master, replica *server
	link            *testutil.Link
}

// startPair starts a master and a replica of it, and waits until the
// master sees the replica online.
func startPair(t testing.TB) *pair {
	t.Helper()
	requireRedis(t)
	master, err := startServer(nil)
	require.NoError(t, err)
	link := testutil.StartLink(t, master.addr)
	_, linkPort, _ := net.SplitHostPort(link.Addr)
	replica, err := startServer(func(int) (string, []string, error) {
		return "", []string{"--replicaof", "127.0.0.1", linkPort}, nil
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		replica.stop()
		master.stop()
	})
	p := &pair{master: master, replica: replica, link: link}
	p.waitOnline(t, 1)
	return p
}

// waitOnline waits until the master counts n replicas online.
func (p *pair) waitOnline(t testing.TB, n int) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: p.master.addr})
	defer c.Close()
	require.Eventually(t, func() bool {
		info, err := c.Info(context.Background(), "replication").Result()
		return err == nil && parseReplication(info).online == n
	}, 15*time.Second, 50*time.Millisecond, "master %s: %d replica(s) online", p.master.addr, n)
}

// promote kills the master with SIGKILL, cuts the replication link (what
// it held is lost) and makes the replica the master, as Sentinel does
// after a failover.
func (p *pair) promote(t *testing.T) {
	t.Helper()
	p.master.stop()
	p.link.Cut()
	c := redis.NewClient(&redis.Options{Addr: p.replica.addr})
	defer c.Close()
	require.NoError(t, c.Do(context.Background(), "REPLICAOF", "NO", "ONE").Err())
}

// TestStoreDurable runs the contract suite on a master with one replica,
// every write waiting for it.
func TestStoreDurable(t *testing.T) {
	p := startPair(t)
	storetest.Run(t, suiteOpen(func(t *testing.T) Options {
		return Options{Addrs: []string{p.master.addr}, WaitReplicas: 1}
	}))
}

// TestDurableSurvivesFailover: a used nonce, a secret and an EAB key's
// binding acknowledged to the caller are on the replica when the master
// dies, and a write the replica could not acknowledge in time is reported
// as failed, not as done. The same steps without WaitReplicas lose the
// acknowledged writes: the test sees the difference.
func TestDurableSurvivesFailover(t *testing.T) {
	for _, wait := range []int{1, 0} {
		t.Run(fmt.Sprintf("wait=%d", wait), func(t *testing.T) {
			ctx := context.Background()
			p := startPair(t)
			prefix := freshPrefix()
			s := openOpts(t, Options{Addrs: []string{p.master.addr}, KeyPrefix: prefix,
				WaitReplicas: wait, WaitTimeout: 300 * time.Millisecond, ReadTimeout: 2 * time.Second})
			defer s.Close()
			key := &store.EABKey{ID: "kid-1", HMACKey: []byte("0123456789abcdef0123456789abcdef"), CreatedAt: time.Now()}
			require.NoError(t, s.PutEABKey(ctx, key))

			// While the replica is in step, the writes are acknowledged.
			ok, err := s.UseNonce(ctx, "before", time.Now().Add(time.Hour))
			require.NoError(t, err)
			require.True(t, ok)
			rc := redis.NewClient(&redis.Options{Addr: p.replica.addr})
			defer rc.Close()
			require.Eventually(t, func() bool {
				return rc.Exists(ctx, s.key(kindNonce, "before")).Val() == 1
			}, 5*time.Second, 10*time.Millisecond, "the replica is in step")

			// The replica lags: what the master acknowledges now it does
			// not have.
			p.link.Freeze()
			start := time.Now()
			ok, lagErr := s.UseNonce(ctx, "during", time.Now().Add(time.Hour))
			secretErr := s.PutSecret(ctx, "during", []byte("x"))
			key.AccountID, key.BoundAt = "acct-1", time.Now()
			bindErr := s.UpdateEABKey(ctx, key)
			if wait > 0 {
				require.ErrorIs(t, lagErr, ErrNotReplicated)
				require.ErrorIs(t, secretErr, ErrNotReplicated)
				require.ErrorIs(t, bindErr, ErrNotReplicated)
				require.Less(t, time.Since(start), 3*time.Second, "each write waits its timeout, then fails")
				require.Equal(t, uint64(3), s.NotReplicated())
			} else {
				require.NoError(t, lagErr)
				require.True(t, ok)
				require.NoError(t, secretErr)
				require.NoError(t, bindErr)
			}

			p.promote(t)
			after := openOpts(t, Options{Addrs: []string{p.replica.addr}, KeyPrefix: prefix})
			defer after.Close()
			again, err := after.UseNonce(ctx, "before", time.Now().Add(time.Hour))
			require.NoError(t, err)
			require.False(t, again, "a nonce whose use was acknowledged before the lag is used after the failover")
			again, err = after.UseNonce(ctx, "during", time.Now().Add(time.Hour))
			require.NoError(t, err)
			_, secretAfter := after.GetSecret(ctx, "during")
			got, err := after.GetEABKey(ctx, key.ID)
			require.NoError(t, err)
			if wait > 0 {
				// Nothing acknowledged was lost: the writes that failed
				// were not relied on.
				return
			}
			// Without waiting, acknowledged writes are gone: the nonce is
			// good again, the secret and the binding vanished.
			require.True(t, again, "without durability the failover gave the used nonce back")
			require.ErrorIs(t, secretAfter, store.ErrNotFound)
			require.Empty(t, got.AccountID)
		})
	}
}

// TestDurablePing: with WaitReplicas, Ping (behind /readyz) fails while the
// master has fewer replicas online, and a node that is a replica is not
// taken for the master.
func TestDurablePing(t *testing.T) {
	ctx := context.Background()
	p := startPair(t)
	s := openOpts(t, Options{Addrs: []string{p.master.addr}, WaitReplicas: 1})
	defer s.Close()
	require.NoError(t, s.Ping(ctx))
	two := openOpts(t, Options{Addrs: []string{p.master.addr}, WaitReplicas: 2})
	defer two.Close()
	require.ErrorContains(t, two.Ping(ctx), "1 of the 2 replica(s)")

	onReplica := openOpts(t, Options{Addrs: []string{p.replica.addr}})
	defer onReplica.Close()
	require.ErrorContains(t, onReplica.Ping(ctx), "not a master")

	p.replica.stop()
	p.waitOnline(t, 0)
	require.ErrorContains(t, s.Ping(ctx), "0 of the 1 replica(s)")
	_, err := s.UseNonce(ctx, "n", time.Now().Add(time.Minute))
	require.ErrorIs(t, err, ErrNotReplicated)
}

// TestMasterChanges: Ping notices a new master (a failover or a restart)
// by its replication ID, and counts it.
func TestMasterChanges(t *testing.T) {
	ctx := context.Background()
	p := startPair(t)
	front := testutil.StartLink(t, p.master.addr)
	s := openOpts(t, Options{Addrs: []string{front.Addr}})
	defer s.Close()
	require.NoError(t, s.Ping(ctx))
	require.NoError(t, s.Ping(ctx))
	require.Zero(t, s.MasterChanges())
	// The replica takes over, and the address now reaches it: the same
	// data, a new replication ID.
	p.promote(t)
	front.SetTarget(p.replica.addr)
	front.Cut()
	require.Eventually(t, func() bool { return s.Ping(ctx) == nil }, 5*time.Second, 50*time.Millisecond)
	require.Equal(t, uint64(1), s.MasterChanges())
}

func TestOpenDurabilityErrors(t *testing.T) {
	addr := requireRedis(t)
	_, err := Open(context.Background(), Options{Addrs: []string{addr}, WaitReplicas: -1})
	require.ErrorContains(t, err, "must not be negative")
	_, err = Open(context.Background(), Options{Addrs: []string{addr}, WaitReplicas: 1, WaitTimeout: 3 * time.Second, ReadTimeout: time.Second})
	require.ErrorContains(t, err, "shorter than the read timeout")
}

// TestWarnUndurable: a store that can lose acknowledged writes says so at
// start, naming the setting that fixes it; one that waits for a replica,
// or a Redis that fsyncs every write, says nothing.
func TestWarnUndurable(t *testing.T) {
	ctx := context.Background()
	s := openSingle(t)
	require.Equal(t, []string{"Redis runs without appendonly: a restart of Redis loses the whole store unless its snapshots are recent; set appendonly yes and appendfsync always"},
		s.warnUndurable(ctx, false))

	everysec, err := startServer(func(int) (string, []string, error) {
		return "", []string{"--appendonly", "yes", "--appendfsync", "everysec", "--appenddirname", fmt.Sprintf("aof-%d", time.Now().UnixNano())}, nil
	})
	require.NoError(t, err)
	t.Cleanup(everysec.stop)
	e := openOpts(t, Options{Addrs: []string{everysec.addr}})
	defer e.Close()
	w := e.warnUndurable(ctx, false)
	require.Len(t, w, 1)
	require.Contains(t, w[0], "appendfsync everysec")
	require.NoError(t, e.c.ConfigSet(ctx, "appendfsync", "always").Err())
	require.Empty(t, e.warnUndurable(ctx, false))
	require.Len(t, e.warnUndurable(ctx, true), 1, "behind Sentinel, fsync does not cover a failover")

	p := startPair(t)
	d := openOpts(t, Options{Addrs: []string{p.master.addr}, WaitReplicas: 1})
	defer d.Close()
	w = d.warnUndurable(ctx, true)
	require.Len(t, w, 1)
	require.Contains(t, w[0], "a second failover while it resyncs can promote it")
	// The same behind Sentinel with an AOF (the everysec server, taken for
	// a master whose writes wait for replicas): nothing to say.
	e.waitReplicas = 1
	require.Empty(t, e.warnUndurable(ctx, true), "replicated, waited for and persisted: nothing to say")
}
