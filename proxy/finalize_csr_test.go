package proxy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/ra/ratest"
	"github.com/acmebridge/acmebridge/store"
)

// The certificate-content decision through ACME (issue 14, hole 1): a CSR
// that asks for more than the order decided is refused at finalize with a
// badCSR naming what it asked for, and the order stays ready; CSRs as
// real clients make them are issued with exactly the order's content.

// TestFinalizeHostileCSRs: every hostile CSR is a 400 badCSR whose detail
// names the offending attribute or extension; nothing is issued.
func TestFinalizeHostileCSRs(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	names := []string{"hostile.example.com", "www.hostile.example.com"}
	orderURL, o := c.readyOrder(dnsIDs(names...)...)
	certKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	cases := append(ratest.Hostile(t, certKey, names),
		ratest.Case{Name: "the issue's CSR", DER: ratest.IssueCSR(t, certKey, names), Detail: "organizationName"})
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			p := requireProblem(t, c.post(o.Finalize, map[string]string{"csr": b64(tc.DER)}), http.StatusBadRequest, "badCSR")
			require.Contains(t, p.Detail, tc.Detail)
			require.Equal(t, "ready", decode[orderJSON](t, c.post(orderURL, nil)).Status, "the order is still ready")
		})
	}
	require.Empty(t, e.audit.of("certificate.issued"))
}

// TestFinalizeWeakKeys: CSRs whose key Fermat's method factors, or that
// Infineon's ROCA-vulnerable library made, are refused; the order stays
// ready. RFC 8555 §6.7 gives "due to a short key" as badCSR's example, so a
// refused certificate key is a badCSR (badPublicKey is the JWS key's).
func TestFinalizeWeakKeys(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	names := []string{"weak.example.com"}
	orderURL, o := c.readyOrder(dnsIDs(names...)...)
	for _, tc := range []struct {
		name   string
		key    crypto.Signer
		detail string
	}{
		{"Fermat-factorable RSA key", ratest.FermatKey(t), "Fermat"},
		{"ROCA-vulnerable RSA key", ratest.ROCAKey(t), "ROCA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			der := ratest.CSR(t, tc.key, &x509.CertificateRequest{DNSNames: names})
			p := requireProblem(t, c.post(o.Finalize, map[string]string{"csr": b64(der)}), http.StatusBadRequest, "badCSR")
			require.Contains(t, p.Detail, tc.detail)
			require.Equal(t, "ready", decode[orderJSON](t, c.post(orderURL, nil)).Status)
		})
	}
}

// TestFinalizeClientCSRs: CSRs shaped as lego, certbot, Caddy, step,
// x/crypto/acme, acme.sh and cert-manager make them are issued, and the
// certificate holds exactly the order's names, a subject of one CN, and
// the usages decided — nothing else the CSR carried.
func TestFinalizeClientCSRs(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	names := []string{"client.example.com", "*.client.example.com"}
	ips := []net.IP{net.ParseIP("192.0.2.9")}
	ids := append(dnsIDs(names...), store.Identifier{Type: "ip", Value: "192.0.2.9"})
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	for _, key := range []crypto.Signer{ecKey, rsaKey} {
		_, isRSA := key.(*rsa.PrivateKey)
		for _, tc := range ratest.Clients(t, key, names, ips) {
			t.Run(tc.Name, func(t *testing.T) {
				_, o := c.readyOrder(ids...)
				rec := c.post(o.Finalize, map[string]string{"csr": b64(tc.DER)})
				require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
				o = decode[orderJSON](t, rec)
				require.Equal(t, "valid", o.Status)
				rec = c.post(o.Certificate, nil)
				require.Equal(t, http.StatusOK, rec.Code)
				blk, _ := pem.Decode(rec.Body.Bytes())
				leaf, err := x509.ParseCertificate(blk.Bytes)
				require.NoError(t, err)

				require.Equal(t, names, leaf.DNSNames)
				require.Len(t, leaf.IPAddresses, 1)
				require.True(t, leaf.IPAddresses[0].Equal(ips[0]))
				require.Equal(t, "CN=client.example.com", leaf.Subject.String(), "one CN, the first name whether or not the CSR had one")
				require.False(t, leaf.IsCA)
				wantKU := x509.KeyUsageDigitalSignature
				wantEKU := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
				switch {
				case strings.HasPrefix(tc.Name, "cert-manager"):
					wantKU |= x509.KeyUsageKeyEncipherment // as the CSR asked, whatever the key
					wantEKU = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
				case isRSA:
					wantKU |= x509.KeyUsageKeyEncipherment
				}
				require.Equal(t, wantKU, leaf.KeyUsage)
				require.Equal(t, wantEKU, leaf.ExtKeyUsage)
				// Only the extensions the CA writes itself.
				for _, ext := range leaf.Extensions {
					require.Contains(t, []string{"2.5.29.17", "2.5.29.15", "2.5.29.37", "2.5.29.19", "2.5.29.35", "2.5.29.14"}, ext.Id.String())
				}
			})
		}
	}
}

// detailHas checks that a problem's detail holds want.
func detailHas(want string) func(*testing.T, *httptest.ResponseRecorder) {
	return func(t *testing.T, rec *httptest.ResponseRecorder) {
		t.Helper()
		var p problemDoc
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
		require.Contains(t, p.Detail, want)
	}
}

// TestWorkerDecidesStoredCSR: an order whose CSR was stored before finalize
// checked its content (an upgrade with orders in flight) is not issued: the
// worker decides the content again and fails the order with badCSR.
func TestWorkerDecidesStoredCSR(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	names := []string{"stored.example.com"}
	orderURL, _ := c.readyOrder(dnsIDs(names...)...)
	certKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ctx := t.Context()
	o, err := e.st.GetOrder(ctx, strings.TrimPrefix(orderURL, testBase+pathOrder))
	require.NoError(t, err)
	o.Status, o.CSR = store.StatusProcessing, ratest.IssueCSR(t, certKey, names)
	require.NoError(t, e.st.EnqueueJob(ctx, &store.Job{OrderID: o.ID, NotBefore: time.Now()}, o))
	e.srv.ra.KickWorker()
	require.Eventually(t, func() bool {
		cur, err := e.st.GetOrder(ctx, o.ID)
		return err == nil && cur.Status == store.StatusInvalid
	}, 10*time.Second, 20*time.Millisecond)
	got := decode[orderJSON](t, c.post(orderURL, nil))
	require.Equal(t, "invalid", got.Status)
	require.NotNil(t, got.Error)
	require.Equal(t, errNS+"badCSR", got.Error.Type)
	require.Contains(t, got.Error.Detail, "organizationName")
	require.Empty(t, got.Certificate)
}
