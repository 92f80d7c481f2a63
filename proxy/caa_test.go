package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net"
	"net/http"
	"path"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/policy"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/upstream"
)

// caaCall is one CheckCAA call seen by the fake validator.
type caaCall struct {
	name       string
	identities []string
	account    string
	method     string
}

// caaRecorder makes the fake validator forbid the names in forbid (with
// kind CAA, or DNS for those in broken) and records the calls.
type caaRecorder struct {
	mu     sync.Mutex
	calls  []caaCall
	forbid map[string]bool
	broken map[string]bool
	// only, when set, is the one identity CAA allows for forbidden names.
	only string
}

func (r *caaRecorder) check(name string, _ bool, identities []string, account, method string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, caaCall{name: name, identities: identities, account: account, method: method})
	switch {
	case r.broken[name]:
		return acmeerr.New(acmeerr.DNS, "CAA for %s could not be checked, so no certificate is issued: DNS query for CAA %s: SERVFAIL", name, name)
	case r.forbid[name] && (r.only == "" || !slices.Contains(identities, r.only)):
		return acmeerr.New(acmeerr.CAA, "CAA issue records at %s do not authorize this CA to issue for %s", name, name)
	}
	return nil
}

func (r *caaRecorder) seen() []caaCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]caaCall(nil), r.calls...)
	slices.SortFunc(out, func(a, b caaCall) int {
		if a.name < b.name {
			return -1
		}
		if a.name > b.name {
			return 1
		}
		return 0
	})
	return out
}

func (e *env) recordCAA() *caaRecorder {
	r := &caaRecorder{forbid: map[string]bool{}, broken: map[string]bool{}}
	e.va.mu.Lock()
	e.va.caa = r.check
	e.va.mu.Unlock()
	return r
}

func finalizeCSR(t *testing.T, names ...string) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	var dns []string
	var ips []net.IP
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, n)
		}
	}
	return makeCSR(t, k, "", dns, ips)
}

// TestFinalizeCAA: CAA is checked at finalize for a local upstream, with the
// account URL and each authorization's validation method (RFC 8657); a
// forbidding record refuses finalize with a caa problem (403) and leaves the
// order ready, and finalize works once CAA allows it.
func TestFinalizeCAA(t *testing.T) {
	e := newEnv(t, func(c *configs.Config) {
		c.Server.CAAIdentities = []string{"bridge.example.net"}
	})
	caa := e.recordCAA()
	caa.forbid["www.example.com"] = true
	c := e.newClient()
	c.register()

	orderURL, o := c.readyOrder(dnsIDs("www.example.com", "*.example.com", "ok.example.com")...)
	csr := finalizeCSR(t, "www.example.com", "*.example.com", "ok.example.com")
	p := requireProblem(t, c.post(o.Finalize, map[string]string{"csr": b64(csr)}), http.StatusForbidden, "caa")
	require.Equal(t, "CAA issue records at www.example.com do not authorize this CA to issue for www.example.com", p.Detail)
	require.Len(t, p.Subproblems, 1)
	require.Equal(t, errNS+"caa", p.Subproblems[0].Type)
	require.Equal(t, &acmeerr.Identifier{Type: "dns", Value: "www.example.com"}, p.Subproblems[0].Identifier)

	// Each DNS name was checked with the account URL, the method that
	// validated it (readyOrder answers the first challenge: http-01, and
	// dns-01 for the wildcard) and the server's identities.
	want := []caaCall{
		{name: "*.example.com", identities: []string{"bridge.example.net"}, account: c.kid, method: "dns-01"},
		{name: "ok.example.com", identities: []string{"bridge.example.net"}, account: c.kid, method: "http-01"},
		{name: "www.example.com", identities: []string{"bridge.example.net"}, account: c.kid, method: "http-01"},
	}
	require.Equal(t, want, caa.seen())

	// The order is still ready, nothing was issued, and the refusal is
	// audited.
	require.Equal(t, "ready", decode[orderJSON](t, c.post(orderURL, nil)).Status)
	refused := e.audit.of(audit.FinalizeRefused)
	require.Len(t, refused, 1)
	require.Contains(t, refused[0].Why(), "caa: CAA issue records at www.example.com")

	// CAA now allows it: finalize issues.
	caa.mu.Lock()
	delete(caa.forbid, "www.example.com")
	caa.mu.Unlock()
	rec := c.post(o.Finalize, map[string]string{"csr": b64(csr)})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "valid", decode[orderJSON](t, rec).Status)
}

// TestFinalizeCAASeveral: several forbidden names give one caa problem
// with a subproblem each; a DNS failure alone gives a dns problem.
func TestFinalizeCAASeveral(t *testing.T) {
	e := newEnv(t, nil)
	caa := e.recordCAA()
	caa.forbid["a.example.com"] = true
	caa.broken["b.example.com"] = true
	caa.broken["c.example.com"] = true
	c := e.newClient()
	c.register()

	_, o := c.readyOrder(dnsIDs("a.example.com", "b.example.com")...)
	p := requireProblem(t, c.post(o.Finalize, map[string]string{"csr": b64(finalizeCSR(t, "a.example.com", "b.example.com"))}),
		http.StatusForbidden, "caa")
	require.Equal(t, "CAA forbids issuance, or could not be checked, for a.example.com, b.example.com", p.Detail)
	require.Len(t, p.Subproblems, 2)
	require.Equal(t, errNS+"caa", p.Subproblems[0].Type)
	require.Equal(t, "a.example.com", p.Subproblems[0].Identifier.Value)
	require.Equal(t, errNS+"dns", p.Subproblems[1].Type)
	require.Equal(t, "b.example.com", p.Subproblems[1].Identifier.Value)

	_, o = c.readyOrder(dnsIDs("c.example.com")...)
	p = requireProblem(t, c.post(o.Finalize, map[string]string{"csr": b64(finalizeCSR(t, "c.example.com"))}),
		http.StatusBadRequest, "dns")
	require.Contains(t, p.Detail, "CAA for c.example.com could not be checked")

	// IP identifiers have no CAA.
	before := len(caa.seen())
	_, o = c.readyOrder(store.Identifier{Type: "ip", Value: "192.0.2.9"})
	rec := c.post(o.Finalize, map[string]string{"csr": b64(finalizeCSR(t, "192.0.2.9"))})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Len(t, caa.seen(), before)
}

// TestFinalizeCAARoute: each upstream is checked with its own identities;
// an upstream CAA forbids is dropped from the route, an upstream that does
// not check CAA is never asked about, and the order goes to what is left.
func TestFinalizeCAARoute(t *testing.T) {
	no := false
	e := newEnv(t, func(c *configs.Config) {
		c.Server.CAAIdentities = []string{"bridge.example.net"}
		c.Upstreams = []configs.Upstream{
			{Name: "internal", Type: "local", CAAIdentities: []string{"PKI.corp.example.com"}},
			{Name: "second", Type: "local", CAAIdentities: []string{"second.example.net"}},
			{Name: "unchecked", Type: "local", CAA: configs.CAA{Check: &no}},
		}
		c.Policy.Default = configs.Rule{Name: "default", Upstreams: []string{"internal", "second", "unchecked"}}
	})
	caa := e.recordCAA()
	caa.forbid["www.example.com"] = true
	caa.only = "second.example.net" // CAA names only the second upstream
	c := e.newClient()
	c.register()

	_, o := c.readyOrder(dnsIDs("www.example.com")...)
	rec := c.post(o.Finalize, map[string]string{"csr": b64(finalizeCSR(t, "www.example.com"))})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	j := decode[orderJSON](t, rec)
	require.Equal(t, "valid", j.Status)
	stored, err := e.st.GetOrder(t.Context(), path.Base(rec.Header().Get("Location")))
	require.NoError(t, err)
	require.Equal(t, "second", stored.Upstream, "the upstream CAA forbids is skipped")
	require.Equal(t, []string{"second", "unchecked"}, stored.Upstreams)
	seen := caa.seen()
	require.Len(t, seen, 2, "one check per upstream that checks CAA")
	var ids [][]string
	for _, s := range seen {
		ids = append(ids, s.identities)
	}
	require.ElementsMatch(t, [][]string{{"pki.corp.example.com"}, {"second.example.net"}}, ids)

	// CAA names no upstream: the unchecked one is left and issues.
	caa.mu.Lock()
	caa.only = "nobody.example"
	caa.mu.Unlock()
	_, o = c.readyOrder(dnsIDs("www.example.com")...)
	rec = c.post(o.Finalize, map[string]string{"csr": b64(finalizeCSR(t, "www.example.com"))})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	stored, err = e.st.GetOrder(t.Context(), path.Base(rec.Header().Get("Location")))
	require.NoError(t, err)
	require.Equal(t, "unchecked", stored.Upstream)
}

// TestFinalizeCAAUnchecked: a route whose upstreams do not check CAA makes
// no lookup; a server whose upstreams need CAA and has no checker does not
// start.
func TestFinalizeCAAUnchecked(t *testing.T) {
	no := false
	e := newEnv(t, func(c *configs.Config) { c.Upstreams[0].CAA.Check = &no })
	caa := e.recordCAA()
	caa.forbid["www.example.com"] = true
	c := e.newClient()
	c.register()
	_, o := c.readyOrder(dnsIDs("www.example.com")...)
	rec := c.post(o.Finalize, map[string]string{"csr": b64(finalizeCSR(t, "www.example.com"))})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Empty(t, caa.seen())

	cfg := configs.Default()
	_, err := New(Options{Config: cfg, Store: e.st, Validator: validateOnly{}, Router: policy.New(cfg.Policy)})
	require.ErrorContains(t, err, "upstream dev checks CAA")
	srv, err := New(Options{Config: cfg, Store: e.st, Validator: validateOnly{}, CAA: e.va, Router: policy.New(cfg.Policy)})
	require.NoError(t, err)
	srv.Close()
}

// validateOnly is a Validator that cannot check CAA.
type validateOnly struct{}

func (validateOnly) Validate(_ context.Context, _, _, _, _, _ string) error { return nil }

// TestWorkerRechecksStaleCAA: an issuance retried after its finalize's CAA
// check is older than orders.caa_max_age checks CAA again: a record added
// meanwhile makes the order invalid with a caa problem and nothing is
// issued. Within the age, the retry issues without a new check.
func TestWorkerRechecksStaleCAA(t *testing.T) {
	for _, tc := range []struct {
		name   string
		maxAge time.Duration
		want   string
	}{
		{"stale", time.Millisecond, "invalid"},
		{"fresh", 8 * time.Hour, "valid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			down := &atomic.Bool{}
			down.Store(true)
			wrapIssuer = func(i upstream.Issuer) upstream.Issuer { return flakyIssuer{Issuer: i, down: down} }
			defer func() { wrapIssuer = nil }()
			e := newEnv(t, func(c *configs.Config) { c.Orders.CAAMaxAge = configs.Duration(tc.maxAge) })
			caa := e.recordCAA()
			c := e.newClient()
			c.register()
			orderURL, o := c.readyOrder(dnsIDs("late.example.com")...)
			rec := c.post(o.Finalize, map[string]string{"csr": b64(finalizeCSR(t, "late.example.com"))})
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			require.Equal(t, "processing", decode[orderJSON](t, rec).Status, "the upstream is down: the job waits for a retry")
			require.NotEmpty(t, caa.seen(), "checked at finalize")

			// A CAA record forbidding this CA appears; the upstream comes back.
			caa.mu.Lock()
			caa.forbid["late.example.com"] = true
			checks := len(caa.calls)
			caa.mu.Unlock()
			down.Store(false)
			var cur orderJSON
			require.Eventually(t, func() bool {
				cur = decode[orderJSON](t, c.post(orderURL, nil))
				return cur.Status != "processing"
			}, 30*time.Second, 50*time.Millisecond)
			require.Equal(t, tc.want, cur.Status)
			if tc.want == "invalid" {
				require.Equal(t, errNS+"caa", cur.Error.Type)
				require.Greater(t, len(caa.seen()), checks, "checked again by the worker")
				require.Empty(t, cur.Certificate)
				// The audit line follows the stored state.
				require.Eventually(t, func() bool { return len(e.audit.of(audit.OrderInvalid)) == 1 },
					10*time.Second, 10*time.Millisecond)
				require.Contains(t, e.audit.of(audit.OrderInvalid)[0].Why(), "caa:")
			} else {
				require.Len(t, caa.seen(), 1, "not checked again within caa_max_age")
			}
		})
	}
}
