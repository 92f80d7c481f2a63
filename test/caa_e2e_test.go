package test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/certcrypto"
	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/challenge/http01"
	"github.com/go-acme/lego/v5/lego"
	legolog "github.com/go-acme/lego/v5/log"
	"github.com/go-acme/lego/v5/registration"
	"github.com/stretchr/testify/require"
)

// TestCAA: acmebridge checks CAA (RFC 8659, with RFC 8657 accounturi and
// validationmethods) at finalize for its local CA, whose CAA identity is
// configured, through the test DNS server: lego gets a certificate where CAA
// names acmebridge for its account and method, and a caa problem where CAA
// names another CA or another account, a dns problem where CAA cannot be
// looked up.
func TestCAA(t *testing.T) {
	legoLogs := &syncBuffer{}
	prevLog := legolog.Default()
	legolog.SetDefault(slog.New(slog.NewTextHandler(legoLogs, nil)))
	t.Cleanup(func() {
		legolog.SetDefault(prevLog)
		if t.Failed() {
			t.Logf("lego log:\n%s", legoLogs.String())
		}
	})

	s := startServer(t, `upstreams:
  - name: dev
    type: local
    caa_identities: [bridge.e2e.test]
`)
	register := func(email string) (*legoUser, *lego.Client) {
		u := &legoUser{email: email, key: newECKey(t)}
		c := newLegoClient(t, s, u)
		ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
		defer cancel()
		reg, err := c.Registration.Register(ctx, registration.RegisterOptions{TermsOfServiceAgreed: true})
		require.NoError(t, err)
		u.reg = reg
		require.NoError(t, c.Challenge.SetHTTP01Provider(http01.NewProviderServer("127.0.0.1", itoa(s.HTTPPort))))
		return u, c
	}
	owner, ownerClient := register("caa-owner@example.com")
	_, otherClient := register("caa-other@example.com")

	// The zone's policy: acmebridge may issue for the owner's account by
	// http-01 (found by climbing from www.caa.e2e.test); one subdomain names
	// another CA only; one cannot be looked up.
	s.DNS.SetCAA("caa.e2e.test", 0, "issue", "bridge.e2e.test; accounturi="+owner.reg.Location+"; validationmethods=http-01")
	s.DNS.SetCAA("caa.e2e.test", 0, "iodef", "mailto:security@caa.e2e.test")
	s.DNS.SetCAA("forbid.caa.e2e.test", 0, "issue", "other-ca.example")
	s.DNS.SetServfail("broken.caa.e2e.test", true)

	obtain := func(c *lego.Client, names ...string) (*certificate.Resource, error) {
		ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
		defer cancel()
		return c.Certificate.Obtain(ctx, certificate.ObtainRequest{Domains: names, KeyType: certcrypto.EC256, Bundle: true})
	}
	requireProblem := func(err error, typ, detail string) {
		t.Helper()
		require.Error(t, err)
		var pd *acme.ProblemDetails
		require.ErrorAs(t, err, &pd, "%v", err)
		require.Equal(t, "urn:ietf:params:acme:error:"+typ, pd.Type, pd.Detail)
		require.Contains(t, pd.Detail, detail)
	}

	t.Run("allowed", func(t *testing.T) {
		res, err := obtain(ownerClient, "www.caa.e2e.test")
		require.NoError(t, err)
		s.verifyChain(t, res.Certificate, []string{"www.caa.e2e.test"})
	})

	t.Run("other-ca", func(t *testing.T) {
		_, err := obtain(ownerClient, "forbid.caa.e2e.test")
		requireProblem(err, "caa", "CAA issue records at forbid.caa.e2e.test do not authorize this CA (bridge.e2e.test) to issue for forbid.caa.e2e.test")
	})

	t.Run("other-account", func(t *testing.T) {
		_, err := obtain(otherClient, "www.caa.e2e.test")
		requireProblem(err, "caa", "only for another ACME account (accounturi)")
	})

	t.Run("dns-failure", func(t *testing.T) {
		_, err := obtain(ownerClient, "www.broken.caa.e2e.test")
		requireProblem(err, "dns", "CAA for www.broken.caa.e2e.test could not be checked")
	})

	t.Run("allowed-again", func(t *testing.T) {
		// The domain's owner changes its policy: now any account may.
		s.DNS.ClearCAA("forbid.caa.e2e.test")
		s.DNS.SetCAA("forbid.caa.e2e.test", 0, "issue", "bridge.e2e.test")
		res, err := obtain(otherClient, "forbid.caa.e2e.test")
		require.NoError(t, err)
		s.verifyChain(t, res.Certificate, []string{"forbid.caa.e2e.test"})
	})
}
