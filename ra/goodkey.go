package ra

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"math/big"
	"slices"
	"sync"

	"github.com/titanous/rocacheck"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/policy"
)

// Limits on certificate keys.
const (
	// MinRSABits and MaxRSABits bound an RSA modulus.
	MinRSABits = 2048
	MaxRSABits = 8192
	// minRSAExponent is the smallest public exponent accepted: CA/B
	// Baseline Requirements §6.1.6, "The CA SHALL confirm that the value
	// of the public exponent is an odd number equal to 3 or more.
	// Additionally, the public exponent SHOULD be in the range between
	// 2^16 + 1 and 2^256 - 1."
	minRSAExponent = 1<<16 + 1
	// FermatRounds is how many steps of Fermat's factorisation are tried
	// on an RSA modulus. Baseline Requirements §6.1.1.3 asks for at least
	// 100; Boulder's goodkey uses 110 for a margin, and so do we.
	FermatRounds = 110
	// smallPrimeBound: BR §6.1.6, the modulus "SHOULD also have the
	// following characteristics: an odd number, not the power of a prime,
	// and have no factors smaller than 752".
	smallPrimeBound = 752
)

// keyRefused is the problem type of a refused certificate key. RFC 8555
// §6.7 defines badPublicKey for the key that signed the JWS and gives
// "the CSR is unacceptable (e.g., due to a short key)" as badCSR's
// example; Boulder's csr.VerifyCSR answers "invalid public key in CSR"
// with badCSR too. So a CSR's key is a badCSR, whatever is wrong with it.
const keyRefused = acmeerr.BadCSR

// CheckKey refuses certificate keys acmebridge does not issue for (weak
// keys: short RSA, Fermat-factorable, ROCA; docs/security.md), as Boulder's
// goodkey does:
//
//   - RSA: 2048 to 8192 bits, a whole number of bytes (BR §6.1.5); an odd
//     public exponent of at least 65537 (BR §6.1.6); no prime factor below
//     752 (BR §6.1.6, which also rules out an even modulus); not made by
//     the Infineon library ROCA breaks (CVE-2017-15361); not factored by
//     FermatRounds steps of Fermat's method, which finds primes chosen too
//     close together (BR §6.1.1.3).
//   - ECDSA: a point on P-256 or P-384. Both curves have prime order, so a
//     point on the curve that is not the identity has the full order
//     (NIST SP 800-56A §5.6.2.3.3's partial validation is complete here).
//   - Ed25519.
//
// Every refusal is a badCSR naming the fault.
func CheckKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return checkRSA(k)
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return acmeerr.New(keyRefused, "ECDSA keys must be on P-256 or P-384")
		}
		// ECDH checks that the point lies on the curve and is not the
		// point at infinity.
		if _, err := k.ECDH(); err != nil {
			return acmeerr.New(keyRefused, "the ECDSA public key is not a valid point of %s", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return acmeerr.New(keyRefused, "the Ed25519 public key is not %d bytes", ed25519.PublicKeySize)
		}
	default:
		return acmeerr.New(keyRefused, "unsupported CSR key type")
	}
	return nil
}

// checkRSA is CheckKey for RSA keys.
func checkRSA(k *rsa.PublicKey) error {
	if k.N == nil || k.N.Sign() <= 0 {
		return acmeerr.New(keyRefused, "the RSA modulus is not a positive number")
	}
	n := k.N.BitLen()
	if n < MinRSABits || n > MaxRSABits {
		return acmeerr.New(keyRefused, "RSA keys must be %d to %d bits, not %d", MinRSABits, MaxRSABits, n)
	}
	if n%8 != 0 {
		return acmeerr.New(keyRefused, "the RSA modulus of %d bits is not a whole number of bytes (Baseline Requirements §6.1.5)", n)
	}
	if k.E%2 == 0 || k.E < minRSAExponent {
		return acmeerr.New(keyRefused, "the RSA public exponent %d is refused: it must be odd and at least %d (Baseline Requirements §6.1.6)",
			k.E, minRSAExponent)
	}
	if hasSmallFactor(k.N) {
		return acmeerr.New(keyRefused, "the RSA modulus has a prime factor below %d (Baseline Requirements §6.1.6)", smallPrimeBound)
	}
	if rocacheck.IsWeak(k) {
		return acmeerr.New(keyRefused, "the RSA key was made by Infineon's vulnerable key generator (ROCA, CVE-2017-15361): its private key can be computed")
	}
	if fermatFactors(k.N, FermatRounds) {
		return acmeerr.New(keyRefused, "the RSA modulus is factored by Fermat's method: its two primes are too close together (Baseline Requirements §6.1.1.3)")
	}
	return nil
}

// KeyAllowed applies a policy rule's key constraints (types and smallest
// RSA size) to a certificate key.
func KeyAllowed(pub crypto.PublicKey, dec *policy.Decision) error {
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
		return acmeerr.New(keyRefused, "rule %s allows %v keys, not %s", dec.Rule, dec.KeyTypes, typ)
	}
	if typ == "rsa" && bits < dec.MinRSABits {
		return acmeerr.New(keyRefused, "rule %s requires RSA keys of at least %d bits, not %d", dec.Rule, dec.MinRSABits, bits)
	}
	return nil
}

// smallPrimesProduct is the product of the primes below smallPrimeBound.
var smallPrimesProduct = sync.OnceValue(func() *big.Int {
	p := big.NewInt(1)
	for i := int64(2); i < smallPrimeBound; i++ {
		if big.NewInt(i).ProbablyPrime(0) {
			p.Mul(p, big.NewInt(i))
		}
	}
	return p
})

// hasSmallFactor reports whether n shares a factor with the primes below
// smallPrimeBound (one GCD instead of 132 divisions).
func hasSmallFactor(n *big.Int) bool {
	return new(big.Int).GCD(nil, nil, n, smallPrimesProduct()).Cmp(big.NewInt(1)) != 0
}

// fermatFactors reports whether Fermat's method factors n within rounds
// steps. An odd n = p·q is a difference of squares a² − b² with
// a = (p+q)/2 and b = (p−q)/2; starting from a = ⌈√n⌉, each step tests
// whether a² − n is a perfect square. When p and q agree in their upper
// half of bits, a is within a few steps of √n (the method is Fermat's;
// Boulder's goodkey.checkPrimeFactorsTooClose applies it the same way).
func fermatFactors(n *big.Int, rounds int) bool {
	a := new(big.Int).Sqrt(n)
	b2 := new(big.Int).Mul(a, a)
	if b2.Cmp(n) == 0 {
		return true // n is a square: p = q
	}
	a.Add(a, big.NewInt(1))
	b2.Mul(a, a).Sub(b2, n) // a² − n
	step := new(big.Int)
	for range rounds {
		if isSquare(b2) {
			return true
		}
		// (a+1)² − n = (a² − n) + 2a + 1
		step.Lsh(a, 1).Add(step, big.NewInt(1))
		b2.Add(b2, step)
		a.Add(a, big.NewInt(1))
	}
	return false
}

// squareMod marks the squares modulo 64, 63, 65 and 11: a number that is
// not a square modulo one of them is not a square, which spares the
// square root for all but about one candidate in a hundred.
var squareMod = sync.OnceValue(func() map[int64][]bool {
	out := map[int64][]bool{}
	for _, m := range []int64{64, 63, 65, 11} {
		t := make([]bool, m)
		for i := range m {
			t[i*i%m] = true
		}
		out[m] = t
	}
	return out
})

// isSquare reports whether x ≥ 0 is a perfect square.
func isSquare(x *big.Int) bool {
	sq := squareMod()
	r := new(big.Int)
	for _, m := range []int64{64, 63, 65, 11} {
		if !sq[m][r.Mod(x, big.NewInt(m)).Int64()] {
			return false
		}
	}
	s := new(big.Int).Sqrt(x)
	return s.Mul(s, s).Cmp(x) == 0
}
