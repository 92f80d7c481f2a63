package proxy

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/ra"
	"github.com/acmebridge/acmebridge/store"
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
	e.srv.ra.Wait() // the validation has ended and stored what it stores

	require.Equal(t, "deactivated", decode[authzJSON](t, c.post(authzURL, nil)).Status,
		"a validation that ended after the deactivation brought the authorization back")
	rec = c.post(orderURL, nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.NotEqual(t, "ready", decode[orderJSON](t, rec).Status)
	csr := makeCSR(t, c.key, "", []string{"slow.example.com"}, nil)
	requireProblem(t, c.post(o.Finalize, map[string]string{"csr": b64(csr)}), http.StatusForbidden, "orderNotReady")
	require.Empty(t, e.audit.of(audit.ChallengeValid), "no challenge was recorded valid")
}

// pendingAuthz creates an order for name and returns its authorization's
// URL and ID.
func (c *client) pendingAuthz(name string) (string, string) {
	rec := c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs(name)})
	require.Equal(c.e.t, http.StatusCreated, rec.Code, rec.Body.String())
	u := decode[orderJSON](c.e.t, rec).Authorizations[0]
	return u, strings.TrimPrefix(u, testBase+pathAuthz)
}

// abandonValidation stores what a replica that died mid-validation
// leaves: the authorization's first challenge processing, and its job
// leased to the dead replica until a time already past, claimed attempts
// times.
func (e *env) abandonValidation(authzID string, attempts int) {
	ctx := e.t.Context()
	a, err := e.st.GetAuthz(ctx, authzID)
	require.NoError(e.t, err)
	a.Challenges[0].Status, a.Challenges[0].Started = store.StatusProcessing, time.Now()
	require.NoError(e.t, e.st.StartValidation(ctx, a, &store.Validation{AuthzID: a.ID, ChallengeID: a.Challenges[0].ID,
		KeyAuthorization: a.Challenges[0].Token + ".thumbprint", Attempts: attempts, Owner: "dead-replica",
		LeaseUntil: time.Now().Add(-time.Second)}))
}

// waitAuthz polls the authorization until it is no longer pending.
func (c *client) waitAuthz(authzURL string) authzJSON {
	var a authzJSON
	require.Eventually(c.e.t, func() bool {
		a = decode[authzJSON](c.e.t, c.post(authzURL, nil))
		return a.Status != "pending"
	}, 10*time.Second, 20*time.Millisecond, "the authorization stayed pending")
	return a
}

// TestValidationResumedAfterLease: a validation left by a replica that
// died (its job's lease ended) is run again by the worker; the client,
// polling only the authorization, sees it valid, and the job is gone.
func TestValidationResumedAfterLease(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	authzURL, id := c.pendingAuthz("resumed.example.com")
	e.abandonValidation(id, 1)
	// The takeover may already have run (its lease has ended): the
	// challenge is processing, or valid, never pending again.
	require.Contains(t, []string{"processing", "valid"}, decode[authzJSON](t, c.post(authzURL, nil)).Challenges[0].Status)

	a := c.waitAuthz(authzURL)
	require.Equal(t, "valid", a.Status)
	require.Equal(t, "valid", a.Challenges[0].Status)
	_, err := e.st.GetValidation(t.Context(), id)
	require.ErrorIs(t, err, store.ErrNotFound, "the job outlived its outcome")
	require.Len(t, e.audit.of(audit.ChallengeValid), 1)
}

// TestValidationGivesUpAfterAttempts: a validation whose replicas kept
// dying is recorded as failed (§7.1.6: an error while the authorization is
// pending makes it invalid) instead of being run forever.
func TestValidationGivesUpAfterAttempts(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	authzURL, id := c.pendingAuthz("cursed.example.com")
	e.abandonValidation(id, ra.MaxValidationAttempts)

	a := c.waitAuthz(authzURL)
	require.Equal(t, "invalid", a.Status)
	require.NotNil(t, a.Challenges[0].Error)
	require.Equal(t, errNS+"serverInternal", a.Challenges[0].Error.Type)
	_, err := e.st.GetValidation(t.Context(), id)
	require.ErrorIs(t, err, store.ErrNotFound)
	e.va.mu.Lock()
	defer e.va.mu.Unlock()
	require.Zero(t, e.va.calls, "validated once more after the last attempt")
}

// TestValidationJobDroppedWhenDecided: a job left behind for an
// authorization that was deactivated meanwhile is dropped, not run.
func TestValidationJobDroppedWhenDecided(t *testing.T) {
	e := newEnv(t, func(c *configs.Config) { c.Orders.ValidationWait = 0 })
	c := e.newClient()
	c.register()
	authzURL, id := c.pendingAuthz("gone.example.com")
	e.abandonValidation(id, 1)
	rec := c.post(authzURL, map[string]string{"status": "deactivated"})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())

	require.Eventually(t, func() bool {
		_, err := e.st.GetValidation(t.Context(), id)
		return errors.Is(err, store.ErrNotFound)
	}, 10*time.Second, 20*time.Millisecond, "the job was not dropped")
	require.Equal(t, "deactivated", decode[authzJSON](t, c.post(authzURL, nil)).Status)
	e.va.mu.Lock()
	defer e.va.mu.Unlock()
	require.Zero(t, e.va.calls)
}

// TestValidationJobWithChallenge: the challenge POST records the job,
// leased to this replica for the validation's budget and a margin, and
// the outcome removes it.
func TestValidationJobWithChallenge(t *testing.T) {
	e := newEnv(t, func(c *configs.Config) { c.Orders.ValidationWait = 0 })
	release := make(chan struct{})
	e.va.mu.Lock()
	e.va.hold = release
	e.va.mu.Unlock()
	c := e.newClient()
	c.register()
	authzURL, id := c.pendingAuthz("job.example.com")
	a := decode[authzJSON](t, c.post(authzURL, nil))
	before := time.Now()
	rec := c.post(a.Challenges[0].URL, struct{}{})
	require.Equal(t, "processing", decode[challengeJSON](t, rec).Status)

	job, err := e.st.GetValidation(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, e.srv.ra.WorkerID(), job.Owner)
	require.Equal(t, 1, job.Attempts)
	require.Equal(t, strings.TrimPrefix(a.Challenges[0].URL, testBase+pathChallenge+id+"/"), job.ChallengeID)
	tp, err := thumbprintOf(c.key.Public())
	require.NoError(t, err)
	require.Equal(t, a.Challenges[0].Token+"."+tp, job.KeyAuthorization)
	require.WithinRange(t, job.LeaseUntil, before.Add(e.srv.ra.Config().Validation.Timeout.D()+10*time.Second), time.Now().Add(e.srv.ra.Config().Validation.Timeout.D()+10*time.Second))

	close(release)
	require.Equal(t, "valid", c.waitAuthz(authzURL).Status)
	e.srv.ra.Wait()
	_, err = e.st.GetValidation(t.Context(), id)
	require.ErrorIs(t, err, store.ErrNotFound)
}
