package proxy

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/configs"
)

// duringCAA runs change once, while a finalize looks up CAA: the moment
// between the finalize's checks and its job being stored, which a slow DNS
// answer can stretch to seconds.
func duringCAA(e *env, change func()) {
	var once sync.Once
	e.va.mu.Lock()
	e.va.caa = func(string, bool, []string, string, string) error {
		once.Do(change)
		return nil
	}
	e.va.mu.Unlock()
}

// TestFinalizeAuthzDeactivatedDuringCAA: an authorization the client
// deactivates (RFC 8555 §7.5.2) while its order's finalize looks up CAA
// stops the issuance: the order becomes invalid (§7.1.6) and no
// certificate is issued.
func TestFinalizeAuthzDeactivatedDuringCAA(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	orderURL, o := c.readyOrder(dnsIDs("a.window.example.com", "b.window.example.com")...)
	duringCAA(e, func() {
		rec := c.post(o.Authorizations[1], map[string]string{"status": "deactivated"})
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	})

	p := requireProblem(t, c.post(o.Finalize, csrPayload(t, "a.window.example.com", "b.window.example.com")), 403, "orderNotReady")
	require.Contains(t, p.Detail, "invalid")
	requireEndedInvalid(t, c, orderURL, "deactivated")
}

// TestFinalizeAuthzExpiredDuringCAA: an authorization that expires while
// the finalize looks up CAA ends the order as if it had expired before.
func TestFinalizeAuthzExpiredDuringCAA(t *testing.T) {
	e, clk := newEnvClock(t, func(c *configs.Config) {
		c.Orders.OrderLifetime = configs.Duration(24 * time.Hour)
		c.Orders.AuthzLifetime = configs.Duration(time.Hour)
	})
	c := e.newClient()
	c.register()
	orderURL, o := c.readyOrder(dnsIDs("slow.window.example.com")...)
	clk.add(59 * time.Minute)
	duringCAA(e, func() { clk.add(2 * time.Minute) })

	requireProblem(t, c.post(o.Finalize, csrPayload(t, "slow.window.example.com")), 403, "orderNotReady")
	requireEndedInvalid(t, c, orderURL, "expired")
}

// TestFinalizeEABKeyRevokedDuringCAA: an EAB key the administrator revokes
// while a finalize of its account looks up CAA takes its grants away
// before anything is issued: the finalize is refused as one after the
// revocation would be, and the order stays ready.
func TestFinalizeEABKeyRevokedDuringCAA(t *testing.T) {
	e := newEnv(t, groupPolicy("required"))
	c := e.newClient()
	eabAccount(t, e, c, "kid-window", "printers")
	orderURL, o := c.readyOrder(dnsIDs("p.window.example.com")...)
	duringCAA(e, func() { revokeEABKey(t, e, "kid-window", time.Now()) })

	p := requireProblem(t, c.post(o.Finalize, csrPayload(t, "p.window.example.com")), 403, "unauthorized")
	require.Contains(t, p.Detail, "kid-window")
	require.Contains(t, p.Detail, "revoked")
	requireNoCertificate(t, e, orderURL)
	require.Equal(t, "ready", decode[orderJSON](t, c.post(orderURL, nil)).Status)
}

// TestFinalizeEABKeyEditedDuringCAA: a change to the key that keeps its
// grants (here its note) still moves it: the finalize asks to be sent
// again, issues nothing, and the next one issues.
func TestFinalizeEABKeyEditedDuringCAA(t *testing.T) {
	e := newEnv(t, groupPolicy("required"))
	c := e.newClient()
	eabAccount(t, e, c, "kid-edit", "printers")
	orderURL, o := c.readyOrder(dnsIDs("q.window.example.com")...)
	duringCAA(e, func() {
		k, err := e.st.GetEABKey(t.Context(), "kid-edit")
		require.NoError(t, err)
		k.Note = "edited"
		require.NoError(t, e.st.UpdateEABKey(t.Context(), k))
	})
	csr := csrPayload(t, "q.window.example.com")

	p := requireProblem(t, c.post(o.Finalize, csr), 403, "orderNotReady")
	require.Contains(t, p.Detail, "finalize it again")
	requireNoCertificate(t, e, orderURL)
	rec := c.post(o.Finalize, csr)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "valid", decode[orderJSON](t, rec).Status)
}
