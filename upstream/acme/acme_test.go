package acme

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/upstream/acme/acmetest"
)

// TestIssueDNS01: a CSR for a name and a wildcard is issued through
// dns-01 (httpreq provider → challtestsrv), the chain verifies against
// Pebble's root, the order URL was recorded once before anything else,
// and a second issuance for the same names reuses the valid
// authorizations (no record is set again).
func TestIssueDNS01(t *testing.T) {
	p := acmetest.Start(t, acmetest.Options{AuthzReuse: 100})
	u := newUpstream(t, dnsOptions(t, p, newStore(t)))

	req := newRequest(t, "dns.pebble.test", "*.wild.pebble.test")
	refs := &refLog{}
	start := time.Now()
	res := issue(t, u, req, refs)
	t.Logf("first issuance (2 authorizations, dns-01) took %s", time.Since(start).Round(time.Millisecond))
	verifyResult(t, p, res, req)
	require.Len(t, refs.all(), 1, "one setRef: the order URL")
	var r ref
	require.NoError(t, json.Unmarshal([]byte(refs.last()), &r))
	require.Equal(t, "pebble", r.Upstream)
	require.True(t, strings.HasPrefix(r.Order, strings.TrimSuffix(p.DirectoryURL, "/dir")+"/my-order/"), r.Order)
	require.Equal(t, 1, p.Orders())
	presents := p.ChallSrv.Presents()
	require.Equal(t, 2, presents, "one TXT record per authorization")

	req2 := newRequest(t, "dns.pebble.test", "*.wild.pebble.test")
	start = time.Now()
	res2 := issue(t, u, req2, nil)
	t.Logf("second issuance (authorizations reused) took %s", time.Since(start).Round(time.Millisecond))
	verifyResult(t, p, res2, req2)
	require.NotEqual(t, res.Leaf.SerialNumber, res2.Leaf.SerialNumber)
	require.Equal(t, presents, p.ChallSrv.Presents(), "valid authorizations are reused, not solved again")
	require.Equal(t, 2, p.Orders())
	require.Equal(t, 1, p.Accounts(), "one account at the CA")
}

// TestIssueHTTP01: the built-in responder answers Pebble's http-01 for a
// DNS name and an IP address.
func TestIssueHTTP01(t *testing.T) {
	p := acmetest.Start(t, acmetest.Options{AuthzReuse: -1})
	u := newUpstream(t, httpOptions(t, p, newStore(t)))
	req := newRequest(t, "http.pebble.test", "127.0.0.1")
	res := issue(t, u, req, nil)
	verifyResult(t, p, res, req)
	require.Equal(t, []string{"127.0.0.1"}, []string{res.Leaf.IPAddresses[0].String()})
	require.Empty(t, u.responder.r.tokens, "the responder withdrew its tokens")
}

// TestBadNonceRetried: with half of Pebble's nonces rejected, issuance
// still succeeds (lego retries badNonce, RFC 8555 §6.5).
func TestBadNonceRetried(t *testing.T) {
	p := acmetest.Start(t, acmetest.Options{NonceReject: 50})
	u := newUpstream(t, dnsOptions(t, p, newStore(t)))
	req := newRequest(t, "nonce.pebble.test")
	verifyResult(t, p, issue(t, u, req, nil), req)
	require.Contains(t, p.Logs(), "Configured to reject 50% of good nonces")
}

// TestEAB: a CA requiring External Account Binding (RFC 8555 §7.3.4)
// refuses an account without one (Unavailable: the operator must add a
// key) and issues with one.
func TestEAB(t *testing.T) {
	const kid, hmac = "kid-1", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
	p := acmetest.Start(t, acmetest.Options{EAB: map[string]string{kid: hmac}})

	noEAB := newUpstream(t, dnsOptions(t, p, newStore(t)))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := noEAB.Issue(ctx, newRequest(t, "eab.pebble.test"), nil)
	require.Error(t, err)
	require.Equal(t, acmeerr.Unavailable, acmeerr.KindOf(err), "%v", err)
	require.Contains(t, err.Error(), "acme pebble: registering the account")
	require.Contains(t, err.Error(), "externalAccountRequired")
	_, err = noEAB.Check(ctx)
	require.ErrorContains(t, err, "requires an external account binding")

	hmacFile := t.TempDir() + "/hmac"
	require.NoError(t, writeFile(hmacFile, hmac+"\n"))
	o := dnsOptions(t, p, newStore(t))
	o.EABKeyID, o.EABHMACFile = kid, hmacFile
	u := newUpstream(t, o)
	summary, err := u.Check(ctx)
	require.NoError(t, err)
	require.Contains(t, summary, "EAB required")
	req := newRequest(t, "eab.pebble.test")
	verifyResult(t, p, issue(t, u, req, nil), req)
	require.Contains(t, p.Logs(), `Successful newAccount Binding with CA using kid "kid-1"`)
}

// TestSharedAccount: replicas sharing a store (two upstreams on one store,
// issuing at once) register one account with one key; another store is
// another account.
func TestSharedAccount(t *testing.T) {
	p := acmetest.Start(t, acmetest.Options{})
	st := newStore(t)
	a := newUpstream(t, dnsOptions(t, p, st))
	b := newUpstream(t, dnsOptions(t, p, st))
	var wg sync.WaitGroup
	for i, u := range []*Upstream{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := newRequest(t, []string{"r1.pebble.test", "r2.pebble.test"}[i])
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := u.Issue(ctx, req, nil)
			require.NoError(t, err)
		}()
	}
	wg.Wait()
	require.Equal(t, 1, p.Accounts(), "one account for two replicas")
	sa, err := a.session(t.Context())
	require.NoError(t, err)
	sb, err := b.session(t.Context())
	require.NoError(t, err)
	require.Equal(t, sa.account, sb.account)
	secret, err := st.GetSecret(t.Context(), a.secretName())
	require.NoError(t, err)
	require.Contains(t, string(secret), "PRIVATE KEY")

	c := newUpstream(t, dnsOptions(t, p, newStore(t)))
	req := newRequest(t, "r3.pebble.test")
	issue(t, c, req, nil)
	require.Equal(t, 2, p.Accounts(), "another store, another account")
}

// TestPreferredChain: with alternate chains offered (RFC 8555 §7.4.2),
// preferred_chain picks the one leading to the named root.
func TestPreferredChain(t *testing.T) {
	p := acmetest.Start(t, acmetest.Options{AlternateRoots: 1})
	alt, _, err := parseChain(p.RootPEM(t, 1))
	require.NoError(t, err)
	def, _, err := parseChain(p.RootPEM(t, 0))
	require.NoError(t, err)
	require.NotEqual(t, def[0].Subject.CommonName, alt[0].Subject.CommonName)

	st := newStore(t)
	u := newUpstream(t, dnsOptions(t, p, st))
	req := newRequest(t, "chain.pebble.test")
	res := issue(t, u, req, nil)
	require.Equal(t, def[0].Subject.CommonName, res.Chain[len(res.Chain)-1].Issuer.CommonName, "the default chain")

	o := dnsOptions(t, p, st)
	o.PreferredChain = alt[0].Subject.CommonName
	u2 := newUpstream(t, o)
	req = newRequest(t, "chain.pebble.test")
	res = issue(t, u2, req, nil)
	require.Equal(t, alt[0].Subject.CommonName, res.Chain[len(res.Chain)-1].Issuer.CommonName, "the preferred chain")
	require.Len(t, res.Alternates, 1, "the other chain is kept as an alternate")
	altCerts, _, err := parseChain(res.Alternates[0])
	require.NoError(t, err)
	require.Equal(t, res.Leaf.Raw, altCerts[0].Raw)
	require.Equal(t, def[0].Subject.CommonName, altCerts[len(altCerts)-1].Issuer.CommonName)
	pool := x509.NewCertPool()
	pool.AddCert(alt[0])
	inter := x509.NewCertPool()
	for _, c := range res.Chain {
		inter.AddCert(c)
	}
	_, err = res.Leaf.Verify(x509.VerifyOptions{DNSName: "chain.pebble.test", Roots: pool, Intermediates: inter})
	require.NoError(t, err)
}

// TestRevokeRelayed: a revocation reaches the CA with its reason; a second
// one is AlreadyRevoked.
func TestRevokeRelayed(t *testing.T) {
	p := acmetest.Start(t, acmetest.Options{})
	u := newUpstream(t, dnsOptions(t, p, newStore(t)))
	req := newRequest(t, "revoke.pebble.test")
	res := issue(t, u, req, nil)
	serial := res.Leaf.SerialNumber.Text(16)
	require.Equal(t, "Valid", p.CertStatus(t, serial).Status)

	require.NoError(t, u.Revoke(t.Context(), res.Leaf, 4))
	st := p.CertStatus(t, serial)
	require.Equal(t, "Revoked", st.Status)
	require.NotNil(t, st.Reason)
	require.Equal(t, 4, *st.Reason)

	err := u.Revoke(t.Context(), res.Leaf, 4)
	require.Equal(t, acmeerr.AlreadyRevoked, acmeerr.KindOf(err), "%v", err)
	require.Equal(t, acmeerr.BadRevocationReason, acmeerr.KindOf(u.Revoke(t.Context(), res.Leaf, 7)))
}

// TestNoSolver: an upstream without a solver issues while the CA hands
// back valid authorizations (here Pebble reusing those another upstream
// on the same account solved), and a name the CA asks a challenge for
// fails with unauthorized naming it and saying why, without touching
// the CA's challenges.
func TestNoSolver(t *testing.T) {
	p := acmetest.Start(t, acmetest.Options{AuthzReuse: 100})
	st := newStore(t)
	issue(t, newUpstream(t, dnsOptions(t, p, st)), newRequest(t, "solved.pebble.test"), nil)
	o := dnsOptions(t, p, st)
	o.Solver = Solver{}
	u := newUpstream(t, o)
	require.Contains(t, u.String(), "no solver")
	presents := p.ChallSrv.Presents()

	req := newRequest(t, "solved.pebble.test")
	verifyResult(t, p, issue(t, u, req, nil), req)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := u.Issue(ctx, newRequest(t, "unsolved.pebble.test"), nil)
	require.Equal(t, acmeerr.Unauthorized, acmeerr.KindOf(err), "%v", err)
	require.ErrorContains(t, err, "to validate unsolved.pebble.test, and this upstream has no solver")
	require.ErrorContains(t, err, "dns-01")
	require.Equal(t, presents, p.ChallSrv.Presents(), "no challenge was attempted")

	o.Solver = Solver{Provider: "httpreq"}
	_, err = New(o)
	require.ErrorContains(t, err, "a solver without a type has nothing to configure")
}
