// Package core is acmebridge's one vocabulary, shared by every other
// package: the identifier type, the challenge types, the problem
// namespace, revocation reasons, serial numbers and the leaf of a chain.
// It imports nothing of acmebridge, so the store, the policy, the upstreams,
// the domain core and the transport all speak it.
package core

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
)

// Identifier is an ACME identifier (RFC 8555 §9.7.7; "ip" from RFC 8738).
type Identifier struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Identifier types.
const (
	// DNS is a domain name, possibly a wildcard "*.base" (RFC 8555 §7.1.3).
	DNS = "dns"
	// IP is an IPv4 or IPv6 address in canonical text form (RFC 8738 §3).
	IP = "ip"
)

// Challenge types (RFC 8555 §8.3, §8.4; RFC 8737).
const (
	ChallengeHTTP01    = "http-01"
	ChallengeDNS01     = "dns-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
)

// ChallengeTypes are every challenge type acmebridge validates, in the
// order offered.
var ChallengeTypes = []string{ChallengeHTTP01, ChallengeDNS01, ChallengeTLSALPN01}

// ChallengesFor are the challenge types that can prove control of an
// identifier: dns-01 cannot prove an IP address (RFC 8738 §7: "The
// "dns-01" challenge ... MUST NOT be used to validate IP identifiers"), and
// only dns-01 can prove a wildcard (RFC 8555 §7.1.3, §8.3).
func ChallengesFor(id Identifier, wildcard bool) []string {
	switch {
	case id.Type == IP:
		return []string{ChallengeHTTP01, ChallengeTLSALPN01}
	case wildcard:
		return []string{ChallengeDNS01}
	default:
		return ChallengeTypes
	}
}

// ErrorNS is the namespace of ACME problem types (RFC 8555 §6.7).
const ErrorNS = "urn:ietf:params:acme:error:"

// SerialHex is the one form of a certificate's serial number acmebridge
// stores, logs and shows: lower-case hex of the big-endian bytes.
func SerialHex(c *x509.Certificate) string { return hex.EncodeToString(c.SerialNumber.Bytes()) }

// Revocation reason codes (RFC 5280 §5.3.1) a revocation request may give.
const (
	ReasonUnspecified          = 0
	ReasonKeyCompromise        = 1
	ReasonCACompromise         = 2
	ReasonAffiliationChanged   = 3
	ReasonSuperseded           = 4
	ReasonCessationOfOperation = 5
	ReasonCertificateHold      = 6
	ReasonPrivilegeWithdrawn   = 9
	ReasonAACompromise         = 10
)

// ErrBadReason is returned by CheckRevocationReason.
var ErrBadReason = errors.New("reason is not an RFC 5280 reason code a revocation may give (0-6, 9, 10)")

// CheckRevocationReason accepts the RFC 5280 §5.3.1 reason codes a
// revocation may give: 7 is unused, and 8 (removeFromCRL) undoes a hold
// rather than revoking (RFC 8555 §7.6: "reason (optional, int): One of the
// revocation reasonCodes defined in Section 5.3.1 of [RFC5280] to be used
// when generating OCSP responses and CRLs").
func CheckRevocationReason(code int) error {
	if code < 0 || code > 10 || code == 7 || code == 8 {
		return fmt.Errorf("%w: %d", ErrBadReason, code)
	}
	return nil
}

// LeafFromPEM returns the first certificate of a PEM chain: the leaf.
func LeafFromPEM(chain []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(chain)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("chain holds no PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

// RandomID returns 128 random bits, base64url without padding: the IDs of
// records and the tokens of challenges (RFC 8555 §8: "token ... MUST have
// at least 128 bits of entropy"). It never starts with '-' or '_', so an
// ID is never mistaken for a command-line flag.
func RandomID() string {
	b := make([]byte, 16)
	for {
		_, _ = rand.Read(b)
		if id := base64.RawURLEncoding.EncodeToString(b); id[0] != '-' && id[0] != '_' {
			return id
		}
	}
}
