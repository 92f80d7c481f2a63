package test

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/upstream/acme/acmetest"
)

// This file drives acmebridge as a relay to a public ACME CA, played by
// real Pebble processes: clients validate their names to acmebridge, and
// acmebridge obtains the certificate from Pebble with its own account,
// solving Pebble's challenges itself (dns-01 through lego's httpreq
// provider into pebble-challtestsrv, or http-01 with its responder).

// acmeUpstreamDNS is the YAML of an acme upstream for Pebble p with the
// dns-01 solver.
func acmeUpstreamDNS(name string, p *acmetest.Pebble) string {
	return fmt.Sprintf(`  - name: %s
    type: acme
    acme:
      directory: %q
      email: relay@example.com
      ca_file: %q
      timeout: 10s
      solver:
        type: dns-01
        provider: httpreq
        env: {HTTPREQ_ENDPOINT: %q}
        resolvers: [%q]
        propagation: {timeout: 30s, interval: 100ms}
`, name, p.DirectoryURL, p.CAFile, p.ChallSrv.HTTPReqURL, p.ChallSrv.DNSAddr)
}

// acmeUpstreamHTTP is acmeUpstreamDNS with the http-01 responder on the
// port Pebble's VA connects to.
func acmeUpstreamHTTP(name string, p *acmetest.Pebble) string {
	return acmeUpstreamHTTPOn(name, p, p.HTTPPort)
}

// acmeUpstreamHTTPOn is acmeUpstreamHTTP with the responder on port.
func acmeUpstreamHTTPOn(name string, p *acmetest.Pebble, port int) string {
	return fmt.Sprintf(`  - name: %s
    type: acme
    acme:
      directory: %q
      ca_file: %q
      solver:
        type: http-01
        listen: "127.0.0.1:%d"
`, name, p.DirectoryURL, p.CAFile, port)
}

// relayConfig routes everything to the upstreams, in order.
func relayConfig(upstreamsYAML string, order ...string) string {
	return "upstreams:\n" + upstreamsYAML + "policy:\n  default: {upstreams: [" + strings.Join(order, ", ") + "]}\n"
}

// pebbleSerial is a leaf's serial as Pebble's management API takes it.
func pebbleSerial(t *testing.T, chainPEM []byte) string {
	return leafOf(t, chainPEM).SerialNumber.Text(16)
}

// TestRelayLego: lego (library) validates to acmebridge with http-01;
// acmebridge obtains from Pebble through dns-01; the chain verifies against
// Pebble's root (not acmebridge's own CA); a revocation through acmebridge
// reaches Pebble with its reason.
func TestRelayLego(t *testing.T) {
	quietLego(t)
	p := acmetest.Start(t, acmetest.Options{})
	s := startServer(t, relayConfig(acmeUpstreamDNS("pebble", p), "pebble"))
	c, _ := legoAccount(t, s, "relay-lego@example.com", nil)

	names := []string{"lego.relay.test", "www.lego.relay.test"}
	start := time.Now()
	res := legoObtain(t, c, names...)
	t.Logf("relayed issuance of %v took %s", names, time.Since(start).Round(time.Millisecond))
	verifyChainPool(t, p.Roots(t), "Pebble's root", res.Certificate, names)
	requireNotChainsTo(t, s.Roots, s.CAFile, res.Certificate)
	serial := pebbleSerial(t, res.Certificate)
	require.Equal(t, "Valid", p.CertStatus(t, serial).Status, "Pebble issued this certificate")
	require.Equal(t, 1, p.Orders(), "one upstream order")
	require.Equal(t, 1, p.Accounts(), "acmebridge's one account at Pebble")
	require.Contains(t, s.Logs(), `msg="acme order placed"`)

	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	reason := uint(1) // keyCompromise
	require.NoError(t, c.Certificate.RevokeWithReason(ctx, res.Certificate, &reason))
	st := p.CertStatus(t, serial)
	require.Equal(t, "Revoked", st.Status, "the revocation was relayed to Pebble")
	require.NotNil(t, st.Reason)
	require.Equal(t, 1, *st.Reason)
	requireProblem(t, c.Certificate.Revoke(ctx, res.Certificate), "alreadyRevoked")

	// The account key is in the store, sealed: not in the data directory.
	b, err := os.ReadFile(filepath.Join(s.DataDir, "acmebridge.db"))
	require.NoError(t, err)
	require.NotContains(t, string(b), "PRIVATE KEY", "the account key is sealed at rest")
}

// TestRelayCertbot: certbot (standalone http-01) against acmebridge, which
// obtains from Pebble with its http-01 responder; certbot's revocation is
// relayed.
func TestRelayCertbot(t *testing.T) {
	certbot := requireTool(t, "certbot")
	p := acmetest.Start(t, acmetest.Options{})
	s := startServer(t, relayConfig(acmeUpstreamHTTP("pebble-http", p), "pebble-http"))
	const name = "certbot.relay.test"
	dir := t.TempDir()
	env := toolEnv("REQUESTS_CA_BUNDLE=" + s.CAFile)
	dirs := []string{"--config-dir", filepath.Join(dir, "config"), "--work-dir", filepath.Join(dir, "work"),
		"--logs-dir", filepath.Join(dir, "logs")}
	logOnFailure(t, filepath.Join(dir, "logs", "letsencrypt.log"))
	args := append([]string{"certonly", "--server", s.DirectoryURL, "-d", name, "--agree-tos", "-m", "x@example.com",
		"--non-interactive", "--no-eff-email", "--standalone", "--http-01-port", itoa(s.HTTPPort), "--http-01-address", "127.0.0.1"}, dirs...)
	runTool(t, env, dir, certbot, args...)
	live := filepath.Join(dir, "config", "live", name)
	chain, err := os.ReadFile(filepath.Join(live, "fullchain.pem"))
	require.NoError(t, err)
	verifyChainPool(t, p.Roots(t), "Pebble's root", chain, []string{name})
	serial := pebbleSerial(t, chain)
	require.Equal(t, "Valid", p.CertStatus(t, serial).Status)

	args = append([]string{"revoke", "--server", s.DirectoryURL, "--cert-path", filepath.Join(live, "cert.pem"),
		"--reason", "superseded", "--non-interactive", "--no-delete-after-revoke"}, dirs...)
	runTool(t, env, dir, certbot, args...)
	st := p.CertStatus(t, serial)
	require.Equal(t, "Revoked", st.Status, "certbot's revocation was relayed to Pebble")
	require.NotNil(t, st.Reason)
	require.Equal(t, 4, *st.Reason)
}

// TestRelayFailover: two Pebbles as primary and secondary; with the
// primary stopped the secondary issues, and the order and the audit log
// name it.
func TestRelayFailover(t *testing.T) {
	quietLego(t)
	cs := acmetest.StartChallSrv(t)
	primary := acmetest.Start(t, acmetest.Options{ChallSrv: cs})
	secondary := acmetest.Start(t, acmetest.Options{ChallSrv: cs})
	hook, hookYAML := startHook(t)
	s := startServer(t, relayConfig(acmeUpstreamDNS("primary", primary)+acmeUpstreamDNS("secondary", secondary), "primary", "secondary")+hookYAML)
	c, _ := legoAccount(t, s, "relay-failover@example.com", nil)

	res := legoObtain(t, c, "one.failover.test")
	verifyChainPool(t, primary.Roots(t), "the primary's root", res.Certificate, []string{"one.failover.test"})
	require.Equal(t, 1, primary.Orders())
	require.Equal(t, 0, secondary.Orders(), "the secondary is not used while the primary works")
	secondaryRoots := secondary.Roots(t)

	primary.Stop()
	start := time.Now()
	res = legoObtain(t, c, "two.failover.test")
	t.Logf("issued by the secondary %s after the primary stopped", time.Since(start).Round(time.Millisecond))
	verifyChainPool(t, secondaryRoots, "the secondary's root", res.Certificate, []string{"two.failover.test"})
	require.Equal(t, 1, secondary.Orders())

	logs := s.Logs()
	require.Regexp(t, `msg="worker: upstream failed".* upstream=primary .*cannot reach the CA`, logs)
	require.Regexp(t, `msg="certificate issued".* upstream=secondary `, logs)
	lines := readAudit(t, s.AuditFile())
	i := findAudit(lines, 0, func(e auditEvent) bool { return e.Event == "certificate.issued" && e.hasName("two.failover.test") })
	require.NotEqual(t, -1, i, "audit:\n%s", dumpAudit(lines))
	require.Equal(t, "secondary", lines[i].E.Upstream)

	// Circuit breaker: after three failures in a row the primary is
	// skipped outright.
	for _, n := range []string{"three.failover.test", "four.failover.test"} {
		legoObtain(t, c, n)
	}
	require.Contains(t, s.Logs(), `msg="worker: upstream marked unhealthy" upstream=primary`)
	legoObtain(t, c, "five.failover.test")
	require.Regexp(t, `msg="worker: skipping unhealthy upstream" order=\S+ upstream=primary`, s.Logs())
	require.Equal(t, 4, secondary.Orders())
	// The webhook is told the primary is down (once).
	require.True(t, waitFor(20*time.Second, func() bool { return len(hook.of("upstream.down")) == 1 }), "upstream.down delivered")
	require.Equal(t, "primary", hook.of("upstream.down")[0].Data.Upstream)

	// The primary comes back (a fresh Pebble: it forgot acmebridge's
	// account); the directory probe notices, and the next order goes to
	// it again, registering anew with the same key.
	primary.Restart(t)
	require.True(t, waitFor(30*time.Second, func() bool {
		return strings.Contains(s.Logs(), `msg="worker: upstream healthy again" upstream=primary`)
	}), "the probe did not find the primary healthy within 30s")
	res = legoObtain(t, c, "six.failover.test")
	verifyChainPool(t, primary.Roots(t), "the restarted primary's root", res.Certificate, []string{"six.failover.test"})
	require.Equal(t, 1, primary.Accounts())
	require.True(t, waitFor(20*time.Second, func() bool { return len(hook.of("upstream.recovered")) == 1 }), "upstream.recovered delivered")
	require.Equal(t, "primary", hook.of("upstream.recovered")[0].Data.Upstream)
	require.Len(t, hook.of("upstream.down"), 1, "down told once")
	hook.requireOnce(t)
}

// TestRelayReplicaKilled: two replicas on one Redis relay to Pebble; the
// replica working on the order is killed with SIGKILL while it solves
// Pebble's challenge (the upstream order already recorded in the job); the
// other replica takes the job over when the lease ends and resumes the same
// upstream order: Pebble holds exactly one order, and the client gets its
// certificate.
func TestRelayReplicaKilled(t *testing.T) {
	rd := startRedis(t, false)
	p := acmetest.Start(t, acmetest.Options{AuthzReuse: -1})
	rs := startRelayReplicas(t, rd, relayConfig(acmeUpstreamDNS("pebble", p), "pebble"))
	useTestDNSForLego(t, rs.DNS)

	// Hold the first record acmebridge sets at Pebble's DNS: the
	// issuance is then past placing the order and before finalizing it.
	reached, release := make(chan string, 1), make(chan struct{})
	var once sync.Once
	p.ChallSrv.OnPresent(func(fqdn string) {
		first := false
		once.Do(func() { first = true })
		if first {
			reached <- fqdn
			<-release
		}
	})
	defer p.ChallSrv.OnPresent(nil)

	u := rs.register(t, "relay-kill@example.com")
	c := rs.legoClient(t, u, 3*time.Minute)
	rs.useDNS01(t, c, nil)
	const name = "kill.relay.test"
	done := make(chan obtainResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		done <- obtain(ctx, c, []string{name})
	}()
	select {
	case fqdn := <-reached:
		t.Logf("upstream issuance held at Pebble's record %s", fqdn)
	case r := <-done:
		t.Fatalf("the client finished before the upstream issuance was held: %v", r.err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the upstream issuance did not reach Pebble's challenge within 2 minutes")
	}
	var victim *replica
	for _, r := range rs.Replicas {
		if strings.Contains(r.Logs(), `msg="acme order placed"`) {
			victim = r
		}
	}
	require.NotNil(t, victim, "no replica placed the upstream order")
	victim.Kill9(t)
	close(release)
	t.Logf("killed replica %d, which held the upstream order", victim.Index)
	victim.Restart(t)

	var r obtainResult
	select {
	case r = <-done:
	case <-time.After(4 * time.Minute):
		t.Fatal("the client did not get its certificate within 4 minutes of the kill")
	}
	require.NoError(t, r.err, "obtain after the kill")
	verifyChainPool(t, p.Roots(t), "Pebble's root", r.res.Certificate, []string{name})
	logs := rs.AllLogs()
	require.Equal(t, 1, p.Orders(), "the upstream order was resumed, not placed again")
	require.Equal(t, 1, countLines(logs, `msg="acme order placed"`))
	require.Equal(t, 1, countLines(logs, `msg="acme order resumed"`), "the surviving replica resumed it")
	require.Equal(t, 1, p.Accounts(), "the replicas share one account")
	require.Equal(t, 1, countLines(logs, `msg="acme account key created"`), "the account key was made once")
	t.Logf("issued in %s after the kill; Pebble orders: %d", r.took.Round(time.Millisecond), p.Orders())
}

// startRelayReplicas is startReplicas for a config of one's own (the
// upstreams and policy in extra): two replicas on one Redis and one store
// key, behind the round-robin proxy, resolving through a test DNS server.
func startRelayReplicas(t *testing.T, rd *redisProc, extra string) *replicaSet {
	t.Helper()
	return startRelayReplicasEach(t, rd, func(int) string { return extra })
}

// startRelayReplicasEach is startRelayReplicas with each replica's extra
// config (replica i gets extra(i)).
func startRelayReplicasEach(t *testing.T, rd *redisProc, extra func(i int) string) *replicaSet {
	t.Helper()
	rs := &replicaSet{Dir: t.TempDir(), Redis: rd}
	rs.SharedDir = filepath.Join(rs.Dir, "shared")
	rs.KeyFile = filepath.Join(rs.SharedDir, "store.key")
	require.NoError(t, os.MkdirAll(rs.SharedDir, 0o700))
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i*5 + 1)
	}
	require.NoError(t, os.WriteFile(rs.KeyFile, []byte(hex.EncodeToString(key)+"\n"), 0o600))
	rs.DNS = startDNSServer(t)
	rs.Proxy = startLBProxy(t)
	rs.DirectoryURL = rs.Proxy.URL + "/directory"
	var backends []string
	for i := 0; i < 2; i++ {
		ports := freePorts(t, 4)
		r := &replica{Index: i, BaseURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
			AdminURL: fmt.Sprintf("http://127.0.0.1:%d", ports[1]), logs: &syncBuffer{},
			ConfigPath: filepath.Join(rs.Dir, fmt.Sprintf("replica%d.yaml", i))}
		r.Config = fmt.Sprintf(`data_dir: %q
server:
  listen: "127.0.0.1:%d"
  external_url: %q
  tls: {disabled: true}
  trusted_proxies: ["127.0.0.1/32"]
admin:
  listen: "127.0.0.1:%d"
store:
  driver: redis
  encryption_key_file: %q
  redis: {addrs: [%q], key_prefix: "relay:"}
orders:
  job_lease: 3s
  finalize_wait: 0s
validation:
  http_port: %d
  tls_alpn_port: %d
  dns_resolvers: [%q]
  allow_private_addresses: true
log:
  level: debug
`, filepath.Join(rs.Dir, fmt.Sprintf("replica%d-data", i)), ports[0], rs.Proxy.URL, ports[1], rs.KeyFile, rd.Addr,
			ports[2], ports[3], rs.DNS.Addr) + extra(i)
		require.NoError(t, os.WriteFile(r.ConfigPath, []byte(r.Config), 0o600))
		rs.Replicas = append(rs.Replicas, r)
		backends = append(backends, r.BaseURL)
	}
	t.Cleanup(func() {
		if !t.Failed() && os.Getenv("E2E_LOGS") == "" {
			return
		}
		for _, r := range rs.Replicas {
			t.Logf("replica %d config:\n%s\nreplica %d output (last 300 lines):\n%s", r.Index, r.Config, r.Index, tailLines(r.Logs(), 300))
		}
	})
	for _, r := range rs.Replicas {
		r.start(t)
	}
	rs.Proxy.SetBackends(backends...)
	return rs
}
