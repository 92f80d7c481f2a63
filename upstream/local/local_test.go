package local

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/upstream"
)

// newCA opens a CA in a fresh temporary directory.
func newCA(t testing.TB, opts Options) *CA {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = filepath.Join(t.TempDir(), "ca")
	}
	if opts.Name == "" {
		opts.Name = "test"
	}
	ca, err := New(opts)
	require.NoError(t, err)
	return ca
}

// makeCSR returns a DER CSR for key naming dnsNames and ips.
func makeCSR(t testing.TB, key crypto.Signer, dnsNames []string, ips []net.IP) *x509.CertificateRequest {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: "csr-common-name.example"},
		DNSNames:    dnsNames,
		IPAddresses: ips,
	}, key)
	require.NoError(t, err)
	csr, err := x509.ParseCertificateRequest(der)
	require.NoError(t, err)
	return csr
}

// ecKey returns a fresh P-256 key.
func ecKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

// orderSeq numbers the orders of test requests: each request is a new order.
var orderSeq atomic.Int64

// request returns an issuance request of a new order for dnsNames and ips
// whose CSR names the same identifiers; its common name is the first DNS
// name when it fits.
func request(t testing.TB, dnsNames []string, ips []net.IP) *upstream.Request {
	t.Helper()
	csr := makeCSR(t, ecKey(t), dnsNames, ips)
	req := &upstream.Request{OrderID: fmt.Sprintf("order-%d", orderSeq.Add(1)), CSR: csr, CSRDER: csr.Raw, DNSNames: dnsNames, IPAddresses: ips}
	if len(dnsNames) > 0 && len(dnsNames[0]) <= maxCNLength {
		req.CommonName = dnsNames[0] // as ra decides for a CSR without one
	}
	return req
}

// noRef fails the test if Issue reports a reference.
func noRef(t testing.TB) func(string) error {
	return func(ref string) error {
		t.Errorf("setRef(%q) called", ref)
		return nil
	}
}

// pemCerts decodes every certificate of a PEM bundle.
func pemCerts(t testing.TB, b []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		require.Equal(t, "CERTIFICATE", block.Type)
		c, err := x509.ParseCertificate(block.Bytes)
		require.NoError(t, err)
		out = append(out, c)
	}
	return out
}

// rootPool is a pool holding the CA's roots, read back from RootsPEM.
func rootPool(t testing.TB, ca *CA) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	require.True(t, p.AppendCertsFromPEM(ca.RootsPEM()))
	return p
}

func TestCreateThenReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "ca")
	ca1 := newCA(t, Options{Name: "dev", Dir: dir})
	require.Equal(t, "dev", ca1.Name())
	require.Equal(t, dir, ca1.Dir())

	st, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), st.Mode().Perm())

	root := ca1.Root()
	require.True(t, strings.HasPrefix(root.Subject.CommonName, "acmebridge local root dev "), root.Subject.CommonName)
	require.True(t, root.IsCA)
	require.Equal(t, x509.ECDSA, root.PublicKeyAlgorithm)
	require.InDelta(t, (10 * 365 * 24 * time.Hour).Hours(), root.NotAfter.Sub(root.NotBefore).Hours(), 1)

	inter := ca1.Intermediate()
	require.True(t, inter.IsCA)
	require.Equal(t, 0, inter.MaxPathLen)
	require.True(t, inter.MaxPathLenZero)
	require.NoError(t, inter.CheckSignatureFrom(root))
	require.InDelta(t, (5 * 365 * 24 * time.Hour).Hours(), inter.NotAfter.Sub(inter.NotBefore).Hours(), 1)

	roots := pemCerts(t, ca1.RootsPEM())
	require.Len(t, roots, 1)
	require.Equal(t, root.Raw, roots[0].Raw)

	// No temporary files are left behind.
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.ElementsMatch(t, []string{"root.pem", "root.key", "intermediate.pem", "intermediate.key"}, names)

	ca2 := newCA(t, Options{Name: "dev", Dir: dir})
	require.Equal(t, ca1.RootsPEM(), ca2.RootsPEM())
	require.Equal(t, inter.Raw, ca2.Intermediate().Raw)

	// A certificate from the first instance verifies against the second.
	res, err := ca1.Issue(context.Background(), request(t, []string{"a.example"}, nil), noRef(t))
	require.NoError(t, err)
	_, err = res.Leaf.Verify(x509.VerifyOptions{Roots: rootPool(t, ca2), Intermediates: ca2.interPool, DNSName: "a.example"})
	require.NoError(t, err)
}

func TestTwoCAsDiffer(t *testing.T) {
	a := newCA(t, Options{Name: "dev"})
	b := newCA(t, Options{Name: "dev"})
	require.NotEqual(t, a.Root().Subject.CommonName, b.Root().Subject.CommonName)
	require.NotEqual(t, a.RootsPEM(), b.RootsPEM())
}

func TestPartialDirectoryRefused(t *testing.T) {
	for _, missing := range []string{"root.pem", "root.key", "intermediate.pem", "intermediate.key"} {
		t.Run(missing, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ca")
			ca := newCA(t, Options{Dir: dir})
			require.NoError(t, os.Remove(filepath.Join(dir, missing)))
			before, err := os.ReadDir(dir)
			require.NoError(t, err)

			_, err = New(Options{Name: "test", Dir: dir})
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), "local: "), err.Error())
			require.Contains(t, err.Error(), dir)
			require.Contains(t, err.Error(), missing)
			require.Equal(t, acmeerr.Internal, acmeerr.KindOf(err))

			// Nothing was overwritten or added.
			after, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Equal(t, len(before), len(after))
			if missing != "root.pem" {
				b, err := os.ReadFile(filepath.Join(dir, "root.pem"))
				require.NoError(t, err)
				require.Equal(t, ca.RootsPEM(), b)
			}
		})
	}
}

func TestMismatchedFilesRefused(t *testing.T) {
	a := newCA(t, Options{})
	b := newCA(t, Options{})
	// Put b's intermediate beside a's root.
	for _, f := range []string{"intermediate.pem", "intermediate.key"} {
		data, err := os.ReadFile(filepath.Join(b.Dir(), f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(a.Dir(), f), data, 0o600))
	}
	_, err := New(Options{Dir: a.Dir()})
	require.ErrorContains(t, err, "local: intermediate.pem is not signed by root.pem")

	// A key that does not belong to its certificate.
	data, err := os.ReadFile(filepath.Join(b.Dir(), "root.key"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(a.Dir(), "root.key"), data, 0o600))
	_, err = New(Options{Dir: a.Dir()})
	require.ErrorContains(t, err, "local: root.key does not match root.pem")
}

func TestNewOptions(t *testing.T) {
	_, err := New(Options{Name: "x"})
	require.ErrorContains(t, err, "local: no directory")
	_, err = New(Options{Name: "x", Dir: t.TempDir(), Validity: -time.Hour})
	require.ErrorContains(t, err, "local: ")

	ca := newCA(t, Options{Name: "-"})
	ca2, err := New(Options{Dir: ca.Dir()})
	require.NoError(t, err)
	require.Equal(t, "local", ca2.Name())
}

func TestKeyFileModes(t *testing.T) {
	ca := newCA(t, Options{})
	for _, f := range []string{"root.key", "intermediate.key", "root.pem", "intermediate.pem"} {
		st, err := os.Stat(filepath.Join(ca.Dir(), f))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), f)
	}
	for _, f := range []string{"root.key", "intermediate.key"} {
		b, err := os.ReadFile(filepath.Join(ca.Dir(), f))
		require.NoError(t, err)
		block, _ := pem.Decode(b)
		require.NotNil(t, block)
		require.Equal(t, "PRIVATE KEY", block.Type)
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		require.NoError(t, err)
		require.IsType(t, &ecdsa.PrivateKey{}, k)
		require.Equal(t, elliptic.P256(), k.(*ecdsa.PrivateKey).Curve)
	}

	// Revocations are kept private too.
	res, err := ca.Issue(context.Background(), request(t, []string{"a.example"}, nil), noRef(t))
	require.NoError(t, err)
	require.NoError(t, ca.Revoke(context.Background(), res.Leaf, 0))
	st, err := os.Stat(filepath.Join(ca.Dir(), "revoked.json"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
}

func TestServerCertificate(t *testing.T) {
	ca := newCA(t, Options{})
	cert, err := ca.ServerCertificate([]string{"localhost", "127.0.0.1", "[::1]"})
	require.NoError(t, err)
	require.Len(t, cert.Certificate, 2)
	require.Equal(t, ca.Intermediate().Raw, cert.Certificate[1])
	require.IsType(t, &ecdsa.PrivateKey{}, cert.PrivateKey)

	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	require.NoError(t, err)
	require.Equal(t, leaf.Raw, cert.Leaf.Raw)
	require.True(t, leaf.PublicKey.(*ecdsa.PublicKey).Equal(cert.PrivateKey.(*ecdsa.PrivateKey).Public()))
	require.Equal(t, 90*24*time.Hour, leaf.NotAfter.Sub(leaf.NotBefore))
	require.Equal(t, "localhost", leaf.Subject.CommonName)

	inter := x509.NewCertPool()
	inter.AddCert(ca.Intermediate())
	for _, host := range []string{"127.0.0.1", "localhost", "::1"} {
		_, err := leaf.Verify(x509.VerifyOptions{
			Roots: rootPool(t, ca), Intermediates: inter, DNSName: host,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		require.NoError(t, err, host)
	}
	require.Error(t, leaf.VerifyHostname("other.example"))

	// Fresh key each time.
	cert2, err := ca.ServerCertificate([]string{"localhost"})
	require.NoError(t, err)
	require.False(t, bytes.Equal(cert.Leaf.RawSubjectPublicKeyInfo, cert2.Leaf.RawSubjectPublicKeyInfo))

	_, err = ca.ServerCertificate(nil)
	require.Equal(t, acmeerr.Malformed, acmeerr.KindOf(err))
	_, err = ca.ServerCertificate([]string{""})
	require.ErrorContains(t, err, "local: ")
}
