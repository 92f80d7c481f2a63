package test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/certcrypto"
	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/go-acme/lego/v5/lego"
	legolog "github.com/go-acme/lego/v5/log"
	"github.com/go-acme/lego/v5/registration"
)

// replicaOptions configures a replica set.
type replicaOptions struct {
	// N replicas (default 2).
	N int
	// Redis is the store every replica shares, unless RedisAddrs is set.
	Redis *redisProc
	// RedisAddrs, when set, are store.redis.addrs instead of Redis's
	// address: the Sentinels (with MasterName) or the Cluster's nodes.
	RedisAddrs []string
	// MasterName is store.redis.master_name (Sentinel).
	MasterName string
	// RedisYAML is more of store.redis (keys at two spaces below redis:,
	// as "    dial_timeout: 1s\n").
	RedisYAML string
	// Upstreams are more entries of the upstreams list (after the local
	// CA dev, which every set has), as "  - name: x\n    type: ...\n".
	Upstreams string
	// Delay is the local CA's delay per issuance (a slow CA).
	Delay time.Duration
	// JobLease is orders.job_lease (default 3s).
	JobLease time.Duration
	// FinalizeWait is orders.finalize_wait (default 1s).
	FinalizeWait time.Duration
	// Workers is orders.workers (default: the server's).
	Workers int
	// ValidationWait is orders.validation_wait (default 5s, the
	// server's).
	ValidationWait time.Duration
	// HTTPPort is validation.http_port, shared by every replica (default:
	// each its own unused port, for tests that only use dns-01).
	HTTPPort int
	// Extra is YAML appended to every replica's configuration.
	Extra string
}

// replicaSet is several `acmebridge serve` processes sharing one Redis, one
// local CA directory and one store key, behind one round-robin TLS proxy
// whose URL is every replica's external_url.
type replicaSet struct {
	Dir string
	// SharedDir holds the store key and the local CA (CADir).
	SharedDir string
	CADir     string
	KeyFile   string
	// Roots trusts the local CA's root (CADir/root.pem): what issued
	// certificates chain to.
	Roots *x509.CertPool

	Proxy        *lbProxy
	DNS          *dnsServer
	Redis        *redisProc
	DirectoryURL string
	// NewNoncePath is the path of the directory's newNonce URL.
	NewNoncePath string
	Replicas     []*replica
}

// replica is one acmebridge process, reached directly over plain HTTP.
type replica struct {
	Index int
	// BaseURL is http://127.0.0.1:PORT (what the proxy forwards to);
	// AdminURL the admin listener.
	BaseURL    string
	AdminURL   string
	ConfigPath string
	Config     string
	// Starts counts the process's starts (1 + restarts).
	Starts int

	logs *syncBuffer
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	// killed is set by Kill9 until Restart: cleanup then expects no process.
	killed bool
}

// startReplicas starts opts.N replicas (the first alone, since it creates
// the shared local CA) behind a new proxy, and a test DNS server they
// resolve through. Each is stopped with SIGTERM at cleanup and must exit
// cleanly; logs are printed (tails, or whole with E2E_LOGS=1) on failure.
func startReplicas(t *testing.T, opts replicaOptions) *replicaSet {
	t.Helper()
	require.True(t, opts.Redis != nil || len(opts.RedisAddrs) > 0, "a replica set needs a Redis")
	addrs := opts.RedisAddrs
	if len(addrs) == 0 {
		addrs = []string{opts.Redis.Addr}
	}
	redisYAML := "    addrs: ["
	for i, a := range addrs {
		if i > 0 {
			redisYAML += ", "
		}
		redisYAML += fmt.Sprintf("%q", a)
	}
	redisYAML += "]\n"
	if opts.MasterName != "" {
		redisYAML += fmt.Sprintf("    master_name: %q\n", opts.MasterName)
	}
	redisYAML += opts.RedisYAML
	workersYAML := ""
	if opts.Workers > 0 {
		workersYAML = fmt.Sprintf("  workers: %d\n", opts.Workers)
	}
	if opts.N == 0 {
		opts.N = 2
	}
	if opts.JobLease == 0 {
		opts.JobLease = 3 * time.Second
	}
	if opts.FinalizeWait == 0 {
		opts.FinalizeWait = time.Second
	}
	if opts.FinalizeWait < 0 {
		opts.FinalizeWait = 0
	}
	if opts.ValidationWait == 0 {
		opts.ValidationWait = 5 * time.Second
	}
	rs := &replicaSet{Dir: t.TempDir(), Redis: opts.Redis}
	rs.SharedDir = filepath.Join(rs.Dir, "shared")
	rs.CADir = filepath.Join(rs.SharedDir, "ca")
	rs.KeyFile = filepath.Join(rs.SharedDir, "store.key")
	require.NoError(t, os.MkdirAll(rs.SharedDir, 0o700))
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i*7 + 3)
	}
	require.NoError(t, os.WriteFile(rs.KeyFile, []byte(hex.EncodeToString(key)+"\n"), 0o600))

	rs.DNS = startDNSServer(t)
	rs.Proxy = startLBProxy(t)
	rs.DirectoryURL = rs.Proxy.URL + "/directory"

	var backends []string
	// Every replica's ports from one call, so they are distinct: ports
	// picked a call apart may repeat, as nobody binds them until the
	// replicas start (two replicas were once given the same listener).
	all := freePorts(t, 4*opts.N)
	for i := 0; i < opts.N; i++ {
		ports := all[4*i : 4*i+4]
		if opts.HTTPPort != 0 {
			ports[2] = opts.HTTPPort
		}
		r := &replica{
			Index:      i,
			BaseURL:    fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
			AdminURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
			ConfigPath: filepath.Join(rs.Dir, fmt.Sprintf("replica%d.yaml", i)),
			logs:       &syncBuffer{},
		}
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
  redis:
%s    key_prefix: "e2e:"
orders:
  job_lease: %s
  finalize_wait: %s
  validation_wait: %s
%svalidation:
  http_port: %d
  tls_alpn_port: %d
  dns_resolvers: [%q]
  allow_private_addresses: true
upstreams:
  - name: dev
    type: local
    local: {dir: %q, delay: %s}
%slog:
  level: info
`, filepath.Join(rs.Dir, fmt.Sprintf("replica%d-data", i)), ports[0], rs.Proxy.URL, ports[1], rs.KeyFile, redisYAML,
			opts.JobLease, opts.FinalizeWait, opts.ValidationWait, workersYAML, ports[2], ports[3], rs.DNS.Addr, rs.CADir, opts.Delay, opts.Upstreams)
		r.Config += opts.Extra
		require.NoError(t, os.WriteFile(r.ConfigPath, []byte(r.Config), 0o600))
		rs.Replicas = append(rs.Replicas, r)
		backends = append(backends, r.BaseURL)
	}
	t.Cleanup(func() {
		full := os.Getenv("E2E_LOGS") != ""
		if !t.Failed() && !full {
			return
		}
		for _, r := range rs.Replicas {
			out := r.Logs()
			if !full {
				out = tailLines(out, 300)
			}
			t.Logf("replica %d (%s) config:\n%s\nreplica %d output%s:\n%s", r.Index, r.BaseURL, r.Config, r.Index,
				map[bool]string{true: "", false: " (last 300 lines; E2E_LOGS=1 for all)"}[full], out)
		}
	})
	for _, r := range rs.Replicas {
		r.start(t)
	}
	rs.Proxy.SetBackends(backends...)

	pemBytes, err := os.ReadFile(filepath.Join(rs.CADir, "root.pem"))
	require.NoError(t, err)
	rs.Roots = x509.NewCertPool()
	require.True(t, rs.Roots.AppendCertsFromPEM(pemBytes))

	// The directory answers through the proxy, naming the proxy's URL.
	resp, err := rs.Proxy.HTTPClient().Get(rs.DirectoryURL)
	require.NoError(t, err)
	var dir map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&dir))
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, strings.HasPrefix(fmt.Sprint(dir["newNonce"]), rs.Proxy.URL+"/"), "directory %v", dir)
	rs.NewNoncePath = strings.TrimPrefix(fmt.Sprint(dir["newNonce"]), rs.Proxy.URL)
	return rs
}

func tailLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) <= n {
		return s
	}
	return strings.Join(lines[len(lines)-n:], "\n")
}

func (r *replica) start(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	r.Starts++
	fmt.Fprintf(r.logs, "--- start #%d: acmebridge serve --config %s\n", r.Starts, r.ConfigPath)
	cmd := exec.Command(binPath, "serve", "--config", r.ConfigPath)
	cmd.Dir = filepath.Dir(r.ConfigPath)
	cmd.Stdout = r.logs
	cmd.Stderr = r.logs
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	r.cmd, r.done, r.killed = cmd, done, false
	if r.Starts == 1 {
		// Registered at the first start, so a replica that never gets
		// ready is stopped too.
		t.Cleanup(func() { r.stop(t) })
	}
	go func() {
		err := cmd.Wait()
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
		close(done)
	}()
	r.mu.Unlock()
	r.waitReady(t, done)
}

func (r *replica) waitReady(t *testing.T, done chan struct{}) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-done:
			t.Fatalf("replica %d exited before it was ready: %v", r.Index, r.exitErr())
		default:
		}
		resp, err := c.Get(r.AdminURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %d not ready within %s (last: %v)", r.Index, readyTimeout, errOrStatus(resp, err))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *replica) exitErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Alive reports whether the process is running.
func (r *replica) Alive() bool {
	r.mu.Lock()
	done := r.done
	r.mu.Unlock()
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Kill9 kills the replica with SIGKILL: no shutdown, leases left held.
func (r *replica) Kill9(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.killed = true
	r.mu.Unlock()
	require.NoError(t, cmd.Process.Kill())
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("replica %d did not die after SIGKILL", r.Index)
	}
	fmt.Fprintf(r.logs, "--- killed with SIGKILL\n")
}

// Restart starts a killed replica again with the same config and ports.
func (r *replica) Restart(t *testing.T) {
	t.Helper()
	require.False(t, r.Alive(), "Restart: replica %d is running", r.Index)
	r.start(t)
}

// stop sends SIGTERM and requires a clean exit within stopTimeout.
func (r *replica) stop(t *testing.T) {
	r.mu.Lock()
	cmd, done, killed := r.cmd, r.done, r.killed
	r.mu.Unlock()
	select {
	case <-done:
		if !killed {
			t.Errorf("replica %d exited before the test ended: %v", r.Index, r.exitErr())
		}
		return
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM replica %d: %v", r.Index, err)
	}
	select {
	case <-done:
		if err := r.exitErr(); err != nil {
			t.Errorf("replica %d did not exit cleanly after SIGTERM: %v", r.Index, err)
		}
	case <-time.After(stopTimeout):
		_ = cmd.Process.Kill()
		<-done
		t.Errorf("replica %d did not exit within %s of SIGTERM", r.Index, stopTimeout)
	}
}

// Logs returns everything the replica printed, over all its starts.
func (r *replica) Logs() string { return r.logs.String() }

// AllLogs joins every replica's output.
func (rs *replicaSet) AllLogs() string {
	var b strings.Builder
	for _, r := range rs.Replicas {
		b.WriteString(r.Logs())
		b.WriteString("\n")
	}
	return b.String()
}

// logOrders returns, for every log line with msg="<msg>", the value of its
// order= attribute, in order of appearance.
func logOrders(logs, msg string) []string {
	re := regexp.MustCompile(`msg="?` + regexp.QuoteMeta(msg) + `"?\s.*?\border=("[^"]*"|\S+)`)
	var out []string
	for _, line := range strings.Split(logs, "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			out = append(out, strings.Trim(m[1], `"`))
		}
	}
	return out
}

// signedSerials maps each order the local CA signed for to the distinct
// serials it signed ("local certificate issued" lines). The CA signs an
// order's certificate deterministically, so a retry (a replica taking a job
// over, a store that could not record the first result) signs the same
// serial again: one serial per order is the promise, not one signature.
func signedSerials(logs string) map[string]map[string]bool {
	re := regexp.MustCompile(`msg="?local certificate issued"?\s.*?\border=("[^"]*"|\S+).*?\bserial=("[^"]*"|\S+)`)
	out := map[string]map[string]bool{}
	for _, line := range strings.Split(logs, "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			o := strings.Trim(m[1], `"`)
			if out[o] == nil {
				out[o] = map[string]bool{}
			}
			out[o][strings.Trim(m[2], `"`)] = true
		}
	}
	return out
}

// waitFor polls cond every 50ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// legoClient returns a lego client for user going through the proxy.
func (rs *replicaSet) legoClient(t *testing.T, user *legoUser, certTimeout time.Duration) *lego.Client {
	t.Helper()
	cfg := lego.NewConfig(user)
	cfg.CADirURL = rs.DirectoryURL
	cfg.HTTPClient = rs.Proxy.HTTPClient()
	cfg.UserAgent = "acmebridge-e2e-replicas"
	cfg.Certificate.Timeout = certTimeout
	c, err := lego.NewClient(cfg)
	require.NoError(t, err)
	return c
}

// register creates an account through the proxy for a new key.
func (rs *replicaSet) register(t *testing.T, email string) *legoUser {
	t.Helper()
	u := &legoUser{email: email, key: newECKey(t)}
	c := rs.legoClient(t, u, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	reg, err := c.Registration.Register(ctx, registration.RegisterOptions{TermsOfServiceAgreed: true})
	require.NoError(t, err)
	require.Equal(t, "valid", reg.Status)
	require.True(t, strings.HasPrefix(reg.Location, rs.Proxy.URL+"/"), "account URL %s", reg.Location)
	u.reg = reg
	return u
}

// useDNS01 sets a lego client's dns-01 provider to the test DNS server
// (optionally behind a barrier that holds Present until n clients reach it).
func (rs *replicaSet) useDNS01(t *testing.T, c *lego.Client, b *barrier) {
	t.Helper()
	var p challenge.Provider = testDNSProvider{d: rs.DNS}
	if b != nil {
		p = barrierDNSProvider{testDNSProvider: testDNSProvider{d: rs.DNS}, b: b}
	}
	require.NoError(t, c.Challenge.SetDNS01Provider(p, dns01.DisableAuthoritativeNssPropagationRequirement()))
}

// useTestDNSForLego points lego's propagation checks at the test DNS server
// and keeps lego's log for a failure report; both are process-wide, so the
// tests of this package do not run in parallel.
func useTestDNSForLego(t *testing.T, d *dnsServer) {
	legoLogs := &syncBuffer{}
	prevLog := legolog.Default()
	legolog.SetDefault(slog.New(slog.NewTextHandler(legoLogs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	prev := dns01.DefaultClient()
	dns01.SetDefaultClient(dns01.NewClient(&dns01.Options{RecursiveNameservers: []string{d.Addr}, Timeout: 2 * time.Second}))
	t.Cleanup(func() {
		dns01.SetDefaultClient(prev)
		legolog.SetDefault(prevLog)
		if t.Failed() {
			t.Logf("lego log (warnings and errors):\n%s", tailLines(legoLogs.String(), 200))
		}
	})
}

// barrier releases its waiters once n have arrived (or after a bound, so a
// client that failed early cannot hang the others).
type barrier struct {
	mu      sync.Mutex
	n       int
	arrived int
	open    chan struct{}
}

func newBarrier(n int) *barrier { return &barrier{n: n, open: make(chan struct{})} }

func (b *barrier) wait(ctx context.Context) {
	b.mu.Lock()
	b.arrived++
	if b.arrived == b.n {
		close(b.open)
	}
	b.mu.Unlock()
	select {
	case <-b.open:
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
	}
}

// barrierDNSProvider holds Present until every client of the barrier got
// there, so their finalizes arrive together.
type barrierDNSProvider struct {
	testDNSProvider
	b *barrier
}

func (p barrierDNSProvider) Present(ctx context.Context, domain, token, keyAuth string) error {
	p.b.wait(ctx)
	return p.testDNSProvider.Present(ctx, domain, token, keyAuth)
}

// obtainResult is one client's outcome, checked in the test goroutine.
type obtainResult struct {
	names []string
	res   *certificate.Resource
	err   error
	took  time.Duration
}

func obtain(ctx context.Context, c *lego.Client, names []string) obtainResult {
	start := time.Now()
	res, err := c.Certificate.Obtain(ctx, certificate.ObtainRequest{Domains: names, KeyType: certcrypto.EC256, Bundle: true})
	return obtainResult{names: names, res: res, err: err, took: time.Since(start)}
}

// TestReplicasRoundRobin: two replicas on one Redis behind a round-robin
// proxy serve 50 certificates to concurrent lego clients; both replicas
// share the work; a nonce minted by one replica is good once on the other.
func TestReplicasRoundRobin(t *testing.T) {
	rd := startRedis(t, false)
	rs := startReplicas(t, replicaOptions{N: 2, Redis: rd})
	useTestDNSForLego(t, rs.DNS)

	const clients, perClient = 5, 10
	users := make([]*legoUser, clients)
	legos := make([]*lego.Client, clients)
	for i := range users {
		users[i] = rs.register(t, fmt.Sprintf("rr%d@example.com", i))
		legos[i] = rs.legoClient(t, users[i], 60*time.Second)
		rs.useDNS01(t, legos[i], nil)
	}

	start := time.Now()
	results := make([][]obtainResult, clients)
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < perClient; j++ {
				ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
				r := obtain(ctx, legos[i], []string{fmt.Sprintf("c%d-%d.rr.e2e.test", i, j)})
				cancel()
				results[i] = append(results[i], r)
				if r.err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	serials := map[string]bool{}
	for i := range results {
		require.Len(t, results[i], perClient, "client %d stopped early: %v", i, results[i][len(results[i])-1].err)
		for _, r := range results[i] {
			require.NoError(t, r.err, "obtain %v", r.names)
			leaf := verifyChainPool(t, rs.Roots, "the local CA's root.pem", r.res.Certificate, r.names)
			serials[leaf.SerialNumber.String()] = true
		}
	}
	require.Len(t, serials, clients*perClient, "every certificate is a new one")

	counts := rs.Proxy.Counts()
	total := 0
	for _, n := range counts {
		total += n
	}
	refused, failed := rs.Proxy.Stats()
	t.Logf("%d certificates by %d concurrent clients in %s; requests per replica: %v (total %d, refused %d, failed %d)",
		clients*perClient, clients, elapsed.Round(time.Millisecond), counts, total, refused, failed)
	require.Zero(t, failed, "no request failed at the proxy")
	for _, r := range rs.Replicas {
		share := float64(counts[r.BaseURL]) / float64(total)
		require.Greater(t, share, 0.30, "replica %d served %d of %d requests", r.Index, counts[r.BaseURL], total)
	}
	// Every issuance went to the CA once.
	issued := logOrders(rs.AllLogs(), "local certificate issued")
	require.Len(t, issued, clients*perClient)

	t.Run("nonce-across-replicas", func(t *testing.T) {
		testNonceAcrossReplicas(t, rs, users[0])
	})
}

// testNonceAcrossReplicas: a nonce from replica A is accepted by replica B
// once; the same request again is refused with badNonce by either.
func testNonceAcrossReplicas(t *testing.T, rs *replicaSet, u *legoUser) {
	require.GreaterOrEqual(t, len(rs.Replicas), 2)
	a, b := rs.Replicas[0], rs.Replicas[1]
	nonce := fetchNonce(t, a.BaseURL+rs.NewNoncePath)
	acctURL := u.reg.Location
	body := signPostAsGet(t, u.key, acctURL, nonce, acctURL)
	direct := func(r *replica) string { return r.BaseURL + strings.TrimPrefix(acctURL, rs.Proxy.URL) }

	status, hdr, respBody := postJOSE(t, direct(b), body)
	require.Equal(t, http.StatusOK, status, "replica B refused a nonce replica A issued: %s", respBody)
	var acct map[string]any
	require.NoError(t, json.Unmarshal(respBody, &acct))
	require.Equal(t, "valid", acct["status"])
	require.NotEmpty(t, hdr.Get("Replay-Nonce"))

	for _, r := range []*replica{a, b} {
		status, hdr, respBody := postJOSE(t, direct(r), body)
		require.Equal(t, http.StatusBadRequest, status, "replica %d accepted a used nonce: %s", r.Index, respBody)
		require.Equal(t, "application/problem+json", hdr.Get("Content-Type"))
		var p acme.ProblemDetails
		require.NoError(t, json.Unmarshal(respBody, &p))
		require.Equal(t, "urn:ietf:params:acme:error:badNonce", p.Type, "replica %d", r.Index)
		require.NotEmpty(t, hdr.Get("Replay-Nonce"), "a badNonce answer carries a fresh nonce (RFC 8555 §6.5)")
	}
}

// fetchNonce HEADs a newNonce URL and returns the Replay-Nonce.
func fetchNonce(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Head(url)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	n := resp.Header.Get("Replay-Nonce")
	require.NotEmpty(t, n, "no Replay-Nonce from %s", url)
	return n
}

// signPostAsGet builds a POST-as-GET JWS (empty payload) signed with key,
// kid = the account URL, for url.
func signPostAsGet(t *testing.T, key crypto.Signer, kid, nonce, url string) []byte {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		&jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{"nonce": nonce, "url": url}})
	require.NoError(t, err)
	jws, err := signer.Sign([]byte{})
	require.NoError(t, err)
	return []byte(jws.FullSerialize())
}

func postJOSE(t *testing.T, url string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Post(url, "application/jose+json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, b
}
