package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/upstream"
)

func perHour(n int64) configs.RateLimit {
	return configs.RateLimit{Count: n, Period: configs.Duration(time.Hour)}
}

// requireRateLimited asserts a 429 rateLimited problem whose Retry-After
// is whole seconds in (0, maxWait] and whose detail names the limit.
func requireRateLimited(t *testing.T, rec *httptest.ResponseRecorder, maxWait time.Duration, detail string) {
	t.Helper()
	p := requireProblem(t, rec, http.StatusTooManyRequests, "rateLimited")
	ra, err := strconv.Atoi(rec.Header().Get("Retry-After"))
	require.NoError(t, err, "Retry-After is whole seconds")
	require.Positive(t, ra)
	require.LessOrEqual(t, time.Duration(ra)*time.Second, maxWait)
	require.Contains(t, p.Detail, detail)
}

func (e *env) count(kind store.Kind) int {
	page, err := e.st.List(e.t.Context(), kind, "", 1000)
	require.NoError(e.t, err)
	return len(page.IDs)
}

func (c *client) order(names ...string) *httptest.ResponseRecorder {
	return c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs(names...)})
}

func accountID(c *client) string { return c.kid[strings.LastIndex(c.kid, "/")+1:] }

// TestRateLimitNewAccountsPerIP: the third account from one address within
// the hour is refused with 429 rateLimited and Retry-After, and nothing is
// stored; an existing account's key is still answered; an exempt network is
// not limited.
func TestRateLimitNewAccountsPerIP(t *testing.T) {
	e := newEnv(t, func(c *configs.Config) { c.RateLimits.NewAccountsPerIP = perHour(2) })
	first := e.newClient()
	first.register()
	e.newClient().register()
	requireRateLimited(t, e.newClient().post(pathNewAccount, map[string]any{"termsOfServiceAgreed": true}),
		30*time.Minute, "too many new accounts from 192.0.2.1 (2 per 1h0m0s)")
	require.Equal(t, 2, e.count(store.KindAccount), "the refused account was not created")
	rec := first.post(pathNewAccount, map[string]any{"onlyReturnExisting": true})
	require.Equal(t, http.StatusOK, rec.Code, "finding an existing account spends nothing: %s", rec.Body.String())

	exempt := newEnv(t, func(c *configs.Config) {
		c.RateLimits.NewAccountsPerIP = perHour(1)
		c.RateLimits.Exempt.IPs = []string{"192.0.2.0/24"}
	})
	for range 3 {
		exempt.newClient().register()
	}
}

// TestRateLimitNewOrdersPerAccount: orders per account are refused past the
// limit (audited as a refusal), other accounts have their own bucket, and
// an exempt account or EAB group is not limited.
func TestRateLimitNewOrdersPerAccount(t *testing.T) {
	e := newEnv(t, func(c *configs.Config) {
		c.Accounts.EAB = "optional"
		c.RateLimits.NewOrdersPerAccount = perHour(2)
		c.RateLimits.Exempt.EABGroups = []string{"fleet"}
	})
	c := e.newClient()
	c.register()
	for i := range 2 {
		rec := c.order("o" + strconv.Itoa(i) + ".example.com")
		require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	}
	requireRateLimited(t, c.order("o3.example.com"), 30*time.Minute, "too many new orders for this account")
	require.Equal(t, 2, e.count(store.KindOrder), "the refused order was not created")
	refused := e.audit.of(audit.OrderRefused)
	require.Len(t, refused, 1, "the refusal is audited")
	require.Equal(t, "rateLimited", refused[0].Problem)

	other := e.newClient()
	other.register()
	require.Equal(t, http.StatusCreated, other.order("x.example.com").Code, "another account has its own bucket")

	fleet := registerWithEAB(t, e, "kid-fleet", "fleet", nil)
	for range 3 {
		require.Equal(t, http.StatusCreated, fleet.order("f.example.com").Code, "EAB group fleet is exempt")
	}

	// Exempt by account ID: the limiter of a server configured with it.
	e.srv.ra.SetRateLimits(configs.RateLimits{NewOrdersPerAccount: perHour(2),
		Exempt: configs.RateExempt{Accounts: []string{accountID(c)}}})
	require.Equal(t, http.StatusCreated, c.order("o4.example.com").Code, "account is exempt")
	require.Equal(t, http.StatusCreated, other.order("y.example.com").Code)
	requireRateLimited(t, other.order("z.example.com"), time.Hour, "too many new orders")
}

// TestRateLimitFailedValidations: after the allowed number of failed
// validations of a name, new orders and pre-authorizations for it are
// refused for this account; other names and other accounts are not.
func TestRateLimitFailedValidations(t *testing.T) {
	e := newEnv(t, func(c *configs.Config) {
		c.RateLimits.FailedValidationsPerName = perHour(2)
		c.Orders.PreAuthorization = true
		c.Orders.ValidAuthzReuse = configs.Duration(time.Hour)
	})
	e.va.fail["bad.example.com"] = true
	c := e.newClient()
	c.register()
	for range 2 {
		rec := c.order("bad.example.com")
		require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
		o := decode[orderJSON](t, rec)
		a := decode[authzJSON](t, c.post(o.Authorizations[0], nil))
		rec = c.post(a.Challenges[0].URL, struct{}{})
		require.Equal(t, "invalid", decode[challengeJSON](t, rec).Status, rec.Body.String())
	}
	requireRateLimited(t, c.order("bad.example.com", "good.example.com"), time.Hour, "too many failed validations of bad.example.com")
	requireRateLimited(t, c.post(pathNewAuthz, map[string]any{"identifier": store.Identifier{Type: "dns", Value: "bad.example.com"}}),
		time.Hour, "too many failed validations of bad.example.com")
	require.Equal(t, http.StatusCreated, c.order("good.example.com").Code)
	other := e.newClient()
	other.register()
	require.Equal(t, http.StatusCreated, other.order("bad.example.com").Code, "counted per account")
}

// TestRateLimitCertificatesPerDomain: certificates are counted per
// registered domain (sub-domains share a bucket), checked at newOrder and
// spent at finalize; a refused finalize leaves the order ready.
func TestRateLimitCertificatesPerDomain(t *testing.T) {
	e := newEnv(t, func(c *configs.Config) {
		c.RateLimits.CertificatesPerDomain = configs.RateLimit{Count: 2, Period: configs.Duration(7 * 24 * time.Hour)}
	})
	c := e.newClient()
	c.register()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	finalize := func(o orderJSON, names ...string) *httptest.ResponseRecorder {
		return c.post(o.Finalize, map[string]string{"csr": b64(makeCSR(t, key, "", names, nil))})
	}
	// Two ready orders, then both finalized: the second spends the last
	// certificate, so a third order is refused at newOrder.
	_, o1 := c.readyOrder(dnsIDs("a.example.com")...)
	_, o2 := c.readyOrder(dnsIDs("b.example.com", "c.example.net")...)
	_, o3 := c.readyOrder(dnsIDs("d.example.com")...)
	require.Equal(t, "valid", decode[orderJSON](t, finalize(o1, "a.example.com")).Status)
	require.Equal(t, "valid", decode[orderJSON](t, finalize(o2, "b.example.com", "c.example.net")).Status)

	requireRateLimited(t, c.order("www.example.com"), 7*24*time.Hour, "too many certificates for example.com (2 per 168h0m0s)")
	rec := finalize(o3, "d.example.com")
	requireRateLimited(t, rec, 7*24*time.Hour, "too many certificates for example.com")
	cur := decode[orderJSON](t, c.post(strings.Replace(o3.Finalize, "/finalize", "", 1), nil))
	require.Equal(t, "ready", cur.Status, "a refused finalize leaves the order ready")
	require.Equal(t, http.StatusCreated, c.order("a.example.org").Code, "another registered domain")
	require.Equal(t, http.StatusCreated, c.order("www.example.net").Code, "example.net has one left")
}

// TestRateLimitPendingAuthorizations: authorizations created count against
// the account until validated or deactivated; a refused order spends
// nothing from the other limits.
func TestRateLimitPendingAuthorizations(t *testing.T) {
	e := newEnv(t, func(c *configs.Config) {
		c.RateLimits.PendingAuthorizationsPerAccount = perHour(3)
		c.RateLimits.NewOrdersPerAccount = perHour(10)
	})
	c := e.newClient()
	c.register()
	rec := c.order("p1.example.com", "p2.example.com")
	require.Equal(t, http.StatusCreated, rec.Code)
	pending := decode[orderJSON](t, rec)
	requireRateLimited(t, c.order("p3.example.com", "p4.example.com"), time.Hour, "too many pending authorizations")

	// Validating one and deactivating the other gives both back.
	a := decode[authzJSON](t, c.post(pending.Authorizations[0], nil))
	require.Equal(t, http.StatusOK, c.post(a.Challenges[0].URL, struct{}{}).Code)
	rec = c.post(pending.Authorizations[1], map[string]string{"status": "deactivated"})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, http.StatusCreated, c.order("p5.example.com").Code)
	require.Equal(t, http.StatusCreated, c.order("p6.example.com", "p7.example.com").Code, "three pending again")
	requireRateLimited(t, c.order("p8.example.com"), time.Hour, "too many pending authorizations")

	// Orders: 1 + 1 + 1 created, 2 refused; the refused ones spent no order.
	d, err := e.st.SpendRates(t.Context(), []store.RateSpend{{Key: "orders:" + accountID(c), Cost: 1,
		Limit: store.Limit{Count: 10, Period: time.Hour, Burst: perHour(10).Burst}, CheckOnly: true}}, time.Now())
	require.NoError(t, err)
	require.EqualValues(t, 7, d[0].Remaining, "three orders spent, the two refused ones not")
}

// TestRateLimitStoreDown: when the store cannot decide, the request is a
// 503 with Retry-After, never let through.
func TestRateLimitStoreDown(t *testing.T) {
	var down bool
	e := newEnvWith(t, func(c *configs.Config) { c.RateLimits.NewOrdersPerAccount = perHour(5) },
		func(s store.Store) store.Store { return &rateDownStore{Store: s, down: &down} })
	c := e.newClient()
	c.register()
	down = true
	rec := c.order("x.example.com")
	requireProblem(t, rec, http.StatusServiceUnavailable, "serverInternal")
	require.Equal(t, "5", rec.Header().Get("Retry-After"))
	require.Equal(t, 0, e.count(store.KindOrder))
}

// rateDownStore fails SpendRates while *down.
type rateDownStore struct {
	store.Store
	down *bool
}

func (s *rateDownStore) SpendRates(ctx context.Context, sp []store.RateSpend, now time.Time) ([]store.RateDecision, error) {
	if *s.down {
		return nil, errors.New("injected: store unreachable")
	}
	return s.Store.SpendRates(ctx, sp, now)
}

// refusingIssuer refuses every issuance for good (a CA's rejectedIdentifier).
type refusingIssuer struct{ upstream.Issuer }

func (refusingIssuer) Issue(context.Context, *upstream.Request, func(string) error) (*upstream.Result, error) {
	return nil, acmeerr.New(acmeerr.RejectedIdentifier, "the CA will not issue for this name")
}

// TestUpstreamRefusalAuditedAndRefunded: an order the upstream refuses for
// good ends invalid; the audit line names the upstream that refused, and
// the certificate finalize spent is given back.
func TestUpstreamRefusalAuditedAndRefunded(t *testing.T) {
	wrapIssuer = func(i upstream.Issuer) upstream.Issuer { return refusingIssuer{i} }
	defer func() { wrapIssuer = nil }()
	e := newEnv(t, func(c *configs.Config) { c.RateLimits.CertificatesPerDomain = perHour(1) })
	c := e.newClient()
	c.register()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	orderURL, o := c.readyOrder(dnsIDs("r.example.com")...)
	c.post(o.Finalize, map[string]string{"csr": b64(makeCSR(t, key, "", []string{"r.example.com"}, nil))})
	require.Eventually(t, func() bool { return decode[orderJSON](t, c.post(orderURL, nil)).Status == "invalid" },
		10*time.Second, 20*time.Millisecond)
	// The audit line follows the stored state.
	require.Eventually(t, func() bool { return len(e.audit.of(audit.OrderInvalid)) == 1 },
		10*time.Second, 10*time.Millisecond)
	inv := e.audit.of(audit.OrderInvalid)
	require.Equal(t, "dev", inv[0].Upstream)
	require.Equal(t, []string{"dev"}, inv[0].Upstreams)
	require.Equal(t, "rejectedIdentifier", inv[0].Problem)
	require.Eventually(t, func() bool { return c.order("again.example.com").Code == http.StatusCreated },
		10*time.Second, 20*time.Millisecond, "the refused issuance gave its certificate back")
}
