package proxy

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/upstream"
)

// delegatedEnv is the SaaS side of a tiered bridge: accounts bound with an
// EAB key of group site-a get their names under site-a.example.com and in
// 10.1.0.0/16 without a challenge (no wildcards); everything else goes
// through challenges to the default upstream. eab is accounts.eab.
func delegatedEnv(t *testing.T, eab string) *env {
	return newEnv(t, func(c *configs.Config) {
		c.Accounts.EAB = eab
		c.Upstreams = []configs.Upstream{{Name: "dev", Type: "local"}, {Name: "vault", Type: "local"}}
		c.Policy.Rules = []configs.Rule{{Name: "site-a",
			Match:     configs.Match{Groups: []string{"site-a"}, Domains: []string{"*.site-a.example.com"}, IPs: []string{"10.1.0.0/16"}},
			Upstreams: []string{"vault"}, AllowWildcards: no(), DelegatedValidation: true}}
		c.Policy.Default = configs.Rule{Name: "default", Upstreams: []string{"dev"}}
	})
}

// TestDelegatedValidation: an account bound with a key of group site-a
// orders a name and an IP its rule grants: the order is ready at once,
// each authorization valid with no challenge (an empty array), nothing is
// validated, each authorization is audited as authorization.delegated with
// the key, group, name and rule, the store marks it delegated, and the
// certificate is issued by the rule's upstream.
func TestDelegatedValidation(t *testing.T) {
	e := delegatedEnv(t, "optional")
	c := registerWithEAB(t, e, "kid-site-a", "site-a", nil)
	ids := append(dnsIDs("printer.site-a.example.com"), store.Identifier{Type: "ip", Value: "10.1.2.3"})
	rec := c.post(pathNewOrder, map[string]any{"identifiers": ids})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	o := decode[orderJSON](t, rec)
	require.Equal(t, "ready", o.Status, "every authorization is valid: the order is ready (RFC 8555 §7.1.6)")
	require.Len(t, o.Authorizations, 2)
	for _, u := range o.Authorizations {
		rec := c.post(u, nil)
		require.Equal(t, http.StatusOK, rec.Code)
		require.Contains(t, rec.Body.String(), `"challenges":[]`, "a valid authorization lists no challenge it did not use")
		a := decode[authzJSON](t, rec)
		require.Equal(t, "valid", a.Status)
		stored, err := e.st.GetAuthz(t.Context(), u[strings.LastIndex(u, "/")+1:])
		require.NoError(t, err)
		require.True(t, stored.Delegated)
		require.Equal(t, "site-a", stored.DelegatedRule)
	}
	events := e.audit.of(audit.AuthzDelegated)
	require.Len(t, events, 2)
	var names []string
	for _, ev := range events {
		require.Equal(t, "kid-site-a", ev.EABKey)
		require.Equal(t, "site-a", ev.Group)
		require.Equal(t, "site-a", ev.Rule)
		require.Len(t, ev.Names, 1)
		names = append(names, ev.Names[0])
	}
	require.ElementsMatch(t, []string{"printer.site-a.example.com", "10.1.2.3"}, names)

	rec = c.post(o.Finalize, map[string]string{"csr": b64(finalizeCSR(t, "printer.site-a.example.com", "10.1.2.3"))})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	o = decode[orderJSON](t, rec)
	require.Equal(t, "valid", o.Status)
	cert, err := e.st.GetCertificate(t.Context(), strings.TrimPrefix(o.Certificate, testBase+pathCert))
	require.NoError(t, err)
	require.Equal(t, "vault", cert.Upstream)
	ord, err := e.st.GetOrder(t.Context(), cert.OrderID)
	require.NoError(t, err)
	require.True(t, ord.Delegated)
	require.Zero(t, e.va.calls, "nothing was validated")

	// A second order of the same account gets fresh delegated
	// authorizations, audited again: none is reused.
	o2 := decode[orderJSON](t, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("printer.site-a.example.com")}))
	require.Equal(t, "ready", o2.Status)
	require.NotContains(t, o.Authorizations, o2.Authorizations[0])
	require.Len(t, e.audit.of(audit.AuthzDelegated), 3)
}

// TestDelegatedValidationHostile: delegation goes only to whom and what the
// rule names.
func TestDelegatedValidationHostile(t *testing.T) {
	// requireChallenges asserts an order that must be validated: pending,
	// its authorizations pending with challenges, none delegated.
	requireChallenges := func(t *testing.T, e *env, c *client, names ...string) orderJSON {
		t.Helper()
		rec := c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs(names...)})
		require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
		o := decode[orderJSON](t, rec)
		require.Equal(t, "pending", o.Status)
		for _, u := range o.Authorizations {
			a := decode[authzJSON](t, c.post(u, nil))
			require.Equal(t, "pending", a.Status)
			require.NotEmpty(t, a.Challenges)
		}
		require.Empty(t, e.audit.of(audit.AuthzDelegated))
		return o
	}

	t.Run("open sign-up account gets challenges", func(t *testing.T) {
		e := delegatedEnv(t, "optional")
		c := e.newClient()
		c.register()
		o := requireChallenges(t, e, c, "printer.site-a.example.com")
		ord := e.orderOf(t, c, o)
		require.Equal(t, "default", ord.Rule)
		require.False(t, ord.Delegated)
	})

	t.Run("key of another group gets challenges", func(t *testing.T) {
		e := delegatedEnv(t, "optional")
		c := registerWithEAB(t, e, "kid-site-b", "site-b", nil)
		requireChallenges(t, e, c, "printer.site-a.example.com")
	})

	t.Run("name outside the rule's domains is not delegated", func(t *testing.T) {
		e := delegatedEnv(t, "optional")
		c := registerWithEAB(t, e, "kid-site-a", "site-a", nil)
		requireChallenges(t, e, c, "printer.site-b.example.com")
		requireChallenges(t, e, c, "site-a.example.com.evil.example")
		// An IP outside the rule's range is not delegated either.
		rec := c.post(pathNewOrder, map[string]any{"identifiers": []store.Identifier{{Type: "ip", Value: "10.2.0.1"}}})
		require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
		require.Equal(t, "pending", decode[orderJSON](t, rec).Status)
		// A name inside and one outside: different rules, refused whole.
		requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("a.site-a.example.com", "www.example.org")}), 400, "rejectedIdentifier")
		require.Empty(t, e.audit.of(audit.AuthzDelegated))
	})

	t.Run("wildcard refused when the rule disallows wildcards", func(t *testing.T) {
		e := delegatedEnv(t, "optional")
		c := registerWithEAB(t, e, "kid-site-a", "site-a", nil)
		p := requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("*.site-a.example.com")}), 400, "rejectedIdentifier")
		require.Contains(t, p.Detail, "rule site-a: wildcard names are not issued")
		require.Empty(t, e.audit.of(audit.AuthzDelegated))
	})

	t.Run("another account cannot use a delegated authorization", func(t *testing.T) {
		e := delegatedEnv(t, "optional")
		a := registerWithEAB(t, e, "kid-site-a", "site-a", nil)
		b := registerWithEAB(t, e, "kid-site-a-2", "site-a", nil)
		oa := decode[orderJSON](t, a.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("x.site-a.example.com")}))
		ob := decode[orderJSON](t, b.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("x.site-a.example.com")}))
		require.NotEqual(t, oa.Authorizations[0], ob.Authorizations[0], "each account gets its own authorization")
		requireProblem(t, b.post(oa.Authorizations[0], nil), 403, "unauthorized")
		// An open sign-up account ordering the name validates it.
		c := e.newClient()
		c.register()
		oc := requireChallengesAfter(t, c, "x.site-a.example.com")
		require.NotContains(t, []string{oa.Authorizations[0], ob.Authorizations[0]}, oc.Authorizations[0])
	})
}

// requireChallengesAfter orders names and requires a pending order.
func requireChallengesAfter(t *testing.T, c *client, names ...string) orderJSON {
	t.Helper()
	rec := c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs(names...)})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	o := decode[orderJSON](t, rec)
	require.Equal(t, "pending", o.Status)
	return o
}

// orderOf is the stored order behind an order object (by its finalize URL).
func (e *env) orderOf(t *testing.T, c *client, o orderJSON) *store.Order {
	t.Helper()
	id := strings.TrimSuffix(strings.TrimPrefix(o.Finalize, testBase+pathOrder), "/finalize")
	ord, err := e.st.GetOrder(t.Context(), id)
	require.NoError(t, err, o.Finalize)
	return ord
}

// TestDelegatedGrantEndsWithKey: an EAB key revoked after a delegated order
// takes the delegation away: finalize is refused (unauthorized, naming the
// rule) with accounts.eab optional (the account is then an open sign-up
// one) and required (the account is refused), and nothing is issued. A key
// revoked while the issuance job waits for a retry ends the order invalid
// before the upstream is asked again.
func TestDelegatedGrantEndsWithKey(t *testing.T) {
	revoke := func(t *testing.T, e *env, kid string) {
		k, err := e.st.GetEABKey(t.Context(), kid)
		require.NoError(t, err)
		k.RevokedAt = time.Now()
		require.NoError(t, e.st.UpdateEABKey(t.Context(), k))
	}
	for _, mode := range []string{"optional", "required"} {
		t.Run("finalize/"+mode, func(t *testing.T) {
			e := delegatedEnv(t, mode)
			c := registerWithEAB(t, e, "kid-site-a", "site-a", nil)
			o := decode[orderJSON](t, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("late.site-a.example.com")}))
			require.Equal(t, "ready", o.Status)
			revoke(t, e, "kid-site-a")
			p := requireProblem(t, c.post(o.Finalize, map[string]string{"csr": b64(finalizeCSR(t, "late.site-a.example.com"))}), 403, "unauthorized")
			if mode == "optional" {
				require.Contains(t, p.Detail, "granted without a challenge by rule site-a")
			} else {
				require.Contains(t, p.Detail, "revoked")
			}
			require.Len(t, e.audit.of(audit.FinalizeRefused), 1)
			page, err := e.st.List(t.Context(), store.KindCertificate, "", 10)
			require.NoError(t, err)
			require.Empty(t, page.IDs, "nothing issued")
		})
	}

	t.Run("worker", func(t *testing.T) {
		down := &atomic.Bool{}
		down.Store(true)
		wrapIssuer = func(i upstream.Issuer) upstream.Issuer { return flakyIssuer{Issuer: i, down: down} }
		defer func() { wrapIssuer = nil }()
		e := delegatedEnv(t, "optional")
		c := registerWithEAB(t, e, "kid-site-a", "site-a", nil)
		rec := c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("queued.site-a.example.com")})
		orderURL := rec.Header().Get("Location")
		o := decode[orderJSON](t, rec)
		rec = c.post(o.Finalize, map[string]string{"csr": b64(finalizeCSR(t, "queued.site-a.example.com"))})
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		require.Equal(t, "processing", decode[orderJSON](t, rec).Status, "the upstream is down: the job waits")
		revoke(t, e, "kid-site-a")
		down.Store(false)
		var cur orderJSON
		require.Eventually(t, func() bool {
			cur = decode[orderJSON](t, c.post(orderURL, nil))
			return cur.Status != "processing"
		}, 30*time.Second, 50*time.Millisecond)
		require.Equal(t, "invalid", cur.Status)
		require.Equal(t, errNS+"unauthorized", cur.Error.Type)
		require.Contains(t, cur.Error.Detail, "rule site-a")
		require.Empty(t, cur.Certificate)
	})
}
