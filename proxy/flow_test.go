package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/core"

	"github.com/acmebridge/acmebridge/store"
)

func TestDirectoryAndNonce(t *testing.T) {
	e := newEnv(t, func(c *configs.Config) {
		c.Server.TermsOfService = "https://example.com/tos"
		c.Accounts.EAB = "required"
	})
	rec := e.do(http.MethodGet, pathDirectory, "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	d := decode[directory](t, rec)
	require.Equal(t, testBase+pathNewNonce, d.NewNonce)
	require.Equal(t, testBase+pathKeyChange, d.KeyChange)
	require.Equal(t, "https://example.com/tos", d.Meta.TermsOfService)
	require.True(t, d.Meta.ExternalAccountRequired)

	// §7.2: HEAD → 200, GET → 204, both with a fresh nonce, no-store.
	h := e.do(http.MethodHead, pathNewNonce, "", nil)
	require.Equal(t, http.StatusOK, h.Code)
	g := e.do(http.MethodGet, pathNewNonce, "", nil)
	require.Equal(t, http.StatusNoContent, g.Code)
	require.NotEqual(t, h.Header().Get("Replay-Nonce"), g.Header().Get("Replay-Nonce"))
	require.Equal(t, "no-store", g.Header().Get("Cache-Control"))
	require.Contains(t, g.Header().Get("Link"), `rel="index"`)

	// Methods other than those a resource allows are 405 with Allow.
	rec = e.do(http.MethodPut, pathNewOrder, "", nil)
	requireProblem(t, rec, http.StatusMethodNotAllowed, "malformed")
	require.Equal(t, "POST", rec.Header().Get("Allow"))
	rec = e.do(http.MethodGet, pathNewAccount, "", nil)
	requireProblem(t, rec, http.StatusMethodNotAllowed, "malformed")

	requireProblem(t, e.do(http.MethodGet, "/nowhere", "", nil), http.StatusNotFound, "malformed")
}

// TestFullIssuance walks one certificate through every resource: account,
// order, authorization, challenge, finalize, download, revocation.
func TestFullIssuance(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()

	orderURL, o := c.readyOrder(store.Identifier{Type: "dns", Value: "www.example.com"},
		store.Identifier{Type: "dns", Value: "*.example.com"}, store.Identifier{Type: "ip", Value: "192.0.2.7"})
	require.Len(t, o.Authorizations, 3)

	certKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	csr := makeCSR(t, certKey, "www.example.com", []string{"www.example.com", "*.example.com"}, []net.IP{net.ParseIP("192.0.2.7")})
	rec := c.post(o.Finalize, map[string]string{"csr": b64(csr)})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, orderURL, rec.Header().Get("Location"))
	o = decode[orderJSON](t, rec)
	require.Equal(t, "valid", o.Status, "the local CA answers within finalize_wait")
	require.NotEmpty(t, o.Certificate)

	rec = c.post(o.Certificate, nil)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "application/pem-certificate-chain", rec.Header().Get("Content-Type"))
	chain := rec.Body.Bytes()
	leafBlock, rest := pem.Decode(chain)
	require.NotNil(t, leafBlock)
	leaf, err := x509.ParseCertificate(leafBlock.Bytes)
	require.NoError(t, err)
	interBlock, _ := pem.Decode(rest)
	require.NotNil(t, interBlock)
	inter, err := x509.ParseCertificate(interBlock.Bytes)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(e.ca.RootsPEM()))
	inters := x509.NewCertPool()
	inters.AddCert(inter)
	for _, name := range []string{"www.example.com", "foo.example.com", "192.0.2.7"} {
		_, err = leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inters})
		require.NoError(t, err, name)
	}

	// Another account may not download or revoke it.
	other := e.newClient()
	other.register()
	requireProblem(t, other.post(o.Certificate, nil), http.StatusForbidden, "unauthorized")
	requireProblem(t, other.post(pathRevoke, map[string]any{"certificate": b64(leaf.Raw)}), http.StatusForbidden, "unauthorized")

	// An account that holds valid authorizations for every name may revoke
	// (§7.6); one that holds only some may not.
	partial := e.newClient()
	partial.register()
	partial.readyOrder(store.Identifier{Type: "dns", Value: "www.example.com"})
	requireProblem(t, partial.post(pathRevoke, map[string]any{"certificate": b64(leaf.Raw)}), http.StatusForbidden, "unauthorized")

	// Revocation by the account, then again → alreadyRevoked.
	rec = c.post(pathRevoke, map[string]any{"certificate": b64(leaf.Raw), "reason": 4})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	rec = c.post(pathRevoke, map[string]any{"certificate": b64(leaf.Raw)})
	requireProblem(t, rec, http.StatusBadRequest, "alreadyRevoked")
	crl, err := e.ca.CRL(t.Context())
	require.NoError(t, err)
	rl, err := x509.ParseRevocationList(crl)
	require.NoError(t, err)
	require.Len(t, rl.RevokedCertificateEntries, 1)
	require.Equal(t, 0, rl.RevokedCertificateEntries[0].SerialNumber.Cmp(leaf.SerialNumber))

	// Finalizing again is refused: the order is no longer ready.
	requireProblem(t, c.post(o.Finalize, map[string]string{"csr": b64(csr)}), http.StatusForbidden, "orderNotReady")
}

// TestRevokeWithCertificateKey: §7.6 lets the certificate's key sign the
// revocation with a jwk.
func TestRevokeWithCertificateKey(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	_, o := c.readyOrder(dnsIDs("revoke.example.com")...)
	certKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	rec := c.post(o.Finalize, map[string]string{"csr": b64(makeCSR(t, certKey, "", []string{"revoke.example.com"}, nil))})
	o = decode[orderJSON](t, rec)
	require.Equal(t, "valid", o.Status)
	blk, _ := pem.Decode(c.post(o.Certificate, nil).Body.Bytes())

	// A stranger's jwk is refused; the certificate key is accepted.
	stranger := e.newClient()
	requireProblem(t, stranger.post(pathRevoke, map[string]any{"certificate": b64(blk.Bytes)}), http.StatusForbidden, "unauthorized")
	byCert := &client{e: e, key: certKey, alg: "ES256"}
	rec = byCert.post(pathRevoke, map[string]any{"certificate": b64(blk.Bytes), "reason": 1})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	rec = byCert.post(pathRevoke, map[string]any{"certificate": b64(blk.Bytes), "reason": 7})
	requireProblem(t, rec, http.StatusBadRequest, "badRevocationReason")
}

func TestRevokeByAuthorizedAccount(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	_, o := c.readyOrder(dnsIDs("shared.example.com")...)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	o = decode[orderJSON](t, c.post(o.Finalize, map[string]string{"csr": b64(makeCSR(t, key, "", []string{"shared.example.com"}, nil))}))
	blk, _ := pem.Decode(c.post(o.Certificate, nil).Body.Bytes())
	holder := e.newClient()
	holder.register()
	holder.readyOrder(dnsIDs("shared.example.com")...)
	rec := holder.post(pathRevoke, map[string]any{"certificate": b64(blk.Bytes)})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
}

func TestRandomIDNeverLooksLikeAFlag(t *testing.T) {
	for i := 0; i < 2000; i++ {
		id := core.RandomID()
		require.Len(t, id, 22)
		require.NotContains(t, "-_", id[:1])
	}
}
