package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
)

// wildcardPolicyEnv: a deny on one name, a deny on a glob, one name routed
// to another upstream, a deny written in Unicode, and a wildcard rule for
// the rest.
func wildcardPolicyEnv(t *testing.T) *env {
	return newEnv(t, func(c *configs.Config) {
		c.Upstreams = []configs.Upstream{{Name: "dev", Type: "local"}, {Name: "internal", Type: "local"}}
		c.Policy.Rules = []configs.Rule{
			{Name: "secret-names", Match: configs.Match{Domains: []string{"secret.example.com"}}, Action: "deny"},
			{Name: "printers", Match: configs.Match{Domains: []string{"printer-*.corp.example.com"}}, Action: "deny"},
			{Name: "vault-names", Match: configs.Match{Domains: []string{"www.example.net"}}, Upstreams: []string{"internal"}},
			{Name: "books", Match: configs.Match{Domains: []string{"bücher.example.org"}}, Action: "deny", Reason: "no books"},
			{Name: "public", Match: configs.Match{Domains: []string{"*.example.com", "*.example.net", "*.example.org"}}, Upstreams: []string{"dev"}},
		}
		c.Policy.Default = configs.Rule{Name: "default", Action: "deny"}
	})
}

// TestNewOrderWildcardCoveringDeniedOrRoutedName: newOrder for a wildcard
// that would cover a name an earlier rule denies (exactly or by a glob) or
// routes to another upstream is refused with rejectedIdentifier naming that
// rule (docs/security.md), and the audit line names it; a wildcard covering no
// such name is issued. Before, "*.example.com" was issued by the public
// rule, a certificate valid for secret.example.com.
func TestNewOrderWildcardCoveringDeniedOrRoutedName(t *testing.T) {
	e := wildcardPolicyEnv(t)
	c := e.newClient()
	c.register()

	for _, tc := range []struct{ name, detail string }{
		{"*.example.com", "rule secret-names denies secret.example.com, which *.example.com would cover"},
		{"*.corp.example.com", "rule printers denies printer-*.corp.example.com, which *.corp.example.com would cover"},
		{"*.example.net", "rule vault-names routes www.example.net to [internal], not [dev] as rule public does, which *.example.net would cover"},
		{"*.example.org", "rule books denies xn--bcher-kva.example.org (no books), which *.example.org would cover"},
	} {
		p := requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs(tc.name)}), http.StatusBadRequest, "rejectedIdentifier")
		require.Len(t, p.Subproblems, 1, tc.name)
		require.Equal(t, tc.name, p.Subproblems[0].Identifier.Value)
		require.Equal(t, tc.detail, p.Subproblems[0].Detail)
		require.Contains(t, p.Detail, tc.detail)
	}
	refused := e.audit.of(audit.OrderRefused)
	require.Len(t, refused, 4)
	require.Equal(t, []string{"secret-names", "printers", "vault-names", "books"},
		[]string{refused[0].Rule, refused[1].Rule, refused[2].Rule, refused[3].Rule}, "the audit line names the conflicting rule")

	// The Unicode rule matches the A-label identifier.
	p := requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("xn--bcher-kva.example.org")}), http.StatusBadRequest, "rejectedIdentifier")
	require.Contains(t, p.Subproblems[0].Detail, "rule books: no books")

	// A wildcard whose names no other rule decides for is issued.
	_, o := c.readyOrder(dnsIDs("*.other.example.com")...)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	o = decode[orderJSON](t, c.post(o.Finalize, map[string]string{"csr": b64(makeCSR(t, key, "", []string{"*.other.example.com"}, nil))}))
	require.Equal(t, "valid", o.Status)
	blk, _ := pem.Decode(c.post(o.Certificate, nil).Body.Bytes())
	leaf, err := x509.ParseCertificate(blk.Bytes)
	require.NoError(t, err)
	require.Equal(t, []string{"*.other.example.com"}, leaf.DNSNames)
	// So is the plain name routed elsewhere, by its own rule.
	require.Equal(t, http.StatusCreated, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("www.example.net")}).Code)
}
