package ra

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/ra/ratest"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/upstream"
)

func ecKey(t *testing.T) *ecdsa.PrivateKey { return ecKeyTB(t) }

func ecKeyTB(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

func ids(values ...string) []store.Identifier {
	var out []store.Identifier
	for _, v := range values {
		typ := "dns"
		if net.ParseIP(v) != nil {
			typ = "ip"
		}
		out = append(out, store.Identifier{Type: typ, Value: v})
	}
	return out
}

// requireBadCSR asserts a badCSR whose detail holds want.
func requireBadCSR(t *testing.T, err error, want string) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, acmeerr.BadCSR, acmeerr.KindOf(err), "%v", err)
	var e *acmeerr.Error
	require.ErrorAs(t, err, &e)
	require.Contains(t, e.Detail, want)
}

// TestHostileCSRs: each CSR that tries to put into the certificate what
// the order did not decide is refused, naming what it asked for.
func TestHostileCSRs(t *testing.T) {
	key := ecKey(t)
	names := []string{"www.example.com", "example.com"}
	cases := append(ratest.Hostile(t, key, names), ratest.Case{Name: "the issue's CSR", DER: ratest.IssueCSR(t, key, names), Detail: "organizationName"})
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			_, err := CheckCSR(tc.DER, ids(names...), nil)
			requireBadCSR(t, err, tc.Detail)
			t.Logf("detail: %v", err)
		})
	}
}

// TestClientCSRs: CSRs shaped as real clients make them are accepted, and
// the content is the order's names, with the usages the CSR asked for or
// the defaults.
func TestClientCSRs(t *testing.T) {
	names := []string{"www.example.com", "example.com"}
	ips := []net.IP{net.ParseIP("192.0.2.7"), net.ParseIP("2001:db8::7")}
	for _, key := range []crypto.Signer{ecKey(t), mustRSA(t)} {
		for _, tc := range ratest.Clients(t, key, names, ips) {
			t.Run(tc.Name, func(t *testing.T) {
				c, err := CheckCSR(tc.DER, ids("www.example.com", "example.com", "192.0.2.7", "2001:db8::7"), nil)
				require.NoError(t, err)
				require.Equal(t, "www.example.com", c.CommonName)
				require.Equal(t, names, c.DNSNames)
				require.Len(t, c.IPAddresses, 2)
				require.True(t, c.IPAddresses[1].Equal(ips[1]))
				_, isRSA := c.CSR.PublicKey.(*rsa.PublicKey)
				switch {
				case strings.HasPrefix(tc.Name, "cert-manager"):
					require.Equal(t, x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment, c.KeyUsage)
					require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, c.ExtKeyUsage)
				case isRSA:
					require.Equal(t, x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment, c.KeyUsage)
					require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, c.ExtKeyUsage)
				default:
					require.Equal(t, x509.KeyUsageDigitalSignature, c.KeyUsage)
					require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, c.ExtKeyUsage)
				}
			})
		}
	}
}

func mustRSA(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	return k
}

// TestNames: the CSR's names must be exactly the order's, DNS names
// compared case-insensitively in ASCII only.
func TestNames(t *testing.T) {
	key := ecKey(t)
	order := ids("a.example.com", "*.example.com", "192.0.2.1")
	csr := func(cn string, dns []string, ips ...string) []byte {
		var ipl []net.IP
		for _, s := range ips {
			ipl = append(ipl, net.ParseIP(s))
		}
		return ratest.CSR(t, key, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: dns, IPAddresses: ipl})
	}
	// Accepted: case differs, names repeat, CN names an IP identifier.
	c, err := DecideContent(csr("A.Example.COM", []string{"A.EXAMPLE.com", "*.Example.com", "a.example.com"}, "192.0.2.1"), order)
	require.NoError(t, err)
	require.Equal(t, "a.example.com", c.CommonName, "the order's spelling")
	c, err = DecideContent(csr("192.0.2.1", []string{"a.example.com", "*.example.com"}, "192.0.2.1"), order)
	require.NoError(t, err)
	require.Equal(t, "192.0.2.1", c.CommonName)

	for _, tc := range []struct {
		name, detail string
		der          []byte
	}{
		{"a name missing", "lacks the order's identifier dns:*.example.com", csr("", []string{"a.example.com"}, "192.0.2.1")},
		{"an IP missing", "lacks the order's identifier ip:192.0.2.1", csr("", []string{"a.example.com", "*.example.com"})},
		{"an extra name", "dns:\"b.example.com\"", csr("", []string{"a.example.com", "*.example.com", "b.example.com"}, "192.0.2.1")},
		{"an extra IP", "ip:192.0.2.2", csr("", []string{"a.example.com", "*.example.com"}, "192.0.2.1", "192.0.2.2")},
		{"a foreign CN", "common name \"b.example.com\"", csr("b.example.com", []string{"a.example.com", "*.example.com"}, "192.0.2.1")},
		{"a Kelvin sign for k", "common name", csr("a.example.com\u212a", []string{"a.example.com", "*.example.com"}, "192.0.2.1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecideContent(tc.der, order)
			requireBadCSR(t, err, tc.detail)
		})
	}
	require.True(t, asciiEqualFold("WWW.Example.com", "www.example.COM"))
	require.False(t, asciiEqualFold("\u212aey.example", "key.example"), "KELVIN SIGN is not k")
	require.False(t, asciiEqualFold("kéy", "KÉY"))
}

// TestCommonNameDefault: without a CN in the CSR the first DNS name stands
// in when it fits; an IP-only order or a long first name leaves the
// subject empty.
func TestCommonNameDefault(t *testing.T) {
	key := ecKey(t)
	long := strings.Repeat("a", 60) + ".example"
	for _, tc := range []struct {
		order []string
		want  string
	}{
		{[]string{"first.example", "second.example"}, "first.example"},
		{[]string{long, "b.example"}, ""},
		{[]string{"192.0.2.1"}, ""},
	} {
		var dns []string
		var ips []net.IP
		for _, v := range tc.order {
			if ip := net.ParseIP(v); ip != nil {
				ips = append(ips, ip)
			} else {
				dns = append(dns, v)
			}
		}
		c, err := DecideContent(ratest.CSR(t, key, &x509.CertificateRequest{DNSNames: dns, IPAddresses: ips}), ids(tc.order...))
		require.NoError(t, err)
		require.Equal(t, tc.want, c.CommonName, "%v", tc.order)
	}
}

// TestUsages: what a CSR may ask of keyUsage and extKeyUsage.
func TestUsages(t *testing.T) {
	key := ecKey(t)
	order := ids("a.example")
	with := func(exts ...pkix.Extension) []byte {
		return ratest.CSR(t, key, &x509.CertificateRequest{DNSNames: []string{"a.example"}, ExtraExtensions: exts})
	}
	c, err := DecideContent(with(ratest.KeyUsageExtension(false, 0, 4), ratest.EKUExtension(asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2})), order)
	require.NoError(t, err)
	require.Equal(t, x509.KeyUsageDigitalSignature|x509.KeyUsageKeyAgreement, c.KeyUsage)
	require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, c.ExtKeyUsage)

	_, err = DecideContent(with(ratest.KeyUsageExtension(false, 3)), order)
	requireBadCSR(t, err, "dataEncipherment")
	_, err = DecideContent(with(ratest.KeyUsageExtension(false)), order)
	requireBadCSR(t, err, "names no usage")
	sa := asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1}
	_, err = DecideContent(with(ratest.EKUExtension(sa, sa)), order)
	requireBadCSR(t, err, "twice")
	_, err = DecideContent(with(ratest.EKUExtension()), order)
	requireBadCSR(t, err, "malformed")
}

// TestApply: the request an upstream gets carries the decision.
func TestApply(t *testing.T) {
	key := ecKey(t)
	c, err := DecideContent(ratest.CSR(t, key, &x509.CertificateRequest{DNSNames: []string{"a.example"}, IPAddresses: []net.IP{net.ParseIP("192.0.2.1")}}),
		ids("a.example", "192.0.2.1"))
	require.NoError(t, err)
	var req upstream.Request
	c.Apply(&req)
	require.Equal(t, "a.example", req.CommonName)
	require.Equal(t, []string{"a.example"}, req.DNSNames)
	require.Equal(t, "192.0.2.1", req.IPAddresses[0].String())
	require.Equal(t, x509.KeyUsageDigitalSignature, req.KeyUsage)
	require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, req.ExtKeyUsage)
	require.Same(t, c.CSR, req.CSR)
	require.Equal(t, c.CSR.Raw, req.CSRDER)
}

// TestCheckCSRKey: the account key and weak keys are refused; parse and
// signature failures are badCSR.
func TestCheckCSRKey(t *testing.T) {
	key := ecKey(t)
	der := ratest.CSR(t, key, &x509.CertificateRequest{DNSNames: []string{"a.example"}})
	_, err := CheckCSR(der, ids("a.example"), key.Public())
	requireBadCSR(t, err, "account key")
	_, err = CheckCSR(der, ids("a.example"), ecKey(t).Public())
	require.NoError(t, err)

	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	_, err = CheckCSR(ratest.CSR(t, edKey, &x509.CertificateRequest{DNSNames: []string{"a.example"}}), ids("a.example"), nil)
	require.NoError(t, err)

	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	require.NoError(t, err)
	_, err = CheckCSR(ratest.CSR(t, p521, &x509.CertificateRequest{DNSNames: []string{"a.example"}}), ids("a.example"), nil)
	requireBadCSR(t, err, "P-256 or P-384")

	_, err = CheckCSR([]byte("junk"), ids("a.example"), nil)
	requireBadCSR(t, err, "could not be parsed")
	broken := append([]byte(nil), der...)
	broken[len(broken)-3] ^= 0xff
	_, err = CheckCSR(broken, ids("a.example"), nil)
	requireBadCSR(t, err, "signature")
	_, err = StoredContent(broken, ids("a.example"))
	require.NoError(t, err, "the worker's decision trusts the signature finalize verified")
	_, err = StoredContent(ratest.IssueCSR(t, key, []string{"a.example"}), ids("a.example"))
	requireBadCSR(t, err, "organizationName")
}

// TestNameInCNOnly: RFC 8555 §7.4 lets a DNS identifier appear in the
// CSR's common name instead of its subjectAltName; the content says when
// one does (NameInCNOnly), for the routes that forward the CSR as it is.
func TestNameInCNOnly(t *testing.T) {
	key := ecKey(t)
	for _, tc := range []struct {
		name   string
		csr    *x509.CertificateRequest
		ids    []string
		cnOnly bool
	}{
		{"CN only", &x509.CertificateRequest{Subject: pkix.Name{CommonName: "a.example.com"}}, []string{"a.example.com"}, true},
		{"CN and the other name in the SAN", &x509.CertificateRequest{Subject: pkix.Name{CommonName: "a.example.com"}, DNSNames: []string{"b.example.com"}}, []string{"a.example.com", "b.example.com"}, true},
		{"CN repeated in the SAN", &x509.CertificateRequest{Subject: pkix.Name{CommonName: "a.example.com"}, DNSNames: []string{"a.example.com", "b.example.com"}}, []string{"a.example.com", "b.example.com"}, false},
		{"SAN only", &x509.CertificateRequest{DNSNames: []string{"a.example.com"}}, []string{"a.example.com"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := CheckCSR(ratest.CSR(t, key, tc.csr), ids(tc.ids...), nil)
			require.NoError(t, err)
			require.Equal(t, tc.cnOnly, c.NameInCNOnly)
			require.Equal(t, tc.ids, c.DNSNames, "the certificate's subjectAltName is the order's")
			require.Equal(t, "a.example.com", c.CommonName)
		})
	}
}
