package test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/lego"
	"github.com/go-acme/lego/v5/registration"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/core"
)

// The load, probes and counts of a chaos run (redisfailover_test.go).

// chaosAttempt is one Obtain of a chaos client: one order for one name.
type chaosAttempt struct {
	client int
	name   string
	err    error
	leaf   *x509.Certificate
	at     time.Time
}

// client obtains a certificate, with a new order (a new name) after each
// error, until one succeeds or the retries stop 30 s after the crash.
func (run *chaosRun) client(i int, c *lego.Client) {
	for a := 0; a < 30; a++ {
		name := fmt.Sprintf("c%d-a%d.%s", i, a, vaultDomain)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		r := obtain(ctx, c, []string{name})
		cancel()
		att := chaosAttempt{client: i, name: name, err: r.err, at: time.Now()}
		if r.err == nil {
			certs, err := parsePEMCerts(r.res.Certificate)
			if err != nil || len(certs) == 0 {
				att.err = fmt.Errorf("unreadable certificate: %w", err)
			} else {
				att.leaf = certs[0]
			}
		}
		run.mu.Lock()
		run.attempts = append(run.attempts, att)
		run.mu.Unlock()
		if att.err == nil {
			return
		}
		if stop := run.stopAt.Load(); stop != 0 && time.Now().UnixNano() > stop {
			return
		}
		time.Sleep(time.Second)
	}
}

// chaosDNSProvider holds a client's first Present until every client got
// there, then lets it go stagger later.
type chaosDNSProvider struct {
	testDNSProvider
	b       *barrier
	stagger time.Duration
	once    sync.Once
}

func (p *chaosDNSProvider) Present(ctx context.Context, domain, token, keyAuth string) error {
	p.once.Do(func() {
		p.b.wait(ctx)
		time.Sleep(p.stagger)
	})
	return p.testDNSProvider.Present(ctx, domain, token, keyAuth)
}

// chaosProbe is a request whose acceptance is a promise: a signed request
// (its nonce used once) or an EAB binding (the key bound once).
type chaosProbe struct {
	kind, phase string
	// status is the answer's (0: none); at when it came.
	status  int
	problem string
	at      time.Time
	// body is the signed request, replayed after recovery.
	body []byte
	// key and account are the EAB key bound and the account that got it.
	key     eabSecret
	account string
}

func (run *chaosRun) record(p *chaosProbe) {
	run.mu.Lock()
	defer run.mu.Unlock()
	run.probes = append(run.probes, p)
}

// nonceProbe sends a POST-as-GET of u's account: its nonce is fetched and
// the request signed at once, sent at when in a goroutine of wg (at once
// without wg): a nonce's use is what the store records, not its minting.
func (run *chaosRun) nonceProbe(phase string, u *legoUser, when time.Time, wg *sync.WaitGroup) {
	t := run.t
	hc := run.rs.Proxy.HTTPClient()
	resp, err := hc.Head(run.rs.Proxy.URL + run.rs.NewNoncePath)
	require.NoError(t, err)
	resp.Body.Close()
	nonce := resp.Header.Get("Replay-Nonce")
	require.NotEmpty(t, nonce, "newNonce answered %s", resp.Status)
	p := &chaosProbe{kind: "nonce", phase: phase, body: signPostAsGet(t, u.key, u.reg.Location, nonce, u.reg.Location)}
	send := func() {
		p.status, p.problem = run.post(u.reg.Location, p.body)
		p.at = time.Now()
		run.record(p)
	}
	if wg == nil {
		send()
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(time.Until(when))
		send()
	}()
}

// post sends a JWS through the proxy and returns the status and problem
// type (0 and the error when no answer came).
func (run *chaosRun) post(url string, body []byte) (int, string) {
	resp, err := run.rs.Proxy.HTTPClient().Post(url, "application/jose+json", bytes.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var p acme.ProblemDetails
	if resp.StatusCode >= 400 && json.Unmarshal(b, &p) == nil {
		return resp.StatusCode, p.Type
	}
	return resp.StatusCode, ""
}

// bindEAB registers a new account bound to key at when, in a goroutine of
// wg (at once without wg).
func (run *chaosRun) bindEAB(phase string, key eabSecret, when time.Time, wg *sync.WaitGroup) {
	p, send := run.eabProbe(phase, key)
	if wg == nil {
		send()
		run.record(p)
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(time.Until(when))
		send()
		run.record(p)
	}()
}

// eabProbe prepares the registration of a new account bound to key; send
// sends it and fills p in.
func (run *chaosRun) eabProbe(phase string, key eabSecret) (p *chaosProbe, send func()) {
	u := &legoUser{email: "eab@example.com", key: newECKey(run.t)}
	c := run.rs.legoClient(run.t, u, 20*time.Second)
	p = &chaosProbe{kind: "eab", phase: phase, key: key}
	return p, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		reg, err := c.Registration.RegisterWithExternalAccountBinding(ctx, registration.RegisterEABOptions{
			TermsOfServiceAgreed: true, Kid: key.ID, HmacEncoded: key.HMACKey})
		p.at = time.Now()
		switch pd, ok := errors.AsType[*acme.ProblemDetails](err); {
		case err == nil:
			p.status, p.account = http.StatusCreated, reg.Location
		case ok:
			p.status, p.problem = pd.HTTPStatus, pd.Type
		default:
			p.problem = errSummary(err)
		}
	}
}

// inWindow reports whether at falls between the window's opening and the
// crash.
func (run *chaosRun) inWindow(at time.Time) bool {
	run.mu.Lock()
	defer run.mu.Unlock()
	return !at.Before(run.lagAt) && at.Before(run.crashAt)
}

// since says when at was, relative to the crash.
func (run *chaosRun) since(at time.Time) string {
	run.mu.Lock()
	defer run.mu.Unlock()
	d := at.Sub(run.crashAt)
	if d < 0 {
		return fmt.Sprintf("%s before the crash", (-d).Round(time.Millisecond))
	}
	return fmt.Sprintf("%s after the crash", d.Round(time.Millisecond))
}

// probeAnswer counts an answer to a probe that is neither the expected
// one nor a clean 503 (5xx answers are the observer's).
func (run *chaosRun) probeAnswer(p *chaosProbe, ok ...int) {
	for _, s := range ok {
		if p.status == s {
			return
		}
	}
	if p.status >= 500 {
		return
	}
	run.c.BadErrors++
	run.c.Note("bad answer: %s probe (%s) answered %d %s", p.kind, p.phase, p.status, p.problem)
}

// countReplays sends every signed request accepted before the crash again:
// each must get badNonce (RFC 8555 §6.5).
func (run *chaosRun) countReplays(u *legoUser) {
	for _, p := range run.probes {
		if p.kind != "nonce" {
			continue
		}
		run.probeAnswer(p, http.StatusOK)
		if p.status != http.StatusOK {
			continue
		}
		if run.inWindow(p.at) {
			run.c.NoncesInWindow++
		}
		var status int
		var problem string
		waitFor(15*time.Second, func() bool {
			status, problem = run.post(u.reg.Location, p.body)
			return status != http.StatusServiceUnavailable
		})
		switch {
		case status == http.StatusBadRequest && problem == "urn:ietf:params:acme:error:badNonce":
		case status == http.StatusOK:
			run.c.NonceReplays++
			run.c.Note("nonce replay: a request accepted %s (%s) was accepted again after recovery", run.since(p.at), p.phase)
		default:
			run.c.BadErrors++
			run.c.Note("bad answer: the replay of a request accepted %s got %d %s, not badNonce", run.since(p.at), status, problem)
		}
	}
}

// countEAB checks every binding a client was told of: its account is
// there, the key names it, and no second account can bind the key.
func (run *chaosRun) countEAB() {
	t := run.t
	var keys listing[eabKey]
	run.adm.get(t, "/api/v1/eab?limit=1000", &keys)
	boundTo := map[string]string{}
	for _, k := range keys.Items {
		boundTo[k.ID] = k.AccountID
	}
	for _, p := range run.probes {
		if p.kind != "eab" {
			continue
		}
		run.probeAnswer(p, http.StatusCreated)
		if p.status != http.StatusCreated {
			continue
		}
		if run.inWindow(p.at) {
			run.c.EABInWindow++
		}
		id := accountID(p.account)
		broken := []string{}
		if st := run.adm.get(t, "/api/v1/accounts/"+id, nil); st == http.StatusNotFound {
			broken = append(broken, "its account is gone (404)")
		}
		if boundTo[p.key.ID] != id {
			broken = append(broken, fmt.Sprintf("the key names account %q", boundTo[p.key.ID]))
		}
		var again *chaosProbe
		waitFor(15*time.Second, func() bool {
			var send func()
			again, send = run.eabProbe("again", p.key)
			send()
			return again.status != http.StatusServiceUnavailable
		})
		if again.status == http.StatusCreated {
			broken = append(broken, "a second account bound it")
		}
		if len(broken) > 0 {
			run.c.EABDouble++
			run.c.Note("EAB key %s bound %s (%s): %s", p.key.ID, run.since(p.at), p.phase, strings.Join(broken, "; "))
		}
	}
}

// countCerts looks up every certificate a client received, and every one
// Vault signed, in the store by serial, and counts Vault's signatures per
// order (each order has a name of its own).
func (run *chaosRun) countCerts() {
	t := run.t
	for _, a := range run.attempts {
		if a.leaf == nil {
			continue
		}
		run.c.Received++
		if run.inWindow(a.at) {
			run.c.CertsInWindow++
		}
		if run.adm.get(t, "/api/v1/certificates/"+core.SerialHex(a.leaf), nil) == http.StatusNotFound {
			run.c.LostCerts++
			run.c.Note("lost certificate: %s (serial %s), received %s, is not in the store", a.name, core.SerialHex(a.leaf), run.since(a.at))
		}
	}
	perName := map[string][]string{}
	for _, leaf := range run.vault.leaves(t) {
		run.c.VaultSigned++
		name := ""
		if len(leaf.DNSNames) > 0 {
			name = leaf.DNSNames[0]
		}
		perName[name] = append(perName[name], core.SerialHex(leaf))
		if run.adm.get(t, "/api/v1/certificates/"+core.SerialHex(leaf), nil) == http.StatusNotFound {
			run.c.Unrecorded++
		}
	}
	names := make([]string, 0, len(perName))
	for n := range perName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if len(perName[n]) > 1 {
			run.c.DoubleSigned++
			run.c.Note("double sign: Vault signed %d certificates for the order of %s: %v", len(perName[n]), n, perName[n])
		}
	}
	var orders listing[orderRec]
	run.adm.get(t, "/api/v1/orders?limit=1000", &orders)
	run.c.Orders = len(orders.Items)
	byStatus := map[string]int{}
	for _, o := range orders.Items {
		byStatus[o.Status]++
	}
	run.c.Note("orders by status: %v", byStatus)
}

// countStuck waits (2 job leases and 10 s at most) for the orders still
// processing to end, and counts those that do not.
func (run *chaosRun) countStuck() {
	var processing listing[orderRec]
	waitFor(16*time.Second, func() bool {
		processing = listing[orderRec]{}
		return run.adm.get(run.t, "/api/v1/orders?state=processing&limit=1000", &processing) == http.StatusOK &&
			len(processing.Items) == 0
	})
	run.c.Stuck = len(processing.Items)
	for _, o := range processing.Items {
		run.c.Note("stuck: order %s (%s) still processing", o.ID, o.Identifiers[0].Value)
	}
}

// countClientErrors counts what the clients saw: 5xx answers other than a
// clean 503 (the observer's), and failed issuances whose cause was not a
// 503 (a wrong answer, or an order that never ended).
func (run *chaosRun) countClientErrors() {
	run.c.Clean503, run.c.BadErrors = run.obs.clean, run.c.BadErrors+len(run.obs.bad)
	for _, b := range run.obs.bad {
		run.c.Note("bad answer: %s", b)
	}
	for _, a := range run.attempts {
		if a.err == nil {
			continue
		}
		pd, ok := errors.AsType[*acme.ProblemDetails](a.err)
		switch {
		case strings.Contains(a.err.Error(), "invalid order"):
		case ok && pd.HTTPStatus >= 500, strings.Contains(a.err.Error(), "HTTP HEAD: 503"):
			continue
		}
		run.c.BadErrors++
		run.c.Note("bad answer: client %d, %s, %s: %s", a.client, a.name, run.since(a.at), errSummary(a.err))
	}
}

// chaosObserver sees every answer the load balancer gives and keeps the
// 5xx ones that are not a clean 503 with Retry-After.
type chaosObserver struct {
	mu    sync.Mutex
	clean int
	bad   []string
}

func (o *chaosObserver) observe(r *http.Request, status int, h http.Header, body []byte) {
	if status < 500 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if status == http.StatusServiceUnavailable && h.Get("Retry-After") != "" {
		o.clean++
		return
	}
	b := string(body)
	if len(b) > 200 {
		b = b[:200] + "…"
	}
	o.bad = append(o.bad, fmt.Sprintf("%s %s: %d (Retry-After %q) %s", r.Method, r.URL.Path, status, h.Get("Retry-After"), strings.TrimSpace(b)))
}

// leaves returns the leaf certificates Vault holds.
func (v *vaultUpstream) leaves(t *testing.T) []*x509.Certificate {
	t.Helper()
	root := v.v.Client(t, "")
	s, err := root.Logical().List(v.pki.Mount + "/certs")
	require.NoError(t, err)
	var out []*x509.Certificate
	if s == nil {
		return out
	}
	for _, k := range s.Data["keys"].([]any) {
		c, err := root.Logical().Read(v.pki.Mount + "/cert/" + k.(string))
		require.NoError(t, err)
		certs, err := parsePEMCerts([]byte(c.Data["certificate"].(string)))
		require.NoError(t, err)
		if len(certs) == 1 && !certs[0].IsCA {
			out = append(out, certs[0])
		}
	}
	return out
}

// chaosAdmin calls one replica's admin API.
type chaosAdmin struct {
	url, token string
	hc         *http.Client
}

// eabSecret is a created EAB key.
type eabSecret struct {
	ID      string `json:"id"`
	HMACKey string `json:"hmac_key"`
}

func newChaosAdmin(t *testing.T, r *replica, tokenFile string) chaosAdmin {
	t.Helper()
	tok, err := os.ReadFile(tokenFile)
	require.NoError(t, err)
	return chaosAdmin{url: r.AdminURL, token: strings.TrimSpace(string(tok)), hc: &http.Client{Timeout: 10 * time.Second}}
}

// do sends one request; out, if set, receives a 2xx answer's JSON.
func (a chaosAdmin) do(t *testing.T, method, path string, in, out any) int {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		require.NoError(t, err)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.url+path, body)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil && resp.StatusCode/100 == 2 {
		require.NoError(t, json.Unmarshal(b, out), "%s %s: %s", method, path, b)
	}
	return resp.StatusCode
}

// get reads path, waiting out 503s (the store coming back) for 15 s.
func (a chaosAdmin) get(t *testing.T, path string, out any) int {
	t.Helper()
	var st int
	waitFor(15*time.Second, func() bool {
		st = a.do(t, http.MethodGet, path, nil, out)
		return st != http.StatusServiceUnavailable
	})
	require.Contains(t, []int{http.StatusOK, http.StatusNotFound}, st, "admin GET %s", path)
	return st
}

// createEAB makes an EAB key through the admin API.
func (a chaosAdmin) createEAB(t *testing.T) eabSecret {
	t.Helper()
	var k eabSecret
	require.Equal(t, http.StatusCreated, a.do(t, http.MethodPost, "/api/v1/eab", map[string]any{"note": "chaos"}, &k))
	require.NotEmpty(t, k.HMACKey)
	return k
}
