// Package ra is acmebridge's registration authority: the domain core that
// decides, without HTTP, what may be issued. This first part decides what a
// certificate holds, from the order and the client's CSR, in one place
// (docs/security.md), and which certificate keys are acceptable (goodkey.go).
// The transport (proxy/) asks it at finalize; the issuance worker asks it
// again before it calls an upstream, and the upstreams build certificates
// from its answer, never from the CSR.
package ra

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	encasn1 "encoding/asn1"
	"errors"
	"net"
	"slices"
	"strconv"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/upstream"
)

// MaxCNLength is the longest common name (ub-common-name, RFC 5280
// Appendix A).
const MaxCNLength = 64

// The key usages a CSR may ask for: the three a TLS key uses (RFC 5280
// §4.2.1.3; RFC 8446 §4.4.2.4 signs with digitalSignature, RSA key
// transport needs keyEncipherment, static ECDH keyAgreement). They are
// also the usages Vault's sign-verbatim grants when the request names
// none. nonRepudiation, dataEncipherment, keyCertSign, cRLSign,
// encipherOnly and decipherOnly are refused: the last four belong to CAs
// and key agreement modes TLS does not use, the first two to document
// signing and bulk encryption. keyEncipherment is accepted with any key
// type because cert-manager asks for digitalSignature and keyEncipherment
// whatever the key is; on an ECDSA or Ed25519 key it grants nothing.
const allowedKeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement

// CertContent is what a certificate holds, as decided from the order and
// its CSR. Upstreams build the certificate from it; a CSR that asks for
// anything else is refused before it reaches one.
type CertContent struct {
	// CommonName is the subject's only attribute; "" leaves the subject
	// empty. It is the CSR's common name (an identifier of the order) or,
	// when the CSR has none, the first DNS identifier if it fits
	// MaxCNLength.
	CommonName string
	// DNSNames and IPAddresses are the order's identifiers, in the
	// order's order: the certificate's subjectAltName.
	DNSNames    []string
	IPAddresses []net.IP
	// KeyUsage is the CSR's keyUsage when it asks for one (within
	// digitalSignature, keyEncipherment and keyAgreement), else
	// digitalSignature, with keyEncipherment for an RSA key.
	KeyUsage x509.KeyUsage
	// ExtKeyUsage is the CSR's extKeyUsage when it asks for one (serverAuth
	// and clientAuth at most), else both.
	ExtKeyUsage []x509.ExtKeyUsage
	// CSR is the checked CSR; CSR.PublicKey is the certificate's key. It
	// holds nothing the fields above do not say, so an upstream that signs
	// it verbatim issues this content — with the CSR's spelling of the
	// names and, when the CSR has no common name, an empty subject.
	CSR *x509.CertificateRequest
	// NameInCNOnly is set when the CSR names a DNS identifier in its
	// common name and not in its subjectAltName, as RFC 8555 §7.4 allows.
	// A certificate signed from the CSR as it is would lack that name in
	// its subjectAltName (Vault's sign-verbatim does), and another ACME CA
	// may refuse the CSR: ra refuses it on routes to such upstreams
	// (configs.Upstream.SANsFromCSR).
	NameInCNOnly bool
}

// Apply writes the content into an issuance request.
func (c *CertContent) Apply(req *upstream.Request) {
	req.CSR, req.CSRDER = c.CSR, c.CSR.Raw
	req.CommonName = c.CommonName
	req.DNSNames = slices.Clone(c.DNSNames)
	req.IPAddresses = slices.Clone(c.IPAddresses)
	req.KeyUsage = c.KeyUsage
	req.ExtKeyUsage = slices.Clone(c.ExtKeyUsage)
}

// CheckCSR is what finalize asks: DecideContent, then the key — CheckKey,
// and it must not be the account's key (docs/security.md; Boulder refuses it
// too: "certificate public key must be different than account key").
func CheckCSR(der []byte, ids []store.Identifier, accountKey crypto.PublicKey) (*CertContent, error) {
	c, err := DecideContent(der, ids)
	if err != nil {
		return nil, err
	}
	if err := CheckKey(c.CSR.PublicKey); err != nil {
		return nil, err
	}
	if accountKey != nil {
		spki, err := x509.MarshalPKIXPublicKey(accountKey)
		if err == nil && bytes.Equal(spki, c.CSR.RawSubjectPublicKeyInfo) {
			return nil, acmeerr.New(acmeerr.BadCSR, "CSR public key must not be the account key")
		}
	}
	return c, nil
}

// DecideContent checks a DER CSR against the order's identifiers and
// decides the certificate's content. RFC 8555 §7.4: "The CSR MUST indicate
// the exact same set of requested identifiers as the initial newOrder
// request." Beyond that the CSR may hold, read from its DER rather than
// from what Go's parser keeps:
//
//   - a subject that is empty or a single common name equal to one of the
//     order's identifiers (DNS names compared case-insensitively);
//   - one extensionRequest attribute, and no other attribute;
//   - the extensions subjectAltName (dNSName and iPAddress only, listing
//     every identifier of the order and nothing else), keyUsage (see
//     allowedKeyUsage), extKeyUsage (serverAuth, clientAuth) and
//     basicConstraints with cA false (cert-manager and acme.sh send it).
//
// Anything else — an O or OU, a second CN, an otherName or directoryName,
// codeSigning, cA true, certificatePolicies, OCSP must-staple — is a
// badCSR naming it. The key is not judged here (CheckKey).
func DecideContent(der []byte, ids []store.Identifier) (*CertContent, error) {
	return decideContent(der, ids, true)
}

// StoredContent is DecideContent for a CSR that passed CheckCSR at finalize
// and was stored with its order: the same decision, taken again by the
// issuance worker, without verifying the CSR's signature a second time.
func StoredContent(der []byte, ids []store.Identifier) (*CertContent, error) {
	return decideContent(der, ids, false)
}

// decideContent is DecideContent, checking the signature when verify.
func decideContent(der []byte, ids []store.Identifier, verify bool) (*CertContent, error) {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		// Our own reading may name the fault Go's parser only refused.
		if _, ferr := parseCSRInfo(tbsOf(der)); ferr != nil && !errors.Is(ferr, errMalformed) {
			return nil, badCSR(ferr)
		}
		return nil, acmeerr.New(acmeerr.BadCSR, "CSR could not be parsed")
	}
	if verify {
		if err := csr.CheckSignature(); err != nil {
			return nil, acmeerr.New(acmeerr.BadCSR, "CSR signature does not verify")
		}
	}
	raw, err := parseCSRInfo(csr.RawTBSCertificateRequest)
	if err != nil {
		return nil, badCSR(err)
	}
	c := &CertContent{CSR: csr}
	for _, id := range ids {
		switch id.Type {
		case "dns":
			c.DNSNames = append(c.DNSNames, id.Value)
		case "ip":
			ip := net.ParseIP(id.Value)
			if ip == nil {
				return nil, acmeerr.New(acmeerr.Internal, "order identifier %s is not an IP address", id.Value)
			}
			c.IPAddresses = append(c.IPAddresses, ip)
		default:
			return nil, acmeerr.New(acmeerr.Internal, "order identifier type %s is not issued", id.Type)
		}
	}
	cn, fromCSR, err := c.decideSubject(raw.subject)
	if err != nil {
		return nil, badCSR(err)
	}
	c.CommonName = cn
	named := names{dns: make([]bool, len(c.DNSNames)), ip: make([]bool, len(c.IPAddresses))}
	sawSAN, err := c.decideExtensions(raw.extensions, &named)
	if err != nil {
		return nil, badCSR(err)
	}
	if err := c.allNamed(named, cn, fromCSR, sawSAN); err != nil {
		return nil, badCSR(err)
	}
	return c, nil
}

// names marks the order's identifiers a CSR's subjectAltName names, index
// by index of CertContent's DNSNames and IPAddresses.
type names struct{ dns, ip []bool }

// allNamed checks that the CSR names every identifier of the order. RFC
// 8555 §7.4: "Identifiers of type "dns" MUST appear either in the
// commonName portion of the requested subject name or in an
// extensionRequest attribute [RFC2985] requesting a subjectAltName
// extension, or both." An IP identifier has no such alternative: it must
// be an iPAddress entry of the subjectAltName. cn is the CSR's common name
// when fromCSR (decideSubject matched it to an identifier).
func (c *CertContent) allNamed(named names, cn string, fromCSR, sawSAN bool) error {
	for i, ok := range named.dns {
		if ok {
			continue
		}
		if fromCSR && c.DNSNames[i] == cn {
			c.NameInCNOnly = true
			continue
		}
		if !sawSAN {
			return faultf("the CSR names dns:%s neither in a subjectAltName nor in its common name (RFC 8555 §7.4)", c.DNSNames[i])
		}
		return faultf("the CSR's subjectAltName lacks the order's identifier dns:%s (RFC 8555 §7.4)", c.DNSNames[i])
	}
	for i, ok := range named.ip {
		if !ok {
			return faultf("the CSR's subjectAltName lacks the order's identifier ip:%s (RFC 8738: an IP address is named as an iPAddress entry)", c.IPAddresses[i])
		}
	}
	return nil
}

// badCSR turns a CSR fault into the client's problem.
func badCSR(err error) error {
	var f csrFault
	if errors.As(err, &f) {
		return acmeerr.New(acmeerr.BadCSR, "%s", string(f))
	}
	return acmeerr.Wrap(acmeerr.Internal, err, "checking the CSR")
}

// decideSubject accepts an empty subject or a single common name naming an
// identifier of the order, and returns the certificate's common name:
// fromCSR when it is the CSR's own, a DNS identifier.
func (c *CertContent) decideSubject(rdns [][]attributeValue) (cn string, fromCSR bool, err error) {
	var attr *attributeValue
	for _, rdn := range rdns {
		for i, a := range rdn {
			if !a.oid.Equal(oidCommonName) {
				return "", false, faultf("the CSR subject holds %s; it may hold one common name and nothing else",
					oidName(a.oid, subjectAttributeNames))
			}
			if attr != nil {
				return "", false, faultf("the CSR subject holds more than one common name")
			}
			attr = &rdn[i]
		}
	}
	if attr == nil {
		// Boulder's rule: the first DNS name stands in, if it fits.
		if len(c.DNSNames) > 0 && len(c.DNSNames[0]) <= MaxCNLength {
			return c.DNSNames[0], false, nil
		}
		return "", false, nil
	}
	switch attr.tag {
	case asn1.PrintableString, asn1.UTF8String, asn1.IA5String:
	default:
		return "", false, faultf("the CSR's common name is encoded as ASN.1 tag %d; PrintableString, UTF8String or IA5String is expected", int(attr.tag))
	}
	v := string(attr.value)
	if id, ok := c.matchDNS(v); ok {
		return id, true, nil
	}
	if ip := net.ParseIP(v); ip != nil {
		for _, want := range c.IPAddresses {
			if want.Equal(ip) {
				return want.String(), false, nil
			}
		}
	}
	return "", false, faultf("CSR common name %s is not an identifier of the order", quoteDetail(v))
}

// matchDNS finds the order's DNS identifier equal to name, compared
// case-insensitively in ASCII only (RFC 4343): a Unicode case fold would
// let U+212A KELVIN SIGN stand for "k".
func (c *CertContent) matchDNS(name string) (string, bool) {
	for _, want := range c.DNSNames {
		if asciiEqualFold(want, name) {
			return want, true
		}
	}
	return "", false
}

// decideExtensions applies the allow-list of requested extensions, marks
// the identifiers the subjectAltName names, and decides the key usages.
// sawSAN says whether the CSR has a subjectAltName.
func (c *CertContent) decideExtensions(exts []extension, named *names) (sawSAN bool, err error) {
	var sawKU, sawEKU bool
	for _, e := range exts {
		var err error
		switch {
		case e.oid.Equal(oidSAN):
			sawSAN, err = true, c.checkSAN(e.value, named)
		case e.oid.Equal(oidKeyUsage):
			sawKU = true
			c.KeyUsage, err = parseKeyUsage(e.value)
		case e.oid.Equal(oidExtKeyUsage):
			sawEKU = true
			c.ExtKeyUsage, err = parseExtKeyUsage(e.value)
		case e.oid.Equal(oidBasicConstraints):
			err = checkBasicConstraints(e.value)
		case e.oid.Equal(oidTLSFeature):
			// Let's Encrypt stopped issuing must-staple certificates in
			// 2025, and no upstream here promises an OCSP responder to
			// staple from: a must-staple certificate without one fails
			// hard in browsers that honour it.
			err = faultf("the CSR asks for OCSP must-staple (TLS feature extension, 1.3.6.1.5.5.7.1.24), which acmebridge does not issue; request the certificate without must-staple")
		default:
			err = faultf("the CSR requests the extension %s, which acmebridge does not issue; only subjectAltName, keyUsage, extKeyUsage and basicConstraints (cA false) may be requested",
				oidName(e.oid, extensionNames))
		}
		if err != nil {
			return false, err
		}
	}
	if !sawKU {
		c.KeyUsage = x509.KeyUsageDigitalSignature
		if _, ok := c.CSR.PublicKey.(*rsa.PublicKey); ok {
			c.KeyUsage |= x509.KeyUsageKeyEncipherment
		}
	}
	if !sawEKU {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	return sawSAN, nil
}

// checkSAN accepts a subjectAltName of dNSName and iPAddress entries, each
// an identifier of the order (a name may repeat), and marks them in named
// (allNamed checks that every identifier is named).
func (c *CertContent) checkSAN(der []byte, named *names) error {
	gns, err := parseGeneralNames(der)
	if err != nil {
		return err
	}
	for _, g := range gns {
		switch g.tag {
		case 2: // dNSName [2] IA5String
			v := string(g.value)
			i := slices.IndexFunc(c.DNSNames, func(want string) bool { return asciiEqualFold(want, v) })
			if i < 0 {
				return faultf("the CSR's subjectAltName names dns:%s, which is not an identifier of the order", quoteDetail(v))
			}
			named.dns[i] = true
		case 7: // iPAddress [7] OCTET STRING
			ip, ok := parseIP(g.value)
			if !ok {
				return faultf("the CSR's subjectAltName holds an iPAddress of %d octets", len(g.value))
			}
			i := slices.IndexFunc(c.IPAddresses, func(want net.IP) bool { return want.Equal(ip) })
			if i < 0 {
				return faultf("the CSR's subjectAltName names ip:%s, which is not an identifier of the order", ip)
			}
			named.ip[i] = true
		default:
			return faultf("the CSR's subjectAltName holds an entry of type %s; only dNSName and iPAddress are issued", generalNameKind(g))
		}
	}
	return nil
}

// parseKeyUsage reads a keyUsage extension (RFC 5280 §4.2.1.3) and accepts
// the usages of allowedKeyUsage. "When the keyUsage extension appears in a
// certificate, at least one of the bits MUST be set to 1."
func parseKeyUsage(der []byte) (x509.KeyUsage, error) {
	in := cryptobyte.String(der)
	var bits encasn1.BitString
	if !in.ReadASN1BitString(&bits) || !in.Empty() {
		return 0, faultf("the CSR's keyUsage extension is malformed")
	}
	var ku x509.KeyUsage
	for i := range bits.BitLength {
		if bits.At(i) == 0 {
			continue
		}
		u := x509.KeyUsage(1) << i
		if i > 8 || u&allowedKeyUsage == 0 {
			return 0, faultf("the CSR asks for the key usage %s; only digitalSignature, keyEncipherment and keyAgreement are issued", keyUsageName(i))
		}
		ku |= u
	}
	if ku == 0 {
		return 0, faultf("the CSR's keyUsage extension names no usage")
	}
	return ku, nil
}

// keyUsageName names bit i of KeyUsage (RFC 5280 §4.2.1.3).
func keyUsageName(i int) string {
	names := []string{"digitalSignature", "nonRepudiation (contentCommitment)", "keyEncipherment", "dataEncipherment",
		"keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"}
	if i < len(names) {
		return names[i]
	}
	return "bit " + strconv.Itoa(i)
}

// parseExtKeyUsage reads an extKeyUsage extension (RFC 5280 §4.2.1.12)
// and accepts serverAuth and clientAuth, each at most once.
func parseExtKeyUsage(der []byte) ([]x509.ExtKeyUsage, error) {
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, asn1.SEQUENCE) || !in.Empty() || seq.Empty() {
		return nil, faultf("the CSR's extKeyUsage extension is malformed")
	}
	var out []x509.ExtKeyUsage
	for !seq.Empty() {
		var oid encasn1.ObjectIdentifier
		if !seq.ReadASN1ObjectIdentifier(&oid) {
			return nil, faultf("the CSR's extKeyUsage extension is malformed")
		}
		var u x509.ExtKeyUsage
		switch {
		case oid.Equal(oidServerAuth):
			u = x509.ExtKeyUsageServerAuth
		case oid.Equal(oidClientAuth):
			u = x509.ExtKeyUsageClientAuth
		default:
			return nil, faultf("the CSR asks for the extended key usage %s; only serverAuth and clientAuth are issued",
				oidName(oid, extKeyUsageNames))
		}
		if slices.Contains(out, u) {
			return nil, faultf("the CSR's extKeyUsage names %s twice", oidName(oid, extKeyUsageNames))
		}
		out = append(out, u)
	}
	return out, nil
}

// checkBasicConstraints accepts basicConstraints that say "not a CA"
// (RFC 5280 §4.2.1.9: cA absent or false, no pathLenConstraint).
func checkBasicConstraints(der []byte) error {
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	var ca bool
	if !in.ReadASN1(&seq, asn1.SEQUENCE) || !in.Empty() || !readOptionalBoolean(&seq, &ca) {
		return faultf("the CSR's basicConstraints extension is malformed")
	}
	if ca {
		return faultf("the CSR asks for basicConstraints cA TRUE; acmebridge issues end-entity certificates only")
	}
	if !seq.Empty() {
		return faultf("the CSR's basicConstraints carries a pathLenConstraint; only cA false is accepted")
	}
	return nil
}

// asciiEqualFold compares two strings ignoring the case of ASCII letters
// only.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// quoteDetail quotes a value from the CSR for a problem detail: non-ASCII
// and control characters escaped, long values cut.
func quoteDetail(s string) string {
	const limit = 100
	if len(s) > limit {
		return strconv.QuoteToASCII(s[:limit]) + "…"
	}
	return strconv.QuoteToASCII(s)
}
