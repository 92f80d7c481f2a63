package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/ra/ratest"
	"github.com/acmebridge/acmebridge/store"
)

// cnCSR is a CSR as `openssl req -new -subj /CN=NAME` makes it, which many
// appliances and printers send: the name in the common name, and sans
// (when given) in a subjectAltName.
func cnCSR(t *testing.T, cn string, sans ...string) map[string]string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return map[string]string{"csr": b64(ratest.CSR(t, k, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: sans}))}
}

// issuedLeaf finalizes o's order with csr and returns the certificate.
func issuedLeaf(t *testing.T, c *client, o orderJSON, csr map[string]string) *x509.Certificate {
	t.Helper()
	_, der := finalized(t, c, o, csr)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return leaf
}

// TestFinalizeNameInCNOnly: RFC 8555 §7.4 — "Identifiers of type "dns"
// MUST appear either in the commonName portion of the requested subject
// name or in an extensionRequest attribute [RFC2985] requesting a
// subjectAltName extension, or both." A CSR naming a DNS identifier in its
// common name only is issued, and the certificate names it in its
// subjectAltName as every other.
func TestFinalizeNameInCNOnly(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()

	_, o := c.readyOrder(dnsIDs("printer.example.com")...)
	leaf := issuedLeaf(t, c, o, cnCSR(t, "PRINTER.example.com"))
	require.Equal(t, []string{"printer.example.com"}, leaf.DNSNames)
	require.Equal(t, "CN=printer.example.com", leaf.Subject.String(), "the order's spelling")

	_, o = c.readyOrder(dnsIDs("a.cn.example.com", "b.cn.example.com")...)
	leaf = issuedLeaf(t, c, o, cnCSR(t, "a.cn.example.com", "b.cn.example.com"))
	require.Equal(t, []string{"a.cn.example.com", "b.cn.example.com"}, leaf.DNSNames)

	_, o = c.readyOrder(dnsIDs("*.cn.example.com")...)
	leaf = issuedLeaf(t, c, o, cnCSR(t, "*.cn.example.com"))
	require.Equal(t, []string{"*.cn.example.com"}, leaf.DNSNames)
}

// TestFinalizeNameInCNOnlyHostile: the common name stands in for one
// name, never for a name the order lacks, a second name, or an IP address.
func TestFinalizeNameInCNOnlyHostile(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	orderURL, o := c.readyOrder(dnsIDs("x.cn.example.com", "y.cn.example.com")...)

	p := requireProblem(t, c.post(o.Finalize, cnCSR(t, "x.cn.example.com")), 400, "badCSR")
	require.Contains(t, p.Detail, "dns:y.cn.example.com neither in a subjectAltName nor in its common name")
	p = requireProblem(t, c.post(o.Finalize, cnCSR(t, "evil.example.net", "y.cn.example.com")), 400, "badCSR")
	require.Contains(t, p.Detail, "not an identifier of the order")
	p = requireProblem(t, c.post(o.Finalize, cnCSR(t, "x.cn.example.com", "x.cn.example.com")), 400, "badCSR")
	require.Contains(t, p.Detail, "lacks the order's identifier dns:y.cn.example.com")
	requireNoCertificate(t, e, orderURL)

	ipURL, ipOrder := c.readyOrder(store.Identifier{Type: "ip", Value: "192.0.2.44"})
	p = requireProblem(t, c.post(ipOrder.Finalize, cnCSR(t, "192.0.2.44")), 400, "badCSR")
	require.Contains(t, p.Detail, "ip:192.0.2.44")
	requireNoCertificate(t, e, ipURL)
}

// TestFinalizeNameInCNOnlyRoutes: a route whose upstream issues what the
// CSR's subjectAltName lists (an acme upstream hands the CSR as it is to
// another ACME CA, which may read the subjectAltName only, as Pebble does;
// Vault's sign-verbatim leaves a name in the common name alone out of the
// subjectAltName: upstream/vault TestSignVerbatimContent) refuses a name
// in the common name only at finalize, with a detail saying what to
// change; the order stays ready, and a CSR with the name in its
// subjectAltName is issued.
func TestFinalizeNameInCNOnlyRoutes(t *testing.T) {
	for _, up := range []configs.Upstream{
		{Name: "public", Type: "acme", ACME: configs.ACME{Directory: "https://ca.example.net/directory", Solver: configs.ACMESolver{Type: "dns-01", Provider: "httpreq"}}},
		{Name: "verbatim", Type: "vault", Vault: configs.Vault{Address: "https://vault.example.net:8200", Mount: "pki", Role: "web", Mode: "sign-verbatim", TokenEnv: "VAULT_TOKEN"}},
	} {
		t.Run(up.Name, func(t *testing.T) {
			e := newEnv(t, func(c *configs.Config) {
				c.Upstreams = append(c.Upstreams, up)
				c.Policy.Rules = []configs.Rule{{Name: "routed", Match: configs.Match{Domains: []string{"*.routed.example.com"}}, Upstreams: []string{up.Name}}}
			})
			c := e.newClient()
			c.register()
			orderURL, o := c.readyOrder(dnsIDs("www.routed.example.com")...)

			p := requireProblem(t, c.post(o.Finalize, cnCSR(t, "www.routed.example.com")), 400, "badCSR")
			require.Contains(t, p.Detail, "upstream "+`"`+up.Name+`"`)
			require.Contains(t, p.Detail, "list every name in the CSR's subjectAltName")
			requireNoCertificate(t, e, orderURL)
			require.Equal(t, "ready", decode[orderJSON](t, c.post(orderURL, nil)).Status)

			leaf := issuedLeaf(t, c, o, cnCSR(t, "www.routed.example.com", "www.routed.example.com"))
			require.Equal(t, []string{"www.routed.example.com"}, leaf.DNSNames)
		})
	}
}
