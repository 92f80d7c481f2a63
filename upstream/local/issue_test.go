package local

import (
	"context"
	"crypto"
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
	"math/big"
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
	// DER bytes alone are verified here (a parsed CSR was verified at
	// finalize): the last byte of the signature flipped.
	badSig := append([]byte(nil), good.CSR.Raw...)
	badSig[len(badSig)-1] ^= 0xff

	cases := []struct {
		name string
		req  *upstream.Request
		kind acmeerr.Kind
	}{
		{"nil request", nil, acmeerr.Malformed},
		{"no CSR", &upstream.Request{DNSNames: []string{"a.example"}}, acmeerr.BadCSR},
		{"garbage DER", &upstream.Request{CSRDER: []byte("nope"), DNSNames: []string{"a.example"}}, acmeerr.BadCSR},
		{"bad signature", &upstream.Request{CSRDER: badSig, DNSNames: []string{"a.example"}}, acmeerr.BadCSR},
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
			if c.name == "bad signature" {
				require.Contains(t, err.Error(), "signature is invalid")
			}
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

// BenchmarkIssue is one issuance of the same request, naming no order.
func BenchmarkIssue(b *testing.B) { benchIssue(b, false) }

// benchIssue signs a request for two names and an address; with newOrder
// each one names a new order finalized now (as the worker issues).
func benchIssue(b *testing.B, newOrder bool) {
	ca := newCA(b, Options{})
	req := request(b, []string{"a.example", "b.example"}, []net.IP{net.ParseIP("192.0.2.1")})
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if newOrder {
			i++
			req.OrderID, req.At = fmt.Sprintf("bench-%d", i), time.Now()
		}
		if _, err := ca.Issue(ctx, req, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// TestIssueIdempotentPerOrder: a second Issue for the same finalized order
// (a retry after a crash, a lost lease or a failed store write) signs the
// same certificate, byte for byte, and writes no file; another order, or a
// request that does not say when its order was finalized, gets another
// serial. It holds for every kind of CA key that signs deterministically.
func TestIssueIdempotentPerOrder(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	for name, caKey := range map[string]crypto.Signer{"default": nil, "ecdsa-p384": ecKey, "rsa": rsaKey, "ed25519": edKey} {
		t.Run(name, func(t *testing.T) {
			ca, err := New(Options{Name: "t", Dir: t.TempDir()})
			require.NoError(t, err)
			if caKey != nil {
				withIntermediateKey(t, ca, caKey)
			}
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			require.NoError(t, err)
			csr := makeCSR(t, key, []string{"idem.example.com"}, nil)
			at := time.Now()
			req := &upstream.Request{OrderID: "order-1_A", CSR: csr, DNSNames: []string{"idem.example.com"}, At: at}
			a, err := ca.Issue(t.Context(), req, noRef(t))
			require.NoError(t, err)
			time.Sleep(1100 * time.Millisecond) // a retry a second later: the validity comes from At
			b, err := ca.Issue(t.Context(), req, noRef(t))
			require.NoError(t, err)
			require.Equal(t, a.ChainPEM, b.ChainPEM, "the retry signed the same certificate")
			require.Equal(t, at.Add(-backdate).UTC().Truncate(time.Second), a.Leaf.NotBefore.UTC())
			require.NoError(t, a.Leaf.CheckSignatureFrom(ca.inter))

			req.OrderID = "order-2"
			c, err := ca.Issue(t.Context(), req, noRef(t))
			require.NoError(t, err)
			require.NotEqual(t, a.Leaf.SerialNumber, c.Leaf.SerialNumber)
			require.Equal(t, 1, a.Leaf.SerialNumber.Cmp(big.NewInt(1<<62)), "serials keep their 127 bits")

			// No finalization time: nothing to derive the validity from,
			// so a random serial (never one serial for two contents).
			req.At = time.Time{}
			d, err := ca.Issue(t.Context(), req, noRef(t))
			require.NoError(t, err)
			e, err := ca.Issue(t.Context(), req, noRef(t))
			require.NoError(t, err)
			require.NotEqual(t, d.Leaf.SerialNumber, e.Leaf.SerialNumber)
			require.NotEqual(t, c.Leaf.SerialNumber, d.Leaf.SerialNumber)

			entries, err := os.ReadDir(ca.Dir())
			require.NoError(t, err)
			for _, e := range entries {
				require.NotEqual(t, ledgerDir, e.Name(), "no ledger is written")
			}
		})
	}
	// Two CAs (two keys) give the same order different serials.
	other, err := New(Options{Name: "o", Dir: t.TempDir()})
	require.NoError(t, err)
	first, err := New(Options{Name: "f", Dir: t.TempDir()})
	require.NoError(t, err)
	req := &upstream.Request{OrderID: "same", At: time.Now()}
	s1, ok1 := first.orderSerial(req)
	s2, ok2 := other.orderSerial(req)
	require.True(t, ok1 && ok2)
	require.NotEqual(t, s1, s2)
	// IDs that are not base64url get random serials.
	_, ok := first.orderSerial(&upstream.Request{OrderID: "../escape", At: time.Now()})
	require.False(t, ok)
}

// TestIssueServesEarlierLedger: an order an earlier version signed and
// recorded in its ledger (issued/ORDER.pem) gets that certificate again.
func TestIssueServesEarlierLedger(t *testing.T) {
	ca, err := New(Options{Name: "t", Dir: t.TempDir()})
	require.NoError(t, err)
	req := request(t, []string{"old.example"}, nil)
	res, err := ca.Issue(t.Context(), req, noRef(t))
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(ca.Dir(), ledgerDir), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(ca.Dir(), ledgerDir, req.OrderID+".pem"), res.ChainPEM, 0o600))
	again, err := ca.Issue(t.Context(), req, noRef(t))
	require.NoError(t, err)
	require.Equal(t, res.ChainPEM, again.ChainPEM)
}

// withIntermediateKey replaces ca's intermediate with one of key's type,
// signed by its root, as an operator's own CA files would hold.
func withIntermediateKey(t *testing.T, ca *CA, key crypto.Signer) {
	t.Helper()
	tmpl := *ca.inter
	tmpl.SerialNumber = big.NewInt(99)
	rootKey, err := readKey(ca.Dir(), rootKeyFile)
	require.NoError(t, err)
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, ca.root, key.Public(), rootKey)
	require.NoError(t, err)
	inter, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	ca.inter, ca.interKey, ca.interPEM = inter, key, pemCert(der)
	ca.serialKey = serialKeyFor(key)
	require.NotNil(t, ca.serialKey)
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	require.NoError(t, err)
	return b
}
