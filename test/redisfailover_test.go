package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/go-acme/lego/v5/lego"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/test/chaoscount"

	"github.com/acmebridge/acmebridge/upstream/vault/vaulttest"
)

// Redis failing over or crashing under load (issue 18): two replicas on
// one of the topologies of redistopo_test.go, lego clients issuing through
// a real Vault, EAB bindings and signed requests around the fault. Each
// run counts the promises that broke (chaoscount.Counts).
//
// In the test command each topology runs once with the durability the
// README recommends (Sentinel and Cluster: store.redis.durability with one
// replica; a single Redis: appendfsync always) and must break none. The
// measurement (make chaos-redis) sets:
//
//	ACMEBRIDGE_CHAOS_ROUNDS=N          N rounds per topology (fresh processes each)
//	ACMEBRIDGE_CHAOS_DURABILITY=off    without the durability (default on)
//	ACMEBRIDGE_CHAOS_OUT=file          one JSON line per round appended there
//	ACMEBRIDGE_CHAOS_WINDOW=2500ms     a longer loss window (default 1s)
//
// Violations fail a run with durability on (measured or not), never one
// without it.

// chaosStagger is when each lego client goes on after the barrier: each
// issues one certificate (and retries with a new order after an error).
// Four finalize at once: with one worker per replica, two are claimed and
// signed at once and two wait in the queue, as under load, to be claimed
// inside the window; the last two finalize inside the window.
var chaosStagger = []time.Duration{0, 0, 0, 0, 400 * time.Millisecond, 700 * time.Millisecond}

const (
	// chaosWorkers is orders.workers per replica.
	chaosWorkers = 1
	// chaosSignDelay is how long Vault takes to sign (its proxy holds the
	// request): sign requests are in flight across the crash.
	chaosSignDelay = 300 * time.Millisecond
	// chaosWindow is how long the loss window stays open before the crash
	// (ACMEBRIDGE_CHAOS_WINDOW overrides it).
	chaosWindow = time.Second
	// chaosDurabilityYAML is the store.redis setting the README
	// recommends with replicas (Sentinel, Cluster).
	chaosDurabilityYAML = "    durability: {replicas: 1, timeout: 1s}\n"
)

// chaosEnv is the run's settings from the environment.
type chaosEnv struct {
	rounds  int
	durable bool
	out     string
	window  time.Duration
}

func readChaosEnv(t *testing.T) chaosEnv {
	t.Helper()
	e := chaosEnv{rounds: 1, durable: true, out: os.Getenv("ACMEBRIDGE_CHAOS_OUT"), window: chaosWindow}
	if v := os.Getenv("ACMEBRIDGE_CHAOS_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, "ACMEBRIDGE_CHAOS_WINDOW")
		e.window = d
	}
	if v := os.Getenv("ACMEBRIDGE_CHAOS_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "ACMEBRIDGE_CHAOS_ROUNDS")
		require.Positive(t, n, "ACMEBRIDGE_CHAOS_ROUNDS")
		e.rounds = n
	}
	switch v := os.Getenv("ACMEBRIDGE_CHAOS_DURABILITY"); v {
	case "", "on":
	case "off":
		e.durable = false
	default:
		t.Fatalf("ACMEBRIDGE_CHAOS_DURABILITY=%q: on or off", v)
	}
	return e
}

// TestRedisChaosSentinel: Sentinel (master, replica, three Sentinels); the
// replica lags, the master is killed with SIGKILL while finalizes, sign
// requests and EAB bindings are in flight, the replica is promoted.
//
// With durability the data nodes keep an AOF (everysec), as the topology
// docs/operating.md recommends: without one, a node that crashed comes back
// empty and a second failover can promote it. Measurements:
// ACMEBRIDGE_CHAOS_SECOND_FAILOVER=1 adds that second fault (the new master
// stalls while the killed one is back as a replica in its first sync);
// ACMEBRIDGE_CHAOS_PERSIST=1 or 0 gives the data nodes an AOF or none
// whatever the durability.
func TestRedisChaosSentinel(t *testing.T) {
	second := os.Getenv("ACMEBRIDGE_CHAOS_SECOND_FAILOVER") == "1"
	persist := os.Getenv("ACMEBRIDGE_CHAOS_PERSIST")
	name := "sentinel"
	if second {
		name += "+second"
	}
	switch persist {
	case "1":
		name += "+aof"
	case "0":
		name += "-aof"
	}
	runChaos(t, name, func(t *testing.T, durable bool) redisTopology {
		o := sentinelOptions{SecondFailover: second, Persistent: persist == "1" || (durable && persist != "0")}
		return startSentinelTopo(t, o)
	})
}

// TestRedisChaosAOF: one Redis with an append-only file, killed with
// SIGKILL under load and restarted from it (everysec: the last second cut
// off, a machine crash; always: kept whole).
func TestRedisChaosAOF(t *testing.T) {
	runChaos(t, "aof", func(t *testing.T, durable bool) redisTopology { return startAOFTopo(t, durable) })
}

// TestRedisChaosCluster: Redis Cluster (three masters, one replica each);
// the replica of the master serving the store's slot lags, the master is
// killed with SIGKILL, its replica promoted.
func TestRedisChaosCluster(t *testing.T) {
	runChaos(t, "cluster", func(t *testing.T, _ bool) redisTopology { return startClusterTopo(t) })
}

func runChaos(t *testing.T, name string, start func(t *testing.T, durable bool) redisTopology) {
	env := readChaosEnv(t)
	requireRedisServer(t)
	for i := 1; i <= env.rounds; i++ {
		t.Run(fmt.Sprintf("round%d", i), func(t *testing.T) {
			began := time.Now()
			c := runChaosRound(t, name, start(t, env.durable), env)
			c.Round, c.Seconds = i, time.Since(began).Seconds()
			b, err := json.Marshal(c)
			require.NoError(t, err)
			t.Logf("%s durability=%s round %d: double signed %d, lost certificates %d, EAB double %d, nonce replays %d, stuck %d, bad errors %d\n"+
				"  orders %d, received %d, Vault signed %d (unrecorded %d), clean 503s %d; in the window: certificates %d, EAB %d, nonces %d; %.1fs\n  fault: %s\n  %s",
				name, c.Durability, i, c.DoubleSigned, c.LostCerts, c.EABDouble, c.NonceReplays, c.Stuck, c.BadErrors,
				c.Orders, c.Received, c.VaultSigned, c.Unrecorded, c.Clean503, c.CertsInWindow, c.EABInWindow, c.NoncesInWindow,
				c.Seconds, c.Fault, strings.Join(c.Notes, "\n  "))
			if env.out != "" {
				f, err := os.OpenFile(env.out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
				require.NoError(t, err)
				_, err = f.Write(append(b, '\n'))
				require.NoError(t, err)
				require.NoError(t, f.Close())
			}
			if env.durable {
				require.Zero(t, c.Violations(), "%s with durability: promises broke:\n  %s", name, strings.Join(c.Notes, "\n  "))
			}
		})
	}
}

// chaosRun is one round's processes and what it saw.
type chaosRun struct {
	t     *testing.T
	rs    *replicaSet
	adm   chaosAdmin
	vault *vaultUpstream
	obs   *chaosObserver
	c     chaoscount.Counts

	mu       sync.Mutex
	probes   []*chaosProbe
	attempts []chaosAttempt
	crashAt  time.Time
	lagAt    time.Time
	// stopAt is when clients stop retrying (UnixNano; 0 until the crash).
	stopAt atomic.Int64
}

// vaultUpstream is the Vault dev server the replicas sign with, behind a
// proxy that delays sign requests.
type vaultUpstream struct {
	v     *vaulttest.Server
	pki   *vaulttest.PKI
	proxy *vaulttest.Proxy
	yaml  string
}

// startVaultUpstream starts Vault, sets PKI up with the minimum policy and
// returns the replicas' upstreams entry.
func startVaultUpstream(t *testing.T) *vaultUpstream {
	t.Helper()
	v := vaulttest.Start(t, vaulttest.Options{})
	root := v.Client(t, "")
	p := setupVaultPKI(t, root)
	proxy := vaulttest.StartProxy(t, v.URL)
	tok := vaulttest.CreateToken(t, root, vaulttest.TokenOptions{Policies: []string{"acmebridge"}, NoDefaultPolicy: true})
	tokFile := filepath.Join(t.TempDir(), "vault-token")
	require.NoError(t, os.WriteFile(tokFile, []byte(tok+"\n"), 0o600))
	y := fmt.Sprintf("  - name: vault\n    type: vault\n    vault:\n      address: %q\n      mount: %s\n      role: %s\n      ttl: 24h\n      token_file: %q\n",
		proxy.URL, p.Mount, p.Role, tokFile)
	return &vaultUpstream{v: v, pki: p, proxy: proxy, yaml: y}
}

// chaosPolicyYAML routes the clients' names to Vault and accepts EAB.
const chaosPolicyYAML = `accounts:
  eab: optional
policy:
  rules:
    - name: vault
      match: {domains: ["*.` + vaultDomain + `"]}
      upstreams: [vault]
  default: {action: deny}
`

func runChaosRound(t *testing.T, name string, topo redisTopology, env chaosEnv) chaoscount.Counts {
	durable := env.durable
	run := &chaosRun{t: t, c: chaoscount.Counts{Topology: name, Durability: map[bool]string{true: "on", false: "off"}[durable]}}
	run.vault = startVaultUpstream(t)
	opts := replicaOptions{N: 2, JobLease: 3 * time.Second, FinalizeWait: time.Second, Workers: chaosWorkers,
		RedisYAML: "    dial_timeout: 500ms\n", Upstreams: run.vault.yaml, Extra: chaosPolicyYAML}
	topo.Configure(&opts)
	if durable && !strings.HasPrefix(name, "aof") {
		opts.RedisYAML += chaosDurabilityYAML
	}
	rs := startReplicas(t, opts)
	run.rs = rs
	useTestDNSForLego(t, rs.DNS)
	run.obs = &chaosObserver{}
	rs.Proxy.SetObserver(run.obs.observe)
	run.adm = newChaosAdmin(t, rs.Replicas[0], filepath.Join(rs.Dir, "replica0-data", "admin.token"))

	// Before the window: EAB keys, the probe account, the clients'
	// accounts, and one binding and one signed request that must survive
	// anything.
	keys := make([]eabSecret, 4)
	for i := range keys {
		keys[i] = run.adm.createEAB(t)
	}
	probeUser := rs.register(t, "probe@example.com")
	run.bindEAB("before", keys[0], time.Time{}, nil)
	run.nonceProbe("before", probeUser, time.Time{}, nil)
	legos := make([]*lego.Client, len(chaosStagger))
	b := newBarrier(len(chaosStagger))
	for i := range legos {
		legos[i] = rs.legoClient(t, rs.register(t, fmt.Sprintf("chaos%d@example.com", i)), 20*time.Second)
		p := &chaosDNSProvider{testDNSProvider: testDNSProvider{d: rs.DNS}, b: b, stagger: chaosStagger[i]}
		require.NoError(t, legos[i].Challenge.SetDNS01Provider(p, dns01.DisableAuthoritativeNssPropagationRequirement()))
	}
	run.vault.proxy.SetSignDelay(chaosSignDelay)

	var clients sync.WaitGroup
	for i := range legos {
		clients.Add(1)
		go func() {
			defer clients.Done()
			run.client(i, legos[i])
		}()
	}

	// The window opens once the first order is at Vault: the others are
	// finalizing, being claimed or waiting for their turn.
	require.True(t, waitFor(60*time.Second, func() bool { return run.vault.proxy.Signs() > 0 }), "no sign request reached Vault")
	topo.BeginLag(t)
	run.mu.Lock()
	run.lagAt = time.Now()
	run.mu.Unlock()
	var probes sync.WaitGroup
	for i, at := range []time.Duration{100, 400, 700} {
		run.bindEAB("window", keys[i+1], run.lagAt.Add(at*time.Millisecond), &probes)
		run.nonceProbe("window", probeUser, run.lagAt.Add((at+150)*time.Millisecond), &probes)
	}
	time.Sleep(time.Until(run.lagAt.Add(env.window)))
	topo.Crash(t)
	run.mu.Lock()
	run.crashAt = time.Now()
	run.mu.Unlock()
	run.stopAt.Store(time.Now().Add(30 * time.Second).UnixNano())
	topo.WaitRecovered(t)
	for _, r := range rs.Replicas {
		r.waitReady(t, r.done)
	}
	run.c.Fault = topo.Fault()
	probes.Wait()
	done := make(chan struct{})
	go func() { clients.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the clients did not finish within 2 minutes of the crash")
	}

	run.countStuck()
	run.countReplays(probeUser)
	run.countEAB()
	run.countCerts()
	run.countClientErrors()
	return run.c
}
