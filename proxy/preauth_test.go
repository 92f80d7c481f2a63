package proxy

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/store"
)

func TestAuthzReuse(t *testing.T) {
	e := newEnv(t, func(c *configs.Config) { c.Orders.ValidAuthzReuse = configs.Duration(time.Hour) })
	c := e.newClient()
	c.register()
	_, first := c.readyOrder(dnsIDs("reuse.example.com")...)
	calls := e.va.calls
	rec := c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("reuse.example.com", "fresh.example.com")})
	require.Equal(t, http.StatusCreated, rec.Code)
	o := decode[orderJSON](t, rec)
	require.Equal(t, first.Authorizations[0], o.Authorizations[0], "the valid authorization is reused")
	require.NotEqual(t, first.Authorizations[0], o.Authorizations[1])
	require.Equal(t, calls, e.va.calls)
	// Not across accounts, and not when reuse is off.
	other := e.newClient()
	other.register()
	o2 := decode[orderJSON](t, other.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("reuse.example.com")}))
	require.NotEqual(t, first.Authorizations[0], o2.Authorizations[0])

	f := newEnv(t, nil)
	d := f.newClient()
	d.register()
	_, a := d.readyOrder(dnsIDs("noreuse.example.com")...)
	b := decode[orderJSON](t, d.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("noreuse.example.com")}))
	require.NotEqual(t, a.Authorizations[0], b.Authorizations[0])
}

func TestPreAuthorization(t *testing.T) {
	e := newEnv(t, func(c *configs.Config) {
		c.Orders.ValidAuthzReuse = configs.Duration(time.Hour)
		c.Orders.PreAuthorization = true
	})
	require.Equal(t, testBase+pathNewAuthz, decode[directory](t, e.do(http.MethodGet, pathDirectory, "", nil)).NewAuthz)
	c := e.newClient()
	c.register()
	requireProblem(t, c.post(pathNewAuthz, map[string]any{"identifier": store.Identifier{Type: "dns", Value: "*.pre.example.com"}}), 400, "rejectedIdentifier")
	requireProblem(t, c.post(pathNewAuthz, map[string]any{"identifier": store.Identifier{Type: "dns", Value: "bad..name"}}), 400, "rejectedIdentifier")
	rec := c.post(pathNewAuthz, map[string]any{"identifier": store.Identifier{Type: "dns", Value: "pre.example.com"}})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	authzURL := rec.Header().Get("Location")
	a := decode[authzJSON](t, rec)
	require.Equal(t, "pending", a.Status)
	require.Equal(t, "valid", decode[challengeJSON](t, c.post(a.Challenges[0].URL, struct{}{})).Status)
	// An order for the name is ready at once, with that authorization.
	rec = c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("pre.example.com")})
	require.Equal(t, http.StatusCreated, rec.Code)
	o := decode[orderJSON](t, rec)
	require.Equal(t, []string{authzURL}, o.Authorizations)
	require.Equal(t, "ready", decode[orderJSON](t, c.post(rec.Header().Get("Location"), nil)).Status)

	// Without the setting there is no newAuthz.
	f := newEnv(t, nil)
	require.Empty(t, decode[directory](t, f.do(http.MethodGet, pathDirectory, "", nil)).NewAuthz)
	requireProblem(t, f.do(http.MethodPost, pathNewAuthz, "application/jose+json", []byte("{}")), 404, "malformed")
}
