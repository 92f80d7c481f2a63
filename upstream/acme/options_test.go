package acme

import (
	"context"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/upstream/acme/acmetest"
)

// TestNewRefusesBadOptions: New names what is wrong, prefixed with the
// upstream.
func TestNewRefusesBadOptions(t *testing.T) {
	st := newStore(t)
	ok := func() Options {
		return Options{Name: "le", Directory: "https://acme.example/dir", Secrets: st,
			Solver: Solver{Type: SolverDNS01, DNSProvider: wrongTXT{}}}
	}
	cases := []struct {
		name   string
		mod    func(*Options)
		substr string
	}{
		{"plain http", func(o *Options) { o.Directory = "http://acme.example/dir" }, "is not an https URL"},
		{"no store", func(o *Options) { o.Secrets = nil }, "no store"},
		{"key type", func(o *Options) { o.KeyType = "DSA1024" }, "key type"},
		{"eab without hmac", func(o *Options) { o.EABKeyID = "kid" }, "EAB key ID needs exactly one"},
		{"eab hmac missing", func(o *Options) { o.EABKeyID, o.EABHMACFile = "kid", "/nonexistent/hmac" }, "reading the EAB HMAC key"},
		{"no provider", func(o *Options) { o.Solver.DNSProvider = nil }, "needs a DNS provider"},
		{"unknown provider", func(o *Options) { o.Solver.DNSProvider, o.Solver.Provider = nil, "nosuchdns" }, "is not a DNS provider acmebridge is built with"},
		{"provider config", func(o *Options) { o.Solver.DNSProvider, o.Solver.Provider = nil, "httpreq" }, "HTTPREQ_ENDPOINT"},
		{"resolver", func(o *Options) { o.Solver.Resolvers = []string{"8.8.8.8"} }, "is not host:port"},
		{"solver type", func(o *Options) { o.Solver.Type = "tls-alpn-01" }, "solver type"},
		{"http-01 listen", func(o *Options) { o.Solver = Solver{Type: SolverHTTP01} }, "listen address"},
		{"ca file", func(o *Options) { o.CAFile = "/nonexistent/ca.pem" }, "reading ca_file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := ok()
			tc.mod(&o)
			_, err := New(o)
			require.Error(t, err)
			require.Contains(t, err.Error(), "acme le: ")
			require.Contains(t, err.Error(), tc.substr)
			require.Equal(t, acmeerr.Internal, acmeerr.KindOf(err))
		})
	}
	u, err := New(ok())
	require.NoError(t, err)
	require.Equal(t, "le", u.Name())
	require.Equal(t, "le at https://acme.example/dir, dns-01", u.String())
}

// TestProviderEnv: a provider by name is built from the env map, which is
// set only while it is built.
func TestProviderEnv(t *testing.T) {
	t.Setenv("HTTPREQ_MODE", "")
	p, err := newDNSProvider("httpreq", map[string]string{"HTTPREQ_ENDPOINT": "http://127.0.0.1:1", "HTTPREQ_POLLING_INTERVAL": "3"})
	require.NoError(t, err)
	_, set := lookupEnv("HTTPREQ_ENDPOINT")
	require.False(t, set, "the provider's variables are not left in the environment")
	w := withTimeouts(p, 0, 0).(timedProvider)
	_, interval := w.Timeout()
	require.Equal(t, "3s", interval.String())
	_, isSeq := withTimeouts(p, 0, 0).(sequential)
	require.False(t, isSeq)

	e, err := newDNSProvider("exec", map[string]string{"EXEC_PATH": "/bin/true", "EXEC_SEQUENCE_INTERVAL": "1"})
	require.NoError(t, err)
	seq, isSeq := withTimeouts(e, 5e9, 0).(sequential)
	require.True(t, isSeq, "a sequential provider stays sequential")
	require.Equal(t, "1s", seq.Sequential().String())
	require.Contains(t, DNSProviders(), "rfc2136")
}

// TestResponder: the http-01 responder serves presented tokens only, to
// GET and HEAD, until every order that presented a token cleaned it up.
func TestResponder(t *testing.T) {
	log, _ := testLogger(t)
	p, err := startResponder("127.0.0.1:0", &Upstream{name: "t", log: log}, nil)
	require.NoError(t, err)
	defer p.close()
	r := p.r
	get := func(method, path string) (int, string) {
		req, err := http.NewRequest(method, "http://"+r.addr()+path, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	ctx := context.Background()
	require.NoError(t, p.Present(ctx, "a.example", "tok", "tok.thumb"))
	require.NoError(t, p.Present(ctx, "a.example", "tok", "tok.thumb"))
	code, body := get(http.MethodGet, "/.well-known/acme-challenge/tok")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "tok.thumb", body)
	code, _ = get(http.MethodGet, "/.well-known/acme-challenge/other")
	require.Equal(t, http.StatusNotFound, code)
	code, _ = get(http.MethodGet, "/tok")
	require.Equal(t, http.StatusNotFound, code)
	code, _ = get(http.MethodPost, "/.well-known/acme-challenge/tok")
	require.Equal(t, http.StatusMethodNotAllowed, code)
	require.NoError(t, p.CleanUp(ctx, "a.example", "tok", ""))
	code, _ = get(http.MethodHead, "/.well-known/acme-challenge/tok")
	require.Equal(t, http.StatusOK, code, "still presented by the other order")
	require.NoError(t, p.CleanUp(ctx, "a.example", "tok", ""))
	code, _ = get(http.MethodGet, "/.well-known/acme-challenge/tok")
	require.Equal(t, http.StatusNotFound, code)
	require.True(t, strings.HasPrefix(r.addr(), "127.0.0.1:"))
	require.NoError(t, p.close())
	require.NoError(t, p.close(), "close twice")
}

// TestResponderShared: upstreams with the same listen address share one
// responder, which stops with the last of them.
func TestResponderShared(t *testing.T) {
	st := newStore(t)
	o := Options{Name: "a", Directory: "https://ca.example/dir", Secrets: st, Solver: Solver{Type: SolverHTTP01, Listen: "127.0.0.1:0"}}
	a, err := New(o)
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	o.Name, o.Solver.Listen = "b", addr
	b, err := New(o)
	require.NoError(t, err)
	o.Name = "c"
	c, err := New(o)
	require.NoError(t, err)
	require.Same(t, b.responder.r, c.responder.r)
	require.NoError(t, b.Close())
	require.NoError(t, b.Close(), "Close is idempotent")
	require.NoError(t, c.responder.Present(context.Background(), "x", "t", "t.k"))
	resp, err := http.Get("http://" + addr + "/.well-known/acme-challenge/t")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "still served while c holds it")
	require.NoError(t, c.Close())
	resp, err = http.Get("http://" + addr + "/.well-known/acme-challenge/t")
	if err == nil {
		_ = resp.Body.Close()
	}
	require.Error(t, err, "stopped with its last user")
	require.NoError(t, a.Close())
}

// TestProvidersMatchConfig: the config accepts exactly the DNS providers
// this package is built with, and the same key types.
func TestProvidersMatchConfig(t *testing.T) {
	require.Equal(t, configs.ACMEDNSProviders, DNSProviders())
	require.Equal(t, configs.ACMEKeyTypes, KeyTypes)
}

// TestTXTPropagated: the propagation check asks the configured resolvers
// and follows a CNAME, as the CA will (a _acme-challenge delegated to a
// zone the bridge may write).
func TestTXTPropagated(t *testing.T) {
	cs := acmetest.StartChallSrv(t)
	ctx := t.Context()
	res := []string{cs.DNSAddr}
	ok, err := txtPropagated(ctx, res, "_acme-challenge.direct.test.", "v1")
	require.NoError(t, err)
	require.False(t, ok, "not set yet")
	require.NoError(t, cs.SetTXT("_acme-challenge.direct.test.", "v1"))
	ok, err = txtPropagated(ctx, res, "_acme-challenge.direct.test.", "v1")
	require.NoError(t, err)
	require.True(t, ok)
	ok, _ = txtPropagated(ctx, res, "_acme-challenge.direct.test.", "other")
	require.False(t, ok, "another value is not this one")

	require.NoError(t, cs.SetCNAME("_acme-challenge.alias.test.", "_acme-challenge.delegated.test."))
	require.NoError(t, cs.SetTXT("_acme-challenge.delegated.test.", "v2"))
	ok, err = txtPropagated(ctx, res, "_acme-challenge.alias.test", "v2")
	require.NoError(t, err)
	require.True(t, ok, "the CNAME is followed")

	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := l.LocalAddr().String()
	require.NoError(t, l.Close())
	ok, err = txtPropagated(ctx, []string{cs.DNSAddr, dead}, "_acme-challenge.direct.test.", "v1")
	require.NoError(t, err)
	require.False(t, ok, "every resolver must see it")
}

// TestIssuedCertificateChecked: a chain for another key or other names is
// refused rather than served.
func TestIssuedCertificateChecked(t *testing.T) {
	req := newRequest(t, "a.example", "192.0.2.1")
	other := newRequest(t, "a.example", "192.0.2.1")
	cert := &x509.Certificate{RawSubjectPublicKeyInfo: req.CSR.RawSubjectPublicKeyInfo,
		DNSNames: []string{"A.example"}, IPAddresses: []net.IP{net.ParseIP("192.0.2.1")}}
	require.True(t, publicKeyEqual(cert, req.CSR))
	require.False(t, publicKeyEqual(cert, other.CSR))
	require.True(t, sameNames(cert, req), "names compare without case")
	cert.DNSNames = append(cert.DNSNames, "b.example")
	require.False(t, sameNames(cert, req))
	_, _, err := parseChain([]byte("not PEM"))
	require.Error(t, err)
}
