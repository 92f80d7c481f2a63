package proxy

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"slices"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/policy"
)

// checkCertKey accepts the certificate key types acmebridge issues for:
// RSA 2048–8192 bits, ECDSA P-256 and P-384, Ed25519.
func checkCertKey(pub any) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < 2048 || n > 8192 {
			return acmeerr.New(acmeerr.BadCSR, "RSA keys must be 2048 to 8192 bits, not %d", n)
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return acmeerr.New(acmeerr.BadCSR, "ECDSA keys must be on P-256 or P-384")
		}
	case ed25519.PublicKey:
	default:
		return acmeerr.New(acmeerr.BadCSR, "unsupported CSR key type")
	}
	return nil
}

// keyAllowed applies the rule's key constraints (types and RSA size).
func keyAllowed(pub any, dec *policy.Decision) error {
	typ, bits := "", 0
	switch k := pub.(type) {
	case *rsa.PublicKey:
		typ, bits = "rsa", k.N.BitLen()
	case *ecdsa.PublicKey:
		typ = "ecdsa"
	case ed25519.PublicKey:
		typ = "ed25519"
	}
	if !slices.Contains(dec.KeyTypes, typ) {
		return acmeerr.New(acmeerr.BadCSR, "rule %s allows %v keys, not %s", dec.Rule, dec.KeyTypes, typ)
	}
	if typ == "rsa" && bits < dec.MinRSABits {
		return acmeerr.New(acmeerr.BadCSR, "rule %s requires RSA keys of at least %d bits, not %d", dec.Rule, dec.MinRSABits, bits)
	}
	return nil
}
