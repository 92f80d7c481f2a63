package proxy

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/policy"
	"github.com/acmebridge/acmebridge/ra"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/store/bolt"
	"github.com/acmebridge/acmebridge/upstream"
	"github.com/acmebridge/acmebridge/upstream/local"
)

const testBase = "https://acme.test"

// fakeVA is an in-process validator for unit tests: it fails identifiers
// listed in fail and passes the others.
type fakeVA struct {
	mu    sync.Mutex
	fail  map[string]bool
	calls int
	// caa, when set, answers CheckCAA; nil allows every name.
	caa func(name string, wildcard bool, identities []string, accountURL, method string) error
	// hold, when set, makes each validation wait until it is closed (or
	// the validation's context ends): a slow answer.
	hold chan struct{}
}

// CheckCAA implements CAAChecker.
func (f *fakeVA) CheckCAA(_ context.Context, name string, wildcard bool, identities []string, accountURL, method string) error {
	f.mu.Lock()
	check := f.caa
	f.mu.Unlock()
	if check == nil {
		return nil
	}
	return check(name, wildcard, identities, accountURL, method)
}

func (f *fakeVA) Validate(ctx context.Context, _, value, _, _, _ string) error {
	f.mu.Lock()
	hold := f.hold
	f.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return acmeerr.New(acmeerr.Connection, "fake: %s did not answer in time", value)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.fail[value] {
		return acmeerr.New(acmeerr.IncorrectResponse, "fake: wrong answer for %s", value)
	}
	return nil
}

// env is a server under test with its store.
// memAudit collects audit events in memory.
type memAudit struct {
	mu     sync.Mutex
	events []audit.Event
}

func (m *memAudit) Record(e audit.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, e)
	return nil
}

// of returns the recorded events of one type.
func (m *memAudit) of(typ string) []audit.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []audit.Event
	for _, e := range m.events {
		if e.Event == typ {
			out = append(out, e)
		}
	}
	return out
}

// env is a server under test with its store.
type env struct {
	t       *testing.T
	srv     *Server
	h       http.Handler
	st      store.Store
	va      *fakeVA
	ca      *local.CA
	audit   *memAudit
	reg     *prometheus.Registry
	metrics *Metrics
	// issuers are the upstreams the server started with.
	issuers map[string]upstream.Issuer
}

func newEnv(t *testing.T, mutate func(*configs.Config)) *env {
	t.Helper()
	return newEnvWith(t, mutate, nil)
}

// wrapIssuer, when set by a test, wraps every upstream of the next envs.
var wrapIssuer func(upstream.Issuer) upstream.Issuer

// envClock, when set by a test, is the clock of the next envs' servers.
var envClock func() time.Time

// envNewValidator, when set by a test, makes the directories' validators
// of the next envs.
var envNewValidator func(*configs.Config) ra.Validator

// maxUsedNonces, when set by a test, bounds the bolt store's record of used
// nonces in the next envs.
var maxUsedNonces int

// newEnvWith is newEnv with the store wrapped by wrap (for fault injection).
func newEnvWith(t *testing.T, mutate func(*configs.Config), wrap func(store.Store) store.Store) *env {
	t.Helper()
	cfg := configs.Default()
	cfg.DataDir = t.TempDir()
	cfg.Server.ExternalURL = testBase
	if mutate != nil {
		mutate(cfg)
	}
	require.NoError(t, cfg.Validate())
	st, err := bolt.Open(bolt.Options{Path: filepath.Join(cfg.DataDir, "db"), MaxUsedNonces: maxUsedNonces})
	require.NoError(t, err)
	issuers := map[string]upstream.Issuer{}
	var ca *local.CA
	for _, u := range cfg.Upstreams {
		c, err := local.New(local.Options{Name: u.Name, Dir: filepath.Join(cfg.DataDir, "ca", u.Name), Validity: u.Local.Validity.D()})
		require.NoError(t, err)
		issuers[u.Name] = c
		if wrapIssuer != nil {
			issuers[u.Name] = wrapIssuer(c)
		}
		if ca == nil {
			ca = c
		}
	}
	au := &memAudit{}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, st)
	va := &fakeVA{fail: map[string]bool{}}
	var served store.Store = st
	if wrap != nil {
		served = wrap(st)
	}
	srv, err := New(Options{Config: cfg, Store: served, Validator: va, NewValidator: envNewValidator, Router: policy.New(cfg.Policy),
		Issuers: issuers, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Audit: au, Metrics: m, Clock: envClock})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); srv.Close(); <-done; st.Close() })
	return &env{t: t, srv: srv, h: srv.Handler(), st: st, va: va, ca: ca, audit: au, reg: reg, metrics: m, issuers: issuers}
}

// do sends a request to the handler.
func (e *env) do(method, path, ctype string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, testBase+path, bytes.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.RemoteAddr = "192.0.2.1:1234"
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

func (e *env) nonce() string {
	rec := e.do(http.MethodHead, pathNewNonce, "", nil)
	n := rec.Header().Get("Replay-Nonce")
	require.NotEmpty(e.t, n)
	return n
}

// client is an ACME account key with its URL once registered.
type client struct {
	e   *env
	key crypto.Signer
	alg jose.SignatureAlgorithm
	kid string
	// dir is the directory whose URLs relative paths are under ("" the
	// top level).
	dir string
}

// newClientIn is a client of the directory called dir.
func (e *env) newClientIn(dir string) *client {
	c := e.newClient()
	c.dir = dir
	return c
}

// url is the absolute URL of a path relative to the client's directory
// (an absolute URL is kept).
func (c *client) url(path string) string {
	if strings.HasPrefix(path, testBase) {
		return path
	}
	if c.dir != "" {
		return testBase + "/" + c.dir + path
	}
	return testBase + path
}

func (e *env) newClient() *client {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(e.t, err)
	return &client{e: e, key: k, alg: jose.ES256}
}

type nonceFunc func() (string, error)

func (f nonceFunc) Nonce() (string, error) { return f() }

// sign makes a JWS for url with payload (nil payload = POST-as-GET); with
// useJWK the key is embedded, else the kid is used.
func (c *client) sign(url string, payload []byte, useJWK bool) []byte {
	opts := &jose.SignerOptions{NonceSource: nonceFunc(func() (string, error) { return c.e.nonce(), nil })}
	opts.WithHeader("url", url)
	var sk jose.SigningKey
	if useJWK {
		opts.EmbedJWK = true
		sk = jose.SigningKey{Algorithm: c.alg, Key: c.key}
	} else {
		sk = jose.SigningKey{Algorithm: c.alg, Key: jose.JSONWebKey{Key: c.key, KeyID: c.kid}}
	}
	signer, err := jose.NewSigner(sk, opts)
	require.NoError(c.e.t, err)
	jws, err := signer.Sign(payload)
	require.NoError(c.e.t, err)
	return []byte(jws.FullSerialize())
}

// post signs payload (a value marshalled to JSON; nil for POST-as-GET) to
// path with the kid, or the jwk for newAccount.
func (c *client) post(path string, payload any) *httptest.ResponseRecorder {
	body := []byte{}
	if payload != nil {
		var err error
		body, err = json.Marshal(payload)
		require.NoError(c.e.t, err)
	}
	useJWK := c.kid == "" || path == pathNewAccount
	u := c.url(path)
	return c.e.do(http.MethodPost, strings.TrimPrefix(u, testBase), "application/jose+json", c.sign(u, body, useJWK))
}

func (c *client) register() {
	rec := c.post(pathNewAccount, map[string]any{"termsOfServiceAgreed": true, "contact": []string{"mailto:ops@example.com"}})
	require.Equal(c.e.t, http.StatusCreated, rec.Code, rec.Body.String())
	c.kid = rec.Header().Get("Location")
	require.True(c.e.t, strings.HasPrefix(c.kid, c.url(pathAccount)))
}

// requireProblem asserts a problem response.
func requireProblem(t *testing.T, rec *httptest.ResponseRecorder, status int, typ string) problemDoc {
	t.Helper()
	require.Equal(t, status, rec.Code, rec.Body.String())
	require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
	var p problemDoc
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
	require.Equal(t, errNS+typ, p.Type, p.Detail)
	require.Equal(t, status, p.Status)
	return p
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &v), rec.Body.String())
	return v
}

// makeCSR returns a DER CSR for names (dns) and ips signed by key.
func makeCSR(t *testing.T, key crypto.Signer, cn string, names []string, ips []net.IP) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: cn}, DNSNames: names, IPAddresses: ips}, key)
	require.NoError(t, err)
	return der
}

// readyOrder creates an order for idents and validates all its
// authorizations; it returns the order URL and the order.
func (c *client) readyOrder(idents ...store.Identifier) (string, orderJSON) {
	t := c.e.t
	rec := c.post(pathNewOrder, map[string]any{"identifiers": idents})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	orderURL := rec.Header().Get("Location")
	o := decode[orderJSON](t, rec)
	for _, az := range o.Authorizations {
		a := decode[authzJSON](t, c.post(az, nil))
		rec := c.post(a.Challenges[0].URL, struct{}{})
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		require.Equal(t, "valid", decode[challengeJSON](t, rec).Status)
	}
	rec = c.post(orderURL, nil)
	require.Equal(t, http.StatusOK, rec.Code)
	o = decode[orderJSON](t, rec)
	require.Equal(t, "ready", o.Status)
	return orderURL, o
}

func dnsIDs(names ...string) []store.Identifier {
	var out []store.Identifier
	for _, n := range names {
		out = append(out, store.Identifier{Type: "dns", Value: n})
	}
	return out
}

// newPOST is a JOSE POST to an absolute URL under testBase.
func newPOST(url string, body []byte) *http.Request {
	req := httptest.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/jose+json")
	return req
}
