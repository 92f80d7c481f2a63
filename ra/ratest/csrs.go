package ratest

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Case is a CSR and what finalize must answer to it.
type Case struct {
	// Name says what the CSR carries (or which client makes it).
	Name string
	// DER is the CSR.
	DER []byte
	// Detail is part of the badCSR detail it must get; "" for a CSR that
	// must be accepted.
	Detail string
}

// OIDs the cases use.
var (
	oidSAN              = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidCertPolicies     = asn1.ObjectIdentifier{2, 5, 29, 32}
	oidNameConstraints  = asn1.ObjectIdentifier{2, 5, 29, 30}
	oidSKI              = asn1.ObjectIdentifier{2, 5, 29, 14}
	oidTLSFeature       = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 24}
	oidCTPoison         = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 3}
	oidCommonName       = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidOrganization     = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidUPN              = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3}
	oidChallengePwd     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 7}
	oidServerAuth       = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1}
	oidClientAuth       = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}
	oidCodeSigning      = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 3}
	oidSmartcardLogon   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 2}
	oidAnyEKU           = asn1.ObjectIdentifier{2, 5, 29, 37, 0}
	oidAnyPolicy        = asn1.ObjectIdentifier{2, 5, 29, 32, 0}
)

// MustStaple is the TLS feature extension certbot --must-staple and lego
// --must-staple add (RFC 7633: status_request).
var MustStaple = pkix.Extension{Id: oidTLSFeature, Value: []byte{0x30, 0x03, 0x02, 0x01, 0x05}}

// CSR signs tmpl with key.
func CSR(t testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	require.NoError(t, err)
	return der
}

// Hostile returns CSRs for an order of the DNS identifiers names (the first
// one is the common name where a case has one), signed by key, that each
// try to get something into the certificate the order did not decide.
// Finalize must refuse every one with badCSR.
func Hostile(t testing.TB, key crypto.Signer, names []string) []Case {
	t.Helper()
	cn := names[0]
	csr := func(tmpl *x509.CertificateRequest) []byte { return CSR(t, key, tmpl) }
	// withExt is a CSR for the names with extra requested extensions.
	withExt := func(exts ...pkix.Extension) []byte {
		return csr(&x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: names, ExtraExtensions: exts})
	}
	// withSAN is a CSR whose subjectAltName is the names plus extra raw
	// GeneralNames.
	withSAN := func(extra ...func(*cryptobyte.Builder)) []byte {
		return csr(&x509.CertificateRequest{ExtraExtensions: []pkix.Extension{SANExtension(names, nil, extra...)}})
	}
	cases := []Case{
		{"subject with O", csr(&x509.CertificateRequest{Subject: pkix.Name{CommonName: cn, Organization: []string{"Evil Corp"}}, DNSNames: names}), "organizationName"},
		{"subject with OU", csr(&x509.CertificateRequest{Subject: pkix.Name{CommonName: cn, OrganizationalUnit: []string{"Domain Admins"}}, DNSNames: names}), "organizationalUnitName"},
		{"subject with two common names", csr(&x509.CertificateRequest{RawSubject: mustMarshal(t, pkix.RDNSequence{
			{{Type: oidCommonName, Value: cn}}, {{Type: oidCommonName, Value: cn}}}), DNSNames: names}), "more than one common name"},
		{"subject with a second, foreign common name", csr(&x509.CertificateRequest{RawSubject: mustMarshal(t, pkix.RDNSequence{
			{{Type: oidCommonName, Value: cn}}, {{Type: oidCommonName, Value: "administrator"}}}), DNSNames: names}), "more than one common name"},
		{"common name and O in one RDN", csr(&x509.CertificateRequest{RawSubject: mustMarshal(t, pkix.RDNSequence{{
			{Type: oidCommonName, Value: cn}, {Type: oidOrganization, Value: "Evil Corp"}}}), DNSNames: names}), "organizationName"},
		{"subject emailAddress", csr(&x509.CertificateRequest{Subject: pkix.Name{CommonName: cn,
			ExtraNames: []pkix.AttributeTypeAndValue{{Type: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}, Value: "a@example.com"}}}, DNSNames: names}), "emailAddress"},
		{"subject serialNumber", csr(&x509.CertificateRequest{Subject: pkix.Name{CommonName: cn, SerialNumber: "42"}, DNSNames: names}), "serialNumber"},
		{"UPN otherName SAN", withSAN(OtherNameUPN("administrator@corp.example")), "UPN"},
		{"directoryName SAN", withSAN(DirectoryName(t, "Evil Corp")), "directoryName"},
		{"rfc822Name SAN", withSAN(rawGeneralName(1, []byte("a@example.com"))), "rfc822Name"},
		{"URI SAN", withSAN(rawGeneralName(6, []byte("spiffe://example.com/admin"))), "uniformResourceIdentifier"},
		{"registeredID SAN", withSAN(rawGeneralName(8, []byte{0x2a, 0x03})), "registeredID"},
		{"subjectAltName twice", csr(&x509.CertificateRequest{Subject: pkix.Name{CommonName: cn},
			ExtraExtensions: []pkix.Extension{SANExtension(names, nil), SANExtension([]string{"evil.example.net"}, nil)}}), "twice"},
		{"EKU codeSigning", withExt(EKUExtension(oidServerAuth, oidCodeSigning)), "codeSigning"},
		{"EKU smartcardLogon", withExt(EKUExtension(oidClientAuth, oidSmartcardLogon)), "smartcardLogon"},
		{"EKU anyExtendedKeyUsage", withExt(EKUExtension(oidAnyEKU)), "anyExtendedKeyUsage"},
		{"keyUsage keyCertSign", withExt(KeyUsageExtension(true, 0, 5)), "keyCertSign"},
		{"keyUsage nonRepudiation", withExt(KeyUsageExtension(false, 0, 1, 2)), "nonRepudiation"},
		{"basicConstraints CA TRUE", withExt(pkix.Extension{Id: oidBasicConstraints, Critical: true, Value: []byte{0x30, 0x03, 0x01, 0x01, 0xff}}), "cA TRUE"},
		{"basicConstraints with a path length", withExt(pkix.Extension{Id: oidBasicConstraints, Value: []byte{0x30, 0x03, 0x02, 0x01, 0x00}}), "pathLenConstraint"},
		{"certificatePolicies", withExt(pkix.Extension{Id: oidCertPolicies, Value: mustMarshal(t, []struct{ ID asn1.ObjectIdentifier }{{oidAnyPolicy}})}), "certificatePolicies"},
		{"nameConstraints", withExt(pkix.Extension{Id: oidNameConstraints, Critical: true, Value: []byte{0x30, 0x00}}), "nameConstraints"},
		{"subjectKeyIdentifier", withExt(pkix.Extension{Id: oidSKI, Value: mustMarshal(t, []byte{1, 2, 3, 4})}), "subjectKeyIdentifier"},
		{"CT precertificate poison", withExt(pkix.Extension{Id: oidCTPoison, Critical: true, Value: []byte{0x05, 0x00}}), "poison"},
		{"OCSP must-staple (certbot --must-staple, lego --must-staple)", withExt(MustStaple), "must-staple"},
		{"challengePassword attribute", csr(&x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: names,
			Attributes: []pkix.AttributeTypeAndValueSET{{Type: oidChallengePwd, Value: [][]pkix.AttributeTypeAndValue{{{Type: oidChallengePwd, Value: "secret"}}}}}}), //nolint:staticcheck // the deprecated field is the way to add an attribute
			"challengePassword"},
	}
	if len(names) > 1 {
		// A CSR may name one DNS identifier in its common name only (RFC
		// 8555 §7.4), never the others.
		cases = append(cases, Case{"no subjectAltName, the CN naming one of two names", csr(&x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}),
			"neither in a subjectAltName nor in its common name"})
	}
	return cases
}

// IssueCSR is the CSR of issue 14's first hole, which finalize accepted
// and Vault's sign-verbatim copied: O and OU, two common names, a UPN
// otherName and a directoryName beside the names, extended key usages
// codeSigning and smartcardLogon, basicConstraints cA TRUE and
// certificatePolicies.
func IssueCSR(t testing.TB, key crypto.Signer, names []string) []byte {
	t.Helper()
	return CSR(t, key, &x509.CertificateRequest{
		RawSubject: mustMarshal(t, pkix.RDNSequence{
			{{Type: oidOrganization, Value: "Evil Corp"}},
			{{Type: asn1.ObjectIdentifier{2, 5, 4, 11}, Value: "Domain Admins"}},
			// Go's parser keeps the last common name, so only the
			// first escapes a check built on it.
			{{Type: oidCommonName, Value: "administrator"}},
			{{Type: oidCommonName, Value: names[0]}},
		}),
		ExtraExtensions: []pkix.Extension{
			SANExtension(names, nil, OtherNameUPN("administrator@corp.example"), DirectoryName(t, "Evil Corp")),
			EKUExtension(oidCodeSigning, oidSmartcardLogon),
			{Id: oidBasicConstraints, Critical: true, Value: []byte{0x30, 0x03, 0x01, 0x01, 0xff}},
			{Id: oidCertPolicies, Value: mustMarshal(t, []struct{ ID asn1.ObjectIdentifier }{{oidAnyPolicy}})},
		},
	})
}

// Clients returns CSRs shaped as real ACME clients make them, for an order
// of the DNS identifiers names and the IP identifiers ips; finalize must
// accept each. Read from the clients' sources:
//   - lego 4 (certcrypto.GenerateCSR): the first name as common name, every
//     name in subjectAltName;
//   - certbot (acme.crypto_util.make_csr), Caddy (certmagic's generateCSR),
//     lego 5: an empty subject and subjectAltName;
//   - golang.org/x/crypto/acme/autocert (certRequest) and step: common name
//     and subjectAltName;
//   - acme.sh (_createcsr): common name, extendedKeyUsage serverAuth and
//     clientAuth, subjectAltName;
//   - cert-manager (pki.GenerateCSR with encodeUsagesInRequest and the
//     UseCertificateRequestBasicConstraints gate): keyUsage digitalSignature
//     and keyEncipherment (critical, for every key type), extendedKeyUsage
//     serverAuth, basicConstraints cA false.
func Clients(t testing.TB, key crypto.Signer, names []string, ips []net.IP) []Case {
	t.Helper()
	cn := ""
	if len(names) > 0 {
		cn = names[0]
	}
	csr := func(tmpl *x509.CertificateRequest) []byte {
		tmpl.DNSNames, tmpl.IPAddresses = names, ips
		return CSR(t, key, tmpl)
	}
	return []Case{
		{"lego 4: common name and SANs", csr(&x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}), ""},
		{"certbot, Caddy, lego 5: SANs only", csr(&x509.CertificateRequest{}), ""},
		{"x/crypto/acme autocert, step: common name and SANs", csr(&x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}), ""},
		{"acme.sh: extendedKeyUsage serverAuth and clientAuth", csr(&x509.CertificateRequest{Subject: pkix.Name{CommonName: cn},
			ExtraExtensions: []pkix.Extension{EKUExtension(oidServerAuth, oidClientAuth)}}), ""},
		{"cert-manager: keyUsage, extendedKeyUsage, basicConstraints cA false", csr(&x509.CertificateRequest{Subject: pkix.Name{CommonName: cn},
			ExtraExtensions: []pkix.Extension{KeyUsageExtension(true, 0, 2), EKUExtension(oidServerAuth),
				{Id: oidBasicConstraints, Critical: true, Value: []byte{0x30, 0x00}}}}), ""},
	}
}

// SANExtension is a subjectAltName of names and ips, then the extra raw
// GeneralNames.
func SANExtension(names []string, ips []net.IP, extra ...func(*cryptobyte.Builder)) pkix.Extension {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, n := range names {
			rawGeneralName(2, []byte(n))(b)
		}
		for _, ip := range ips {
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			rawGeneralName(7, ip)(b)
		}
		for _, f := range extra {
			f(b)
		}
	})
	return pkix.Extension{Id: oidSAN, Value: b.BytesOrPanic()}
}

// rawGeneralName adds a primitive GeneralName [tag] holding value.
func rawGeneralName(tag uint8, value []byte) func(*cryptobyte.Builder) {
	return func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(tag).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(value) })
	}
}

// OtherNameUPN is an otherName holding a Microsoft user principal name,
// which Windows maps to an account for smart card logon.
func OtherNameUPN(upn string) func(*cryptobyte.Builder) {
	return func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidUPN)
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(upn)) })
			})
		})
	}
}

// DirectoryName is a directoryName GeneralName naming an organisation.
func DirectoryName(t testing.TB, org string) func(*cryptobyte.Builder) {
	name := mustMarshal(t, pkix.Name{Organization: []string{org}}.ToRDNSequence())
	return func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(4).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(name) })
	}
}

// EKUExtension is an extendedKeyUsage of the OIDs.
func EKUExtension(oids ...asn1.ObjectIdentifier) pkix.Extension {
	v, err := asn1.Marshal(oids)
	if err != nil {
		panic(err)
	}
	return pkix.Extension{Id: oidExtKeyUsage, Value: v}
}

// KeyUsageExtension is a keyUsage with the given bits set (RFC 5280
// §4.2.1.3: 0 digitalSignature, 1 nonRepudiation, 2 keyEncipherment, 4
// keyAgreement, 5 keyCertSign, …).
func KeyUsageExtension(critical bool, bits ...int) pkix.Extension {
	var bs asn1.BitString
	for _, i := range bits {
		for len(bs.Bytes) <= i/8 {
			bs.Bytes = append(bs.Bytes, 0)
		}
		bs.Bytes[i/8] |= 0x80 >> (i % 8)
		bs.BitLength = max(bs.BitLength, i+1)
	}
	v, err := asn1.Marshal(bs)
	if err != nil {
		panic(err)
	}
	return pkix.Extension{Id: oidKeyUsage, Critical: critical, Value: v}
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	require.NoError(t, err)
	return b
}
