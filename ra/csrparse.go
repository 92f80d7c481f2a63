package ra

import (
	encasn1 "encoding/asn1"
	"fmt"
	"net"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// This file reads a CSR's DER itself (RFC 2986 §4): Go's parser keeps what
// it understands and drops the rest, so what it shows is not all an
// upstream signing the CSR verbatim would copy.

// rawCSR is what the certification request info holds, undigested.
type rawCSR struct {
	// subject is every attribute of the subject, RDN by RDN.
	subject [][]attributeValue
	// extensions are the requested extensions, in order.
	extensions []extension
}

// attributeValue is one AttributeTypeAndValue of a name.
type attributeValue struct {
	oid   encasn1.ObjectIdentifier
	tag   asn1.Tag
	value []byte
}

// extension is one requested extension (RFC 5280 §4.1).
type extension struct {
	oid      encasn1.ObjectIdentifier
	critical bool
	value    []byte
}

// generalName is one GeneralName of a subjectAltName (RFC 5280 §4.2.1.6).
type generalName struct {
	// tag is the context-specific tag: 2 dNSName, 7 iPAddress, …
	tag   int
	value []byte
}

// csrFault is a CSR that says something acmebridge does not issue; its
// text becomes the badCSR detail.
type csrFault string

func (f csrFault) Error() string { return string(f) }

func faultf(format string, args ...any) error { return csrFault(fmt.Sprintf(format, args...)) }

// errMalformed is a CSR whose DER does not have the shape of RFC 2986.
var errMalformed = csrFault("the CSR is not a well-formed PKCS #10 request (RFC 2986)")

// OIDs read here.
var (
	oidExtensionRequest = encasn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 14}
	oidCommonName       = encasn1.ObjectIdentifier{2, 5, 4, 3}
	oidSAN              = encasn1.ObjectIdentifier{2, 5, 29, 17}
	oidKeyUsage         = encasn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUsage      = encasn1.ObjectIdentifier{2, 5, 29, 37}
	oidBasicConstraints = encasn1.ObjectIdentifier{2, 5, 29, 19}
	oidTLSFeature       = encasn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 24}
	oidServerAuth       = encasn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1}
	oidClientAuth       = encasn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}
)

// tbsOf is the certificationRequestInfo of a DER CSR, nil when der is not
// a SEQUENCE that starts with one.
func tbsOf(der []byte) []byte {
	in := cryptobyte.String(der)
	var csr, tbs cryptobyte.String
	if !in.ReadASN1(&csr, asn1.SEQUENCE) || !csr.ReadASN1Element(&tbs, asn1.SEQUENCE) {
		return nil
	}
	return tbs
}

// parseCSRInfo reads the certificationRequestInfo of RFC 2986 §4.1:
//
//	CertificationRequestInfo ::= SEQUENCE {
//	     version       INTEGER { v1(0) } (v1,...),
//	     subject       Name,
//	     subjectPKInfo SubjectPublicKeyInfo{{ PKInfoAlgorithms }},
//	     attributes    [0] Attributes{{ CRIAttributes }}
//	}
//
// Of the attributes only one extensionRequest (PKCS #9, RFC 2985 §5.4.2)
// is accepted: other attributes have no meaning in ACME.
func parseCSRInfo(tbs []byte) (*rawCSR, error) {
	in := cryptobyte.String(tbs)
	var info, subject cryptobyte.String
	var version int64
	if !in.ReadASN1(&info, asn1.SEQUENCE) || !in.Empty() ||
		!info.ReadASN1Integer(&version) ||
		!info.ReadASN1(&subject, asn1.SEQUENCE) ||
		!info.SkipASN1(asn1.SEQUENCE) {
		return nil, errMalformed
	}
	if version != 0 {
		return nil, faultf("the CSR has version %d; PKCS #10 defines only v1 (0)", version)
	}
	out := &rawCSR{}
	var err error
	if out.subject, err = parseName(subject); err != nil {
		return nil, err
	}
	var attrs cryptobyte.String
	var present bool
	if !info.ReadOptionalASN1(&attrs, &present, asn1.Tag(0).Constructed().ContextSpecific()) || !info.Empty() {
		return nil, errMalformed
	}
	seenRequest := false
	for !attrs.Empty() {
		var attr, values cryptobyte.String
		var oid encasn1.ObjectIdentifier
		if !attrs.ReadASN1(&attr, asn1.SEQUENCE) || !attr.ReadASN1ObjectIdentifier(&oid) ||
			!attr.ReadASN1(&values, asn1.SET) || !attr.Empty() {
			return nil, errMalformed
		}
		if !oid.Equal(oidExtensionRequest) {
			return nil, faultf("the CSR attribute %s is not accepted; only an extensionRequest is", oidName(oid, attributeNames))
		}
		if seenRequest {
			return nil, faultf("the CSR holds more than one extensionRequest attribute")
		}
		seenRequest = true
		var exts cryptobyte.String
		if !values.ReadASN1(&exts, asn1.SEQUENCE) {
			return nil, errMalformed
		}
		if !values.Empty() {
			return nil, faultf("the CSR's extensionRequest holds more than one set of extensions")
		}
		if out.extensions, err = parseExtensions(exts); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// parseName reads an RDNSequence (RFC 5280 §4.1.2.4), attribute by
// attribute.
func parseName(rdns cryptobyte.String) ([][]attributeValue, error) {
	var out [][]attributeValue
	for !rdns.Empty() {
		var set cryptobyte.String
		if !rdns.ReadASN1(&set, asn1.SET) || set.Empty() {
			return nil, errMalformed
		}
		var rdn []attributeValue
		for !set.Empty() {
			var atv, value cryptobyte.String
			var a attributeValue
			if !set.ReadASN1(&atv, asn1.SEQUENCE) || !atv.ReadASN1ObjectIdentifier(&a.oid) ||
				!atv.ReadAnyASN1(&value, &a.tag) || !atv.Empty() {
				return nil, errMalformed
			}
			a.value = value
			rdn = append(rdn, a)
		}
		out = append(out, rdn)
	}
	return out, nil
}

// parseExtensions reads Extensions (RFC 5280 §4.1); an extension named
// twice is refused (RFC 5280 §4.2: "A certificate MUST NOT include more
// than one instance of a particular extension"), since parsers disagree
// on which instance counts.
func parseExtensions(exts cryptobyte.String) ([]extension, error) {
	var out []extension
	for !exts.Empty() {
		var ext, value cryptobyte.String
		var e extension
		if !exts.ReadASN1(&ext, asn1.SEQUENCE) || !ext.ReadASN1ObjectIdentifier(&e.oid) ||
			!readOptionalBoolean(&ext, &e.critical) ||
			!ext.ReadASN1(&value, asn1.OCTET_STRING) || !ext.Empty() {
			return nil, errMalformed
		}
		e.value = value
		for _, prev := range out {
			if prev.oid.Equal(e.oid) {
				return nil, faultf("the CSR requests the extension %s twice", oidName(e.oid, extensionNames))
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// readOptionalBoolean reads a BOOLEAN if one comes next (an untagged
// "BOOLEAN DEFAULT FALSE"), else leaves out false.
func readOptionalBoolean(s *cryptobyte.String, out *bool) bool {
	*out = false
	if !s.PeekASN1Tag(asn1.BOOLEAN) {
		return true
	}
	return s.ReadASN1Boolean(out)
}

// parseGeneralNames reads the value of a subjectAltName extension:
// GeneralNames ::= SEQUENCE SIZE (1..MAX) OF GeneralName.
func parseGeneralNames(der []byte) ([]generalName, error) {
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, asn1.SEQUENCE) || !in.Empty() || seq.Empty() {
		return nil, faultf("the CSR's subjectAltName extension is malformed")
	}
	var out []generalName
	for !seq.Empty() {
		var v cryptobyte.String
		var tag asn1.Tag
		if !seq.ReadAnyASN1(&v, &tag) {
			return nil, faultf("the CSR's subjectAltName extension is malformed")
		}
		// GeneralName's alternatives are context-specific tags 0 to 8.
		if tag&0xc0 != 0x80 {
			return nil, faultf("the CSR's subjectAltName extension is malformed")
		}
		out = append(out, generalName{tag: int(tag & 0x1f), value: v})
	}
	return out, nil
}

// generalNameKind names a GeneralName alternative for a detail, with the
// type of an otherName (a UPN, say) when it can be read.
func generalNameKind(g generalName) string {
	names := []string{"otherName", "rfc822Name (email address)", "dNSName", "x400Address", "directoryName",
		"ediPartyName", "uniformResourceIdentifier", "iPAddress", "registeredID"}
	if g.tag >= len(names) {
		return fmt.Sprintf("GeneralName [%d]", g.tag)
	}
	if g.tag == 0 {
		// OtherName ::= SEQUENCE { type-id OBJECT IDENTIFIER, value [0] EXPLICIT ANY }
		// (implicitly tagged [0], so its contents start with the OID).
		in := cryptobyte.String(g.value)
		var oid encasn1.ObjectIdentifier
		if in.ReadASN1ObjectIdentifier(&oid) {
			return "otherName " + oidName(oid, otherNameTypes)
		}
	}
	return names[g.tag]
}

// parseIP reads an iPAddress GeneralName: 4 octets for IPv4, 16 for IPv6
// (RFC 5280 §4.2.1.6).
func parseIP(b []byte) (net.IP, bool) {
	if len(b) != net.IPv4len && len(b) != net.IPv6len {
		return nil, false
	}
	return net.IP(append([]byte(nil), b...)), true
}

// oidName is the common name of an OID when names knows it, else "OID"
// and its dotted form.
func oidName(oid encasn1.ObjectIdentifier, names map[string]string) string {
	s := oid.String()
	if n, ok := names[s]; ok {
		return n
	}
	return "OID " + s
}

// Names of OIDs a hostile or unusual CSR may carry, for details.
var (
	attributeNames = map[string]string{
		"1.2.840.113549.1.9.7":    "challengePassword",
		"1.2.840.113549.1.9.2":    "unstructuredName",
		"1.3.6.1.4.1.311.13.2.3":  "Microsoft OS version",
		"1.3.6.1.4.1.311.21.20":   "Microsoft request client info",
		"1.3.6.1.4.1.311.13.2.2":  "Microsoft enrollment CSP",
		"1.3.6.1.4.1.311.13.2.1":  "Microsoft enrollment name-value pair",
		"1.2.840.113549.1.9.14":   "extensionRequest",
		"1.3.6.1.4.1.311.2.1.14":  "Microsoft certificate extensions",
		"2.16.840.1.113730.1.13":  "Netscape comment",
		"1.2.840.113549.1.9.15":   "S/MIME capabilities",
		"1.3.6.1.4.1.311.21.7":    "Microsoft certificate template",
		"1.3.6.1.4.1.311.20.2":    "Microsoft certificate template name",
		"2.16.840.1.113733.1.9.2": "Verisign message type",
	}
	subjectAttributeNames = map[string]string{
		"2.5.4.3":                    "CN (commonName)",
		"2.5.4.4":                    "SN (surname)",
		"2.5.4.5":                    "serialNumber",
		"2.5.4.6":                    "C (countryName)",
		"2.5.4.7":                    "L (localityName)",
		"2.5.4.8":                    "ST (stateOrProvinceName)",
		"2.5.4.9":                    "street",
		"2.5.4.10":                   "O (organizationName)",
		"2.5.4.11":                   "OU (organizationalUnitName)",
		"2.5.4.12":                   "title",
		"2.5.4.17":                   "postalCode",
		"2.5.4.42":                   "givenName",
		"2.5.4.97":                   "organizationIdentifier",
		"1.2.840.113549.1.9.1":       "emailAddress",
		"0.9.2342.19200300.100.1.1":  "UID",
		"0.9.2342.19200300.100.1.25": "DC (domainComponent)",
		"1.3.6.1.4.1.311.60.2.1.3":   "jurisdictionCountryName",
		"2.5.4.15":                   "businessCategory",
	}
	extensionNames = map[string]string{
		"2.5.29.9":                "subjectDirectoryAttributes",
		"2.5.29.14":               "subjectKeyIdentifier",
		"2.5.29.15":               "keyUsage",
		"2.5.29.17":               "subjectAltName",
		"2.5.29.18":               "issuerAltName",
		"2.5.29.19":               "basicConstraints",
		"2.5.29.30":               "nameConstraints",
		"2.5.29.31":               "cRLDistributionPoints",
		"2.5.29.32":               "certificatePolicies",
		"2.5.29.33":               "policyMappings",
		"2.5.29.35":               "authorityKeyIdentifier",
		"2.5.29.36":               "policyConstraints",
		"2.5.29.37":               "extKeyUsage",
		"2.5.29.54":               "inhibitAnyPolicy",
		"1.3.6.1.5.5.7.1.1":       "authorityInfoAccess",
		"1.3.6.1.5.5.7.1.11":      "subjectInfoAccess",
		"1.3.6.1.5.5.7.1.24":      "TLS feature (OCSP must-staple)",
		"1.3.6.1.5.5.7.1.31":      "acmeIdentifier",
		"1.3.6.1.4.1.11129.2.4.2": "CT signed certificate timestamps",
		"1.3.6.1.4.1.11129.2.4.3": "CT precertificate poison",
		"1.3.6.1.4.1.311.20.2":    "Microsoft certificate template name",
		"1.3.6.1.4.1.311.21.7":    "Microsoft certificate template",
		"1.3.6.1.4.1.311.21.10":   "Microsoft application policies",
		"2.16.840.1.113730.1.1":   "Netscape certificate type",
	}
	extKeyUsageNames = map[string]string{
		"2.5.29.37.0":             "anyExtendedKeyUsage",
		"1.3.6.1.5.5.7.3.1":       "serverAuth",
		"1.3.6.1.5.5.7.3.2":       "clientAuth",
		"1.3.6.1.5.5.7.3.3":       "codeSigning",
		"1.3.6.1.5.5.7.3.4":       "emailProtection",
		"1.3.6.1.5.5.7.3.5":       "ipsecEndSystem",
		"1.3.6.1.5.5.7.3.6":       "ipsecTunnel",
		"1.3.6.1.5.5.7.3.7":       "ipsecUser",
		"1.3.6.1.5.5.7.3.8":       "timeStamping",
		"1.3.6.1.5.5.7.3.9":       "OCSPSigning",
		"1.3.6.1.5.5.7.3.17":      "ipsecIKE",
		"1.3.6.1.5.2.3.4":         "Kerberos PKINIT client",
		"1.3.6.1.5.2.3.5":         "Kerberos PKINIT KDC",
		"1.3.6.1.4.1.311.20.2.2":  "smartcardLogon",
		"1.3.6.1.4.1.311.10.3.4":  "Microsoft encrypting file system",
		"1.3.6.1.4.1.311.10.3.12": "Microsoft document signing",
		"1.3.6.1.4.1.311.10.3.13": "Microsoft lifetime signing",
		"1.3.6.1.4.1.311.2.1.21":  "Microsoft individual code signing",
		"1.3.6.1.4.1.311.2.1.22":  "Microsoft commercial code signing",
	}
	otherNameTypes = map[string]string{
		"1.3.6.1.4.1.311.20.2.3": "UPN (Microsoft user principal name)",
		"1.3.6.1.4.1.311.25.1":   "Microsoft GUID",
		"1.3.6.1.5.5.7.8.3":      "permanentIdentifier",
		"1.3.6.1.5.5.7.8.4":      "hardwareModuleName",
		"1.3.6.1.5.5.7.8.9":      "SmtpUTF8Mailbox",
		"1.3.6.1.5.5.7.8.7":      "SRVName",
	}
)
