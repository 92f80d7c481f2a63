package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/ra"
	"github.com/acmebridge/acmebridge/upstream"
	"github.com/acmebridge/acmebridge/upstream/local"
)

// gatedIssuer holds each issuance until its gate is closed, and counts
// its closes (a retired upstream is closed once drained).
type gatedIssuer struct {
	upstream.Issuer
	gate    chan struct{}
	started chan string
	closes  atomic.Int32
}

func newGated(inner upstream.Issuer) *gatedIssuer {
	return &gatedIssuer{Issuer: inner, gate: make(chan struct{}), started: make(chan string, 16)}
}

func (g *gatedIssuer) Issue(ctx context.Context, req *upstream.Request, setRef func(string) error) (*upstream.Result, error) {
	g.started <- req.OrderID
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.Issuer.Issue(ctx, req, setRef)
}

func (g *gatedIssuer) Close() error {
	g.closes.Add(1)
	return nil
}

// reloadCfg is a copy of the configuration in force for a reload to
// change.
func reloadCfg(e *env) *configs.Config {
	c := *e.srv.RA().Config()
	c.Upstreams = slices.Clone(c.Upstreams)
	c.Policy.Rules = slices.Clone(c.Policy.Rules)
	c.Directories = slices.Clone(c.Directories)
	return &c
}

// reload applies cfg with the env's issuers (or those given).
func reload(e *env, cfg *configs.Config, issuers map[string]upstream.Issuer) (int64, error) {
	if issuers == nil {
		issuers = e.issuers
	}
	require.NoError(e.t, cfg.Validate())
	return e.srv.Reload(ra.ReloadOptions{Config: cfg, Issuers: issuers})
}

// TestReloadPolicy: a reloaded policy decides the next newOrder; the
// generation and the reload metrics follow.
func TestReloadPolicy(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	order := func() *httptest.ResponseRecorder {
		return c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("a.blocked.example.com")})
	}
	require.Equal(t, http.StatusCreated, order().Code)
	require.Equal(t, int64(1), e.srv.RA().Generation())

	cfg := reloadCfg(e)
	cfg.Policy.Rules = append(cfg.Policy.Rules, configs.Rule{Name: "blocked", Action: "deny", Reason: "blocked since the reload",
		Match: configs.Match{Domains: []string{"*.blocked.example.com"}}})
	gen, err := reload(e, cfg, nil)
	require.NoError(t, err)
	require.Equal(t, int64(2), gen)
	require.Equal(t, int64(2), e.srv.RA().Generation())
	p := requireProblem(t, order(), http.StatusBadRequest, "rejectedIdentifier")
	require.Contains(t, p.Subproblems[0].Detail, "blocked since the reload")

	g, ok := gathered(t, e.reg, "acmebridge_config_generation", nil)
	require.True(t, ok)
	require.Equal(t, 2.0, g)
	n, _ := gathered(t, e.reg, "acmebridge_config_reload_total", map[string]string{"result": "success"})
	require.Equal(t, 1.0, n)
}

// TestReloadRefused: a configuration changing a key only a restart can
// change, or naming an upstream without an issuer, is refused whole: the
// generation, the policy and the metrics say the old one runs.
func TestReloadRefused(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()

	cfg := reloadCfg(e)
	cfg.Policy.Default = configs.Rule{Name: "default", Action: "deny"}
	cfg.Server.Listen = "127.0.0.1:9999"
	cfg.Store.Driver = "redis"
	cfg.Store.Redis.Addrs = []string{"127.0.0.1:6379"}
	_, err := reload(e, cfg, nil)
	require.Error(t, err)
	require.Contains(t, err.Error(), "server.listen, store needs a restart")

	cfg = reloadCfg(e)
	cfg.Policy.Default = configs.Rule{Name: "default", Action: "deny"}
	cfg.Upstreams = append(cfg.Upstreams, configs.Upstream{Name: "ghost", Type: "local"})
	_, err = reload(e, cfg, nil)
	require.ErrorContains(t, err, "upstream ghost has no issuer")

	require.Equal(t, int64(1), e.srv.RA().Generation())
	require.Equal(t, http.StatusCreated, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("still.example.com")}).Code,
		"the running policy stays")
	n, _ := gathered(t, e.reg, "acmebridge_config_reload_total", map[string]string{"result": "failure"})
	require.Equal(t, 2.0, n)
	last, _ := gathered(t, e.reg, "acmebridge_config_last_reload_successful", nil)
	require.Equal(t, 0.0, last)
}

// TestReloadDirectoriesAndPreAuthorization: a reload adds a directory
// (served at once), removes it (404 at once) and turns newAuthz on.
func TestReloadDirectoriesAndPreAuthorization(t *testing.T) {
	e := newEnv(t, nil)
	require.Equal(t, http.StatusNotFound, e.do(http.MethodGet, "/tenant"+pathDirectory, "", nil).Code)
	require.Empty(t, decode[directory](t, e.do(http.MethodGet, pathDirectory, "", nil)).NewAuthz)

	cfg := reloadCfg(e)
	cfg.Directories = append(cfg.Directories, configs.Directory{Name: "tenant", Accounts: configs.Accounts{EAB: "disabled"},
		Policy: cfg.Policy, RateLimits: cfg.RateLimits})
	cfg.Orders.PreAuthorization = true
	cfg.Orders.ValidAuthzReuse = configs.Duration(time.Hour)
	_, err := reload(e, cfg, nil)
	require.NoError(t, err)
	rec := e.do(http.MethodGet, "/tenant"+pathDirectory, "", nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, testBase+"/tenant"+pathNewAuthz, decode[directory](t, rec).NewAuthz)
	c := e.newClientIn("tenant")
	c.register()
	rec = c.post(pathNewAuthz, map[string]any{"identifier": dnsIDs("pre.example.com")[0]})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())

	cfg = reloadCfg(e)
	cfg.Directories = nil
	cfg.Orders.PreAuthorization = false
	_, err = reload(e, cfg, nil)
	require.NoError(t, err)
	requireProblem(t, e.do(http.MethodGet, "/tenant"+pathDirectory, "", nil), http.StatusNotFound, "malformed")
	requireProblem(t, c.post(pathNewAuthz, map[string]any{"identifier": dnsIDs("pre2.example.com")[0]}), http.StatusNotFound, "malformed")
}

// TestReloadDrainsRemovedUpstream: an order processing at an upstream a
// reload removes completes there; new orders follow the new policy at
// once; the removed upstream is closed once its last job is done, not
// before.
func TestReloadDrainsRemovedUpstream(t *testing.T) {
	var mu sync.Mutex
	gated := map[string]*gatedIssuer{}
	wrapIssuer = func(i upstream.Issuer) upstream.Issuer {
		if i.Name() != "old" {
			return i
		}
		g := newGated(i)
		mu.Lock()
		gated[i.Name()] = g
		mu.Unlock()
		return g
	}
	defer func() { wrapIssuer = nil }()
	e := newEnv(t, func(c *configs.Config) {
		c.Orders.FinalizeWait = 0
		c.Upstreams = append(c.Upstreams, configs.Upstream{Name: "old", Type: "local"})
		c.Policy.Rules = []configs.Rule{{Name: "to-old", Match: configs.Match{Domains: []string{"*.old.example.com"}}, Upstreams: []string{"old"}}}
	})
	old := gated["old"]
	c := e.newClient()
	c.register()
	orderURL, o := c.readyOrder(dnsIDs("a.old.example.com")...)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rec := c.post(o.Finalize, map[string]string{"csr": b64(makeCSR(t, key, "", []string{"a.old.example.com"}, nil))})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	select {
	case <-old.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the order never reached upstream old")
	}

	// A second order, ready but not finalized, routed to old too.
	_, ready := c.readyOrder(dnsIDs("b.old.example.com")...)

	cfg := reloadCfg(e)
	cfg.Upstreams = cfg.Upstreams[:1] // dev only
	cfg.Policy.Rules = nil
	cfg.Orders.FinalizeWait = configs.Duration(5 * time.Second)
	issuers := maps.Clone(e.issuers)
	delete(issuers, "old")
	_, err := reload(e, cfg, issuers)
	require.NoError(t, err)
	require.Equal(t, []string{"old"}, e.srv.RA().Draining())
	require.Equal(t, []string{"dev"}, e.srv.RA().Upstreams())

	// New orders follow the new policy: issued by dev, at once.
	_, cert := issue(t, e, c, "c.old.example.com")
	require.Equal(t, "dev", cert.Upstream)
	// The ready order, finalized now, goes where the policy sends it.
	rec = c.post(ready.Finalize, map[string]string{"csr": b64(makeCSR(t, key, "", []string{"b.old.example.com"}, nil))})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Eventually(t, func() bool {
		return decode[orderJSON](t, c.post(strings.Replace(ready.Finalize, "/finalize", "", 1), nil)).Status == "valid"
	}, 10*time.Second, 20*time.Millisecond)

	// The processing order still waits at old, which stays open.
	time.Sleep(3 * time.Second) // more than a drain pass
	require.Zero(t, old.closes.Load(), "a retired upstream with a job is not closed")
	require.Equal(t, []string{"old"}, e.srv.RA().Draining())
	close(old.gate)
	var done orderJSON
	require.Eventually(t, func() bool {
		done = decode[orderJSON](t, c.post(orderURL, nil))
		return done.Status == "valid"
	}, 10*time.Second, 20*time.Millisecond)
	stored, err := e.st.GetCertificate(t.Context(), strings.TrimPrefix(done.Certificate, testBase+pathCert))
	require.NoError(t, err)
	require.Equal(t, "old", stored.Upstream, "the order in flight completed on its route")
	require.Eventually(t, func() bool { return old.closes.Load() == 1 }, 10*time.Second, 50*time.Millisecond,
		"drained, the retired upstream is closed")
	require.Empty(t, e.srv.RA().Draining())
}

// TestReloadReplacedUpstreamInstance: an upstream whose block changed
// gets a new instance; a call in flight on the old one finishes there, the
// old instance is closed only after it, and new work goes to the new one.
func TestReloadReplacedUpstreamInstance(t *testing.T) {
	var first *gatedIssuer
	wrapIssuer = func(i upstream.Issuer) upstream.Issuer {
		first = newGated(i)
		return first
	}
	defer func() { wrapIssuer = nil }()
	e := newEnv(t, func(c *configs.Config) { c.Orders.FinalizeWait = 0 })
	c := e.newClient()
	c.register()
	orderURL, o := c.readyOrder(dnsIDs("inflight.example.com")...)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.Equal(t, http.StatusOK, c.post(o.Finalize, map[string]string{"csr": b64(makeCSR(t, key, "", []string{"inflight.example.com"}, nil))}).Code)
	<-first.started

	cfg := reloadCfg(e)
	cfg.Upstreams[0].Local.Validity = configs.Duration(30 * 24 * time.Hour)
	cfg.Orders.FinalizeWait = configs.Duration(5 * time.Second)
	ca, err := local.New(local.Options{Name: "dev", Dir: filepath.Join(cfg.DataDir, "ca", "dev"), Validity: 30 * 24 * time.Hour})
	require.NoError(t, err)
	second := newGated(ca)
	close(second.gate)
	_, err = reload(e, cfg, map[string]upstream.Issuer{"dev": second})
	require.NoError(t, err)

	_, cert := issue(t, e, c, "after.example.com")
	require.Equal(t, "dev", cert.Upstream)
	require.Len(t, second.started, 1, "new work goes to the new instance")
	time.Sleep(3 * time.Second)
	require.Zero(t, first.closes.Load(), "the old instance stays open while its call runs")
	close(first.gate)
	require.Eventually(t, func() bool { return decode[orderJSON](t, c.post(orderURL, nil)).Status == "valid" }, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return first.closes.Load() == 1 }, 10*time.Second, 50*time.Millisecond)
	require.Zero(t, second.closes.Load())
}
