package proxy

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
)

// TestDeactivatedDuringValidation: an authorization the client deactivates
// (RFC 8555 §7.5.2) while its challenge is being validated stays
// deactivated when the validation succeeds afterwards, and its order does
// not become ready.
func TestDeactivatedDuringValidation(t *testing.T) {
	e := newEnv(t, func(c *configs.Config) { c.Orders.ValidationWait = 0 })
	release := make(chan struct{})
	e.va.mu.Lock()
	e.va.hold = release
	e.va.mu.Unlock()
	c := e.newClient()
	c.register()

	rec := c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("slow.example.com")})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	orderURL := rec.Header().Get("Location")
	o := decode[orderJSON](t, rec)
	authzURL := o.Authorizations[0]
	a := decode[authzJSON](t, c.post(authzURL, nil))
	rec = c.post(a.Challenges[0].URL, struct{}{})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "processing", decode[challengeJSON](t, rec).Status, "the validation is held")

	rec = c.post(authzURL, map[string]string{"status": "deactivated"})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "deactivated", decode[authzJSON](t, rec).Status)

	close(release)
	e.srv.wg.Wait() // the validation has ended and stored what it stores

	require.Equal(t, "deactivated", decode[authzJSON](t, c.post(authzURL, nil)).Status,
		"a validation that ended after the deactivation brought the authorization back")
	rec = c.post(orderURL, nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.NotEqual(t, "ready", decode[orderJSON](t, rec).Status)
	csr := makeCSR(t, c.key, "", []string{"slow.example.com"}, nil)
	requireProblem(t, c.post(o.Finalize, map[string]string{"csr": b64(csr)}), http.StatusForbidden, "orderNotReady")
	require.Empty(t, e.audit.of(audit.ChallengeValid), "no challenge was recorded valid")
}
