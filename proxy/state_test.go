package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/store"
)

// This file tests the order and authorization state rules (RFC 8555 §7.1.6),
// account deactivation (§7.3.6), ARI replacement (RFC 9773 §5), the
// notBefore cap and the end of an EAB key's grants.

// fakeClock is a settable clock for the server under test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newEnvClock is newEnv whose server reads the time from the returned clock.
func newEnvClock(t *testing.T, mutate func(*configs.Config)) (*env, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Now()}
	envClock = clk.now
	defer func() { envClock = nil }()
	return newEnv(t, mutate), clk
}

// csrPayload is a finalize payload for names with a fresh key.
func csrPayload(t *testing.T, names ...string) map[string]string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return map[string]string{"csr": b64(makeCSR(t, key, "", names, nil))}
}

// requireNoCertificate asserts that the order at orderURL holds no
// certificate in the store.
func requireNoCertificate(t *testing.T, e *env, orderURL string) {
	t.Helper()
	o, err := e.st.GetOrder(t.Context(), strings.TrimPrefix(orderURL, testBase+pathOrder))
	require.NoError(t, err)
	require.Empty(t, o.CertificateID, "no certificate may be issued for order %s", o.ID)
}

// requireEndedInvalid requires that no certificate was issued for the
// order at orderURL and that it reads invalid, its error saying why.
func requireEndedInvalid(t *testing.T, c *client, orderURL, why string) {
	t.Helper()
	requireNoCertificate(t, c.e, orderURL)
	got := decode[orderJSON](t, c.post(orderURL, nil))
	require.Equal(t, "invalid", got.Status)
	require.NotNil(t, got.Error)
	require.Contains(t, got.Error.Detail, why)
}

// TestReadyOrderAuthzDeactivated: RFC 8555 §7.1.6 — a ready order whose
// authorization the client deactivates (§7.5.2) becomes invalid; finalize
// is refused with orderNotReady and issues nothing, and the order reads
// invalid.
func TestReadyOrderAuthzDeactivated(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	orderURL, o := c.readyOrder(dnsIDs("a.ready.example.com", "b.ready.example.com")...)

	rec := c.post(o.Authorizations[1], map[string]string{"status": "deactivated"})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())

	p := requireProblem(t, c.post(o.Finalize, csrPayload(t, "a.ready.example.com", "b.ready.example.com")), 403, "orderNotReady")
	require.Contains(t, p.Detail, "invalid")
	requireNoCertificate(t, e, orderURL)
	got := decode[orderJSON](t, c.post(orderURL, nil))
	require.Equal(t, "invalid", got.Status)
	require.NotNil(t, got.Error)
	require.Contains(t, got.Error.Detail, "b.ready.example.com")
	require.Contains(t, got.Error.Detail, "deactivated")
}

// TestReadyOrderAuthzDeactivatedOrderRead: the order read alone (without a
// finalize) shows the ready order invalid once its authorization is
// deactivated (RFC 8555 §7.1.6 state diagram).
func TestReadyOrderAuthzDeactivatedOrderRead(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	orderURL, o := c.readyOrder(dnsIDs("read.example.com")...)
	require.Equal(t, http.StatusOK, c.post(o.Authorizations[0], map[string]string{"status": "deactivated"}).Code)
	require.Equal(t, "invalid", decode[orderJSON](t, c.post(orderURL, nil)).Status)
	requireProblem(t, c.post(o.Finalize, csrPayload(t, "read.example.com")), 403, "orderNotReady")
	requireNoCertificate(t, e, orderURL)
}

// TestReadyOrderAuthzExpired: an authorization that expires while its order
// is ready (the order lives longer) makes the order invalid: finalize at
// that moment is refused and the order reads invalid.
func TestReadyOrderAuthzExpired(t *testing.T) {
	e, clk := newEnvClock(t, func(c *configs.Config) {
		c.Orders.OrderLifetime = configs.Duration(24 * time.Hour)
		c.Orders.AuthzLifetime = configs.Duration(time.Hour)
	})
	c := e.newClient()
	c.register()
	orderURL, o := c.readyOrder(dnsIDs("exp.example.com")...)

	clk.add(2 * time.Hour)
	requireProblem(t, c.post(o.Finalize, csrPayload(t, "exp.example.com")), 403, "orderNotReady")
	requireEndedInvalid(t, c, orderURL, "expired")
}

// TestReadyOrderFinalizesWhileAuthzValid: the re-check lets a ready order
// whose authorizations are valid and unexpired be finalized.
func TestReadyOrderFinalizesWhileAuthzValid(t *testing.T) {
	e, clk := newEnvClock(t, func(c *configs.Config) {
		c.Orders.AuthzLifetime = configs.Duration(time.Hour)
	})
	c := e.newClient()
	c.register()
	_, o := c.readyOrder(dnsIDs("ok.example.com")...)
	clk.add(30 * time.Minute)
	rec := c.post(o.Finalize, csrPayload(t, "ok.example.com"))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "valid", decode[orderJSON](t, rec).Status)
}

// TestDeactivatedAccountUnauthorized401: RFC 8555 §7.3.6 — "If a server
// receives a POST or POST-as-GET from a deactivated account, it MUST return
// an error response with status code 401 (Unauthorized) and type
// "urn:ietf:params:acme:error:unauthorized"."
func TestDeactivatedAccountUnauthorized401(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	orderURL, _ := c.readyOrder(dnsIDs("dead.example.com")...)
	require.Equal(t, http.StatusOK, c.post(c.kid, map[string]any{"status": "deactivated"}).Code)

	requireProblem(t, c.post(c.kid, nil), 401, "unauthorized")
	requireProblem(t, c.post(orderURL, nil), 401, "unauthorized")
	requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("dead.example.com")}), 401, "unauthorized")
	// newAccount with the deactivated account's key (jwk, not kid).
	requireProblem(t, c.post(pathNewAccount, map[string]any{}), 401, "unauthorized")
}

// TestReplacesAfterInvalidReplacement: RFC 9773 §5 — "Servers SHOULD check
// ... that the identified certificate has not already been marked as
// replaced by a different Order that is not "invalid"". A replacement order
// that is pending, ready or valid blocks a second one (alreadyReplaced);
// once it is invalid the certificate can be replaced again.
func TestReplacesAfterInvalidReplacement(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	leaf, _ := issue(t, e, c, "ari.example.com")
	id := ariID(leaf)
	newReplacement := func() (string, orderJSON) {
		t.Helper()
		rec := c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("ari.example.com"), "replaces": id})
		require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
		return rec.Header().Get("Location"), decode[orderJSON](t, rec)
	}
	alreadyReplaced := func(state string) {
		t.Helper()
		rec := c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("ari.example.com"), "replaces": id})
		p := requireProblem(t, rec, 409, "alreadyReplaced")
		require.NotEmpty(t, p.Detail, "a %s replacement blocks", state)
	}

	// A pending replacement blocks; its authorization deactivated, it is
	// invalid and no longer does.
	firstURL, first := newReplacement()
	alreadyReplaced("pending")
	require.Equal(t, http.StatusOK, c.post(first.Authorizations[0], map[string]string{"status": "deactivated"}).Code)
	secondURL, second := newReplacement()
	require.Equal(t, "invalid", decode[orderJSON](t, c.post(firstURL, nil)).Status)

	// A ready replacement blocks.
	a := decode[authzJSON](t, c.post(second.Authorizations[0], nil))
	require.Equal(t, http.StatusOK, c.post(a.Challenges[0].URL, struct{}{}).Code)
	require.Equal(t, "ready", decode[orderJSON](t, c.post(secondURL, nil)).Status)
	alreadyReplaced("ready")

	// A replacement whose validation failed is invalid: replace again.
	e.va.mu.Lock()
	e.va.fail["ari.example.com"] = true
	e.va.mu.Unlock()
	require.Equal(t, http.StatusOK, c.post(second.Authorizations[0], map[string]string{"status": "deactivated"}).Code)
	thirdURL, third := newReplacement()
	a = decode[authzJSON](t, c.post(third.Authorizations[0], nil))
	c.post(a.Challenges[0].URL, struct{}{})
	require.Equal(t, "invalid", decode[orderJSON](t, c.post(thirdURL, nil)).Status)
	e.va.mu.Lock()
	delete(e.va.fail, "ari.example.com")
	e.va.mu.Unlock()

	// A valid replacement blocks for good.
	fourthURL, fourth := newReplacement()
	a = decode[authzJSON](t, c.post(fourth.Authorizations[0], nil))
	require.Equal(t, http.StatusOK, c.post(a.Challenges[0].URL, struct{}{}).Code)
	rec := c.post(fourth.Finalize, csrPayload(t, "ari.example.com"))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "valid", decode[orderJSON](t, c.post(fourthURL, nil)).Status)
	alreadyReplaced("valid")
}

// TestNotBeforeBackdateCapped: a newOrder notBefore more than an hour in
// the past is refused (malformed, with the cap in the detail); a small
// backdate is accepted.
func TestNotBeforeBackdateCapped(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	order := func(nb time.Time) map[string]any {
		return map[string]any{"identifiers": dnsIDs("nb.example.com"), "notBefore": nb.UTC().Format(time.RFC3339)}
	}
	p := requireProblem(t, c.post(pathNewOrder, order(time.Now().Add(-48*time.Hour))), 400, "malformed")
	require.Contains(t, p.Detail, "notBefore")
	require.Contains(t, p.Detail, "1h0m0s")
	requireProblem(t, c.post(pathNewOrder, order(time.Now().Add(-time.Hour-time.Minute))), 400, "malformed")
	rec := c.post(pathNewOrder, order(time.Now().Add(-30*time.Minute)))
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	rec = c.post(pathNewOrder, order(time.Now().Add(time.Minute)))
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
}

// eabAccount registers c with the EAB key kid (made with group and allow).
func eabAccount(t *testing.T, e *env, c *client, kid, group string, allow ...string) {
	t.Helper()
	mac := eabKey(t, e, kid, func(k *store.EABKey) { k.Group, k.Allow = group, allow })
	rec := c.post(pathNewAccount, map[string]any{"termsOfServiceAgreed": true,
		"externalAccountBinding": eabBinding(t, c, kid, mac, testBase+pathNewAccount)})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	c.kid = rec.Header().Get("Location")
}

// revokeEABKey marks kid revoked in the store, as `acmebridge eab revoke`
// does.
func revokeEABKey(t *testing.T, e *env, kid string, at time.Time) {
	t.Helper()
	k, err := e.st.GetEABKey(t.Context(), kid)
	require.NoError(t, err)
	k.RevokedAt = at
	require.NoError(t, e.st.UpdateEABKey(t.Context(), k))
}

// groupPolicy permits only accounts of EAB group "printers".
func groupPolicy(eab string) func(*configs.Config) {
	return func(c *configs.Config) {
		c.Accounts.EAB = eab
		c.Policy.Rules = []configs.Rule{{Name: "printers", Match: configs.Match{Groups: []string{"printers"}}, Upstreams: []string{"dev"}}}
		c.Policy.Default = configs.Rule{Name: "default", Action: "deny"}
	}
}

// TestRevokedEABKeyRequired: with accounts.eab required, an account whose EAB
// key is revoked is refused every newOrder, newAuthz and finalize
// (unauthorized), including the finalize of an order made before.
func TestRevokedEABKeyRequired(t *testing.T) {
	e := newEnv(t, func(c *configs.Config) {
		groupPolicy("required")(c)
		c.Orders.PreAuthorization = true
		c.Orders.ValidAuthzReuse = configs.Duration(time.Hour)
	})
	c := e.newClient()
	eabAccount(t, e, c, "kid-printers", "printers")
	orderURL, before := c.readyOrder(dnsIDs("p1.example.com")...)

	revokeEABKey(t, e, "kid-printers", time.Now())
	p := requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("p2.example.com")}), 403, "unauthorized")
	require.Contains(t, p.Detail, "kid-printers")
	require.Contains(t, p.Detail, "revoked")
	requireProblem(t, c.post(pathNewAuthz, map[string]any{"identifier": dnsIDs("p3.example.com")[0]}), 403, "unauthorized")
	requireProblem(t, c.post(before.Finalize, csrPayload(t, "p1.example.com")), 403, "unauthorized")
	requireNoCertificate(t, e, orderURL)
	require.Equal(t, "ready", decode[orderJSON](t, c.post(orderURL, nil)).Status, "a refused finalize leaves the order ready")
}

// TestExpiredEABKeyRequired: an EAB key past its expiry ends its account's
// orders the same way.
func TestExpiredEABKeyRequired(t *testing.T) {
	e, clk := newEnvClock(t, groupPolicy("required"))
	c := e.newClient()
	mac := eabKey(t, e, "kid-exp", func(k *store.EABKey) { k.Group, k.ExpiresAt = "printers", clk.now().Add(time.Hour) })
	rec := c.post(pathNewAccount, map[string]any{"externalAccountBinding": eabBinding(t, c, "kid-exp", mac, testBase+pathNewAccount)})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	c.kid = rec.Header().Get("Location")
	_, o := c.readyOrder(dnsIDs("e1.example.com")...)

	clk.add(2 * time.Hour)
	p := requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("e2.example.com")}), 403, "unauthorized")
	require.Contains(t, p.Detail, "expired")
	requireProblem(t, c.post(o.Finalize, csrPayload(t, "e1.example.com")), 403, "unauthorized")
}

// TestRevokedEABKeyOptional: with accounts.eab optional, an account whose
// key is revoked keeps open sign-up rights only: the group rule no longer
// matches it (the default decides), and the key's allow-list still limits
// it (a revocation never widens what the account may order).
func TestRevokedEABKeyOptional(t *testing.T) {
	e := newEnv(t, func(c *configs.Config) {
		groupPolicy("optional")(c)
		c.Policy.Rules = append(c.Policy.Rules, configs.Rule{Name: "open", Match: configs.Match{Domains: []string{"*.open.example.com", "*.open.other.test"}}, Upstreams: []string{"dev"}})
	})
	c := e.newClient()
	eabAccount(t, e, c, "kid-opt", "printers", "*.example.com")
	orderURL, before := c.readyOrder(dnsIDs("p1.example.com")...)

	revokeEABKey(t, e, "kid-opt", time.Now())
	// The group rule no longer applies: the default denies.
	requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("p2.example.com")}), 400, "rejectedIdentifier")
	p := requireProblem(t, c.post(before.Finalize, csrPayload(t, "p1.example.com")), 400, "rejectedIdentifier")
	require.Contains(t, p.Detail, "default")
	requireNoCertificate(t, e, orderURL)
	// An open rule still serves it, within the key's allow-list.
	rec := c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("x.open.example.com")})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	p = requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("x.open.other.test")}), 400, "rejectedIdentifier")
	require.Contains(t, p.Detail, "external account binding")
}
