package core

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCheckRevocationReason: RFC 5280 §5.3.1 codes a revocation may give;
// 7 is unused and 8 (removeFromCRL) is not a revocation.
func TestCheckRevocationReason(t *testing.T) {
	for code := -1; code <= 11; code++ {
		ok := code >= 0 && code <= 10 && code != 7 && code != 8
		if ok {
			require.NoError(t, CheckRevocationReason(code), code)
		} else {
			require.ErrorIs(t, CheckRevocationReason(code), ErrBadReason, code)
		}
	}
}

// TestChallengesFor: IP addresses are never validated by dns-01 (RFC 8738
// §7), wildcards only by dns-01 (RFC 8555 §7.1.3).
func TestChallengesFor(t *testing.T) {
	require.Equal(t, ChallengeTypes, ChallengesFor(Identifier{Type: DNS, Value: "a.example"}, false))
	require.Equal(t, []string{ChallengeDNS01}, ChallengesFor(Identifier{Type: DNS, Value: "*.a.example"}, true))
	require.Equal(t, []string{ChallengeHTTP01, ChallengeTLSALPN01}, ChallengesFor(Identifier{Type: IP, Value: "192.0.2.1"}, false))
}

// TestLeafFromPEMAndSerial: the leaf is the first certificate; garbage is
// an error, never a panic; the serial is hex of the big-endian bytes.
func TestLeafFromPEMAndSerial(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0x0a01)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	require.NoError(t, err)
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), []byte("trailing")...)
	leaf, err := LeafFromPEM(chain)
	require.NoError(t, err)
	require.Equal(t, "0a01", SerialHex(leaf))
	for _, bad := range [][]byte{nil, []byte("x"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2}})} {
		_, err := LeafFromPEM(bad)
		require.Error(t, err)
	}
}

// TestRandomID: 128 bits, base64url, never a leading '-' or '_'.
func TestRandomID(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		id := RandomID()
		require.Len(t, id, 22)
		require.NotContains(t, "-_", id[:1])
		require.False(t, seen[id])
		seen[id] = true
	}
}
