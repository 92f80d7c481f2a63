package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/lego"
)

// Chaos runs of replicas on one Redis (the harness is in replicas_test.go).

// TestReplicaKilledMidIssuance: orders finalize against a slow CA, the
// replica holding them is killed with SIGKILL and started again; every order
// still ends valid and the CA signed exactly once per order.
func TestReplicaKilledMidIssuance(t *testing.T) {
	rd := startRedis(t, false)
	rs := startReplicas(t, replicaOptions{N: 2, Redis: rd, Delay: 3 * time.Second, JobLease: 3 * time.Second, FinalizeWait: -1})
	useTestDNSForLego(t, rs.DNS)

	const n = 6
	b := newBarrier(n)
	legos := make([]*lego.Client, n)
	for i := range legos {
		u := rs.register(t, fmt.Sprintf("crash%d@example.com", i))
		legos[i] = rs.legoClient(t, u, 2*time.Minute)
		rs.useDNS01(t, legos[i], b)
	}
	results := make([]obtainResult, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			results[i] = obtain(ctx, legos[i], []string{fmt.Sprintf("k%d.crash.e2e.test", i)})
		}()
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()

	// Wait until every finalize was answered (its access log line is
	// written once the handler returned), so the kill only cuts polls,
	// which lego retries.
	finalized := regexp.MustCompile(`msg=request .*path=\S+/finalize status=200`)
	finalizing := func() int { return len(finalized.FindAllString(rs.AllLogs(), -1)) }
	ok := waitFor(60*time.Second, func() bool {
		select {
		case <-allDone:
			return true
		default:
		}
		return finalizing() >= n
	})
	require.True(t, ok, "the orders did not all reach finalize within 60s (%d did)", finalizing())
	select {
	case <-allDone:
		t.Fatalf("every client finished before the kill: %+v", results)
	default:
	}

	// Kill the replica that took the most finalizes: its worker was kicked
	// and most likely holds those jobs.
	victim := rs.Replicas[0]
	for _, r := range rs.Replicas[1:] {
		if len(logOrders(r.Logs(), "order finalizing")) > len(logOrders(victim.Logs(), "order finalizing")) {
			victim = r
		}
	}
	victimFinalized := logOrders(victim.Logs(), "order finalizing")
	issuedBefore := logOrders(rs.AllLogs(), "certificate issued")
	killedAt := time.Since(start)
	victim.Kill9(t)
	t.Logf("killed replica %d at %s: it took %d finalizes; %d orders were already issued",
		victim.Index, killedAt.Round(time.Millisecond), len(victimFinalized), len(issuedBefore))
	victim.Restart(t)
	t.Logf("replica %d restarted at %s", victim.Index, time.Since(start).Round(time.Millisecond))

	select {
	case <-allDone:
	case <-time.After(4 * time.Minute):
		t.Fatal("the clients did not finish within 4 minutes")
	}
	t.Logf("all %d issuances ended at %s", n, time.Since(start).Round(time.Millisecond))
	for _, r := range results {
		require.NoError(t, r.err, "obtain %v", r.names)
		verifyChainPool(t, rs.Roots, "the local CA's root.pem", r.res.Certificate, r.names)
	}

	logs := rs.AllLogs()
	orders := logOrders(logs, "order finalizing")
	require.Len(t, orders, n, "one finalize per order")
	signed := signedSerials(logs)
	for _, o := range orders {
		require.Len(t, signed[o], 1, "order %s: the CA must make one certificate (serials %v)", o, signed[o])
	}
	require.Len(t, signed, n, "the CA signed only for these orders: %v", signed)
	signatures := len(logOrders(logs, "local certificate issued"))

	// For the report: which replica stored which order, and how many were
	// taken over after the kill.
	stored := map[int][]string{}
	for _, r := range rs.Replicas {
		stored[r.Index] = logOrders(r.Logs(), "certificate issued")
	}
	lost := strings.Count(logs, "worker: lost the lease")
	t.Logf("orders stored per replica: %v; signatures %d for %d orders (the same certificate signed again by a retry); lost-lease warnings: %d",
		stored, signatures, n, lost)
	var takenOver []string
	for _, o := range victimFinalized {
		if !containsStr(issuedBefore, o) {
			takenOver = append(takenOver, o)
		}
	}
	t.Logf("orders finalized on the killed replica and not yet issued when it died: %d %v", len(takenOver), takenOver)
}

func containsStr(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestRedisRestartMidRun: Redis (appendfsync always) is killed with SIGKILL
// and started again while clients keep working; the replicas, never
// restarted, answer 503 with Retry-After meanwhile, then recover; nothing
// issued before is lost and new issuances succeed.
func TestRedisRestartMidRun(t *testing.T) {
	rd := startRedis(t, true)
	rs := startReplicas(t, replicaOptions{N: 2, Redis: rd, Delay: 2 * time.Second, JobLease: 3 * time.Second, FinalizeWait: -1})
	useTestDNSForLego(t, rs.DNS)
	start := time.Now()

	user := rs.register(t, "redis-restart@example.com")
	c := rs.legoClient(t, user, 2*time.Minute)
	rs.useDNS01(t, c, nil)

	// Some certificates before.
	var before []obtainResult
	for i := 0; i < 4; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
		r := obtain(ctx, c, []string{fmt.Sprintf("before%d.redis.e2e.test", i)})
		cancel()
		require.NoError(t, r.err)
		verifyChainPool(t, rs.Roots, "root.pem", r.res.Certificate, r.names)
		before = append(before, r)
	}
	t.Logf("%d certificates before the restart at %s", len(before), time.Since(start).Round(time.Millisecond))

	// A nonce and a signed request prepared while Redis is up, sent while
	// it is down.
	preNonce := fetchNonce(t, rs.Replicas[0].BaseURL+rs.NewNoncePath)
	preBody := signPostAsGet(t, user.key, user.reg.Location, preNonce, user.reg.Location)

	// A client that keeps trying through the outage (its account made
	// while Redis is up).
	keep := rs.legoClient(t, rs.register(t, "keeps-trying@example.com"), 2*time.Minute)
	rs.useDNS01(t, keep, nil)

	// One order in flight: finalized (so its job is in Redis), then Redis
	// dies while the slow CA works on it.
	inflightUser := rs.register(t, "inflight@example.com")
	inflight := rs.legoClient(t, inflightUser, 2*time.Minute)
	rs.useDNS01(t, inflight, nil)
	finalizedBefore := logOrders(rs.AllLogs(), "order finalizing")
	inflightRes := make(chan obtainResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		inflightRes <- obtain(ctx, inflight, []string{"inflight.redis.e2e.test"})
	}()
	var inflightOrder string
	require.True(t, waitFor(60*time.Second, func() bool {
		for _, o := range logOrders(rs.AllLogs(), "order finalizing") {
			if !containsStr(finalizedBefore, o) {
				inflightOrder = o
				return true
			}
		}
		return false
	}), "the in-flight order was not finalized")

	rd.Kill9(t)
	downAt := time.Now()
	t.Logf("redis killed at %s (order %s processing)", time.Since(start).Round(time.Millisecond), inflightOrder)

	type attempt struct {
		at  time.Duration
		err error
	}
	var keepMu sync.Mutex
	var keepErrs []attempt
	keepRes := make(chan obtainResult, 1)
	go func() {
		deadline := time.Now().Add(3 * time.Minute)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
			r := obtain(ctx, keep, []string{"keeps-trying.redis.e2e.test"})
			cancel()
			if r.err == nil || time.Now().After(deadline) {
				keepRes <- r
				return
			}
			keepMu.Lock()
			keepErrs = append(keepErrs, attempt{time.Since(downAt), r.err})
			keepMu.Unlock()
			time.Sleep(300 * time.Millisecond)
		}
	}()

	// While Redis is down: readiness fails, ACME requests get 503
	// serverInternal with Retry-After.
	for _, r := range rs.Replicas {
		resp, err := http.Get(r.AdminURL + "/readyz")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "replica %d /readyz with Redis down", r.Index)
	}
	for _, r := range rs.Replicas {
		status, hdr, body := postJOSE(t, r.BaseURL+strings.TrimPrefix(user.reg.Location, rs.Proxy.URL), preBody)
		require.Equal(t, http.StatusServiceUnavailable, status, "replica %d: a signed POST with Redis down: %s", r.Index, body)
		require.Equal(t, "application/problem+json", hdr.Get("Content-Type"))
		require.NotEmpty(t, hdr.Get("Retry-After"), "503 without Retry-After")
		var p acme.ProblemDetails
		require.NoError(t, json.Unmarshal(body, &p))
		require.Equal(t, "urn:ietf:params:acme:error:serverInternal", p.Type)
	}
	t.Run("new-nonce-while-store-down", func(t *testing.T) {
		// RFC 8555 §7.2: newNonce MUST carry a Replay-Nonce; a server that
		// cannot mint one answers an error (503 with Retry-After here).
		for _, r := range rs.Replicas {
			for _, method := range []string{http.MethodHead, http.MethodGet} {
				req, _ := http.NewRequest(method, r.BaseURL+rs.NewNoncePath, nil)
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				resp.Body.Close()
				if resp.Header.Get("Replay-Nonce") == "" {
					require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode,
						"replica %d %s new-nonce with Redis down answered %s without a Replay-Nonce", r.Index, method, resp.Status)
					require.NotEmpty(t, resp.Header.Get("Retry-After"))
				}
			}
		}
	})
	// The keeps-trying client has seen the outage; the CA has signed the
	// in-flight order (its result cannot be stored yet).
	require.True(t, waitFor(30*time.Second, func() bool {
		keepMu.Lock()
		defer keepMu.Unlock()
		return len(keepErrs) >= 2
	}), "the client kept trying without errors while Redis was down?")
	waitFor(15*time.Second, func() bool {
		return containsStr(logOrders(rs.AllLogs(), "local certificate issued"), inflightOrder)
	})

	rd.Restart(t)
	upAt := time.Now()
	t.Logf("redis restarted after %s down", upAt.Sub(downAt).Round(time.Millisecond))
	for _, r := range rs.Replicas {
		r.waitReady(t, r.done)
	}
	t.Logf("replicas ready again %s after the restart of redis", time.Since(upAt).Round(time.Millisecond))

	ir := <-inflightRes
	require.NoError(t, ir.err, "the order in flight when Redis died")
	verifyChainPool(t, rs.Roots, "root.pem", ir.res.Certificate, ir.names)

	kr := <-keepRes
	require.NoError(t, kr.err, "the client that kept trying")
	verifyChainPool(t, rs.Roots, "root.pem", kr.res.Certificate, kr.names)
	keepMu.Lock()
	var kinds []string
	for _, a := range keepErrs {
		kinds = append(kinds, fmt.Sprintf("%s: %s", a.at.Round(time.Millisecond), errSummary(a.err)))
	}
	keepMu.Unlock()
	t.Logf("the keeps-trying client failed %d times before it succeeded:\n  %s", len(kinds), strings.Join(dedupe(kinds), "\n  "))
	// Every failure was a 503: a serverInternal problem, or (lego does not
	// parse the problem of a HEAD) the newNonce status.
	for _, a := range keepErrs {
		if pd, ok := errors.AsType[*acme.ProblemDetails](a.err); ok {
			require.Equal(t, "urn:ietf:params:acme:error:serverInternal", pd.Type, "%v", a.err)
			require.Equal(t, http.StatusServiceUnavailable, pd.HTTPStatus, "%v", a.err)
			continue
		}
		require.Contains(t, a.err.Error(), "HTTP HEAD: 503", "a failure other than 503 while Redis was down")
	}

	// More certificates after.
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
		r := obtain(ctx, c, []string{fmt.Sprintf("after%d.redis.e2e.test", i)})
		cancel()
		require.NoError(t, r.err)
		verifyChainPool(t, rs.Roots, "root.pem", r.res.Certificate, r.names)
	}
	// Everything issued before can still be downloaded.
	for _, b := range before {
		ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
		got, err := c.Certificate.Get(ctx, b.res.CertURL, true)
		cancel()
		require.NoError(t, err, "download %s after the Redis restart", b.res.CertURL)
		require.True(t, leafOf(t, got.Certificate).Equal(leafOf(t, b.res.Certificate)), "%s serves another certificate", b.res.CertURL)
	}
	// The replicas were never restarted.
	for _, r := range rs.Replicas {
		require.Equal(t, 1, r.Starts)
		require.True(t, r.Alive())
	}
	// One certificate per order, the in-flight one included (signed
	// again, the same serial, when its first result could not be stored).
	logs := rs.AllLogs()
	for o, serials := range signedSerials(logs) {
		require.Len(t, serials, 1, "order %s: serials %v", o, serials)
	}
	t.Logf("in-flight order %s: %d store failure(s) while Redis was down, signed %d time(s), stored by replica %v; total %s",
		inflightOrder, countLines(logs, `msg="worker: store certificate".*order=`+inflightOrder),
		countLines(logs, `msg="local certificate issued".*order=`+inflightOrder),
		storedBy(rs, inflightOrder), time.Since(start).Round(time.Millisecond))
}

// countLines counts the lines of logs matching the regular expression.
func countLines(logs, expr string) int {
	re := regexp.MustCompile(expr)
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		if re.MatchString(line) {
			n++
		}
	}
	return n
}

// storedBy returns the indexes of the replicas that logged "certificate
// issued" for the order.
func storedBy(rs *replicaSet, order string) []int {
	var out []int
	for _, r := range rs.Replicas {
		if containsStr(logOrders(r.Logs(), "certificate issued"), order) {
			out = append(out, r.Index)
		}
	}
	return out
}

// errSummary shortens an error to its ACME problem type and status, or its
// first line.
func errSummary(err error) string {
	if pd, ok := errors.AsType[*acme.ProblemDetails](err); ok {
		return fmt.Sprintf("%d %s", pd.HTTPStatus, pd.Type)
	}
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// dedupe keeps the first of the entries that differ only in their
// "time: " prefix, with a count.
func dedupe(ss []string) []string {
	counts := map[string]int{}
	first := map[string]string{}
	var order []string
	for _, s := range ss {
		k := s
		if i := strings.Index(s, ": "); i >= 0 {
			k = s[i+2:]
		}
		if counts[k] == 0 {
			first[k] = s
			order = append(order, k)
		}
		counts[k]++
	}
	var out []string
	for _, k := range order {
		out = append(out, fmt.Sprintf("%s (×%d)", first[k], counts[k]))
	}
	return out
}

// TestReplicaKilledMidValidation: a lego client's http-01 answer is slow;
// the replica that received the challenge POST is killed with SIGKILL
// while it waits for the answer, and never restarted. lego, which only
// polls the authorization after the POST, still gets its certificate: the
// other replica takes the validation job over once its lease ends.
func TestReplicaKilledMidValidation(t *testing.T) {
	rd := startRedis(t, false)
	slow := startSlowHTTP01(t)
	rs := startReplicas(t, replicaOptions{N: 2, Redis: rd, HTTPPort: slow.Port, ValidationWait: time.Second})
	useTestDNSForLego(t, rs.DNS)

	u := rs.register(t, "slow-http01@example.com")
	c := rs.legoClient(t, u, 2*time.Minute)
	require.NoError(t, c.Challenge.SetHTTP01Provider(slow))
	start := time.Now()
	res := make(chan obtainResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		res <- obtain(ctx, c, []string{"slow.validation.e2e.test"})
	}()

	// The validation is in flight (its request held at the responder) and
	// the challenge POST was answered "processing" (its access log line is
	// written once the handler returned): lego now only polls.
	require.True(t, waitFor(60*time.Second, func() bool { return slow.Held() > 0 }), "no validation request reached the responder")
	chall := regexp.MustCompile(`msg=request .*method=POST path=/acme/chall/\S+ status=200`)
	var victim *replica
	require.True(t, waitFor(30*time.Second, func() bool {
		for _, r := range rs.Replicas {
			if chall.MatchString(r.Logs()) {
				victim = r
				return true
			}
		}
		return false
	}), "the challenge POST was not answered")
	select {
	case r := <-res:
		t.Fatalf("the client finished before the kill: %v", r.err)
	default:
	}
	victim.Kill9(t)
	slow.Release()
	t.Logf("killed replica %d, which took the challenge POST, %s after the start; the responder answers from now on",
		victim.Index, time.Since(start).Round(time.Millisecond))

	var r obtainResult
	select {
	case r = <-res:
	case <-time.After(3 * time.Minute):
		t.Fatal("the client did not finish within 3 minutes")
	}
	require.NoError(t, r.err, "lego, polling the authorization, did not get its certificate")
	verifyChainPool(t, rs.Roots, "the local CA's root.pem", r.res.Certificate, r.names)

	logs := rs.AllLogs()
	require.Len(t, chall.FindAllString(logs, -1), 1, "lego posted the challenge once")
	var survivor *replica
	for _, x := range rs.Replicas {
		if x != victim {
			survivor = x
		}
	}
	require.Contains(t, survivor.Logs(), "validation: resuming a validation whose lease ended")
	require.Regexp(t, `msg="challenge validated" .*result=valid attempt=2`, survivor.Logs())
	t.Logf("certificate after %s; validation requests seen by the responder: %d", r.took.Round(time.Millisecond), slow.Requests())
}

// slowHTTP01 is a lego http-01 provider whose answers are served, on the
// validation port of the replicas, only once the test releases them: every
// request before that is held (until its client goes away).
type slowHTTP01 struct {
	Port int

	mu       sync.Mutex
	keyAuths map[string]string // token -> key authorization
	held     int
	requests int
	released chan struct{}
	once     sync.Once
}

// startSlowHTTP01 listens on a free loopback port until the test ends.
func startSlowHTTP01(t *testing.T) *slowHTTP01 {
	t.Helper()
	s := &slowHTTP01{keyAuths: map[string]string{}, released: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s.Port = ln.Addr().(*net.TCPAddr).Port
	srv := &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		s.Release()
		_ = srv.Close()
	})
	return s
}

func (s *slowHTTP01) serve(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.URL.Path, "/.well-known/acme-challenge/")
	s.mu.Lock()
	s.requests++
	s.held++
	keyAuth, known := s.keyAuths[token]
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.held--
		s.mu.Unlock()
	}()
	select {
	case <-s.released:
	case <-r.Context().Done():
		return
	}
	if !ok || !known {
		http.NotFound(w, r)
		return
	}
	_, _ = io.WriteString(w, keyAuth)
}

// Held is how many requests are waiting for the release.
func (s *slowHTTP01) Held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// Requests is how many requests arrived.
func (s *slowHTTP01) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Release answers the held requests and every later one at once.
func (s *slowHTTP01) Release() { s.once.Do(func() { close(s.released) }) }

// Present implements lego's challenge.Provider.
func (s *slowHTTP01) Present(_ context.Context, _, token, keyAuth string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keyAuths[token] = keyAuth
	return nil
}

// CleanUp implements lego's challenge.Provider.
func (s *slowHTTP01) CleanUp(_ context.Context, _, token, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keyAuths, token)
	return nil
}
