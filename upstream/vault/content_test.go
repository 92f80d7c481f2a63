package vault

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/ra"
	"github.com/acmebridge/acmebridge/ra/ratest"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/upstream"
	"github.com/acmebridge/acmebridge/upstream/vault/vaulttest"
)

// decided is the issuance request the worker makes: the content ra decided
// for the CSR and the order's identifiers.
func decided(t *testing.T, der []byte, names ...string) *upstream.Request {
	t.Helper()
	var ids []store.Identifier
	for _, n := range names {
		typ := "dns"
		if net.ParseIP(n) != nil {
			typ = "ip"
		}
		ids = append(ids, store.Identifier{Type: typ, Value: n})
	}
	c, err := ra.DecideContent(der, ids)
	require.NoError(t, err)
	req := &upstream.Request{OrderID: randomID(t)}
	c.Apply(req)
	return req
}

// TestContentParams: what Issue tells Vault beside the CSR, per mode.
func TestContentParams(t *testing.T) {
	req := &upstream.Request{CommonName: "a.example.test", DNSNames: []string{"a.example.test", "b.example.test"},
		IPAddresses: []net.IP{net.ParseIP("192.0.2.1"), net.ParseIP("2001:db8::1")},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	require.Equal(t, map[string]any{"common_name": "a.example.test", "alt_names": "a.example.test,b.example.test",
		"ip_sans": "192.0.2.1,2001:db8::1"}, (&Upstream{mode: ModeSign}).contentParams(req))
	require.Equal(t, map[string]any{"key_usage": []string{"DigitalSignature", "KeyEncipherment"},
		"ext_key_usage": []string{"ServerAuth", "ClientAuth"}}, (&Upstream{mode: ModeSignVerbatim}).contentParams(req))
	require.Empty(t, (&Upstream{mode: ModeSignVerbatim}).contentParams(&upstream.Request{}), "no decision: Vault's defaults")
}

// TestSignVerbatimContent: against a real Vault, sign-verbatim issues the
// content ra decided: the CSR's names, a subject of its one CN (none when
// the CSR has none), and the decided usages instead of Vault's defaults
// (DigitalSignature, KeyAgreement, KeyEncipherment and no extended usage).
func TestSignVerbatimContent(t *testing.T) {
	e := newEnv(t, vaulttest.PKIOptions{AllowIPSANs: true})
	e.writeToken(t, e.srv.Token) // the minimum policy covers sign/<role> only
	u := e.upstream(t, func(o *Options) { o.Mode = ModeSignVerbatim })
	ctx := ctxT(t)
	key := newKey(t)
	ip := net.ParseIP("192.0.2.4")

	// certbot: SANs only.
	der := ratest.CSR(t, key, &x509.CertificateRequest{DNSNames: []string{"v.example.test"}, IPAddresses: []net.IP{ip}})
	res, err := u.Issue(ctx, decided(t, der, "v.example.test", "192.0.2.4"), nil)
	require.NoError(t, err)
	leaf := res.Leaf
	require.Equal(t, []string{"v.example.test"}, leaf.DNSNames)
	require.Len(t, leaf.IPAddresses, 1)
	require.True(t, leaf.IPAddresses[0].Equal(ip))
	require.Empty(t, leaf.Subject.Names, "sign-verbatim keeps the CSR's empty subject")
	require.Equal(t, x509.KeyUsageDigitalSignature, leaf.KeyUsage)
	require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, leaf.ExtKeyUsage)

	// acme.sh-like: a CN and the extended usages asked for.
	der = ratest.CSR(t, key, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "w.example.test"}, DNSNames: []string{"w.example.test"},
		ExtraExtensions: []pkix.Extension{ratest.EKUExtension(asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1})}})
	res, err = u.Issue(ctx, decided(t, der, "w.example.test"), nil)
	require.NoError(t, err)
	require.Equal(t, "CN=w.example.test", res.Leaf.Subject.String())
	require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, res.Leaf.ExtKeyUsage)
	require.Equal(t, x509.KeyUsageDigitalSignature, res.Leaf.KeyUsage)

	// `openssl req -subj /CN=NAME`, as appliances send: the name in the
	// common name only (RFC 8555 §7.4). sign-verbatim leaves it out of
	// the subjectAltName, which is why ra refuses such a CSR on a
	// sign-verbatim route (configs.Upstream.SANsFromCSR).
	der = ratest.CSR(t, key, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "cn.example.test"}})
	res, err = u.Issue(ctx, decided(t, der, "cn.example.test"), nil)
	require.NoError(t, err)
	require.Empty(t, res.Leaf.DNSNames)
	require.Equal(t, "CN=cn.example.test", res.Leaf.Subject.String())
}

// TestSignNameInCNOnly: in sign mode a CSR that names its DNS identifiers
// in the common name (one) and the subjectAltName (the rest), as RFC 8555
// §7.4 allows, gets a certificate naming them all in its subjectAltName,
// with the role taking the CSR's values (the default) or not.
func TestSignNameInCNOnly(t *testing.T) {
	e := newEnv(t, vaulttest.PKIOptions{})
	u := e.upstream(t, nil)
	key := newKey(t)
	der := ratest.CSR(t, key, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "c1.example.test"}, DNSNames: []string{"c2.example.test"}})
	res, err := u.Issue(ctxT(t), decided(t, der, "c1.example.test", "c2.example.test"), nil)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"c1.example.test", "c2.example.test"}, res.Leaf.DNSNames)

	_, err = e.root.Logical().JSONMergePatch(ctxT(t), e.pki.Mount+"/roles/"+e.pki.Role,
		map[string]any{"use_csr_common_name": false, "use_csr_sans": false})
	require.NoError(t, err)
	der = ratest.CSR(t, key, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "c3.example.test"}})
	res, err = u.Issue(ctxT(t), decided(t, der, "c3.example.test"), nil)
	require.NoError(t, err)
	require.Equal(t, []string{"c3.example.test"}, res.Leaf.DNSNames)
}

// TestSignContentFromParams: in sign mode with a role that takes nothing
// from the CSR (use_csr_common_name and use_csr_sans false), the
// certificate still names exactly the order's identifiers: Issue passes
// them as common_name, alt_names and ip_sans.
func TestSignContentFromParams(t *testing.T) {
	e := newEnv(t, vaulttest.PKIOptions{AllowIPSANs: true})
	_, err := e.root.Logical().JSONMergePatch(ctxT(t), e.pki.Mount+"/roles/"+e.pki.Role,
		map[string]any{"use_csr_common_name": false, "use_csr_sans": false})
	require.NoError(t, err)
	u := e.upstream(t, nil)
	der := ratest.CSR(t, newKey(t), &x509.CertificateRequest{DNSNames: []string{"s.example.test", "t.example.test"},
		IPAddresses: []net.IP{net.ParseIP("192.0.2.5")}})
	res, err := u.Issue(ctxT(t), decided(t, der, "s.example.test", "t.example.test", "192.0.2.5"), nil)
	require.NoError(t, err)
	require.Equal(t, "s.example.test", res.Leaf.Subject.CommonName)
	require.ElementsMatch(t, []string{"s.example.test", "t.example.test"}, res.Leaf.DNSNames)
	require.Len(t, res.Leaf.IPAddresses, 1)
	require.Equal(t, "192.0.2.5", res.Leaf.IPAddresses[0].String())
}
