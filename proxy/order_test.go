package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/ra"
	"github.com/acmebridge/acmebridge/store"
)

func TestNewOrderIdentifiers(t *testing.T) {
	e := newEnv(t, func(c *configs.Config) { c.Orders.MaxIdentifiers = 3 })
	c := e.newClient()
	c.register()
	for _, tc := range []struct {
		name string
		ids  []store.Identifier
		typ  string
	}{
		{"none", nil, "malformed"},
		{"too many", dnsIDs("a.example", "b.example", "c.example", "d.example"), "rejectedIdentifier"},
		{"trailing dot", dnsIDs("a.example."), "rejectedIdentifier"},
		{"double wildcard", dnsIDs("*.*.example"), "rejectedIdentifier"},
		{"inner wildcard", dnsIDs("a.*.example"), "rejectedIdentifier"},
		{"unicode", dnsIDs("bücher.example"), "rejectedIdentifier"},
		{"ip as dns", dnsIDs("192.0.2.1"), "rejectedIdentifier"},
		{"empty label", dnsIDs("a..example"), "rejectedIdentifier"},
		{"long label", dnsIDs(strings.Repeat("a", 64) + ".example"), "rejectedIdentifier"},
		{"hyphen edge", dnsIDs("-a.example"), "rejectedIdentifier"},
		{"unknown type", []store.Identifier{{Type: "email", Value: "a@example.com"}}, "unsupportedIdentifier"},
		{"bad ip", []store.Identifier{{Type: "ip", Value: "300.1.1.1"}}, "malformed"},
		{"non-canonical ipv6", []store.Identifier{{Type: "ip", Value: "2001:DB8::1"}}, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": tc.ids}), 400, tc.typ)
		})
	}
	// Several bad identifiers → subproblems naming each.
	rec := c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("a..example", "ok.example", "b.example.")})
	p := requireProblem(t, rec, 400, "rejectedIdentifier")
	require.Len(t, p.Subproblems, 2)
	require.Equal(t, "a..example", p.Subproblems[0].Identifier.Value)
	require.Equal(t, "b.example.", p.Subproblems[1].Identifier.Value)

	// Upper case is normalised, duplicates folded; wildcard authz is the
	// base name with wildcard=true and only dns-01.
	rec = c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("WWW.Example.com", "www.example.com", "*.example.com")})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	o := decode[orderJSON](t, rec)
	require.Equal(t, dnsIDs("www.example.com", "*.example.com"), o.Identifiers)
	a := decode[authzJSON](t, c.post(o.Authorizations[1], nil))
	require.True(t, a.Wildcard)
	require.Equal(t, "example.com", a.Identifier.Value)
	require.Len(t, a.Challenges, 1)
	require.Equal(t, "dns-01", a.Challenges[0].Type)
	a = decode[authzJSON](t, c.post(o.Authorizations[0], nil))
	require.Len(t, a.Challenges, 3)
	// IP identifiers get no dns-01 (RFC 8738 §7).
	rec = c.post(pathNewOrder, map[string]any{"identifiers": []store.Identifier{{Type: "ip", Value: "2001:db8::1"}}})
	require.Equal(t, http.StatusCreated, rec.Code)
	a = decode[authzJSON](t, c.post(decode[orderJSON](t, rec).Authorizations[0], nil))
	for _, ch := range a.Challenges {
		require.NotEqual(t, "dns-01", ch.Type)
	}
	// Unauthenticated GET of an authorization works too.
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, strings.TrimPrefix(o.Authorizations[0], testBase), "", nil).Code)
}

func TestNewOrderValidity(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	now := time.Now().UTC()
	ids := dnsIDs("v.example.com")
	requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": ids, "notBefore": now.Add(time.Hour), "notAfter": now}), 400, "malformed")
	requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": ids, "notAfter": now.Add(-time.Hour)}), 400, "malformed")
	requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": ids, "notBefore": "yesterday"}), 400, "malformed")
	// Zero times are absent (step CLI).
	rec := c.post(pathNewOrder, map[string]any{"identifiers": ids, "notBefore": "0001-01-01T00:00:00Z", "notAfter": "0001-01-01T00:00:00Z"})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	// A requested validity is honoured by the certificate.
	na := now.Add(48 * time.Hour).Truncate(time.Second)
	rec = c.post(pathNewOrder, map[string]any{"identifiers": ids, "notAfter": na})
	require.Equal(t, http.StatusCreated, rec.Code)
	o := decode[orderJSON](t, rec)
	require.Equal(t, na.Format(time.RFC3339), o.NotAfter)

	f := newEnv(t, func(c *configs.Config) { c.Orders.AllowValidityRequest = false })
	d := f.newClient()
	d.register()
	requireProblem(t, d.post(pathNewOrder, map[string]any{"identifiers": ids, "notAfter": na}), 400, "malformed")
}

func TestPolicyDenyAndSplit(t *testing.T) {
	e := newEnv(t, func(c *configs.Config) {
		c.Upstreams = append(c.Upstreams, configs.Upstream{Name: "other", Type: "local"})
		c.Policy.Rules = []configs.Rule{
			{Name: "no-test", Match: configs.Match{Domains: []string{"*.test.example.com"}}, Action: "deny", Reason: "test names are not issued here"},
			{Name: "corp", Match: configs.Match{Domains: []string{"*.corp.example.com"}}, Upstreams: []string{"other"}},
		}
	})
	c := e.newClient()
	c.register()
	p := requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("a.test.example.com")}), 400, "rejectedIdentifier")
	require.Len(t, p.Subproblems, 1)
	require.Contains(t, p.Subproblems[0].Detail, "test names are not issued here")
	p = requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("a.corp.example.com", "www.example.com")}), 400, "rejectedIdentifier")
	require.Len(t, p.Subproblems, 2)
	require.Contains(t, p.Subproblems[0].Detail, "corp")
	require.Contains(t, p.Subproblems[1].Detail, "default")
}

func TestFailedChallengeInvalidatesOrder(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	e.va.fail["bad.example.com"] = true
	rec := c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("bad.example.com")})
	o := decode[orderJSON](t, rec)
	orderURL := rec.Header().Get("Location")
	a := decode[authzJSON](t, c.post(o.Authorizations[0], nil))
	rec = c.post(a.Challenges[0].URL, struct{}{})
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, strings.Join(rec.Header().Values("Link"), ","), `rel="up"`)
	ch := decode[challengeJSON](t, rec)
	require.Equal(t, "invalid", ch.Status)
	require.Equal(t, errNS+"incorrectResponse", ch.Error.Type)
	require.Equal(t, "invalid", decode[authzJSON](t, c.post(o.Authorizations[0], nil)).Status)
	o = decode[orderJSON](t, c.post(orderURL, nil))
	require.Equal(t, "invalid", o.Status)
	require.NotNil(t, o.Error)
	// Posting the challenge again does not validate again.
	calls := e.va.calls
	require.Equal(t, http.StatusOK, c.post(a.Challenges[0].URL, struct{}{}).Code)
	require.Equal(t, calls, e.va.calls)
	// Finalize of an invalid order.
	requireProblem(t, c.post(o.Finalize, map[string]string{"csr": "AA"}), 403, "orderNotReady")
}

func TestAuthzDeactivation(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	rec := c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("d.example.com")})
	orderURL := rec.Header().Get("Location")
	o := decode[orderJSON](t, rec)
	requireProblem(t, c.post(o.Authorizations[0], map[string]string{"status": "valid"}), 400, "malformed")
	rec = c.post(o.Authorizations[0], map[string]string{"status": "deactivated"})
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "deactivated", decode[authzJSON](t, rec).Status)
	requireProblem(t, c.post(o.Authorizations[0], map[string]string{"status": "deactivated"}), 400, "malformed")
	require.Equal(t, "invalid", decode[orderJSON](t, c.post(orderURL, nil)).Status)
	// Other accounts can neither read nor change it.
	other := e.newClient()
	other.register()
	requireProblem(t, other.post(o.Authorizations[0], nil), 403, "unauthorized")
	requireProblem(t, other.post(orderURL, nil), 403, "unauthorized")
}

func TestOrdersListPaginated(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	for i := 0; i < ra.OrdersPageSize+3; i++ {
		require.Equal(t, http.StatusCreated, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("p.example.com")}).Code)
	}
	rec := c.post(c.kid+"/orders", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	first := decode[map[string][]string](t, rec)["orders"]
	require.Len(t, first, ra.OrdersPageSize)
	var next string
	for _, l := range rec.Header().Values("Link") {
		if strings.Contains(l, `rel="next"`) {
			next = strings.TrimSuffix(strings.TrimPrefix(strings.Split(l, ">")[0], "<"), "")
		}
	}
	require.NotEmpty(t, next)
	rec = c.post(next, nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Len(t, decode[map[string][]string](t, rec)["orders"], 3)
	for _, l := range rec.Header().Values("Link") {
		require.NotContains(t, l, `rel="next"`)
	}
	other := e.newClient()
	other.register()
	requireProblem(t, other.post(c.kid+"/orders", nil), 403, "unauthorized")
	requireProblem(t, c.post(c.kid+"/orders?cursor=nope", nil), 400, "malformed")
}

// TestFinalizeCSRChecks: every refused CSR leaves the order ready.
func TestFinalizeCSRChecks(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	orderURL, o := c.readyOrder(dnsIDs("a.example.com", "b.example.com")...)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	acctKey := c.key
	for _, tc := range []struct {
		name string
		csr  string
		typ  string
	}{
		{"not base64", "!!!", "badCSR"},
		{"padded base64", "AAAA==", "badCSR"},
		{"garbage DER", b64([]byte("garbage")), "badCSR"},
		{"missing name", b64(makeCSR(t, key, "", []string{"a.example.com"}, nil)), "badCSR"},
		{"extra name", b64(makeCSR(t, key, "", []string{"a.example.com", "b.example.com", "c.example.com"}, nil)), "badCSR"},
		{"extra ip", b64(makeCSR(t, key, "", []string{"a.example.com", "b.example.com"}, []net.IP{net.ParseIP("192.0.2.1")})), "badCSR"},
		{"foreign CN", b64(makeCSR(t, key, "evil.example.com", []string{"a.example.com", "b.example.com"}, nil)), "badCSR"},
		{"account key", b64(makeCSR(t, acctKey, "", []string{"a.example.com", "b.example.com"}, nil)), "badCSR"},
		{"RSA 1024", b64(makeCSR(t, weak, "", []string{"a.example.com", "b.example.com"}, nil)), "badCSR"},
		{"P-224", b64(makeCSR(t, p224, "", []string{"a.example.com", "b.example.com"}, nil)), "badCSR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireProblem(t, c.post(o.Finalize, map[string]string{"csr": tc.csr}), 400, tc.typ)
			require.Equal(t, "ready", decode[orderJSON](t, c.post(orderURL, nil)).Status)
		})
	}
	requireProblem(t, c.post(o.Finalize, map[string]int{"csr": 1}), 400, "malformed")
	// Case-insensitive names and a CN among the names are fine.
	rec := c.post(o.Finalize, map[string]string{"csr": b64(makeCSR(t, key, "B.example.com", []string{"A.example.com", "b.example.com"}, nil))})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "valid", decode[orderJSON](t, rec).Status)
}

// TestSlowUpstreamProcessing: a slow upstream leaves the order processing
// with Retry-After; polling later finds it valid.
func TestSlowUpstreamProcessing(t *testing.T) {
	e := newEnv(t, func(c *configs.Config) { c.Orders.FinalizeWait = 0 })
	c := e.newClient()
	c.register()
	orderURL, o := c.readyOrder(dnsIDs("slow.example.com")...)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rec := c.post(o.Finalize, map[string]string{"csr": b64(makeCSR(t, key, "", []string{"slow.example.com"}, nil))})
	require.Equal(t, http.StatusOK, rec.Code)
	st := decode[orderJSON](t, rec).Status
	require.Contains(t, []string{"processing", "valid"}, st)
	if st == "processing" {
		require.Equal(t, "1", rec.Header().Get("Retry-After"))
	}
	require.Eventually(t, func() bool {
		return decode[orderJSON](t, c.post(orderURL, nil)).Status == "valid"
	}, 10*time.Second, 20*time.Millisecond)
}

// TestStaleProcessingChallengeRetried: a challenge left processing (its
// replica died mid-validation) is validated again once its budget is long
// past, instead of staying processing forever.
func TestStaleProcessingChallengeRetried(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	rec := c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("stale.example.com")})
	o := decode[orderJSON](t, rec)
	a := decode[authzJSON](t, c.post(o.Authorizations[0], nil))
	id := strings.TrimPrefix(o.Authorizations[0], testBase+pathAuthz)
	stored, err := e.st.GetAuthz(t.Context(), id)
	require.NoError(t, err)
	stored.Challenges[0].Status = store.StatusProcessing
	stored.Challenges[0].Started = time.Now().Add(-time.Minute)
	require.NoError(t, e.st.UpdateAuthz(t.Context(), stored))
	// Recently started: left alone.
	stored.Challenges[0].Started = time.Now()
	require.NoError(t, e.st.UpdateAuthz(t.Context(), stored))
	require.Equal(t, "processing", decode[challengeJSON](t, c.post(a.Challenges[0].URL, struct{}{})).Status)
	stored, err = e.st.GetAuthz(t.Context(), id)
	require.NoError(t, err)
	stored.Challenges[0].Started = time.Now().Add(-time.Hour)
	require.NoError(t, e.st.UpdateAuthz(t.Context(), stored))
	require.Equal(t, "valid", decode[challengeJSON](t, c.post(a.Challenges[0].URL, struct{}{})).Status)
}
