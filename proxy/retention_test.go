package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/store"
)

// issueKeyed is issue that also returns the certificate's key.
func issueKeyed(t *testing.T, e *env, c *client, names ...string) (*x509.Certificate, *store.Certificate, *ecdsa.PrivateKey) {
	_, o := c.readyOrder(dnsIDs(names...)...)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	o = decode[orderJSON](t, c.post(o.Finalize, map[string]string{"csr": b64(makeCSR(t, key, "", names, nil))}))
	require.Equal(t, "valid", o.Status)
	blk, _ := pem.Decode(c.post(o.Certificate, nil).Body.Bytes())
	leaf, err := x509.ParseCertificate(blk.Bytes)
	require.NoError(t, err)
	rec, err := e.st.GetCertificate(t.Context(), strings.TrimPrefix(o.Certificate, testBase+pathCert))
	require.NoError(t, err)
	return leaf, rec, key
}

// TestRetentionKeepsLiveCertificatesServed: once the retention sweep
// removed the order and authorizations of certificates that are still
// live, what an operator and a client need of those certificates still
// works: download, ARI (RFC 9773 §4), "replaces" (§5), revocation by the
// account's key and by the certificate's key (RFC 8555 §7.6); and the
// sweep is counted in acmebridge_retention_removed_total.
func TestRetentionKeepsLiveCertificatesServed(t *testing.T) {
	e, clk := newEnvClock(t, func(c *configs.Config) {
		c.Retention.Orders = configs.Duration(24 * time.Hour)
	})
	c := e.newClient()
	c.register()
	leafA, recA, _ := issueKeyed(t, e, c, "a.retained.example.com")
	leafB, recB, keyB := issueKeyed(t, e, c, "b.retained.example.com")
	leafC, recC, _ := issueKeyed(t, e, c, "c.retained.example.com")

	// Two days on (orders expire after a day, kept one more), the
	// certificates (90 days) are live; their orders go.
	clk.add(49 * time.Hour)
	got, err := e.srv.ra.SweepRetention(t.Context())
	require.NoError(t, err)
	require.Equal(t, 3, got.Orders, "%+v", got)
	require.Equal(t, 3, got.Authorizations, "%+v", got)
	require.Zero(t, got.Certificates)
	for _, rec := range []*store.Certificate{recA, recB, recC} {
		_, err := e.st.GetOrder(t.Context(), rec.OrderID)
		require.ErrorIs(t, err, store.ErrNotFound, "the order was swept")
	}
	n, _ := gathered(t, e.reg, "acmebridge_retention_removed_total", map[string]string{"kind": "order"})
	require.Equal(t, 3.0, n)

	// Download.
	dl := c.post(pathCert+recA.ID, nil)
	require.Equal(t, http.StatusOK, dl.Code, dl.Body.String())
	blk, _ := pem.Decode(dl.Body.Bytes())
	require.Equal(t, leafA.Raw, blk.Bytes)

	// ARI.
	ari := e.do(http.MethodGet, pathRenewalInfo+"/"+ariID(leafA), "", nil)
	require.Equal(t, http.StatusOK, ari.Code, ari.Body.String())

	// A renewal naming it in "replaces".
	rep := c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("a.retained.example.com"), "replaces": ariID(leafA)})
	require.Equal(t, http.StatusCreated, rep.Code, rep.Body.String())

	// Revocation by the account's key, and by the certificate's key.
	rv := c.post(pathRevoke, map[string]any{"certificate": b64(leafC.Raw)})
	require.Equal(t, http.StatusOK, rv.Code, rv.Body.String())
	byKey := &client{e: e, key: keyB, alg: jose.ES256}
	rv = byKey.post(pathRevoke, map[string]any{"certificate": b64(leafB.Raw)})
	require.Equal(t, http.StatusOK, rv.Code, rv.Body.String())
	for _, id := range []string{recB.ID, recC.ID} {
		stored, err := e.st.GetCertificate(t.Context(), id)
		require.NoError(t, err)
		require.False(t, stored.RevokedAt.IsZero(), id)
	}
}
