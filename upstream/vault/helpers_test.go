package vault

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/upstream"
	"github.com/acmebridge/acmebridge/upstream/vault/vaulttest"
)

// testDomain is what the test role allows (and its subdomains).
const testDomain = "example.test"

// env is a dev server with PKI set up and a token holding only the
// minimum policy, in a file.
type env struct {
	srv       *vaulttest.Server
	pki       *vaulttest.PKI
	root      *api.Client
	tokenFile string
}

// newEnv starts a dev server and sets PKI up as an operator would.
func newEnv(t testing.TB, o vaulttest.PKIOptions) *env {
	t.Helper()
	srv := vaulttest.Start(t, vaulttest.Options{})
	root := srv.Client(t, "")
	if o.AllowedDomains == nil {
		o.AllowedDomains = []string{testDomain}
	}
	p := vaulttest.SetupPKI(t, root, o)
	vaulttest.PutPolicy(t, root, "acmebridge", vaulttest.MinimumPolicy(p.Mount, p.Role))
	tok := vaulttest.CreateToken(t, root, vaulttest.TokenOptions{Policies: []string{"acmebridge"}, NoDefaultPolicy: true})
	e := &env{srv: srv, pki: p, root: root, tokenFile: filepath.Join(t.TempDir(), "token")}
	e.writeToken(t, tok)
	return e
}

func (e *env) writeToken(t testing.TB, tok string) {
	t.Helper()
	require.NoError(t, os.WriteFile(e.tokenFile, []byte(tok+"\n"), 0o600))
}

// upstream makes a Vault upstream for the env, closed when the test ends.
func (e *env) upstream(t testing.TB, mutate func(*Options)) *Upstream {
	t.Helper()
	o := Options{Name: "vault-test", Address: e.srv.URL, Mount: e.pki.Mount, Role: e.pki.Role, TokenFile: e.tokenFile,
		Logger: testLogger(t)}
	if mutate != nil {
		mutate(&o)
	}
	u, err := New(o)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, u.Close()) })
	return u
}

// leavesFor counts the leaf certificates Vault holds for a public key.
func (e *env) leavesFor(t testing.TB, spki []byte) int {
	t.Helper()
	s, err := e.root.Logical().List(e.pki.Mount + "/certs")
	require.NoError(t, err)
	if s == nil {
		return 0
	}
	n := 0
	for _, serial := range stringList(s.Data["keys"]) {
		c, err := e.root.Logical().Read(e.pki.Mount + "/cert/" + serial)
		require.NoError(t, err)
		cert, err := parseOneCert(stringOf(c.Data["certificate"]))
		require.NoError(t, err)
		if !cert.IsCA && bytes.Equal(cert.RawSubjectPublicKeyInfo, spki) {
			n++
		}
	}
	return n
}

// testLogger writes the upstream's log to the test log.
func testLogger(t testing.TB) *slog.Logger {
	if _, ok := t.(*testing.B); ok {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// csrOptions shape a test CSR.
type csrOptions struct {
	noCN bool
	key  crypto.Signer
}

// newRequest makes an issuance request with a fresh EC P-256 key (or
// o.key) for names (DNS names or IP addresses).
func newRequest(t testing.TB, o csrOptions, names ...string) *upstream.Request {
	t.Helper()
	key := o.key
	if key == nil {
		key = newKey(t)
	}
	req := &upstream.Request{OrderID: randomID(t)}
	tmpl := &x509.CertificateRequest{}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			req.IPAddresses = append(req.IPAddresses, ip)
		} else {
			req.DNSNames = append(req.DNSNames, n)
		}
	}
	tmpl.DNSNames, tmpl.IPAddresses = req.DNSNames, req.IPAddresses
	if !o.noCN && len(req.DNSNames) > 0 {
		tmpl.Subject = pkix.Name{CommonName: req.DNSNames[0]}
	}
	if len(req.DNSNames) > 0 {
		// ra's decision: the CSR's CN, or the first DNS name.
		req.CommonName = req.DNSNames[0]
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	require.NoError(t, err)
	req.CSRDER = der
	req.CSR, err = x509.ParseCertificateRequest(der)
	require.NoError(t, err)
	return req
}

// newKey makes an EC P-256 key.
func newKey(t testing.TB) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

func randomID(t testing.TB) string {
	b := make([]byte, 12)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// refLog records what Issue stores through setRef, like the worker's job.
type refLog struct {
	mu   sync.Mutex
	refs []string
	fail bool
}

func (r *refLog) set(ref string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return os.ErrPermission
	}
	r.refs = append(r.refs, ref)
	return nil
}

// last is the reference a retry would see.
func (r *refLog) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.refs) == 0 {
		return ""
	}
	return r.refs[len(r.refs)-1]
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
