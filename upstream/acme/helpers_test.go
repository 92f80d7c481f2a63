package acme

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	legolog "github.com/go-acme/lego/v5/log"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/store/bolt"
	"github.com/acmebridge/acmebridge/upstream"
	"github.com/acmebridge/acmebridge/upstream/acme/acmetest"
)

// legoLogs keeps lego's process-wide log (it prints to stdout otherwise);
// a failing test prints it.
var legoLogs = &syncBuf{}

func TestMain(m *testing.M) {
	legolog.SetDefault(slog.New(slog.NewTextHandler(legoLogs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	os.Exit(m.Run())
}

// syncBuf is a goroutine-safe log buffer.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newStore is a sealed bolt store in a temporary directory: what serve
// gives the upstream.
func newStore(t *testing.T) store.Store {
	t.Helper()
	raw, err := bolt.Open(bolt.Options{Path: filepath.Join(t.TempDir(), "acmebridge.db")})
	require.NoError(t, err)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	s, err := store.Sealed(raw, key)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// testLogger collects the upstream's log, printed if the test fails.
func testLogger(t *testing.T) (*slog.Logger, *syncBuf) {
	t.Helper()
	buf := &syncBuf{}
	start := len(legoLogs.String())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("upstream log:\n%s\nlego log:\n%s", buf.String(), legoLogs.String()[start:])
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// dnsOptions are Options for p with the dns-01 solver going through lego's
// httpreq provider to p's challtestsrv, checked at its DNS server.
func dnsOptions(t *testing.T, p *acmetest.Pebble, st store.Store) Options {
	log, _ := testLogger(t)
	return Options{
		Name: "pebble", Directory: p.DirectoryURL, Email: "ops@example.com", CAFile: p.CAFile, Secrets: st,
		Solver: Solver{
			Type: SolverDNS01, Provider: "httpreq", Env: map[string]string{"HTTPREQ_ENDPOINT": p.ChallSrv.HTTPReqURL},
			Resolvers: []string{p.ChallSrv.DNSAddr}, PropagationTimeout: 20 * time.Second, PropagationInterval: 100 * time.Millisecond,
		},
		RequestTimeout: 10 * time.Second,
		Logger:         log,
	}
}

// httpOptions are Options for p with the http-01 responder on the port
// Pebble's VA connects to.
func httpOptions(t *testing.T, p *acmetest.Pebble, st store.Store) Options {
	o := dnsOptions(t, p, st)
	o.Solver = Solver{Type: SolverHTTP01, Listen: fmt.Sprintf("127.0.0.1:%d", p.HTTPPort)}
	return o
}

// newUpstream is New that fails the test on error and closes at the end.
func newUpstream(t *testing.T, o Options) *Upstream {
	t.Helper()
	u, err := New(o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = u.Close() })
	return u
}

// newRequest makes a fresh key and a CSR for names (IP addresses become IP
// SANs) and the request the worker would build.
func newRequest(t *testing.T, names ...string) *upstream.Request {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	req := &upstream.Request{OrderID: fmt.Sprintf("order-%d", time.Now().UnixNano())}
	tmpl := &x509.CertificateRequest{}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			req.IPAddresses = append(req.IPAddresses, ip)
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			req.DNSNames = append(req.DNSNames, n)
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	if len(tmpl.DNSNames) > 0 {
		tmpl.Subject = pkix.Name{CommonName: tmpl.DNSNames[0]}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	require.NoError(t, err)
	req.CSRDER = der
	req.CSR, err = x509.ParseCertificateRequest(der)
	require.NoError(t, err)
	return req
}

// refLog records what Issue stores through setRef, like the worker's job.
type refLog struct {
	mu   sync.Mutex
	refs []string
}

func (r *refLog) set(ref string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refs = append(r.refs, ref)
	return nil
}

func (r *refLog) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.refs...)
}

func (r *refLog) last() string {
	all := r.all()
	if len(all) == 0 {
		return ""
	}
	return all[len(all)-1]
}

// issue runs Issue with a bound and requires success.
func issue(t *testing.T, u *Upstream, req *upstream.Request, refs *refLog) *upstream.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if refs == nil {
		refs = &refLog{}
	}
	res, err := u.Issue(ctx, req, refs.set)
	require.NoError(t, err, "issue %v %v", req.DNSNames, req.IPAddresses)
	return res
}

// verifyResult checks the chain against Pebble's root for every name.
func verifyResult(t *testing.T, p *acmetest.Pebble, res *upstream.Result, req *upstream.Request) {
	t.Helper()
	require.NotNil(t, res.Leaf)
	require.NotEmpty(t, res.Chain, "the chain has the issuer")
	inter := x509.NewCertPool()
	for _, c := range res.Chain {
		inter.AddCert(c)
	}
	roots := p.Roots(t)
	for _, n := range req.DNSNames {
		host := n
		if strings.HasPrefix(n, "*.") {
			host = "x" + n[1:]
		}
		_, err := res.Leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter})
		require.NoError(t, err, "the chain does not verify for %s against Pebble's root", n)
	}
	require.Equal(t, req.CSR.RawSubjectPublicKeyInfo, res.Leaf.RawSubjectPublicKeyInfo, "the certificate is for the CSR's key")
	certs, _, err := parseChain(res.ChainPEM)
	require.NoError(t, err)
	require.True(t, certs[0].Equal(res.Leaf), "ChainPEM starts with the leaf")
	require.Len(t, certs, 1+len(res.Chain))
}

// writeFile writes a secret file.
func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

// newCert is a throwaway self-signed certificate.
func newCert(t *testing.T) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "x.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"x.example"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return c
}

// lookupEnv is os.LookupEnv.
func lookupEnv(k string) (string, bool) { return os.LookupEnv(k) }
