package vault

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/upstream"
)

func responseError(status int, msgs ...string) error {
	return &api.ResponseError{HTTPMethod: "PUT", URL: "http://vault/v1/pki/sign/r", StatusCode: status, Errors: msgs}
}

// TestSignErrorMapping uses Vault 1.21's own messages
// (builtin/logical/pki/issuing, cert_util.go).
func TestSignErrorMapping(t *testing.T) {
	u := &Upstream{mount: "pki", role: "r"}
	req := &upstream.Request{DNSNames: []string{"a.example.test", "B.example.test"}, IPAddresses: []net.IP{net.ParseIP("192.0.2.1")}}
	for _, tc := range []struct {
		err   error
		kind  acmeerr.Kind
		ident string
	}{
		{responseError(400, "common name a.example.test not allowed by this role"), acmeerr.RejectedIdentifier, "a.example.test"},
		{responseError(400, "subject alternate name b.example.test not allowed by this role"), acmeerr.RejectedIdentifier, "B.example.test"},
		{responseError(400, "IP Subject Alternative Names are not allowed in this role, but was provided some via CSR"), acmeerr.RejectedIdentifier, "192.0.2.1"},
		{responseError(400, "subject alternate name other.test not allowed by this role"), acmeerr.BadCSR, ""},
		{responseError(400, "cannot satisfy request, as TTL would result in notAfter of 2099-01-01T00:00:00Z that is beyond the expiration of the CA certificate at 2030-01-01T00:00:00Z"), acmeerr.BadCSR, ""},
		{responseError(400, "role requires keys of type rsa"), acmeerr.BadCSR, ""},
		{responseError(400, "Vault requires a minimum of a 2048-bit key, but CSR's key is 1024 bits"), acmeerr.BadCSR, ""},
		{responseError(400, "certificate request could not be parsed: asn1: structure error"), acmeerr.BadCSR, ""},
		{responseError(400, "unknown role: r"), acmeerr.Internal, ""},
		{responseError(400, "no default issuer currently configured"), acmeerr.Internal, ""},
		{responseError(404, "no handler for route"), acmeerr.Internal, ""},
		{responseError(403, "permission denied"), acmeerr.Unavailable, ""},
		{responseError(503, "Vault is sealed"), acmeerr.Unavailable, ""},
		{responseError(500, "internal error"), acmeerr.Unavailable, ""},
		{responseError(429, "request path pki/sign/r: rate limit quota exceeded"), acmeerr.Unavailable, ""},
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, acmeerr.Unavailable, ""},
		{context.DeadlineExceeded, acmeerr.Unavailable, ""},
	} {
		err := u.signError(tc.err, req)
		var ae *acmeerr.Error
		require.ErrorAs(t, err, &ae, "%v", tc.err)
		require.Equal(t, tc.kind, ae.Kind, "%v", tc.err)
		require.ErrorIs(t, err, tc.err, "the cause is kept for logs")
		if tc.ident != "" {
			require.Equal(t, tc.ident, ae.Identifier.Value)
			require.Contains(t, ae.Detail, tc.ident)
		}
		var re *api.ResponseError
		if errors.As(tc.err, &re) && re.Errors[0] != "Vault is sealed" {
			require.NotContains(t, ae.Detail, re.Errors[0], "Vault's text is not the client's detail")
		}
	}
}

func TestVaultSerial(t *testing.T) {
	require.Equal(t, "01", vaultSerial(big.NewInt(1)))
	require.Equal(t, "00", vaultSerial(big.NewInt(0)))
	n, _ := new(big.Int).SetString("3a0f00ff", 16)
	require.Equal(t, "3a:0f:00:ff", vaultSerial(n))
}

func TestParseRef(t *testing.T) {
	u := &Upstream{name: "v"}
	r, ok := u.parseRef(ref{Upstream: "v", Signing: 5}.String())
	require.True(t, ok)
	require.Equal(t, int64(5), r.Signing)
	_, ok = u.parseRef(ref{Upstream: "other", Signing: 5}.String())
	require.False(t, ok, "another upstream's reference is not ours")
	_, ok = u.parseRef("")
	require.False(t, ok)
	_, ok = u.parseRef("acme-order-url")
	require.False(t, ok)
}

// TestOrderChain: the chain follows issuers from the leaf, whatever order
// Vault lists them in, and leaves the root out.
func TestOrderChain(t *testing.T) {
	root, rootKey := testCA(t, "root", nil, nil)
	inter1, inter1Key := testCA(t, "inter1", root, rootKey)
	inter2, inter2Key := testCA(t, "inter2", inter1, inter1Key)
	leaf := testLeaf(t, inter2, inter2Key)
	unrelated, _ := testCA(t, "unrelated", nil, nil)

	chain := orderChain(leaf, []*x509.Certificate{root, unrelated, inter1, inter2})
	require.Equal(t, []*x509.Certificate{inter2, inter1}, chain)
	require.Empty(t, orderChain(leaf, []*x509.Certificate{root, unrelated}))
	require.False(t, issuedByRoot(leaf, []*x509.Certificate{root}))
	direct := testLeaf(t, root, rootKey)
	require.Empty(t, orderChain(direct, []*x509.Certificate{root}))
	require.True(t, issuedByRoot(direct, []*x509.Certificate{root}))
}

func testCA(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return c, key
}

func testLeaf(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) *x509.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "leaf"}, DNSNames: []string{"leaf.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return c
}

func TestTTLFor(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	u := &Upstream{ttl: 24 * time.Hour, clock: func() time.Time { return now }}
	ttl, err := u.ttlFor(&upstream.Request{})
	require.NoError(t, err)
	require.Equal(t, 24*time.Hour, ttl)
	ttl, err = u.ttlFor(&upstream.Request{NotAfter: now.Add(90 * time.Minute)})
	require.NoError(t, err)
	require.Equal(t, 90*time.Minute, ttl)
	ttl, err = u.ttlFor(&upstream.Request{NotAfter: now.Add(48 * time.Hour), NotBefore: now.Add(time.Minute)})
	require.NoError(t, err)
	require.Equal(t, 24*time.Hour, ttl, "the config caps the order's notAfter")
	u.ttl = 0
	ttl, err = u.ttlFor(&upstream.Request{})
	require.NoError(t, err)
	require.Zero(t, ttl, "left to the role")
}
