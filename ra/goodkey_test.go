package ra

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/policy"
	"github.com/acmebridge/acmebridge/ra/ratest"
)

// rocaVector is a public key from Infineon's vulnerable library, one of
// the ROCA test vectors of github.com/titanous/rocacheck (from the CRoCS
// team's published samples).
const rocaVector = `-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAlze9c7qGdjDLVR/ntk+4
ZkfMcYsAnmfTFHfe3Xv7jRQqPCXCULtr0y0jG3aRJmEenoXO9uDveqr43gFB9yvA
dLEhu0aJqpB7lNZ+yXsvfVp/96dkSN8oWYL/dd9Z7GQOvVniHUY3Xsd7zdw2eYOy
HSXhhA2Ttwnj3c1jEYfC0y9q1cU99aL0ogGDqolcOvlkJu+mGb+6+WyboFa1gwRu
kYxBHZWKiHCt/eihvXsPTzTlXmTXWdGJtA1xZDnCBWuZ90b5R0agXVIESTl0cCyH
aQM/tLZmktJIU+Eu7ALBXemPg9kh3SCnYd3/YvDGCtYSXOWthHwlP5CImRBcQaNn
cQIDAQAB
-----END PUBLIC KEY-----`

func TestCheckKey(t *testing.T) {
	good, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	require.NoError(t, CheckKey(&good.PublicKey))
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	require.NoError(t, CheckKey(&p256.PublicKey))
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	require.NoError(t, CheckKey(&p384.PublicKey))
	ed, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	require.NoError(t, CheckKey(ed))

	blk, _ := pem.Decode([]byte(rocaVector))
	roca, err := x509.ParsePKIXPublicKey(blk.Bytes)
	require.NoError(t, err)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	require.NoError(t, err)
	n := func(k *rsa.PublicKey) *big.Int { return new(big.Int).Set(k.N) }
	even := n(&good.PublicKey)
	even.SetBit(even, 0, 0)
	for _, tc := range []struct {
		name   string
		key    any
		detail string
	}{
		{"Fermat-factorable RSA", ratest.FermatKey(t).Key, "Fermat"},
		{"ROCA test vector", roca, "ROCA"},
		{"ROCA-structured RSA", ratest.ROCAKey(t).Key, "ROCA"},
		{"RSA 1024", &small.PublicKey, "2048 to 8192 bits"},
		{"RSA 2047 bits", &rsa.PublicKey{N: new(big.Int).Rsh(n(&good.PublicKey), 1), E: 65537}, "2048 to 8192 bits"},
		{"RSA 2058 bits", &rsa.PublicKey{N: new(big.Int).Lsh(n(&good.PublicKey), 10).Add(new(big.Int).Lsh(n(&good.PublicKey), 10), big.NewInt(1)), E: 65537}, "whole number of bytes"},
		{"RSA exponent 3", &rsa.PublicKey{N: good.N, E: 3}, "exponent 3"},
		{"RSA even exponent", &rsa.PublicKey{N: good.N, E: 65538}, "exponent 65538"},
		{"RSA even modulus", &rsa.PublicKey{N: even, E: 65537}, "prime factor below 752"},
		{"RSA modulus divisible by 751", &rsa.PublicKey{N: multipleOf751(), E: 65537}, "prime factor below 752"},
		{"ECDSA P-521", &p521.PublicKey, "P-256 or P-384"},
		{"ECDSA point off the curve", &ecdsa.PublicKey{Curve: elliptic.P256(), X: big.NewInt(1), Y: big.NewInt(1)}, "not a valid point"}, //nolint:staticcheck // an invalid point needs the raw coordinates
		{"Ed25519 of 31 bytes", ed25519.PublicKey(make([]byte, 31)), "32 bytes"},
		{"not a key", "key", "unsupported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireBadCSR(t, CheckKey(tc.key), tc.detail)
		})
	}
}

// TestFermat: the factoring step finds close primes and leaves random
// ones alone; the ROCA-structured key has distant primes.
func TestFermat(t *testing.T) {
	k := ratest.FermatKey(t)
	require.True(t, fermatFactors(k.Key.N, 1))
	require.False(t, fermatFactors(ratest.ROCAKey(t).Key.N, FermatRounds))
	good, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	require.False(t, fermatFactors(good.N, FermatRounds))
	// Primes about a thousand steps apart in a: found only with enough
	// rounds.
	p := k.P
	q := new(big.Int).Add(p, new(big.Int).Lsh(big.NewInt(1), 518))
	for !q.ProbablyPrime(20) {
		q.Add(q, big.NewInt(2))
	}
	n := new(big.Int).Mul(p, q)
	require.True(t, fermatFactors(n, 1<<14))
	require.False(t, fermatFactors(n, 1))
	for _, x := range []int64{0, 1, 4, 9, 144, 1 << 40} {
		require.True(t, isSquare(big.NewInt(x)), "%d", x)
	}
	for _, x := range []int64{2, 3, 5, 143, 1<<40 + 1} {
		require.False(t, isSquare(big.NewInt(x)), "%d", x)
	}
}

// TestWeakKeysSign: the weak test keys make CSRs that verify, so finalize
// reaches the key check.
func TestWeakKeysSign(t *testing.T) {
	for _, k := range []*ratest.WeakRSA{ratest.FermatKey(t), ratest.ROCAKey(t)} {
		der := ratest.CSR(t, k, &x509.CertificateRequest{DNSNames: []string{"a.example"}})
		c, err := DecideContent(der, ids("a.example"))
		require.NoError(t, err)
		require.Equal(t, k.Key.N, c.CSR.PublicKey.(*rsa.PublicKey).N)
		_, err = CheckCSR(der, ids("a.example"), nil)
		require.Error(t, err)
	}
}

func TestKeyAllowed(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	dec := &policy.Decision{Rule: "r", KeyTypes: []string{"rsa"}, MinRSABits: 3072}
	requireBadCSR(t, KeyAllowed(&ec.PublicKey, dec), "allows [rsa] keys, not ecdsa")
	requireBadCSR(t, KeyAllowed(&rsaKey.PublicKey, dec), "at least 3072 bits")
	dec.MinRSABits = 2048
	require.NoError(t, KeyAllowed(&rsaKey.PublicKey, dec))
}

// BenchmarkCheckKeyRSA: what the weak-key checks cost per RSA CSR.
func BenchmarkCheckKeyRSA(b *testing.B) {
	for _, bits := range []int{2048, 4096} {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		require.NoError(b, err)
		b.Run(big.NewInt(int64(bits)).String(), func(b *testing.B) {
			for b.Loop() {
				if err := CheckKey(&k.PublicKey); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// multipleOf751 is the least multiple of 751 of 2048 bits: a modulus of a
// valid size with a small factor, whatever random key the test made.
func multipleOf751() *big.Int {
	k := new(big.Int).Lsh(big.NewInt(1), 2047)
	k.Div(k, big.NewInt(751))
	k.Add(k, big.NewInt(1))
	return k.Mul(k, big.NewInt(751))
}
