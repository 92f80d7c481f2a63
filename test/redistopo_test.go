package test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// The Redis deployments the chaos runs (redisfailover_test.go) put the
// replicas on, and the fault each suffers: real redis-server processes,
// killed with SIGKILL.
//
// Every fault opens a loss window first (BeginLag) and ends it with the
// crash (Crash): the writes the store makes in between are acknowledged to
// acmebridge and then lost, unless something (WAIT for a replica, an fsync
// per write) keeps them. How each topology loses them:
//
//   - Sentinel and Cluster: the replica is stopped (SIGSTOP) and a ballast
//     write fills the replication link's kernel buffers, so the writes of
//     the window stay in the master's output buffer: a replica lagging
//     under load. The master is killed, the replica continued (SIGCONT) and
//     promoted without them. On loopback a paused replica alone loses
//     nothing: the kernel delivers what the dead master had written.
//   - A single Redis with appendfsync everysec: a kill -9 of the process
//     loses nothing (the AOF is written before the reply), a machine crash
//     loses what was not yet fsynced, up to a second. Simulated by cutting
//     the AOF back to its length when the window opened before the
//     restart. With appendfsync always the AOF is kept whole: every
//     acknowledged write was fsynced.

// redisTopology is a Redis deployment under one fault.
type redisTopology interface {
	// Configure points the replica set's store at it.
	Configure(o *replicaOptions)
	// BeginLag opens the loss window.
	BeginLag(t *testing.T)
	// Crash kills the master with SIGKILL, ending the window.
	Crash(t *testing.T)
	// WaitRecovered returns once a master serves the store again (and the
	// killed server is back, as a replica where there are replicas).
	WaitRecovered(t *testing.T)
	// Fault says what was done, for the report.
	Fault() string
}

// chaosMasterName is the Sentinel master's name.
const chaosMasterName = "chaos"

// redisClient is a go-redis client to one server, closed at cleanup.
func redisClient(t *testing.T, addr string) *goredis.Client {
	t.Helper()
	goredis.SetLogger(quietRedisLog{})
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 500 * time.Millisecond,
		ReadTimeout: 5 * time.Second})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// quietRedisLog drops go-redis's log lines (refused dials are the point).
type quietRedisLog struct{}

func (quietRedisLog) Printf(context.Context, string, ...any) {}

// infoField returns field of INFO section on addr ("" if unreachable).
func infoField(addr, section, field string) string {
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 300 * time.Millisecond})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	info, err := c.Info(ctx, section).Result()
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return v
		}
	}
	return ""
}

// clusterState is cluster_state of CLUSTER INFO on addr ("" if
// unreachable).
func clusterState(addr string) string {
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 300 * time.Millisecond})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	info, err := c.ClusterInfo(ctx).Result()
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, "cluster_state:"); ok {
			return v
		}
	}
	return ""
}

// waitLinkUp waits until the replica at addr is in sync with its master.
func waitLinkUp(t *testing.T, addr string, d time.Duration) {
	t.Helper()
	require.True(t, waitFor(d, func() bool { return infoField(addr, "replication", "master_link_status") == "up" }),
		"replica %s not in sync within %s", addr, d)
}

var omemRE = regexp.MustCompile(`\bomem=(\d+)`)

// lagReplica makes the paused replica of master lag: ballast values
// (under keys from key, outside the store's prefix) are written until the
// master holds more than a MiB for the replica in its own output buffer,
// beyond what the kernel buffers took. It returns the ballast's size.
func lagReplica(t *testing.T, master *goredis.Client, key func(i int) string) int {
	t.Helper()
	ctx := context.Background()
	chunk := strings.Repeat("b", 8<<20)
	for i := 0; i < 16; i++ {
		require.NoError(t, master.Set(ctx, key(i), chunk, 0).Err(), "ballast write")
		list, err := master.ClientList(ctx).Result()
		require.NoError(t, err)
		omem := 0
		for _, l := range strings.Split(list, "\n") {
			if strings.Contains(l, "flags=S") {
				if m := omemRE.FindStringSubmatch(l); m != nil {
					omem, _ = strconv.Atoi(m[1])
				}
			}
		}
		if omem > 1<<20 {
			return (i + 1) * len(chunk)
		}
	}
	t.Fatalf("the replication link took %d MiB of ballast without backing up", 16*8)
	return 0
}

// lagPair is a master and the replica that takes over from it, with what
// a round did to them: the replica held back (beginLag) and the master
// killed (Crash), and how long the failover took.
type lagPair struct {
	master, replica *redisProc
	ballast         int
	lagAt, crashAt  time.Time
	failover        time.Duration
}

// beginLag holds the replica back (paused) and fills its replication link
// with ballast keys named by keyFormat (one %d), so what the master
// acknowledges from now on stays in its output buffer.
func (p *lagPair) beginLag(t *testing.T, keyFormat string) {
	t.Helper()
	p.lagAt = time.Now()
	p.replica.Pause(t)
	p.ballast = lagReplica(t, redisClient(t, p.master.Addr), func(i int) string { return fmt.Sprintf(keyFormat, i) })
}

// Crash kills the master with SIGKILL and lets the replica go on.
func (p *lagPair) Crash(t *testing.T) {
	t.Helper()
	p.crashAt = time.Now()
	p.master.Kill9(t)
	p.replica.Resume(t)
}

// sentinelTopo is a master, one replica and three Sentinels.
type sentinelTopo struct {
	lagPair
	sentinels []*redisProc
	opts      sentinelOptions
	// second is the master after the second failover (SecondFailover).
	second *redisProc
}

// sentinelOptions vary the Sentinel runs (measurements only).
type sentinelOptions struct {
	// SecondFailover adds a second fault once the killed master is back
	// as a replica, still in its first sync: the new master stalls
	// (SIGSTOP) past down-after, and the Sentinels fail over again.
	SecondFailover bool
	// Persistent gives the data nodes an AOF (appendfsync everysec: a
	// kill -9 loses nothing), so the killed master comes back with its
	// data rather than empty.
	Persistent bool
}

// startSentinelTopo starts the master, its replica and three Sentinels
// (quorum 2, down-after 1000 ms, failover-timeout 3000 ms), and waits until
// every Sentinel knows the replica and the other two.
func startSentinelTopo(t *testing.T, o sentinelOptions) *sentinelTopo {
	t.Helper()
	// The first sync of a replica starts at once (the default waits 5 s
	// for more replicas to share it).
	sync := []string{"--repl-diskless-sync-delay", "0"}
	data := redisOptions{Args: sync, Persistent: o.Persistent, Fsync: "everysec"}
	s := &sentinelTopo{lagPair: lagPair{master: startRedisWith(t, data)}, opts: o}
	data.Args = append(sync, "--replicaof", "127.0.0.1", itoa(s.master.Port))
	s.replica = startRedisWith(t, data)
	waitLinkUp(t, s.replica.Addr, 20*time.Second)
	conf := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d 2\nsentinel down-after-milliseconds %[1]s 1000\n"+
		"sentinel failover-timeout %[1]s 3000\nsentinel parallel-syncs %[1]s 1\n", chaosMasterName, s.master.Port)
	for i := 0; i < 3; i++ {
		s.sentinels = append(s.sentinels, startRedisWith(t, redisOptions{Conf: conf, Args: []string{"--sentinel"}}))
	}
	for _, sn := range s.sentinels {
		c := goredis.NewSentinelClient(&goredis.Options{Addr: sn.Addr, MaxRetries: -1})
		ok := waitFor(20*time.Second, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			reps, err1 := c.Replicas(ctx, chaosMasterName).Result()
			peers, err2 := c.Sentinels(ctx, chaosMasterName).Result()
			return err1 == nil && err2 == nil && len(reps) == 1 && len(peers) == 2
		})
		_ = c.Close()
		require.True(t, ok, "sentinel %s does not know the replica and both other sentinels", sn.Addr)
	}
	return s
}

func (s *sentinelTopo) Configure(o *replicaOptions) {
	for _, sn := range s.sentinels {
		o.RedisAddrs = append(o.RedisAddrs, sn.Addr)
	}
	o.MasterName = chaosMasterName
}

func (s *sentinelTopo) BeginLag(t *testing.T) {
	t.Helper()
	s.beginLag(t, "chaos-ballast:%d")
}

// WaitRecovered waits until every Sentinel names the replica as the
// master, it says so and every Sentinel sees it healthy, then starts the
// killed master again as its replica (an empty master must not come back
// as a master: Redis's replication docs) and waits until it is in sync.
func (s *sentinelTopo) WaitRecovered(t *testing.T) {
	t.Helper()
	s.requireMaster(t, s.replica, 40*time.Second)
	s.failover = time.Since(s.crashAt)
	s.master.opts.Args = append(s.master.opts.Args, "--replicaof", "127.0.0.1", itoa(s.replica.Port))
	if s.opts.SecondFailover {
		s.secondFailover(t)
		return
	}
	s.master.Restart(t)
	waitLinkUp(t, s.master.Addr, 30*time.Second)
	// Sentinel 7.0 may promote a replica still in its first sync (it
	// reports master_link_down_since_seconds -1): if the Sentinels had
	// taken the new master for down, they would have made the empty one
	// the master. Say so plainly rather than count a wiped store.
	s.requireMaster(t, s.replica, time.Second)
}

// requireMaster waits until every Sentinel names m as the master, sees it
// up (flags "master", a ping answered within the last 500 ms) and m says
// it is a master.
func (s *sentinelTopo) requireMaster(t *testing.T, m *redisProc, d time.Duration) {
	t.Helper()
	for _, sn := range s.sentinels {
		c := goredis.NewSentinelClient(&goredis.Options{Addr: sn.Addr, MaxRetries: -1})
		var last string
		ok := waitFor(d, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			got, err := c.Master(ctx, chaosMasterName).Result()
			if err != nil {
				last = err.Error()
				return false
			}
			last = fmt.Sprintf("%s:%s flags=%s last-ok-ping-reply=%s", got["ip"], got["port"], got["flags"], got["last-ok-ping-reply"])
			ping, _ := strconv.Atoi(got["last-ok-ping-reply"])
			return net.JoinHostPort(got["ip"], got["port"]) == m.Addr && got["flags"] == "master" && ping < 500 &&
				infoField(m.Addr, "replication", "role") == "master"
		})
		_ = c.Close()
		require.True(t, ok, "sentinel %s does not see %s as a healthy master within %s (it sees %s)", sn.Addr, m.Addr, d, last)
	}
}

// secondFailover restarts the killed master as a replica whose first sync
// waits (the new master's repl-diskless-sync-delay back at Redis's default
// 5 s), stalls the new master 3 s (SIGSTOP) so the Sentinels fail over
// again, and waits until they agree on a master and the other node is its
// replica in sync.
func (s *sentinelTopo) secondFailover(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, redisClient(t, s.replica.Addr).ConfigSet(ctx, "repl-diskless-sync-delay", "5").Err())
	s.master.Restart(t)
	s.replica.Pause(t)
	time.Sleep(3 * time.Second)
	s.replica.Resume(t)
	var m, other *redisProc
	require.True(t, waitFor(40*time.Second, func() bool {
		m, other = nil, nil
		for _, sn := range s.sentinels {
			c := goredis.NewSentinelClient(&goredis.Options{Addr: sn.Addr, MaxRetries: -1})
			got, err := c.GetMasterAddrByName(ctx, chaosMasterName).Result()
			_ = c.Close()
			if err != nil || len(got) != 2 {
				return false
			}
			named := map[string]*redisProc{s.master.Addr: s.master, s.replica.Addr: s.replica}[net.JoinHostPort(got[0], got[1])]
			if named == nil || (m != nil && named != m) {
				return false
			}
			m = named
		}
		other = map[*redisProc]*redisProc{s.master: s.replica, s.replica: s.master}[m]
		return infoField(m.Addr, "replication", "role") == "master" &&
			infoField(other.Addr, "replication", "master_link_status") == "up"
	}), "the Sentinels did not settle after the second fault")
	s.second = m
}

func (s *sentinelTopo) Fault() string {
	if s.opts.SecondFailover {
		who := "the promoted replica (no second failover)"
		if s.second == s.master {
			who = "the restarted old master, before its first sync"
		}
		return fmt.Sprintf("replica paused %s (ballast %d MiB), master kill -9ed, replica promoted %s later; old master back as a replica "+
			"(persistence %v), the new master stalled 3 s: the Sentinels' master is now %s",
			s.crashAt.Sub(s.lagAt).Round(time.Millisecond), s.ballast>>20, s.failover.Round(time.Millisecond), s.opts.Persistent, who)
	}
	return fmt.Sprintf("replica paused %s (ballast %d MiB), master kill -9ed, replica promoted %s later; old master back as a replica",
		s.crashAt.Sub(s.lagAt).Round(time.Millisecond), s.ballast>>20, s.failover.Round(time.Millisecond))
}

// aofTopo is one Redis with an append-only file.
type aofTopo struct {
	r *redisProc
	// durable: appendfsync always, the AOF kept whole at the crash;
	// otherwise everysec, cut back to its length when the window opened.
	durable  bool
	aof      string
	cutTo    int64
	cutBytes int64
	lagAt    time.Time
	crashAt  time.Time
}

// startAOFTopo starts the Redis (appendfsync always when durable,
// everysec otherwise).
func startAOFTopo(t *testing.T, durable bool) *aofTopo {
	t.Helper()
	fsync := "everysec"
	if durable {
		fsync = "always"
	}
	return &aofTopo{r: startRedisWith(t, redisOptions{Persistent: true, Fsync: fsync}), durable: durable}
}

func (a *aofTopo) Configure(o *replicaOptions) { o.Redis = a.r }

// incrAOF is the newest incremental AOF file (Redis 7's multi-part AOF).
func (a *aofTopo) incrAOF(t *testing.T) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(a.r.Dir, "appendonlydir", "*.incr.aof"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no incremental AOF in %s", a.r.Dir)
	sort.Slice(files, func(i, j int) bool { return aofSeq(files[i]) < aofSeq(files[j]) })
	return files[len(files)-1]
}

// aofSeq is N of appendonly.aof.N.incr.aof.
func aofSeq(p string) int {
	parts := strings.Split(filepath.Base(p), ".")
	if len(parts) < 4 {
		return 0
	}
	n, _ := strconv.Atoi(parts[len(parts)-3])
	return n
}

func (a *aofTopo) BeginLag(t *testing.T) {
	t.Helper()
	a.lagAt = time.Now()
	a.aof = a.incrAOF(t)
	fi, err := os.Stat(a.aof)
	require.NoError(t, err)
	a.cutTo = fi.Size()
}

func (a *aofTopo) Crash(t *testing.T) {
	t.Helper()
	a.crashAt = time.Now()
	a.r.Kill9(t)
	require.Equal(t, a.aof, a.incrAOF(t), "the AOF was rewritten during the window")
	if a.durable {
		return
	}
	fi, err := os.Stat(a.aof)
	require.NoError(t, err)
	a.cutBytes = fi.Size() - a.cutTo
	require.NoError(t, os.Truncate(a.aof, a.cutTo))
}

func (a *aofTopo) WaitRecovered(t *testing.T) {
	t.Helper()
	a.r.Restart(t)
}

func (a *aofTopo) Fault() string {
	if a.durable {
		return fmt.Sprintf("appendfsync always; kill -9 %s after the window opened, restarted from the whole AOF",
			a.crashAt.Sub(a.lagAt).Round(time.Millisecond))
	}
	return fmt.Sprintf("appendfsync everysec; kill -9 %s after the window opened, the AOF cut back by %d bytes (a machine crash), restarted",
		a.crashAt.Sub(a.lagAt).Round(time.Millisecond), a.cutBytes)
}

// clusterTopo is a Redis Cluster of three masters with one replica each.
type clusterTopo struct {
	nodes []*redisProc
	// lagPair's master serves the store's hash slot; replica is its
	// replica.
	lagPair
}

// startClusterTopo starts six Cluster nodes (cluster-node-timeout 1000
// ms), joins them with redis-cli --cluster create --cluster-replicas 1 and
// finds the master serving the slot of {acmebridge} and its replica.
func startClusterTopo(t *testing.T) *clusterTopo {
	t.Helper()
	cli := requireTool(t, "redis-cli")
	c := &clusterTopo{}
	var addrs []string
	for i := 0; i < 6; i++ {
		n := startRedisWith(t, redisOptions{Args: []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "1000", "--cluster-port", itoa(freePorts(t, 1)[0]), "--repl-diskless-sync-delay", "0"}})
		c.nodes = append(c.nodes, n)
		addrs = append(addrs, n.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	require.NoError(t, err, "redis-cli %s:\n%s", strings.Join(args, " "), out)
	for _, n := range c.nodes {
		require.True(t, waitFor(30*time.Second, func() bool { return clusterState(n.Addr) == "ok" }),
			"node %s: cluster not ok", n.Addr)
	}
	ctx := context.Background()
	c0 := redisClient(t, addrs[0])
	slot, err := c0.ClusterKeySlot(ctx, "e2e:{acmebridge}:x").Result()
	require.NoError(t, err)
	var masterID string
	require.True(t, waitFor(30*time.Second, func() bool {
		nodes, err := c0.ClusterNodes(ctx).Result()
		if err != nil {
			return false
		}
		var replicaAddr string
		masterID, c.master, replicaAddr = "", nil, ""
		for _, l := range strings.Split(strings.TrimSpace(nodes), "\n") {
			f := strings.Fields(l)
			if len(f) < 8 || !strings.Contains(f[2], "master") {
				continue
			}
			for _, r := range f[8:] {
				lo, hi, _ := strings.Cut(r, "-")
				a, _ := strconv.Atoi(lo)
				b, err := strconv.Atoi(hi)
				if err != nil {
					b = a
				}
				if int64(a) <= slot && slot <= int64(b) {
					masterID, c.master = f[0], c.node(f[1])
				}
			}
		}
		for _, l := range strings.Split(strings.TrimSpace(nodes), "\n") {
			if f := strings.Fields(l); len(f) >= 4 && masterID != "" && f[3] == masterID {
				replicaAddr = f[1]
			}
		}
		c.replica = c.node(replicaAddr)
		return c.master != nil && c.replica != nil
	}), "no master and replica found for slot %d", slot)
	waitLinkUp(t, c.replica.Addr, 30*time.Second)
	return c
}

// node finds the node of a CLUSTER NODES address (ip:port@bus).
func (c *clusterTopo) node(addr string) *redisProc {
	addr, _, _ = strings.Cut(addr, "@")
	for _, n := range c.nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

func (c *clusterTopo) Configure(o *replicaOptions) {
	for _, n := range c.nodes {
		o.RedisAddrs = append(o.RedisAddrs, n.Addr)
	}
}

func (c *clusterTopo) BeginLag(t *testing.T) {
	t.Helper()
	// In the store's slot, so the ballast goes down the same link.
	c.beginLag(t, "chaos-ballast:%d{acmebridge}")
}

// WaitRecovered waits until the replica is a master and the cluster is ok
// again, then starts the killed master again (it rejoins as a replica) and
// waits until it is in sync.
func (c *clusterTopo) WaitRecovered(t *testing.T) {
	t.Helper()
	ok := waitFor(40*time.Second, func() bool {
		return infoField(c.replica.Addr, "replication", "role") == "master" &&
			clusterState(c.replica.Addr) == "ok"
	})
	require.True(t, ok, "%s was not promoted within 40s", c.replica.Addr)
	c.failover = time.Since(c.crashAt)
	c.master.Restart(t)
	waitLinkUp(t, c.master.Addr, 30*time.Second)
	require.Equal(t, "master", infoField(c.replica.Addr, "replication", "role"),
		"the cluster failed over again once the killed master was back")
}

func (c *clusterTopo) Fault() string {
	return fmt.Sprintf("replica of the store's master paused %s (ballast %d MiB), master kill -9ed, replica promoted %s later; old master back as a replica",
		c.crashAt.Sub(c.lagAt).Round(time.Millisecond), c.ballast>>20, c.failover.Round(time.Millisecond))
}
