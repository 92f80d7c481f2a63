package va

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/acmebridge/acmebridge/acmeerr"
)

// ACMETLS1Protocol is the ALPN protocol of tls-alpn-01 (RFC 8737 §6.2).
const ACMETLS1Protocol = "acme-tls/1"

var (
	// idPeACMEIdentifier is RFC 8737 §3: "id-pe-acmeIdentifier OBJECT
	// IDENTIFIER ::= { id-pe 31 }".
	idPeACMEIdentifier = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}
	// idCeSubjectAltName is RFC 5280 §4.2.1.6.
	idCeSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
)

// GeneralName tags of the names tls-alpn-01 accepts (RFC 5280 §4.2.1.6).
const (
	tagDNSName   = 2
	tagIPAddress = 7
)

// validateTLSALPN01 performs RFC 8737 §3 (and RFC 8738 §6 for IP addresses).
func (v *Validator) validateTLSALPN01(ctx context.Context, t identTarget, keyAuth string) error {
	// RFC 8737 §3: "1. The ACME server computes the expected SHA-256 digest
	// of the key authorization."
	digest := keyAuthDigest(keyAuth)

	sni := t.name
	if t.isIP() {
		// RFC 8738 §6: "As [RFC6066] does not permit IP addresses to be
		// used in the SNI extension HostName field, the server MUST instead
		// use the IN-ADDR.ARPA [RFC1034] or IP6.ARPA [RFC3596] reverse
		// mapping of the IP address as the HostName field value instead of
		// the IP address string representation itself."
		arpa, err := dns.ReverseAddr(t.ip.String())
		if err != nil {
			return acmeerr.Wrap(acmeerr.Malformed, err, "tls-alpn-01: no reverse name for %s", t.ip)
		}
		sni = strings.TrimSuffix(arpa, ".")
	}

	// RFC 8737 §3: "2. The ACME server resolves the domain name being
	// validated and chooses one of the IP addresses returned for validation
	// (the server MAY validate against multiple addresses if more than one
	// is returned)."
	// Addresses are tried in order until one accepts a connection.
	addrs, aerr := v.resolveHost(ctx, t.String())
	if aerr != nil {
		return prefixed(TypeTLSALPN01, t.String(), aerr)
	}

	// RFC 8737 §3: "3. The ACME server initiates a TLS connection to the
	// chosen IP address. This connection MUST use TCP port 443. The ACME
	// server MUST provide an ALPN extension with the single protocol name
	// "acme-tls/1" and an SNI extension containing only the domain name
	// being validated during the TLS handshake."
	conn, err := v.dialAddrs(ctx, "tcp", addrs, uint16(v.tlsALPNPort)) //nolint:gosec // G115: New keeps the port in 1-65535
	if err != nil {
		return netError(ctx, TypeTLSALPN01, "connecting to "+t.String(), err)
	}
	defer func() { _ = conn.Close() }()
	cfg := &tls.Config{
		ServerName: sni,
		NextProtos: []string{ACMETLS1Protocol},
		// RFC 8737 §4: "While this protocol uses X.509 certificates, it
		// does not use the authentication method described in [RFC5280]
		// and, as such, does not require a valid signature on the provided
		// certificate".
		InsecureSkipVerify: true, //nolint:gosec // checked below instead
		// RFC 8737 §4: "ACME servers that implement acme-tls/1 MUST only
		// negotiate TLS 1.2 [RFC5246] or higher when connecting to clients
		// for validation."
		MinVersion: tls.VersionTLS12,
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		if ctx.Err() != nil {
			return netError(ctx, TypeTLSALPN01, "handshake with "+t.String(), err)
		}
		return acmeerr.Wrap(acmeerr.TLS, err, "tls-alpn-01: TLS handshake with %s failed%s", t, alertText(err))
	}
	// RFC 8737 §4: "Once the handshake is completed, the client MUST NOT
	// exchange any further data with the server and MUST immediately close
	// the connection." (The deferred Close does.)
	return checkALPNState(tc.ConnectionState(), t, digest[:])
}

// checkALPNState checks a completed acme-tls/1 handshake, RFC 8737 §3 step 4.
func checkALPNState(cs tls.ConnectionState, t identTarget, digest []byte) error {
	// RFC 8737 §3: "4. The ACME server verifies that during the TLS
	// handshake the application-layer protocol "acme-tls/1" was successfully
	// negotiated (and that the ALPN extension contained only the value
	// "acme-tls/1")".
	if cs.NegotiatedProtocol != ACMETLS1Protocol {
		return acmeerr.New(acmeerr.TLS, "tls-alpn-01: %s did not negotiate the %s protocol", t, ACMETLS1Protocol)
	}
	// RFC 8737 §3: "The client prepares for validation by constructing a
	// self-signed certificate that MUST contain an acmeIdentifier extension
	// and a subjectAlternativeName extension". A self-signed certificate
	// needs no chain, so anything but exactly one certificate is not the
	// challenge's.
	switch n := len(cs.PeerCertificates); {
	case n == 0:
		return acmeerr.New(acmeerr.TLS, "tls-alpn-01: %s presented no certificate", t)
	case n > 1:
		return acmeerr.New(acmeerr.TLS, "tls-alpn-01: %s presented %d certificates, expected one self-signed certificate", t, n)
	}
	return checkALPNCert(cs.PeerCertificates[0], t, digest)
}

// checkALPNCert checks the challenge certificate's subjectAltName and
// acmeIdentifier extensions.
func checkALPNCert(cert *x509.Certificate, t identTarget, digest []byte) error {
	// RFC 8737 §3, step 4: "and that the certificate returned contains: a
	// subjectAltName extension containing the dNSName being validated and
	// no other entries". RFC 8738 §6: "the subjectAltName extension in the
	// validation certificate MUST contain a single iPAddress that matches
	// the address being validated."
	if err := checkSAN(cert, t); err != nil {
		return err
	}

	// RFC 8737 §3, step 4: "a critical acmeIdentifier extension containing
	// the expected SHA-256 digest computed in step 1".
	var ext *[]byte
	for i := range cert.Extensions {
		e := &cert.Extensions[i]
		if !e.Id.Equal(idPeACMEIdentifier) {
			continue
		}
		if ext != nil {
			return acmeerr.New(acmeerr.TLS, "tls-alpn-01: certificate for %s has more than one acmeIdentifier extension", t)
		}
		// RFC 8737 §3: "The acmeIdentifier extension MUST be critical so
		// that the certificate isn't inadvertently used by non-ACME
		// software."
		if !e.Critical {
			return acmeerr.New(acmeerr.TLS, "tls-alpn-01: acmeIdentifier extension in the certificate for %s is not critical", t)
		}
		ext = &e.Value
	}
	if ext == nil {
		return acmeerr.New(acmeerr.TLS, "tls-alpn-01: certificate for %s has no acmeIdentifier extension", t)
	}
	// RFC 8737 §3: "Authorization ::= OCTET STRING (SIZE (32))" and "The
	// extnValue of the id-pe-acmeIdentifier extension is the ASN.1 DER
	// encoding [X.690] of the Authorization structure".
	var got []byte
	rest, err := asn1.Unmarshal(*ext, &got)
	if err != nil || len(rest) != 0 || len(got) != len(digest) {
		return acmeerr.New(acmeerr.TLS, "tls-alpn-01: acmeIdentifier extension in the certificate for %s is not a 32-byte OCTET STRING", t)
	}
	// A well-formed certificate for another key authorization: the response
	// does not match this challenge (RFC 8555 §6.7 "incorrectResponse").
	if subtle.ConstantTimeCompare(got, digest) != 1 {
		return acmeerr.New(acmeerr.IncorrectResponse,
			"tls-alpn-01: acmeIdentifier extension in the certificate for %s does not hold the expected key authorization digest", t)
	}
	return nil
}

// checkSAN requires exactly one subjectAltName extension holding exactly one
// GeneralName equal to the identifier. The raw extension is parsed because
// crypto/x509 drops GeneralName types it does not know, which would hide
// "other entries".
func checkSAN(cert *x509.Certificate, t identTarget) error {
	var raw []byte
	for _, e := range cert.Extensions {
		if e.Id.Equal(idCeSubjectAltName) {
			if raw != nil {
				return acmeerr.New(acmeerr.TLS, "tls-alpn-01: certificate for %s has more than one subjectAltName extension", t)
			}
			raw = e.Value
		}
	}
	if raw == nil {
		return acmeerr.New(acmeerr.TLS, "tls-alpn-01: certificate for %s has no subjectAltName extension", t)
	}
	var names []asn1.RawValue
	if rest, err := asn1.Unmarshal(raw, &names); err != nil || len(rest) != 0 {
		return acmeerr.New(acmeerr.TLS, "tls-alpn-01: certificate for %s has a malformed subjectAltName extension", t)
	}
	if len(names) != 1 {
		return acmeerr.New(acmeerr.TLS,
			"tls-alpn-01: certificate for %s must name exactly one subjectAltName, it names %d", t, len(names))
	}
	n := names[0]
	if n.Class != asn1.ClassContextSpecific || n.IsCompound {
		return acmeerr.New(acmeerr.TLS, "tls-alpn-01: subjectAltName of the certificate for %s is not a %s", t, sanKindName(t))
	}
	if t.isIP() {
		a, ok := netip.AddrFromSlice(n.Bytes)
		if n.Tag != tagIPAddress || !ok || a.Unmap() != t.ip.Unmap() {
			return acmeerr.New(acmeerr.TLS, "tls-alpn-01: subjectAltName of the certificate for %s is not the iPAddress %s", t, t)
		}
		return nil
	}
	// RFC 8737 §3: "The comparison of dNSNames MUST be case insensitive
	// [RFC4343]."
	if n.Tag != tagDNSName || !strings.EqualFold(strings.TrimSuffix(string(n.Bytes), "."), t.name) ||
		bytes.ContainsFunc(n.Bytes, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return acmeerr.New(acmeerr.TLS, "tls-alpn-01: subjectAltName of the certificate for %s is not the dNSName %s", t, t)
	}
	return nil
}

func sanKindName(t identTarget) string {
	if t.isIP() {
		return "iPAddress"
	}
	return "dNSName"
}

// alertText names a TLS alert the peer sent. crypto/tls reports one as a
// *net.OpError with Op "remote error" whose Err is its own alert type, named
// from a fixed table; so no free text of the peer reaches the detail.
func alertText(err error) string {
	var alert tls.AlertError
	if errors.As(err, &alert) {
		return ": " + alert.Error()
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" && op.Err != nil {
		return ": peer sent alert " + sanitize(strings.TrimPrefix(op.Err.Error(), "tls: "))
	}
	return ""
}
