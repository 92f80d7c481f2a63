package local

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/upstream"
)

func TestIssueChainVerifies(t *testing.T) {
	ca := newCA(t, Options{})
	names := []string{"www.example.com", "example.com"}
	ips := []net.IP{net.ParseIP("192.0.2.10"), net.ParseIP("2001:db8::1")}
	res, err := ca.Issue(context.Background(), request(t, names, ips), noRef(t))
	require.NoError(t, err)

	// ChainPEM is the leaf then the intermediate, not the root.
	chain := pemCerts(t, res.ChainPEM)
	require.Len(t, chain, 2)
	require.Equal(t, res.Leaf.Raw, chain[0].Raw)
	require.Equal(t, ca.Intermediate().Raw, chain[1].Raw)
	require.Len(t, res.Chain, 1)
	require.Equal(t, ca.Intermediate().Raw, res.Chain[0].Raw)

	inter := x509.NewCertPool()
	inter.AddCert(chain[1])
	for _, host := range []string{"www.example.com", "example.com", "192.0.2.10", "2001:db8::1"} {
		chains, err := chain[0].Verify(x509.VerifyOptions{
			Roots: rootPool(t, ca), Intermediates: inter, DNSName: host,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		require.NoError(t, err, host)
		require.Len(t, chains[0], 3)
	}
	_, err = chain[0].Verify(x509.VerifyOptions{Roots: rootPool(t, ca), Intermediates: inter, DNSName: "other.example.com"})
	require.Error(t, err)

	leaf := res.Leaf
	require.Equal(t, "www.example.com", leaf.Subject.CommonName)
	require.False(t, leaf.IsCA)
	require.Equal(t, x509.KeyUsageDigitalSignature, leaf.KeyUsage)
	require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, leaf.ExtKeyUsage)
	require.Equal(t, ca.Intermediate().SubjectKeyId, leaf.AuthorityKeyId)
	require.NotEmpty(t, leaf.AuthorityKeyId)
	require.NoError(t, leaf.CheckSignatureFrom(ca.Intermediate()))
}

// TestIssueUsesRequestContent: the certificate holds the request's content,
// never what the CSR asks for (its CN, names, subject attributes or
// extensions).
func TestIssueUsesRequestContent(t *testing.T) {
	ca := newCA(t, Options{})
	key := ecKey(t)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: "evil.example", Organization: []string{"Evil Corp"}, OrganizationalUnit: []string{"Admins"}},
		DNSNames:    []string{"a.example", "evil.example"},
		IPAddresses: []net.IP{net.ParseIP("10.0.0.1")},
		ExtraExtensions: []pkix.Extension{
			{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Value: mustMarshal(t, []asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 3}})},
			{Id: asn1.ObjectIdentifier{2, 5, 29, 32}, Value: mustMarshal(t, []struct{ ID asn1.ObjectIdentifier }{{asn1.ObjectIdentifier{2, 5, 29, 32, 0}}})},
		},
	}, key)
	require.NoError(t, err)
	csr, err := x509.ParseCertificateRequest(der)
	require.NoError(t, err)
	req := &upstream.Request{CSR: csr, CommonName: "a.example", DNSNames: []string{"a.example"}, IPAddresses: []net.IP{net.ParseIP("192.0.2.1")},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	res, err := ca.Issue(context.Background(), req, noRef(t))
	require.NoError(t, err)
	leaf := res.Leaf
	require.Equal(t, []string{"a.example"}, leaf.DNSNames)
	require.Len(t, leaf.IPAddresses, 1)
	require.True(t, leaf.IPAddresses[0].Equal(net.ParseIP("192.0.2.1")))
	require.Equal(t, "CN=a.example", leaf.Subject.String())
	require.True(t, key.PublicKey.Equal(leaf.PublicKey))
	require.Empty(t, leaf.EmailAddresses)
	require.Empty(t, leaf.URIs)
	require.Equal(t, x509.KeyUsageDigitalSignature|x509.KeyUsageKeyAgreement, leaf.KeyUsage)
	require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, leaf.ExtKeyUsage)
	require.Empty(t, leaf.PolicyIdentifiers)
	require.Empty(t, leaf.Policies)
	require.Empty(t, leaf.UnknownExtKeyUsage)
}

// TestIssueCommonName: the common name is the request's; none leaves the
// subject empty.
func TestIssueCommonName(t *testing.T) {
	ca := newCA(t, Options{})
	long := strings.Repeat("a", 60) + ".example"
	req := request(t, []string{long, "b.example"}, nil)
	res, err := ca.Issue(context.Background(), req, noRef(t))
	require.NoError(t, err)
	require.Empty(t, res.Leaf.Subject.CommonName)
	require.Empty(t, res.Leaf.Subject.Names)
	require.Equal(t, []string{long, "b.example"}, res.Leaf.DNSNames)

	res, err = ca.Issue(context.Background(), request(t, nil, []net.IP{net.ParseIP("192.0.2.1")}), noRef(t))
	require.NoError(t, err)
	require.Empty(t, res.Leaf.Subject.CommonName)
	require.Empty(t, res.Leaf.DNSNames)

	req = request(t, []string{"a.example"}, nil)
	req.CommonName = long
	_, err = ca.Issue(context.Background(), req, noRef(t))
	require.Equal(t, acmeerr.Malformed, acmeerr.KindOf(err))
}

func TestIssueSerials(t *testing.T) {
	ca := newCA(t, Options{})
	seen := map[string]bool{}
	req := request(t, []string{"a.example"}, nil)
	for i := range 100 {
		req.OrderID = fmt.Sprintf("serials-%d", i)
		res, err := ca.Issue(context.Background(), req, noRef(t))
		require.NoError(t, err)
		s := res.Leaf.SerialNumber
		require.Equal(t, 1, s.Sign())
		require.LessOrEqual(t, s.BitLen(), 128)
		// 128 random bits: fewer than 64 significant ones has odds of 2^-64.
		require.Greater(t, s.BitLen(), 64)
		require.False(t, seen[s.String()], "duplicate serial %s", s)
		seen[s.String()] = true
	}
	require.Len(t, seen, 100)
}

func TestIssueValidity(t *testing.T) {
	now := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	clock := func() time.Time { return now }
	ca := newCA(t, Options{Clock: clock})

	t.Run("default", func(t *testing.T) {
		res, err := ca.Issue(context.Background(), request(t, []string{"a.example"}, nil), noRef(t))
		require.NoError(t, err)
		require.Equal(t, now.Add(-time.Minute), res.Leaf.NotBefore)
		require.Equal(t, now.Add(-time.Minute).Add(DefaultValidity), res.Leaf.NotAfter)
	})

	ca7 := newCA(t, Options{Clock: clock, Validity: 7 * 24 * time.Hour})
	t.Run("configured", func(t *testing.T) {
		res, err := ca7.Issue(context.Background(), request(t, []string{"a.example"}, nil), noRef(t))
		require.NoError(t, err)
		require.Equal(t, 7*24*time.Hour, res.Leaf.NotAfter.Sub(res.Leaf.NotBefore))
	})

	t.Run("requested", func(t *testing.T) {
		req := request(t, []string{"a.example"}, nil)
		req.NotBefore = now.Add(time.Hour)
		req.NotAfter = now.Add(49 * time.Hour)
		res, err := ca7.Issue(context.Background(), req, noRef(t))
		require.NoError(t, err)
		require.Equal(t, req.NotBefore, res.Leaf.NotBefore)
		require.Equal(t, req.NotAfter, res.Leaf.NotAfter)
	})

	t.Run("requested notAfter only", func(t *testing.T) {
		req := request(t, []string{"a.example"}, nil)
		req.NotAfter = now.Add(24 * time.Hour)
		res, err := ca7.Issue(context.Background(), req, noRef(t))
		require.NoError(t, err)
		require.Equal(t, now.Add(-time.Minute), res.Leaf.NotBefore)
		require.Equal(t, req.NotAfter, res.Leaf.NotAfter)
	})

	t.Run("capped at validity", func(t *testing.T) {
		req := request(t, []string{"a.example"}, nil)
		req.NotBefore = now
		req.NotAfter = now.Add(365 * 24 * time.Hour)
		res, err := ca7.Issue(context.Background(), req, noRef(t))
		require.NoError(t, err)
		require.Equal(t, now, res.Leaf.NotBefore)
		require.Equal(t, now.Add(7*24*time.Hour), res.Leaf.NotAfter)
	})

	t.Run("inverted", func(t *testing.T) {
		req := request(t, []string{"a.example"}, nil)
		req.NotBefore = now
		req.NotAfter = now.Add(-time.Hour)
		_, err := ca7.Issue(context.Background(), req, noRef(t))
		require.Equal(t, acmeerr.Malformed, acmeerr.KindOf(err))
		require.ErrorContains(t, err, "local: ")
	})
}

func TestIssueRSA(t *testing.T) {
	ca := newCA(t, Options{})
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	csr := makeCSR(t, key, []string{"rsa.example"}, nil)
	res, err := ca.Issue(context.Background(), &upstream.Request{CSR: csr, DNSNames: []string{"rsa.example"}}, noRef(t))
	require.NoError(t, err)
	require.Equal(t, x509.RSA, res.Leaf.PublicKeyAlgorithm)
	require.Equal(t, x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment, res.Leaf.KeyUsage)
	require.True(t, key.PublicKey.Equal(res.Leaf.PublicKey))
}

func TestIssueEd25519(t *testing.T) {
	ca := newCA(t, Options{})
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	csr := makeCSR(t, key, []string{"ed.example"}, nil)
	res, err := ca.Issue(context.Background(), &upstream.Request{CSR: csr, DNSNames: []string{"ed.example"}}, noRef(t))
	require.NoError(t, err)
	require.Equal(t, x509.KeyUsageDigitalSignature, res.Leaf.KeyUsage)
}

func TestIssueFromDEROnly(t *testing.T) {
	ca := newCA(t, Options{})
	req := request(t, []string{"a.example"}, nil)
	req.CSR = nil
	res, err := ca.Issue(context.Background(), req, noRef(t))
	require.NoError(t, err)
	require.Equal(t, []string{"a.example"}, res.Leaf.DNSNames)
}

func TestIssueBadRequests(t *testing.T) {
	ca := newCA(t, Options{})
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	good := request(t, []string{"a.example"}, nil)
	badSig := *good.CSR
	badSig.Signature = append([]byte(nil), good.CSR.Signature...)
	badSig.Signature[len(badSig.Signature)-1] ^= 0xff

	cases := []struct {
		name string
		req  *upstream.Request
		kind acmeerr.Kind
	}{
		{"nil request", nil, acmeerr.Malformed},
		{"no CSR", &upstream.Request{DNSNames: []string{"a.example"}}, acmeerr.BadCSR},
		{"garbage DER", &upstream.Request{CSRDER: []byte("nope"), DNSNames: []string{"a.example"}}, acmeerr.BadCSR},
		{"bad signature", &upstream.Request{CSR: &badSig, DNSNames: []string{"a.example"}}, acmeerr.BadCSR},
		{"small RSA key", &upstream.Request{CSR: makeCSR(t, small, []string{"a.example"}, nil), DNSNames: []string{"a.example"}}, acmeerr.BadCSR},
		{"unusable key", &upstream.Request{CSR: &x509.CertificateRequest{PublicKey: "not a key"}, DNSNames: []string{"a.example"}}, acmeerr.BadCSR},
		{"no identifiers", &upstream.Request{CSR: good.CSR}, acmeerr.Malformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ca.Issue(context.Background(), c.req, noRef(t))
			require.Error(t, err)
			require.Equal(t, c.kind, acmeerr.KindOf(err), err.Error())
			require.True(t, strings.HasPrefix(err.Error(), "local: "), err.Error())
		})
	}
}

func TestIssueDelay(t *testing.T) {
	ca := newCA(t, Options{Delay: 20 * time.Millisecond})

	res, err := ca.Issue(context.Background(), request(t, []string{"a.example"}, nil), noRef(t))
	require.NoError(t, err)
	require.NotNil(t, res.Leaf)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = ca.Issue(ctx, request(t, []string{"a.example"}, nil), noRef(t))
	require.Error(t, err)
	require.True(t, errors.Is(err, context.Canceled), err.Error())
	require.Equal(t, acmeerr.Unavailable, acmeerr.KindOf(err))
	require.True(t, strings.HasPrefix(err.Error(), "local: "), err.Error())

	// Cancelled while waiting.
	slow := newCA(t, Options{Delay: time.Hour})
	ctx, cancel = context.WithCancel(context.Background())
	errc := make(chan error, 1)
	slowReq := request(t, []string{"a.example"}, nil)
	go func() {
		_, err := slow.Issue(ctx, slowReq, nil)
		errc <- err
	}()
	cancel()
	err = <-errc
	require.True(t, errors.Is(err, context.Canceled), err)
}

func TestConcurrentIssueAndRevoke(t *testing.T) {
	ca := newCA(t, Options{})
	req := request(t, []string{"a.example"}, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 20 {
		wg.Go(func() {
			r := *req
			r.OrderID = fmt.Sprintf("concurrent-%d", i)
			res, err := ca.Issue(context.Background(), &r, nil)
			if err != nil {
				errs <- err
				return
			}
			errs <- ca.Revoke(context.Background(), res.Leaf, 4)
		})
		wg.Go(func() {
			_, err := ca.CRL(context.Background())
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	der, err := ca.CRL(context.Background())
	require.NoError(t, err)
	crl, err := x509.ParseRevocationList(der)
	require.NoError(t, err)
	require.Len(t, crl.RevokedCertificateEntries, 20)
}

func BenchmarkIssue(b *testing.B) {
	ca := newCA(b, Options{})
	req := request(b, []string{"a.example", "b.example"}, []net.IP{net.ParseIP("192.0.2.1")})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ca.Issue(ctx, req, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// TestIssueIdempotentPerOrder: a second Issue for the same order (a retry
// after a crash) returns the same certificate without signing again.
func TestIssueIdempotentPerOrder(t *testing.T) {
	ca, err := New(Options{Name: "t", Dir: t.TempDir()})
	require.NoError(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	csr := makeCSR(t, key, []string{"idem.example.com"}, nil)
	req := &upstream.Request{OrderID: "order-1_A", CSR: csr, DNSNames: []string{"idem.example.com"}}
	a, err := ca.Issue(t.Context(), req, nil)
	require.NoError(t, err)
	b, err := ca.Issue(t.Context(), req, nil)
	require.NoError(t, err)
	require.Equal(t, a.Leaf.SerialNumber, b.Leaf.SerialNumber)
	require.Equal(t, a.ChainPEM, b.ChainPEM)
	req.OrderID = "order-2"
	c, err := ca.Issue(t.Context(), req, nil)
	require.NoError(t, err)
	require.NotEqual(t, a.Leaf.SerialNumber, c.Leaf.SerialNumber)
	// IDs that are not base64url never name a file.
	req.OrderID = "../escape"
	_, err = ca.Issue(t.Context(), req, nil)
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(ca.Dir(), "escape.pem"))
	require.True(t, os.IsNotExist(err))
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	require.NoError(t, err)
	return b
}
