package test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"

	"github.com/go-acme/lego/v5/certificate"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/upstream/acme/acmetest"
)

// TestCNOnlyCSRLego: lego (the library) obtains for a CSR made as an
// appliance makes it, `openssl req -subj /CN=NAME`: the name in the common
// name only, which RFC 8555 §7.4 allows ("Identifiers of type "dns" MUST
// appear either in the commonName portion of the requested subject name or
// in an extensionRequest attribute [RFC2985] requesting a subjectAltName
// extension, or both"). From the local CA the certificate names it in its
// subjectAltName. Routed to Pebble, which reads names from the
// subjectAltName only, finalize refuses it with badCSR saying what to
// change, before anything is asked of Pebble.
func TestCNOnlyCSRLego(t *testing.T) {
	quietLego(t)
	p := acmetest.Start(t, acmetest.Options{})
	s := startServer(t, "upstreams:\n  - name: dev\n    type: local\n"+acmeUpstreamDNS("pebble", p)+`policy:
  rules:
    - name: public
      match: {domains: ["*.public.cn.test"]}
      upstreams: [pebble]
  default: {upstreams: [dev]}
`)
	c, _ := legoAccount(t, s, "cn-only@example.com", nil)
	obtain := func(name string) (*certificate.Resource, error) {
		key := newECKey(t)
		der, err := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key)
		require.NoError(t, err)
		csr, err := x509.ParseCertificateRequest(der)
		require.NoError(t, err)
		require.Empty(t, csr.DNSNames, "the CSR names the host in its common name only")
		ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
		defer cancel()
		return c.Certificate.ObtainForCSR(ctx, certificate.ObtainForCSRRequest{CSR: csr, Bundle: true})
	}

	res, err := obtain("printer.cn.test")
	require.NoError(t, err)
	leaf := leafOf(t, res.Certificate)
	require.Equal(t, []string{"printer.cn.test"}, leaf.DNSNames)
	require.Equal(t, "printer.cn.test", leaf.Subject.CommonName)

	_, err = obtain("www.public.cn.test")
	pd := requireProblem(t, err, "badCSR")
	require.Contains(t, pd.Detail, `upstream "pebble"`)
	require.Contains(t, pd.Detail, "list every name in the CSR's subjectAltName")
	require.Equal(t, 0, p.Orders(), "nothing was asked of Pebble")
}
