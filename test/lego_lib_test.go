package test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"log/slog"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/certcrypto"
	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/go-acme/lego/v5/challenge/http01"
	"github.com/go-acme/lego/v5/challenge/tlsalpn01"
	"github.com/go-acme/lego/v5/lego"
	legolog "github.com/go-acme/lego/v5/log"
	"github.com/go-acme/lego/v5/registration"
	"github.com/stretchr/testify/require"
)

// legoUser is lego's registration.User.
type legoUser struct {
	email string
	reg   *acme.ExtendedAccount
	key   crypto.Signer
}

func (u *legoUser) GetEmail() string                       { return u.email }
func (u *legoUser) GetRegistration() *acme.ExtendedAccount { return u.reg }
func (u *legoUser) GetPrivateKey() crypto.Signer           { return u.key }

func newECKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

// newLegoClient returns a lego client for user, trusting only ca.pem.
func newLegoClient(t *testing.T, s *server, user *legoUser) *lego.Client {
	t.Helper()
	cfg := lego.NewConfig(user)
	cfg.CADirURL = s.DirectoryURL
	cfg.HTTPClient = s.HTTPClient()
	cfg.UserAgent = "acmebridge-e2e"
	cfg.Certificate.Timeout = 30 * time.Second
	c, err := lego.NewClient(cfg)
	require.NoError(t, err)
	return c
}

// testDNSProvider is a dns-01 challenge.Provider writing TXT records into
// the test DNS server.
type testDNSProvider struct{ d *dnsServer }

var _ challenge.ProviderTimeout = testDNSProvider{}

func (p testDNSProvider) Present(ctx context.Context, domain, _, keyAuth string) error {
	info := dns01.GetChallengeInfo(ctx, domain, keyAuth)
	p.d.SetTXT(info.EffectiveFQDN, info.Value)
	return nil
}

func (p testDNSProvider) CleanUp(ctx context.Context, domain, _, keyAuth string) error {
	info := dns01.GetChallengeInfo(ctx, domain, keyAuth)
	p.d.ClearTXT(info.EffectiveFQDN, info.Value)
	return nil
}

func (p testDNSProvider) Timeout() (time.Duration, time.Duration) {
	return 20 * time.Second, 100 * time.Millisecond
}

// legoCertCycle obtains a certificate for names, verifies it, renews it
// (a second issuance), verifies that, then revokes both and checks that a
// second revocation is refused with alreadyRevoked.
func legoCertCycle(t *testing.T, s *server, c *lego.Client, names []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()

	res, err := c.Certificate.Obtain(ctx, certificate.ObtainRequest{Domains: names, KeyType: certcrypto.EC256, Bundle: true})
	require.NoError(t, err, "obtain %v", names)
	require.NotEmpty(t, res.CertURL)
	leaf1 := s.verifyChain(t, res.Certificate, names)

	renewed, err := c.Certificate.Renew(ctx, *res, &certificate.RenewOptions{Bundle: true})
	require.NoError(t, err, "renew %v", names)
	leaf2 := s.verifyChain(t, renewed.Certificate, names)
	require.NotEqual(t, leaf1.SerialNumber.String(), leaf2.SerialNumber.String(), "renewal must issue a new certificate")
	require.NotEqual(t, res.CertURL, renewed.CertURL)

	// The certificate URL serves the issued chain (POST-as-GET).
	got, err := c.Certificate.Get(ctx, renewed.CertURL, true)
	require.NoError(t, err)
	require.True(t, leafOf(t, got.Certificate).Equal(leaf2))

	require.NoError(t, c.Certificate.Revoke(ctx, renewed.Certificate), "revoke the renewed certificate")
	require.NoError(t, c.Certificate.Revoke(ctx, res.Certificate), "revoke the first certificate")

	// RFC 8555 §7.6: revoking again is refused with alreadyRevoked.
	err = c.Certificate.Revoke(ctx, res.Certificate)
	require.Error(t, err, "a second revocation must fail")
	require.ErrorContains(t, err, "alreadyRevoked")
	var pd *acme.ProblemDetails
	require.ErrorAs(t, err, &pd)
	require.Equal(t, "urn:ietf:params:acme:error:alreadyRevoked", pd.Type)
}

func leafOf(t *testing.T, chainPEM []byte) *x509.Certificate {
	t.Helper()
	certs, err := parsePEMCerts(chainPEM)
	require.NoError(t, err)
	require.NotEmpty(t, certs)
	return certs[0]
}

// TestLegoLibrary drives acmebridge with lego v5 as a library: http-01
// (DNS and IP identifiers), tls-alpn-01, dns-01 with a wildcard, account key
// rollover, renewal and revocation.
func TestLegoLibrary(t *testing.T) {
	// lego logs to stdout; keep its lines for a failure report instead.
	legoLogs := &syncBuffer{}
	prevLog := legolog.Default()
	legolog.SetDefault(slog.New(slog.NewTextHandler(legoLogs, nil)))
	t.Cleanup(func() {
		legolog.SetDefault(prevLog)
		if t.Failed() {
			t.Logf("lego log:\n%s", legoLogs.String())
		}
	})

	s := startServer(t, "")
	// lego's propagation checks and CNAME lookups go to the test DNS server.
	prev := dns01.DefaultClient()
	dns01.SetDefaultClient(dns01.NewClient(&dns01.Options{RecursiveNameservers: []string{s.DNS.Addr}, Timeout: 2 * time.Second}))
	t.Cleanup(func() { dns01.SetDefaultClient(prev) })

	user := &legoUser{email: "lego-lib@example.com", key: newECKey(t)}
	{
		c := newLegoClient(t, s, user)
		ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
		reg, err := c.Registration.Register(ctx, registration.RegisterOptions{TermsOfServiceAgreed: true})
		cancel()
		require.NoError(t, err)
		require.NotEmpty(t, reg.Location)
		require.Equal(t, "valid", reg.Status)
		user.reg = reg
	}

	t.Run("http-01", func(t *testing.T) {
		c := newLegoClient(t, s, user)
		require.NoError(t, c.Challenge.SetHTTP01Provider(http01.NewProviderServer("127.0.0.1", itoa(s.HTTPPort))))
		legoCertCycle(t, s, c, []string{"a.e2e.test", "a2.e2e.test"})
	})

	t.Run("http-01-ip", func(t *testing.T) {
		c := newLegoClient(t, s, user)
		require.NoError(t, c.Challenge.SetHTTP01Provider(http01.NewProviderServer("127.0.0.1", itoa(s.HTTPPort))))
		legoCertCycle(t, s, c, []string{"127.0.0.1"})
	})

	t.Run("tls-alpn-01", func(t *testing.T) {
		c := newLegoClient(t, s, user)
		require.NoError(t, c.Challenge.SetTLSALPN01Provider(tlsalpn01.NewProviderServer("127.0.0.1", itoa(s.TLSALPNPort))))
		legoCertCycle(t, s, c, []string{"b.e2e.test"})
	})

	t.Run("dns-01-wildcard", func(t *testing.T) {
		c := newLegoClient(t, s, user)
		// The authoritative servers lego would ask are on port 53; the
		// recursive check against the test DNS server stays on.
		require.NoError(t, c.Challenge.SetDNS01Provider(testDNSProvider{d: s.DNS},
			dns01.DisableAuthoritativeNssPropagationRequirement()))
		legoCertCycle(t, s, c, []string{"w.e2e.test", "*.w.e2e.test"})
		require.Empty(t, s.DNS.TXT("_acme-challenge.w.e2e.test."), "lego cleaned up its TXT records")
	})

	t.Run("key-rollover", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
		defer cancel()
		u := &legoUser{email: "rollover@example.com", key: newECKey(t)}
		c := newLegoClient(t, s, u)
		reg, err := c.Registration.Register(ctx, registration.RegisterOptions{TermsOfServiceAgreed: true})
		require.NoError(t, err)
		u.reg = reg
		oldKey := u.key

		newKey := newECKey(t)
		require.NoError(t, c.Registration.KeyRollover(ctx, newKey))
		u.key = newKey

		// The same client (now signing with the new key) still works.
		require.NoError(t, c.Challenge.SetHTTP01Provider(http01.NewProviderServer("127.0.0.1", itoa(s.HTTPPort))))
		res, err := c.Certificate.Obtain(ctx, certificate.ObtainRequest{Domains: []string{"rollover.e2e.test"}, KeyType: certcrypto.EC256, Bundle: true})
		require.NoError(t, err, "obtain after key rollover")
		s.verifyChain(t, res.Certificate, []string{"rollover.e2e.test"})

		// The new key finds the account; the old key no longer does.
		byNew := newLegoClient(t, s, &legoUser{key: newKey})
		acct, err := byNew.Registration.ResolveAccountByKey(ctx)
		require.NoError(t, err)
		require.Equal(t, reg.Location, acct.Location)

		byOld := newLegoClient(t, s, &legoUser{key: oldKey})
		_, err = byOld.Registration.ResolveAccountByKey(ctx)
		require.Error(t, err, "the old key must no longer identify the account")
		require.ErrorContains(t, err, "accountDoesNotExist")

		// A fresh client with the new key and the account URL can revoke.
		c2 := newLegoClient(t, s, u)
		require.NoError(t, c2.Certificate.Revoke(ctx, res.Certificate))
		err = c2.Certificate.Revoke(ctx, res.Certificate)
		require.ErrorContains(t, err, "alreadyRevoked")
	})
}
