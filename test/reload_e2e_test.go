package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/lego"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// Configuration reload without a restart (README "Reload"): SIGHUP,
// `acmebridge reload`, POST /api/v1/reload, the file watcher, several
// replicas on Redis, and a reload under load.

// readyGeneration is the configuration generation /readyz reports.
func readyGeneration(t *testing.T, adminURL string) int64 {
	t.Helper()
	code, body := httpGet(t, adminURL+"/readyz")
	require.Equal(t, http.StatusOK, code, body)
	m := regexp.MustCompile(`config generation (\d+)`).FindStringSubmatch(body)
	require.NotNil(t, m, "/readyz names no generation: %q", body)
	n, err := strconv.ParseInt(m[1], 10, 64)
	require.NoError(t, err)
	return n
}

// waitGeneration waits until /readyz reports gen and returns how long it
// took.
func waitGeneration(t *testing.T, adminURL string, gen int64, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	require.True(t, waitFor(within, func() bool { return readyGeneration(t, adminURL) == gen }),
		"%s never reported generation %d within %s (now %d)", adminURL, gen, within, readyGeneration(t, adminURL))
	return time.Since(start)
}

// scrapeMetrics parses an admin listener's /metrics.
func scrapeMetrics(t *testing.T, adminURL string) metricSet {
	t.Helper()
	code, body := httpGet(t, adminURL+"/metrics")
	require.Equal(t, http.StatusOK, code, body)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err)
	return scraped(fams)
}

// rewrite replaces old with repl in the config file at path.
func rewrite(t *testing.T, path, old, repl string) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(b), old, "%s", path)
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(string(b), old, repl, 1)), 0o600))
}

const (
	reloadOpenYAML = `policy:
  rules:
    - name: open
      match: {domains: ["*.blocked.e2e.test"]}
      upstreams: [dev]
  default: {upstreams: [dev]}
`
	reloadBlockedYAML = `policy:
  rules:
    - name: blocked
      match: {domains: ["*.blocked.e2e.test"]}
      action: deny
      reason: "blocked since the reload"
  default: {upstreams: [dev]}
`
)

// TestReloadServer: one server; a file that does not validate and one
// that changes server.listen are refused whole (the CLI exits 1 naming
// why, the failure is counted, generation stays); a policy change applied
// with `acmebridge reload` decides the next order, the admin API's policy
// explain follows it; SIGHUP applies the next change.
func TestReloadServer(t *testing.T) {
	quietLego(t)
	hook, hookYAML := startHook(t)
	s := startServer(t, reloadOpenYAML+hookYAML)
	c, _ := legoAccount(t, s, "reload@example.com", nil)
	legoObtain(t, c, "a.blocked.e2e.test")
	require.Equal(t, int64(1), readyGeneration(t, s.AdminURL))
	reload := func() cliResult {
		return runCLI(t, s.Dir, append([]string{"reload"}, s.adminArgs()...)...)
	}

	// Refused: an unknown key, then a key that needs a restart.
	rewrite(t, s.ConfigPath, "    - name: open\n", "    - name: open\n      bogus: 1\n")
	res := reload()
	require.Equal(t, 1, res.Code, "%s", res.Stdout)
	require.Contains(t, res.Stderr, "bogus")
	rewrite(t, s.ConfigPath, "      bogus: 1\n", "")
	b, err := os.ReadFile(s.ConfigPath)
	require.NoError(t, err)
	listen := regexp.MustCompile(`listen: "127.0.0.1:\d+"`).FindString(string(b))
	rewrite(t, s.ConfigPath, listen, `listen: "127.0.0.1:1"`)
	res = reload()
	require.Equal(t, 1, res.Code)
	require.Contains(t, res.Stderr, "changing server.listen needs a restart")
	rewrite(t, s.ConfigPath, `listen: "127.0.0.1:1"`, listen)
	m := scrapeMetrics(t, s.AdminURL)
	require.Equal(t, 2.0, m.sum(t, "acmebridge_config_reload_total", labels("result", "failure")))
	require.Equal(t, 0.0, m.sum(t, "acmebridge_config_last_reload_successful", allSeries))
	require.Equal(t, 1.0, m.sum(t, "acmebridge_config_generation", allSeries))
	legoObtain(t, c, "b.blocked.e2e.test") // the running policy stays
	// Each refusal is told to the webhook (config.reload_failed).
	require.True(t, waitFor(20*time.Second, func() bool { return len(hook.of("config.reload_failed")) == 2 }),
		"config.reload_failed delivered twice; got %d", len(hook.of("config.reload_failed")))
	require.Contains(t, hook.of("config.reload_failed")[1].Data.Reason, "server.listen")

	// Applied: the policy blocks the name from the next order on.
	rewrite(t, s.ConfigPath, reloadOpenYAML, reloadBlockedYAML)
	res = reload()
	require.Equal(t, 0, res.Code, "%s", res.Stderr)
	require.Contains(t, res.Stdout, "generation 2")
	require.Equal(t, int64(2), readyGeneration(t, s.AdminURL))
	_, err = legoObtainErr(c, "c.blocked.e2e.test")
	pd := requireProblem(t, err, "rejectedIdentifier")
	require.Contains(t, pd.Detail+fmt.Sprint(pd.SubProblems), "blocked since the reload")
	var explained []struct {
		Rule string `json:"rule"`
	}
	adminGetJSON(t, s, "/api/v1/policy/explain?name=c.blocked.e2e.test", &explained)
	require.Len(t, explained, 1)
	require.Equal(t, "blocked", explained[0].Rule, "policy explain follows the reload")
	m = scrapeMetrics(t, s.AdminURL)
	require.Equal(t, 1.0, m.sum(t, "acmebridge_config_reload_total", labels("result", "success")))
	require.Equal(t, 1.0, m.sum(t, "acmebridge_config_last_reload_successful", allSeries))
	require.Equal(t, 2.0, m.sum(t, "acmebridge_config_generation", allSeries))

	// SIGHUP re-reads the file.
	rewrite(t, s.ConfigPath, reloadBlockedYAML, reloadOpenYAML)
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGHUP))
	waitGeneration(t, s.AdminURL, 3, 5*time.Second)
	legoObtain(t, c, "d.blocked.e2e.test")
	require.Contains(t, s.Logs(), `trigger=SIGHUP`)
}

// adminGetJSON GETs an admin API path with s's token and decodes the JSON.
func adminGetJSON(t *testing.T, s *server, path string, out any) {
	t.Helper()
	tok, err := os.ReadFile(s.TokenFile())
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodGet, s.AdminURL+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := s.adminClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
}

// replicaReload runs `acmebridge reload` against replica r.
func (rs *replicaSet) reload(t *testing.T, r *replica) cliResult {
	t.Helper()
	tokenFile := filepath.Join(rs.Dir, fmt.Sprintf("replica%d-data", r.Index), "admin.token")
	return runCLI(t, rs.Dir, "reload", "--server", r.AdminURL, "--token-file", tokenFile)
}

// TestReloadReplicas: two replicas on one Redis, each with its own file.
// `acmebridge reload` against one makes the other re-read its file within
// a second; with reload.watch_interval set, a changed file is applied by
// each replica on its own.
func TestReloadReplicas(t *testing.T) {
	rd := startRedis(t, false)
	rs := startReplicas(t, replicaOptions{N: 2, Redis: rd, Extra: reloadOpenYAML})
	useTestDNSForLego(t, rs.DNS)
	u := rs.register(t, "replicas-reload@example.com")
	c := rs.legoClient(t, u, 30*time.Second)
	rs.useDNS01(t, c, nil)
	a, b := rs.Replicas[0], rs.Replicas[1]

	for _, r := range rs.Replicas {
		rewrite(t, r.ConfigPath, reloadOpenYAML, reloadBlockedYAML)
	}
	res := rs.reload(t, a)
	require.Equal(t, 0, res.Code, "%s", res.Stderr)
	require.Equal(t, int64(2), readyGeneration(t, a.AdminURL))
	took := waitGeneration(t, b.AdminURL, 2, 3*time.Second)
	t.Logf("replica 1 followed in %s", took)
	require.Less(t, took, time.Second+200*time.Millisecond, "the other replica follows within a second")
	for i := 0; i < 4; i++ { // round robin: both replicas answer newOrder
		ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
		r := obtain(ctx, c, []string{fmt.Sprintf("r%d.blocked.e2e.test", i)})
		cancel()
		requireProblem(t, r.err, "rejectedIdentifier")
	}
	m := scrapeMetrics(t, b.AdminURL)
	require.Equal(t, 2.0, m.sum(t, "acmebridge_config_generation", allSeries))

	// The watcher: turned on by a reload, then a changed file is enough.
	for _, r := range rs.Replicas {
		rewrite(t, r.ConfigPath, reloadBlockedYAML, reloadBlockedYAML+"reload: {watch_interval: 200ms}\n")
	}
	require.Equal(t, 0, rs.reload(t, b).Code)
	waitGeneration(t, a.AdminURL, 3, 3*time.Second)
	waitGeneration(t, b.AdminURL, 3, 3*time.Second)
	for _, r := range rs.Replicas {
		rewrite(t, r.ConfigPath, reloadBlockedYAML, reloadOpenYAML)
	}
	waitGeneration(t, a.AdminURL, 4, 5*time.Second)
	waitGeneration(t, b.AdminURL, 4, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	require.NoError(t, obtain(ctx, c, []string{"open.blocked.e2e.test"}).err)
	require.Contains(t, a.Logs(), `trigger="file changed"`)
}

// TestReloadUnderLoad: lego clients issue continuously through two
// replicas while the policy changes and the upstream their orders went to
// (a slow local CA) is removed, with `acmebridge reload` on one replica.
// No request fails; the orders processing at the slow CA at the reload
// complete there; orders made a second after the reload follow the new
// policy.
func TestReloadUnderLoad(t *testing.T) {
	rd := startRedis(t, false)
	dir := t.TempDir()
	slowBlock := fmt.Sprintf("  - name: slow\n    type: local\n    local: {dir: %q, delay: 2s}\n", filepath.Join(dir, "slow-ca"))
	phase1 := "policy:\n  rules:\n    - name: phase1\n      match: {domains: [\"*.load.e2e.test\"]}\n      upstreams: [slow]\n  default: {upstreams: [dev]}\n"
	phase2 := "policy:\n  rules:\n    - name: phase2\n      match: {domains: [\"*.load.e2e.test\"]}\n      upstreams: [dev]\n  default: {upstreams: [dev]}\n"
	rs := startReplicas(t, replicaOptions{N: 2, Redis: rd, Upstreams: slowBlock, Extra: phase1, FinalizeWait: 3 * time.Second})
	useTestDNSForLego(t, rs.DNS)

	const clients = 4
	legos := make([]*lego.Client, clients)
	for i := range legos {
		u := rs.register(t, fmt.Sprintf("load%d@example.com", i))
		legos[i] = rs.legoClient(t, u, 60*time.Second)
		rs.useDNS01(t, legos[i], nil)
	}
	stop := make(chan struct{})
	var mu sync.Mutex
	var results []obtainResult
	var wg sync.WaitGroup
	for i, l := range legos {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
				r := obtain(ctx, l, []string{fmt.Sprintf("c%d-%d.load.e2e.test", i, j)})
				cancel()
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			}
		}()
	}

	time.Sleep(5 * time.Second)
	a := rs.Replicas[0]
	tokenFile := filepath.Join(rs.Dir, "replica0-data", "admin.token")
	var processing listing[orderRec]
	require.True(t, waitFor(10*time.Second, func() bool {
		res := runCLI(t, rs.Dir, "order", "list", "--state", "processing", "--json", "--server", a.AdminURL, "--token-file", tokenFile)
		require.Equal(t, 0, res.Code, "%s", res.Stderr)
		require.NoError(t, json.Unmarshal([]byte(res.Stdout), &processing))
		return len(processing.Items) > 0
	}), "some orders are processing at the slow CA")
	for _, r := range rs.Replicas {
		rewrite(t, r.ConfigPath, slowBlock, "")
		rewrite(t, r.ConfigPath, phase1, phase2)
	}
	res := rs.reload(t, a)
	require.Equal(t, 0, res.Code, "%s", res.Stderr)
	reloaded := time.Now()
	time.Sleep(6 * time.Second)
	close(stop)
	wg.Wait()

	for _, r := range results {
		require.NoError(t, r.err, "obtain %v", r.names)
	}
	_, failed := rs.Proxy.Stats()
	require.Zero(t, failed, "no request failed at the proxy")
	for _, r := range rs.Replicas {
		require.Equal(t, int64(2), readyGeneration(t, r.AdminURL), "replica %d", r.Index)
	}

	show := func(id string) orderRec {
		var o orderRec
		res := runCLI(t, rs.Dir, "order", "show", "--json", "--server", a.AdminURL, "--token-file", tokenFile, id)
		require.Equal(t, 0, res.Code, "%s", res.Stderr)
		require.NoError(t, json.Unmarshal([]byte(res.Stdout), &o))
		return o
	}
	for _, p := range processing.Items {
		o := show(p.ID)
		require.Equal(t, "valid", o.Status, "order %s processing at the reload", p.ID)
		require.Equal(t, "slow", o.Upstream, "order %s processing at the reload completes on its route", p.ID)
	}
	var all listing[orderCreated]
	res = runCLI(t, rs.Dir, "order", "list", "--limit", "1000", "--json", "--server", a.AdminURL, "--token-file", tokenFile)
	require.Equal(t, 0, res.Code, "%s", res.Stderr)
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &all))
	after := 0
	for _, o := range all.Items {
		if o.CreatedAt.After(reloaded.Add(time.Second)) {
			after++
			require.Equal(t, "phase2", o.Rule, "order %s made %s after the reload", o.ID, o.CreatedAt.Sub(reloaded))
			require.Equal(t, []string{"dev"}, o.Upstreams, "order %s", o.ID)
		}
	}
	t.Logf("%d certificates, %d orders processing at the slow CA at the reload, %d orders made more than 1s after it",
		len(results), len(processing.Items), after)
	require.Positive(t, after)
}

// orderCreated is an admin order view with its creation time.
type orderCreated struct {
	orderRec
	CreatedAt time.Time `json:"created_at"`
}

// allSeries keeps every series of a metric.
func allSeries(map[string]string) bool { return true }

// TestSIGHUPDuringStartup: a SIGHUP that reaches the server while it is
// still starting (config management reloading every service it just
// deployed) does not end it, as Go's default would: the server comes up
// and applies the reload once it can, then issues.
func TestSIGHUPDuringStartup(t *testing.T) {
	var sent int
	s := startServerWith(t, "", serverOpts{whileStarting: func(s *server, stop <-chan struct{}) {
		// From the process's first line of output (it is past Go's own
		// start-up then) until it answers /readyz.
		for s.logs.String() == "" {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
		for {
			if s.cmd.Process.Signal(syscall.SIGHUP) == nil {
				sent++
			}
			select {
			case <-stop:
				return
			case <-s.done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}})
	require.Positive(t, sent, "no SIGHUP was sent while the server started")
	require.Eventually(t, func() bool { return strings.Contains(s.Logs(), `msg="configuration reloaded" trigger=SIGHUP`) },
		10*time.Second, 20*time.Millisecond, "the SIGHUP received while starting was not applied")
	t.Logf("%d SIGHUPs sent while the server started", sent)
	c, _ := legoAccount(t, s, "hup@example.com", nil)
	legoObtain(t, c, "hup.e2e.test")
}

// TestReloadDirectoryTokens: admin.directory_tokens are read again at each
// reload: a scoped token rotated in its file stops working and the new one
// works, and an entry removed from the file ends its token, without a
// restart; the global token is untouched.
func TestReloadDirectoryTokens(t *testing.T) {
	devToken := filepath.Join(t.TempDir(), "devices.token")
	line := fmt.Sprintf("  directory_tokens: [{directory: devices, token_file: %q}]\n", devToken)
	s := startServerWith(t, directoriesYAML, serverOpts{adminYAML: line})
	global, err := os.ReadFile(s.TokenFile())
	require.NoError(t, err)
	old, err := os.ReadFile(devToken)
	require.NoError(t, err)
	status := func(tok []byte) int {
		req, err := http.NewRequest(http.MethodGet, s.AdminURL+"/api/v1/eab", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		resp, err := s.adminClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, status(old))
	gen := readyGeneration(t, s.AdminURL)

	rotated := []byte(strings.Repeat("5a", 32) + "\n")
	require.NoError(t, os.WriteFile(devToken, rotated, 0o600))
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGHUP))
	waitGeneration(t, s.AdminURL, gen+1, 10*time.Second)
	require.Equal(t, http.StatusUnauthorized, status(old), "the rotated-out token")
	require.Equal(t, http.StatusOK, status(rotated), "the token now in the file")

	cfg, err := os.ReadFile(s.ConfigPath)
	require.NoError(t, err)
	require.Contains(t, string(cfg), line)
	require.NoError(t, os.WriteFile(s.ConfigPath, []byte(strings.Replace(string(cfg), line, "", 1)), 0o600))
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGHUP))
	waitGeneration(t, s.AdminURL, gen+2, 10*time.Second)
	require.Equal(t, http.StatusUnauthorized, status(rotated), "the entry removed from the file")
	require.Equal(t, http.StatusOK, status(global))
}
