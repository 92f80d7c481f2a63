package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/upstream"
)

// ariIssuer is an upstream whose CA offers ARI: it answers RenewalInfo
// with a set window (or error) and records the Replaces of each request.
type ariIssuer struct {
	upstream.Issuer
	mu         sync.Mutex
	start, end time.Time
	retry      time.Duration
	err        error
	calls      int
	replaces   []*x509.Certificate
}

func (a *ariIssuer) RenewalInfo(_ context.Context, _ *x509.Certificate) (time.Time, time.Time, time.Duration, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	return a.start, a.end, a.retry, a.err
}

func (a *ariIssuer) Issue(ctx context.Context, req *upstream.Request, setRef func(string) error) (*upstream.Result, error) {
	a.mu.Lock()
	a.replaces = append(a.replaces, req.Replaces)
	a.mu.Unlock()
	return a.Issuer.Issue(ctx, req, setRef)
}

func (a *ariIssuer) set(f func(a *ariIssuer)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f(a)
}

func (a *ariIssuer) snapshot() (int, []*x509.Certificate) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls, append([]*x509.Certificate(nil), a.replaces...)
}

// withARIIssuer is newEnv with the "dev" upstream wrapped in an ariIssuer.
func withARIIssuer(t *testing.T) (*env, *ariIssuer) {
	var fake *ariIssuer
	wrapIssuer = func(i upstream.Issuer) upstream.Issuer { fake = &ariIssuer{Issuer: i}; return fake }
	defer func() { wrapIssuer = nil }()
	e := newEnv(t, nil)
	require.NotNil(t, fake)
	return e, fake
}

// getWindow GETs a certificate's renewal info.
func getWindow(t *testing.T, e *env, leaf *x509.Certificate) (time.Time, time.Time, string) {
	t.Helper()
	w := e.do(http.MethodGet, pathRenewalInfo+"/"+ariID(leaf), "", nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	ri := decode[renewalInfo](t, w)
	start, err := time.Parse(time.RFC3339, ri.SuggestedWindow.Start)
	require.NoError(t, err)
	end, err := time.Parse(time.RFC3339, ri.SuggestedWindow.End)
	require.NoError(t, err)
	return start, end, w.Header().Get("Retry-After")
}

// TestRenewalInfoFromUpstream: the window of a certificate from an upstream
// whose CA offers ARI is the CA's, cached for the CA's Retry-After; when
// the CA errs or has no ARI the computed window is served; revocation and
// an operator's early renewal override the CA's answer.
func TestRenewalInfoFromUpstream(t *testing.T) {
	e, fake := withARIIssuer(t)
	c := e.newClient()
	c.register()
	caStart := time.Now().Add(3 * time.Hour).UTC().Truncate(time.Second)
	caEnd := caStart.Add(5 * time.Hour)
	fake.set(func(a *ariIssuer) { a.start, a.end, a.retry = caStart, caEnd, 2*time.Hour })

	leaf, rec := issue(t, e, c, "ari-up.example.com")
	start, end, retry := getWindow(t, e, leaf)
	require.Equal(t, caStart, start.UTC())
	require.Equal(t, caEnd, end.UTC())
	require.Equal(t, "7200", retry, "clients come back when the cached answer expires")
	start, _, _ = getWindow(t, e, leaf)
	require.Equal(t, caStart, start.UTC())
	calls, _ := fake.snapshot()
	require.Equal(t, 1, calls, "the CA's answer is cached")

	// The CA cannot be reached, or has no ARI: the computed window.
	for _, err := range []error{errors.New("connection refused"), upstream.ErrNoRenewalInfo} {
		fake.set(func(a *ariIssuer) { a.err = err })
		leaf2, _ := issue(t, e, c, "ari-down.example.com")
		start, end, retry = getWindow(t, e, leaf2)
		require.True(t, start.After(leaf2.NotBefore.Add(59*24*time.Hour)), "two thirds into a 90-day certificate")
		require.True(t, end.Before(leaf2.NotAfter))
		require.Equal(t, "21600", retry)
	}
	calls, _ = fake.snapshot()
	require.Equal(t, 3, calls)

	// An operator's early renewal wins over the CA's (cached) answer.
	rec.RenewBy = time.Now()
	require.NoError(t, e.st.UpdateCertificate(t.Context(), rec))
	_, end, _ = getWindow(t, e, leaf)
	require.False(t, end.After(time.Now()))
}

// TestReplacesPassedUpstream: an order replacing a certificate hands the
// replaced leaf to the upstream that issued it, and to no other.
func TestReplacesPassedUpstream(t *testing.T) {
	e, fake := withARIIssuer(t)
	c := e.newClient()
	c.register()
	finalize := func(names []string, replaces string) {
		t.Helper()
		_, o := c.readyOrderReplacing(replaces, dnsIDs(names...)...)
		o = finalizeOrder(t, c, o, names)
		require.Equal(t, "valid", o.Status)
	}

	leaf, _ := issue(t, e, c, "r1.example.com")
	finalize([]string{"r1.example.com"}, ariID(leaf))
	_, reps := fake.snapshot()
	require.Len(t, reps, 2)
	require.Nil(t, reps[0], "the first order replaces nothing")
	require.NotNil(t, reps[1])
	require.Equal(t, leaf.Raw, reps[1].Raw)

	// A certificate another upstream issued is not handed to this one.
	leaf2, rec2 := issue(t, e, c, "r2.example.com")
	rec2.Upstream = "elsewhere"
	require.NoError(t, e.st.UpdateCertificate(t.Context(), rec2))
	finalize([]string{"r2.example.com"}, ariID(leaf2))
	_, reps = fake.snapshot()
	require.Len(t, reps, 4)
	require.Nil(t, reps[3])
	stored, err := e.st.GetCertificate(t.Context(), rec2.ID)
	require.NoError(t, err)
	require.NotEmpty(t, stored.ReplacedBy)
}

// readyOrderReplacing is readyOrder for an order naming "replaces".
func (c *client) readyOrderReplacing(replaces string, idents ...store.Identifier) (string, orderJSON) {
	t := c.e.t
	rec := c.post(pathNewOrder, map[string]any{"identifiers": idents, "replaces": replaces})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	orderURL := rec.Header().Get("Location")
	o := decode[orderJSON](t, rec)
	for _, az := range o.Authorizations {
		a := decode[authzJSON](t, c.post(az, nil))
		rec := c.post(a.Challenges[0].URL, struct{}{})
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	}
	rec = c.post(orderURL, nil)
	require.Equal(t, http.StatusOK, rec.Code)
	o = decode[orderJSON](t, rec)
	require.Equal(t, "ready", o.Status)
	return orderURL, o
}

// finalizeOrder finalizes a ready order with a new key's CSR for names.
func finalizeOrder(t *testing.T, c *client, o orderJSON, names []string) orderJSON {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return decode[orderJSON](t, c.post(o.Finalize, map[string]string{"csr": b64(makeCSR(t, key, "", names, nil))}))
}
