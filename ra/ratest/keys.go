// Package ratest makes the inputs the certificate-content tests share:
// weak RSA keys that can still sign (Go's crypto/rsa refuses to sign with
// them), hostile CSRs, and CSRs shaped like real ACME clients'. It is used
// by the tests of ra, proxy and the end-to-end suite; nothing else may
// import it.
package ratest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"io"
	"math/big"
	"testing"

	"github.com/stretchr/testify/require"
)

// WeakRSA is an RSA key Go's crypto/rsa will not sign with (its primes are
// too close together, say); it signs PKCS #1 v1.5 with SHA-256 by plain
// modular exponentiation, which is all a test CSR needs.
type WeakRSA struct {
	// Key is the public key.
	Key *rsa.PublicKey
	// P and Q are its primes.
	P, Q *big.Int
	d    *big.Int
}

// Public implements crypto.Signer.
func (k *WeakRSA) Public() crypto.PublicKey { return k.Key }

// sha256Prefix is the DER DigestInfo header of a SHA-256 digest (RFC 8017
// §9.2, note 1).
var sha256Prefix = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

// Sign implements crypto.Signer: RSASSA-PKCS1-v1_5 (RFC 8017 §8.2.1) over
// a SHA-256 digest.
func (k *WeakRSA) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts.HashFunc() != crypto.SHA256 || len(digest) != sha256.Size {
		return nil, errors.New("ratest: WeakRSA signs SHA-256 digests only")
	}
	size := (k.Key.N.BitLen() + 7) / 8
	t := append(append([]byte{}, sha256Prefix...), digest...)
	em := make([]byte, size)
	em[1] = 0x01
	for i := 2; i < size-len(t)-1; i++ {
		em[i] = 0xff
	}
	copy(em[size-len(t):], t)
	s := new(big.Int).Exp(new(big.Int).SetBytes(em), k.d, k.Key.N)
	return s.FillBytes(make([]byte, size)), nil
}

// newWeakRSA completes a key from its primes; nil when 65537 is not
// invertible modulo φ(n) (the caller picks other primes).
func newWeakRSA(p, q *big.Int) *WeakRSA {
	one := big.NewInt(1)
	phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
	d := new(big.Int).ModInverse(big.NewInt(65537), phi)
	if d == nil {
		return nil
	}
	return &WeakRSA{Key: &rsa.PublicKey{N: new(big.Int).Mul(p, q), E: 65537}, P: p, Q: q, d: d}
}

// FermatKey is a 2048-bit RSA key whose primes are consecutive primes
// near a random 1024-bit number: Fermat's method factors its modulus in
// one step.
func FermatKey(t testing.TB) *WeakRSA {
	t.Helper()
	for {
		x, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 1022))
		require.NoError(t, err)
		x.SetBit(x, 1023, 1).SetBit(x, 1022, 1).SetBit(x, 0, 1)
		p := nextPrime(x)
		q := nextPrime(new(big.Int).Add(p, big.NewInt(2)))
		if k := newWeakRSA(p, q); k != nil && k.Key.N.BitLen() == 2048 {
			return k
		}
	}
}

// nextPrime is the first probable prime ≥ x (x odd).
func nextPrime(x *big.Int) *big.Int {
	p := new(big.Int).Set(x)
	for !p.ProbablyPrime(20) {
		p.Add(p, big.NewInt(2))
	}
	return p
}

// rocaPrimes are the small primes of the ROCA fingerprint (the relations
// table of github.com/crocs-muni/roca, used by titanous/rocacheck).
var rocaPrimes = []int64{11, 13, 17, 19, 37, 53, 61, 71, 73, 79, 97, 103, 107, 109, 127, 151, 157}

// ROCAKey is a 2048-bit RSA key with the structure of the keys Infineon's
// library made (CVE-2017-15361): each prime is k·M + 65537^a mod M, where
// M is the product of the fingerprint's small primes, so the modulus is a
// power of 65537 modulo each of them — the fingerprint rocacheck tests.
// Its primes are otherwise random, so only the ROCA check refuses it.
func ROCAKey(t testing.TB) *WeakRSA {
	t.Helper()
	m := big.NewInt(1)
	for _, r := range rocaPrimes {
		m.Mul(m, big.NewInt(r))
	}
	prime := func() *big.Int {
		lo := new(big.Int).Lsh(big.NewInt(3), 1022) // top two bits set: p·q has 2048 bits
		hi := new(big.Int).Lsh(big.NewInt(1), 1024)
		for {
			a, err := rand.Int(rand.Reader, m)
			require.NoError(t, err)
			r := new(big.Int).Exp(big.NewInt(65537), a, m)
			span := new(big.Int).Div(new(big.Int).Sub(hi, lo), m)
			k, err := rand.Int(rand.Reader, span)
			require.NoError(t, err)
			k.Add(k, new(big.Int).Div(lo, m)).Add(k, big.NewInt(1))
			p := k.Mul(k, m).Add(k, r)
			if p.Cmp(hi) < 0 && p.ProbablyPrime(20) {
				return p
			}
		}
	}
	for {
		if k := newWeakRSA(prime(), prime()); k != nil && k.Key.N.BitLen() == 2048 {
			return k
		}
	}
}
