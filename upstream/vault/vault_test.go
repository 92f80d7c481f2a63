package vault

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/upstream"
	"github.com/acmebridge/acmebridge/upstream/vault/vaulttest"
)

// TestIssueAndRevoke issues through a token holding only the documented
// minimum policy: the chain is leaf then intermediate (root left out), the
// serial is recorded, a retry serves the same certificate, and revocation
// shows in Vault and its CRL.
func TestIssueAndRevoke(t *testing.T) {
	e := newEnv(t, vaulttest.PKIOptions{AllowIPSANs: true})
	u := e.upstream(t, nil)
	ctx := ctxT(t)

	t.Run("chain and serial", func(t *testing.T) {
		req := newRequest(t, csrOptions{}, "a.example.test", "b.example.test")
		var refs refLog
		res, err := u.Issue(ctx, req, refs.set)
		require.NoError(t, err)
		require.Equal(t, []string{"a.example.test", "b.example.test"}, res.Leaf.DNSNames)
		require.Len(t, res.Chain, 1, "the chain is the intermediate; the root is the relying party's anchor")
		require.True(t, res.Chain[0].Equal(e.pki.Intermediate))
		certs, err := upstream.ParsePEMCertificates(res.ChainPEM)
		require.NoError(t, err)
		require.Len(t, certs, 2)
		require.True(t, certs[0].Equal(res.Leaf), "leaf first")
		require.True(t, certs[1].Equal(e.pki.Intermediate))
		inter := x509.NewCertPool()
		inter.AddCert(certs[1])
		_, err = res.Leaf.Verify(x509.VerifyOptions{DNSName: "b.example.test", Roots: e.pki.Roots, Intermediates: inter})
		require.NoError(t, err)

		require.Len(t, refs.refs, 2, "a signing mark, then the serial")
		require.Contains(t, refs.refs[0], `"signing":`)
		require.Contains(t, refs.last(), `"serial":"`+vaultSerial(res.Leaf.SerialNumber)+`"`)

		// A retry of the same order (the store failed to keep the result)
		// gets the same certificate; Vault signs nothing new.
		req.Ref = refs.last()
		again, err := u.Issue(ctx, req, refs.set)
		require.NoError(t, err)
		require.True(t, again.Leaf.Equal(res.Leaf))
		require.Equal(t, res.ChainPEM, again.ChainPEM)
		require.Equal(t, 1, e.leavesFor(t, res.Leaf.RawSubjectPublicKeyInfo))

		// Revocation through the upstream shows in Vault and in its CRL.
		require.NoError(t, u.Revoke(ctx, res.Leaf, 1))
		s, err := e.root.Logical().Read(e.pki.Mount + "/cert/" + vaultSerial(res.Leaf.SerialNumber))
		require.NoError(t, err)
		require.NotZero(t, jsonInt(s.Data["revocation_time"]), "Vault's pki/cert/<serial> shows the revocation")
		resp, err := e.srv.HTTPClient().Get(e.srv.URL + "/v1/" + e.pki.Mount + "/crl")
		require.NoError(t, err)
		der, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		crl, err := x509.ParseRevocationList(der)
		require.NoError(t, err)
		require.NoError(t, crl.CheckSignatureFrom(e.pki.Intermediate))
		var listed bool
		for _, r := range crl.RevokedCertificateEntries {
			listed = listed || r.SerialNumber.Cmp(res.Leaf.SerialNumber) == 0
		}
		require.True(t, listed, "the CRL lists the serial")

		err = u.Revoke(ctx, res.Leaf, 0)
		require.Equal(t, acmeerr.AlreadyRevoked, acmeerr.KindOf(err), "%v", err)
		err = u.Revoke(ctx, res.Leaf, 7)
		require.Equal(t, acmeerr.BadRevocationReason, acmeerr.KindOf(err))
	})

	t.Run("CSR without common name, and an IP address", func(t *testing.T) {
		// certbot's CSRs carry SANs only.
		req := newRequest(t, csrOptions{noCN: true}, "nocn.example.test", "127.0.0.1")
		res, err := u.Issue(ctx, req, nil)
		require.NoError(t, err)
		require.Equal(t, "nocn.example.test", res.Leaf.Subject.CommonName, "the first name stands in for the missing CN")
		require.Equal(t, []string{"nocn.example.test"}, res.Leaf.DNSNames)
		require.Len(t, res.Leaf.IPAddresses, 1)
		require.Equal(t, "127.0.0.1", res.Leaf.IPAddresses[0].String())
	})

	t.Run("TTL capped by config and by the order", func(t *testing.T) {
		capped := e.upstream(t, func(o *Options) { o.TTL = 2 * time.Hour })
		res, err := capped.Issue(ctx, newRequest(t, csrOptions{}, "ttl.example.test"), nil)
		require.NoError(t, err)
		require.WithinDuration(t, time.Now().Add(2*time.Hour), res.Leaf.NotAfter, time.Minute)

		req := newRequest(t, csrOptions{}, "ttl2.example.test")
		req.NotAfter = time.Now().Add(30 * time.Minute)
		res, err = capped.Issue(ctx, req, nil)
		require.NoError(t, err)
		require.WithinDuration(t, req.NotAfter, res.Leaf.NotAfter, time.Minute)

		req.NotAfter = time.Now().Add(-time.Hour)
		_, err = capped.Issue(ctx, req, nil)
		require.Equal(t, acmeerr.Malformed, acmeerr.KindOf(err))
		req.NotAfter, req.NotBefore = time.Time{}, time.Now().Add(time.Hour)
		_, err = capped.Issue(ctx, req, nil)
		require.Equal(t, acmeerr.Malformed, acmeerr.KindOf(err))
	})

	t.Run("foreign certificate is not revoked", func(t *testing.T) {
		other := newEnv(t, vaulttest.PKIOptions{})
		res, err := other.upstream(t, nil).Issue(ctx, newRequest(t, csrOptions{}, "x.example.test"), nil)
		require.NoError(t, err)
		err = u.Revoke(ctx, res.Leaf, 0)
		require.Equal(t, acmeerr.NotFound, acmeerr.KindOf(err), "%v", err)
	})

	t.Run("a failed setRef sends nothing", func(t *testing.T) {
		req := newRequest(t, csrOptions{}, "noref.example.test")
		refs := &refLog{fail: true}
		_, err := u.Issue(ctx, req, refs.set)
		require.Equal(t, acmeerr.Unavailable, acmeerr.KindOf(err))
		require.Zero(t, e.leavesFor(t, req.CSR.RawSubjectPublicKeyInfo))
	})
}

// TestRefusals: Vault's refusals become the client's problem, named and
// without Vault's own words; nothing stays marked as in flight.
func TestRefusals(t *testing.T) {
	e := newEnv(t, vaulttest.PKIOptions{MaxTTL: "87600h"})
	u := e.upstream(t, nil)
	ctx := ctxT(t)
	for _, tc := range []struct {
		name  string
		names []string
		typ   string
		value string
	}{
		{"domain outside the role", []string{"evil.other.test"}, "dns", "evil.other.test"},
		{"second name outside the role", []string{"ok.example.test", "bad.other.test"}, "dns", "bad.other.test"},
		{"IP address the role forbids", []string{"ip.example.test", "192.0.2.7"}, "ip", "192.0.2.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var refs refLog
			_, err := u.Issue(ctx, newRequest(t, csrOptions{}, tc.names...), refs.set)
			var ae *acmeerr.Error
			require.ErrorAs(t, err, &ae)
			require.Equal(t, acmeerr.RejectedIdentifier, ae.Kind, "%v", err)
			require.Equal(t, &acmeerr.Identifier{Type: tc.typ, Value: tc.value}, ae.Identifier)
			require.Len(t, ae.Sub, 1)
			require.Equal(t, tc.value, ae.Sub[0].Identifier.Value)
			require.Contains(t, ae.Detail, tc.value)
			require.NotContains(t, ae.Detail, "by this role", "Vault's text stays out of the client's detail")
			require.Equal(t, "", refs.last(), "an answered refusal clears the signing mark")
		})
	}

	t.Run("small RSA key", func(t *testing.T) {
		k, err := rsa.GenerateKey(rand.Reader, 1024)
		require.NoError(t, err)
		_, err = u.Issue(ctx, newRequest(t, csrOptions{key: k}, "rsa.example.test"), nil)
		require.Equal(t, acmeerr.BadCSR, acmeerr.KindOf(err), "%v", err)
		require.NotContains(t, asACME(t, err).Detail, "Vault requires")
	})

	t.Run("TTL beyond the issuer", func(t *testing.T) {
		long := e.upstream(t, func(o *Options) { o.TTL = 80000 * time.Hour })
		_, err := long.Issue(ctx, newRequest(t, csrOptions{}, "long.example.test"), nil)
		require.Equal(t, acmeerr.BadCSR, acmeerr.KindOf(err), "%v", err)
		require.Contains(t, asACME(t, err).Detail, "validity")
	})

	t.Run("missing role is the server's problem", func(t *testing.T) {
		e.writeToken(t, e.srv.Token)
		missing := e.upstream(t, func(o *Options) { o.Role = "missing" })
		_, err := missing.Issue(ctx, newRequest(t, csrOptions{}, "m.example.test"), nil)
		require.Equal(t, acmeerr.Internal, acmeerr.KindOf(err), "%v", err)
	})
}

// TestVaultDownAndSealed: unreachable and sealed Vault are Unavailable
// (retried by the worker), and a request that never left leaves no mark.
func TestVaultDownAndSealed(t *testing.T) {
	e := newEnv(t, vaulttest.PKIOptions{})
	u := e.upstream(t, nil)
	ctx := ctxT(t)
	_, err := u.Issue(ctx, newRequest(t, csrOptions{}, "warm.example.test"), nil)
	require.NoError(t, err)

	e.srv.Kill()
	// A pooled connection to the dead server may take the next request
	// before net/http sees it closed; whether that request reached
	// anyone is then unknown and the mark rightly stays. Drop the pool
	// so the request below dials, is refused, and certainly never left.
	u.client.CloneConfig().HttpClient.CloseIdleConnections()
	var refs refLog
	_, err = u.Issue(ctx, newRequest(t, csrOptions{}, "down.example.test"), refs.set)
	require.Equal(t, acmeerr.Unavailable, acmeerr.KindOf(err), "%v", err)
	require.Contains(t, asACME(t, err).Detail, "cannot be reached")
	require.NotZero(t, asACME(t, err).RetryAfter)
	require.Equal(t, []string{refs.refs[0], ""}, refs.refs, "marked, then cleared: the request never left")

	e.srv.Restart(t)
	root := e.srv.Client(t, "")
	require.NoError(t, root.Sys().Seal())
	e.writeToken(t, e.srv.Token) // the old token died with the old storage
	sealed := e.upstream(t, nil)
	_, err = sealed.Issue(ctx, newRequest(t, csrOptions{}, "sealed.example.test"), nil)
	require.Equal(t, acmeerr.Unavailable, acmeerr.KindOf(err), "%v", err)
	require.Contains(t, asACME(t, err).Detail, "sealed")
}

// TestCheck is what `acmebridge upstream check` runs for Vault.
func TestCheck(t *testing.T) {
	e := newEnv(t, vaulttest.PKIOptions{})
	ctx := ctxT(t)
	summary, err := e.upstream(t, nil).Check(ctx)
	require.NoError(t, err)
	require.Contains(t, summary, "token valid")
	require.Contains(t, summary, "role pki/acme readable")
	require.Contains(t, summary, "may sign (mode sign) and revoke")

	vaulttest.PutPolicy(t, e.root, "no-sign", `
path "pki/roles/acme" { capabilities = ["read"] }
path "sys/capabilities-self" { capabilities = ["update"] }
`)
	e.writeToken(t, vaulttest.CreateToken(t, e.root, vaulttest.TokenOptions{Policies: []string{"no-sign"}}))
	_, err = e.upstream(t, nil).Check(ctx)
	require.Equal(t, acmeerr.Unauthorized, acmeerr.KindOf(err), "%v", err)
	require.ErrorContains(t, err, "may not write pki/sign/acme")

	e.writeToken(t, "not-a-token")
	_, err = e.upstream(t, nil).Check(ctx)
	require.Equal(t, acmeerr.Unavailable, acmeerr.KindOf(err), "%v", err)
	require.Contains(t, err.Error(), "refused acmebridge's credentials")

	e.writeToken(t, e.srv.Token)
	_, err = e.upstream(t, func(o *Options) { o.Role = "missing" }).Check(ctx)
	require.ErrorContains(t, err, "role missing does not exist")

	vaulttest.SetupPKI(t, e.root, vaulttest.PKIOptions{RootMount: "ns_root", Mount: "nostore", AllowedDomains: []string{testDomain}, NoStore: true})
	_, err = e.upstream(t, func(o *Options) { o.Mount = "nostore" }).Check(ctx)
	require.ErrorContains(t, err, "no_store")

	u, err := New(Options{Address: "http://127.0.0.1:1", Role: "r", TokenFile: e.tokenFile})
	require.NoError(t, err)
	defer u.Close()
	_, err = u.Check(ctx)
	require.Equal(t, acmeerr.Unavailable, acmeerr.KindOf(err))
}

// TestModesAndTLS: sign-verbatim through a named issuer, over TLS with
// ca_file; without the CA file Vault cannot be reached.
func TestModesAndTLS(t *testing.T) {
	srv := vaulttest.Start(t, vaulttest.Options{TLS: true})
	root := srv.Client(t, "")
	p := vaulttest.SetupPKI(t, root, vaulttest.PKIOptions{AllowedDomains: []string{testDomain}})
	e := &env{srv: srv, pki: p, root: root, tokenFile: t.TempDir() + "/token"}
	e.writeToken(t, srv.Token)
	ctx := ctxT(t)

	u := e.upstream(t, func(o *Options) {
		o.CAFile, o.Mode, o.IssuerRef = srv.CAFile, ModeSignVerbatim, p.IntermediateIssuer
	})
	require.Contains(t, u.signPath(), "/issuer/"+p.IntermediateIssuer+"/sign-verbatim/acme")
	res, err := u.Issue(ctx, newRequest(t, csrOptions{}, "verbatim.example.test"), nil)
	require.NoError(t, err)
	require.Equal(t, "verbatim.example.test", res.Leaf.Subject.CommonName)
	require.True(t, res.Chain[0].Equal(p.Intermediate))

	noCA := e.upstream(t, nil)
	_, err = noCA.Issue(ctx, newRequest(t, csrOptions{}, "noca.example.test"), nil)
	require.Equal(t, acmeerr.Unavailable, acmeerr.KindOf(err), "%v", err)
	require.Contains(t, err.Error(), "certificate")
}

// TestNewRejects: options New refuses before contacting anything.
func TestNewRejects(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Role: "r", TokenEnv: "X"}, "address"},
		{Options{Address: "vault:8200", Role: "r", TokenEnv: "X"}, "address"},
		{Options{Address: "http://v", TokenEnv: "X"}, "role"},
		{Options{Address: "http://v", Role: "r", Mode: "issue", TokenEnv: "X"}, "mode"},
		{Options{Address: "http://v", Role: "r"}, "exactly one"},
		{Options{Address: "http://v", Role: "r", TokenEnv: "X", TokenFile: "f"}, "exactly one"},
		{Options{Address: "http://v", Role: "r", AppRole: &AppRole{RoleIDFile: "a"}}, "secret ID"},
		{Options{Address: "http://v", Role: "r", TokenFile: dir + "/missing"}, "token file"},
		{Options{Address: "http://v", Role: "r", TokenEnv: "ACMEBRIDGE_TEST_UNSET_TOKEN"}, "holds no token"},
		{Options{Address: "http://v", Role: "r", TokenEnv: "X", CAFile: dir + "/missing.pem"}, "ca_file"},
		{Options{Address: "http://v", Role: "r", TokenEnv: "X", ClientCertFile: "c"}, "go together"},
	} {
		_, err := New(tc.o)
		require.ErrorContains(t, err, tc.want, "%+v", tc.o)
	}
	t.Setenv("ACMEBRIDGE_TEST_TOKEN", "s.abc")
	u, err := New(Options{Address: "http://127.0.0.1:1/", Role: "r", TokenEnv: "ACMEBRIDGE_TEST_TOKEN"})
	require.NoError(t, err)
	require.Equal(t, "vault", u.Name())
	require.Equal(t, "pki/sign/r", u.signPath())
	require.Equal(t, "s.abc", u.client.Token())
	require.NoError(t, u.Close())
	require.NoError(t, u.Close(), "Close twice")
}

// TestEnvironmentIgnored: VAULT_* variables do not override the config.
func TestEnvironmentIgnored(t *testing.T) {
	t.Setenv("VAULT_TOKEN", "from-env")
	t.Setenv("VAULT_NAMESPACE", "from-env")
	t.Setenv("ACMEBRIDGE_TEST_TOKEN", "from-config")
	u, err := New(Options{Address: "http://127.0.0.1:1", Role: "r", TokenEnv: "ACMEBRIDGE_TEST_TOKEN"})
	require.NoError(t, err)
	defer u.Close()
	require.Equal(t, "from-config", u.client.Token())
	require.Empty(t, u.client.Namespace())
	require.Empty(t, u.login.Token())
	require.Equal(t, 0, u.client.MaxRetries(), "vault/api must not resend a sign")
}

// TestHTTPProblemText: Unavailable details are what a client sees
// (proxy/problem.go shows them); they carry no Vault text.
func TestHTTPProblemText(t *testing.T) {
	u := &Upstream{mount: "pki", role: "r"}
	for _, status := range []int{http.StatusInternalServerError, http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusForbidden} {
		err := u.callError("signing", responseError(status, "secret internal detail from vault"))
		require.Equal(t, acmeerr.Unavailable, acmeerr.KindOf(err))
		require.False(t, strings.Contains(asACME(t, err).Detail, "secret internal"), "status %d", status)
	}
}

// TestREADMEPolicy: the policy docs/upstreams.md shows (moved there from
// the README) is the one the tests run with.
func TestREADMEPolicy(t *testing.T) {
	b, err := os.ReadFile("../../docs/upstreams.md")
	require.NoError(t, err)
	require.Contains(t, string(b), "```hcl\n"+vaulttest.MinimumPolicy("pki", "acme")+"```",
		"docs/upstreams.md's Vault policy differs from vaulttest.MinimumPolicy")
}

// asACME is the *acmeerr.Error in err's chain; the test fails without one.
func asACME(t *testing.T, err error) *acmeerr.Error {
	t.Helper()
	var e *acmeerr.Error
	require.ErrorAs(t, err, &e)
	return e
}
