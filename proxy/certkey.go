package proxy

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"

	"github.com/acmebridge/acmebridge/acmeerr"
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
