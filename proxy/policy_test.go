package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/store"
)

func no() *bool { f := false; return &f }

// policyEnv has two local upstreams and rules with constraints.
func policyEnv(t *testing.T) *env {
	return newEnv(t, func(c *configs.Config) {
		c.Accounts.EAB = "optional"
		c.Upstreams = []configs.Upstream{{Name: "dev", Type: "local"}, {Name: "internal", Type: "local"}}
		c.Policy.Rules = []configs.Rule{
			{Name: "printers", Match: configs.Match{Groups: []string{"printers"}}, Upstreams: []string{"internal"},
				Challenges: []string{"http-01"}, KeyTypes: []string{"rsa"}, MinRSABits: 3072, MaxValidity: configs.Duration(48 * time.Hour)},
			{Name: "corp", Match: configs.Match{Domains: []string{"*.corp.example.com"}}, Upstreams: []string{"internal"}, AllowWildcards: no()},
			{Name: "lan", Match: configs.Match{IPs: []string{"10.0.0.0/8"}}, Upstreams: []string{"internal"}},
		}
		c.Policy.Default = configs.Rule{Name: "default", Upstreams: []string{"dev"}, AllowIPs: no()}
	})
}

// registerWithEAB creates an EAB key (group, allow) and an account bound to it.
func registerWithEAB(t *testing.T, e *env, kid, group string, allow []string) *client {
	mac := eabKey(t, e, kid, func(k *store.EABKey) { k.Group, k.Allow = group, allow })
	c := e.newClient()
	rec := c.post(pathNewAccount, map[string]any{"externalAccountBinding": eabBinding(t, c, kid, mac, testBase+pathNewAccount)})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	c.kid = rec.Header().Get("Location")
	return c
}

func TestRouteStoredAndChosenUpstreamIssues(t *testing.T) {
	e := policyEnv(t)
	c := e.newClient()
	c.register()
	_, o := c.readyOrder(dnsIDs("a.corp.example.com")...)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	o = decode[orderJSON](t, c.post(o.Finalize, map[string]string{"csr": b64(makeCSR(t, key, "", []string{"a.corp.example.com"}, nil))}))
	require.Equal(t, "valid", o.Status)
	id := strings.TrimPrefix(o.Certificate, testBase+pathCert)
	cert, err := e.st.GetCertificate(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, "internal", cert.Upstream, "the corp rule routes to internal")
	ord, err := e.st.GetOrder(t.Context(), cert.OrderID)
	require.NoError(t, err)
	require.Equal(t, "corp", ord.Rule)
	require.Equal(t, []string{"internal"}, ord.Upstreams)

	// Wildcards are refused by the corp rule; IPs by the default rule; an
	// IP in the LAN range goes to its rule.
	p := requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("*.corp.example.com")}), 400, "rejectedIdentifier")
	require.Contains(t, p.Subproblems[0].Detail, "wildcard")
	requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": []store.Identifier{{Type: "ip", Value: "192.0.2.1"}}}), 400, "rejectedIdentifier")
	require.Equal(t, http.StatusCreated, c.post(pathNewOrder, map[string]any{"identifiers": []store.Identifier{{Type: "ip", Value: "10.1.2.3"}}}).Code)
	// Identifiers matching different rules: refused, by no one rule.
	requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("a.corp.example.com", "www.example.org")}), 400, "rejectedIdentifier")
	refused := e.audit.of(audit.OrderRefused)
	require.Len(t, refused, 3)
	require.Equal(t, "rejectedIdentifier", refused[0].Problem)
	require.Equal(t, []string{"corp", "default", ""}, []string{refused[0].Rule, refused[1].Rule, refused[2].Rule},
		"the audit line names the rule that refused")
}

func TestEABGroupConstraints(t *testing.T) {
	e := policyEnv(t)
	c := registerWithEAB(t, e, "kid-printer", "printers", nil)
	acct, err := e.st.GetAccountByKey(t.Context(), mustTP(t, c))
	require.NoError(t, err)
	require.Equal(t, "printers", acct.Group)

	// Only http-01 is offered to the printers rule.
	rec := c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("printer-1.lan.example.com")})
	require.Equal(t, http.StatusCreated, rec.Code)
	o := decode[orderJSON](t, rec)
	a := decode[authzJSON](t, c.post(o.Authorizations[0], nil))
	require.Len(t, a.Challenges, 1)
	require.Equal(t, "http-01", a.Challenges[0].Type)
	// A wildcard needs dns-01, which the rule does not allow.
	requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("*.lan.example.com")}), 400, "rejectedIdentifier")

	// Key constraints at finalize: EC refused, RSA 2048 refused, RSA 3072
	// accepted, and the validity capped at 48h.
	_, o = c.readyOrder(dnsIDs("printer-2.lan.example.com")...)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p := requireProblem(t, c.post(o.Finalize, map[string]string{"csr": b64(makeCSR(t, ec, "", []string{"printer-2.lan.example.com"}, nil))}), 400, "badCSR")
	require.Contains(t, p.Detail, "printers")
	small, _ := rsa.GenerateKey(rand.Reader, 2048)
	requireProblem(t, c.post(o.Finalize, map[string]string{"csr": b64(makeCSR(t, small, "", []string{"printer-2.lan.example.com"}, nil))}), 400, "badCSR")
	require.Len(t, e.audit.of(audit.FinalizeRefused), 2)
	big, _ := rsa.GenerateKey(rand.Reader, 3072)
	rec = c.post(o.Finalize, map[string]string{"csr": b64(makeCSR(t, big, "", []string{"printer-2.lan.example.com"}, nil))})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	o = decode[orderJSON](t, rec)
	require.Equal(t, "valid", o.Status)
	blk, _ := pem.Decode(c.post(o.Certificate, nil).Body.Bytes())
	leaf, err := x509.ParseCertificate(blk.Bytes)
	require.NoError(t, err)
	require.LessOrEqual(t, leaf.NotAfter.Sub(leaf.NotBefore), 48*time.Hour+2*time.Minute)
}

func mustTP(t *testing.T, c *client) string {
	tp, err := thumbprintOf(c.key.Public())
	require.NoError(t, err)
	return tp
}

func TestEABAllowList(t *testing.T) {
	e := policyEnv(t)
	c := registerWithEAB(t, e, "kid-allow", "", []string{"*.allowed.example.com", "10.9.0.0/16"})
	require.Equal(t, http.StatusCreated, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("a.allowed.example.com")}).Code)
	require.Equal(t, http.StatusCreated, c.post(pathNewOrder, map[string]any{"identifiers": []store.Identifier{{Type: "ip", Value: "10.9.1.1"}}}).Code)
	p := requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("a.allowed.example.com", "b.other.example.com")}), 400, "rejectedIdentifier")
	require.Len(t, p.Subproblems, 1)
	require.Equal(t, "b.other.example.com", p.Subproblems[0].Identifier.Value)
	bound := e.audit.of(audit.EABBound)
	require.Len(t, bound, 1)
	require.Equal(t, "kid-allow", bound[0].EABKey)
}

// TestAuditAndMetrics: one issuance and one revocation leave their audit
// lines and metrics; no audit line carries a secret.
func TestAuditAndMetrics(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	_, o := c.readyOrder(dnsIDs("m.example.com")...)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	o = decode[orderJSON](t, c.post(o.Finalize, map[string]string{"csr": b64(makeCSR(t, key, "", []string{"m.example.com"}, nil))}))
	require.Equal(t, "valid", o.Status)
	blk, _ := pem.Decode(c.post(o.Certificate, nil).Body.Bytes())
	require.Equal(t, http.StatusOK, c.post(pathRevoke, map[string]any{"certificate": b64(blk.Bytes), "reason": 1}).Code)
	e.va.fail["bad.example.com"] = true
	rec := c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("bad.example.com")})
	badURL := rec.Header().Get("Location")
	a := decode[authzJSON](t, c.post(decode[orderJSON](t, rec).Authorizations[0], nil))
	c.post(a.Challenges[0].URL, struct{}{})
	require.Equal(t, "invalid", decode[orderJSON](t, c.post(badURL, nil)).Status)
	require.Equal(t, 1.0, testutil.ToFloat64(e.metrics.orders.WithLabelValues("/", "invalid")))
	require.Len(t, e.audit.of(audit.OrderInvalid), 1)

	require.Len(t, e.audit.of(audit.AccountCreated), 1)
	created := e.audit.of(audit.OrderCreated)
	require.Len(t, created, 2)
	require.Equal(t, "default", created[0].Rule)
	require.Equal(t, []string{"dev"}, created[0].Upstreams)
	require.NotEmpty(t, created[0].RequestID)
	issued := e.audit.of(audit.CertIssued)
	require.Len(t, issued, 1)
	require.Equal(t, "dev", issued[0].Upstream)
	require.NotEmpty(t, issued[0].Serial)
	require.False(t, issued[0].NotAfter.IsZero())
	require.Equal(t, []string{"m.example.com"}, issued[0].Names)
	revoked := e.audit.of(audit.CertRevoked)
	require.Len(t, revoked, 1)
	require.Equal(t, issued[0].Serial, revoked[0].Serial)
	require.Len(t, e.audit.of(audit.ChallengeValid), 1)
	require.Len(t, e.audit.of(audit.ChallengeInvalid), 1)
	for _, ev := range e.audit.events {
		require.NotContains(t, ev.Why(), "PRIVATE")
		require.NotContains(t, ev.Why(), "BEGIN")
	}

	require.Equal(t, 1.0, testutil.ToFloat64(e.metrics.orders.WithLabelValues("/", "valid")))
	require.Equal(t, 2.0, testutil.ToFloat64(e.metrics.orders.WithLabelValues("/", "pending")))
	require.Equal(t, 1.0, testutil.ToFloat64(e.metrics.validations.WithLabelValues("http-01", "invalid")))
	require.Equal(t, 2.0, testutil.ToFloat64(e.metrics.requests.WithLabelValues("/", pathNewOrder, "POST", "201")))
	require.Equal(t, 1, testutil.CollectAndCount(e.metrics.issuance))
	e.metrics.ObserveStore("GetOrder", time.Millisecond, nil)
	require.Equal(t, 1, testutil.CollectAndCount(e.metrics.storeOps))
	// The revoked certificate is not counted as expiring.
	n, err := testutil.GatherAndCount(e.reg, "acmebridge_certificates_expiring")
	require.NoError(t, err)
	require.Equal(t, 2, n)
}
