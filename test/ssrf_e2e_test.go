package test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/acme"
)

// http01Responder serves every http-01 token on 127.0.0.1:port with answer
// (the key authorization when answer is nil) and counts the requests.
func http01Responder(t *testing.T, port int, c *acme.Client, answer http.HandlerFunc) *atomic.Int64 {
	t.Helper()
	var hits atomic.Int64
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	require.NoError(t, err)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if answer != nil {
			answer(w, r)
			return
		}
		token, ok := strings.CutPrefix(r.URL.Path, "/.well-known/acme-challenge/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		ka, err := c.HTTP01ChallengeResponse(token)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = fmt.Fprint(w, ka)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return &hits
}

// http01Failures orders ids, answers each authorization's http-01
// challenge and returns, per identifier, the problem the failed
// authorization carries (every authorization must fail).
func http01Failures(ctx context.Context, t *testing.T, c *acme.Client, ids []acme.AuthzID) map[string]*acme.Error {
	t.Helper()
	o, err := c.AuthorizeOrder(ctx, ids)
	require.NoError(t, err)
	out := map[string]*acme.Error{}
	for _, u := range o.AuthzURLs {
		z, err := c.GetAuthorization(ctx, u)
		require.NoError(t, err)
		var ch *acme.Challenge
		for _, x := range z.Challenges {
			if x.Type == "http-01" {
				ch = x
			}
		}
		require.NotNil(t, ch, "http-01 offered for %s", z.Identifier.Value)
		_, err = c.Accept(ctx, ch)
		require.NoError(t, err)
		_, err = c.WaitAuthorization(ctx, u)
		var ae *acme.AuthorizationError
		require.ErrorAs(t, err, &ae, "%s: the validation must fail", z.Identifier.Value)
		require.Len(t, ae.Errors, 1)
		var pe *acme.Error
		require.ErrorAs(t, ae.Errors[0], &pe)
		out[z.Identifier.Value] = pe
	}
	return out
}

func newACMEClient(ctx context.Context, t *testing.T, s *server) *acme.Client {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	c := &acme.Client{Key: key, DirectoryURL: s.DirectoryURL, HTTPClient: s.HTTPClient(), UserAgent: "acmebridge-e2e-ssrf"}
	_, err = c.Register(ctx, &acme.Account{}, acme.AcceptTOS)
	require.NoError(t, err)
	return c
}

// TestSSRFConfigFileDeniesPrivate (issue 14, hole 3): the binary started
// with a config file that does not set validation.allow_private_addresses
// validates nothing on loopback or link-local (cloud metadata) addresses,
// for IP identifiers and for names resolving to loopback: the listener on
// 127.0.0.1, which would answer every challenge, is never asked.
func TestSSRFConfigFileDeniesPrivate(t *testing.T) {
	s := startServerWith(t, "", serverOpts{privateDenied: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newACMEClient(ctx, t, s)
	hits := http01Responder(t, s.HTTPPort, c, nil)

	// The test DNS server answers A 127.0.0.1 for every name.
	got := http01Failures(ctx, t, c, []acme.AuthzID{
		{Type: "dns", Value: "loop.ssrf.e2e.test"},
		{Type: "ip", Value: "127.0.0.1"},
		{Type: "ip", Value: "169.254.169.254"},
	})
	for id, want := range map[string]string{
		"loop.ssrf.e2e.test": "loop.ssrf.e2e.test has no publicly routable address",
		"127.0.0.1":          "address 127.0.0.1 is not publicly routable",
		"169.254.169.254":    "address 169.254.169.254 is not publicly routable",
	} {
		require.Contains(t, got, id)
		require.Equal(t, "urn:ietf:params:acme:error:connection", got[id].ProblemType, id)
		require.Contains(t, got[id].Detail, want, id)
	}
	require.Zero(t, hits.Load(), "a loopback listener was asked for a challenge")
	require.NotContains(t, s.Logs(), "allow_private_addresses is true")
}

// TestSSRFProblemDetailsNoStatus (issue 14, hole 3): a failed http-01
// challenge tells the client neither the status code nor the body of what
// answered, not even when private addresses are allowed (the e2e config).
func TestSSRFProblemDetailsNoStatus(t *testing.T) {
	s := startServer(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newACMEClient(ctx, t, s)
	var status atomic.Int64
	hits := http01Responder(t, s.HTTPPort, c, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "SECRET-INTERNAL-PAGE", int(status.Load()))
	})
	for i, code := range []int{http.StatusNotFound, http.StatusForbidden, http.StatusInternalServerError, http.StatusOK} {
		status.Store(int64(code))
		name := fmt.Sprintf("status%d.ssrf.e2e.test", i)
		got := http01Failures(ctx, t, c, []acme.AuthzID{{Type: "dns", Value: name}})
		p := got[name]
		require.NotNil(t, p)
		require.Equal(t, "urn:ietf:params:acme:error:incorrectResponse", p.ProblemType)
		// Exactly "the response to URL was not the key authorization".
		token, ok := strings.CutPrefix(p.Detail, "http-01: the response to http://"+name+"/.well-known/acme-challenge/")
		require.True(t, ok, p.Detail)
		token, ok = strings.CutSuffix(token, " was not the key authorization")
		require.True(t, ok, p.Detail)
		require.Regexp(t, `^[A-Za-z0-9_-]+$`, token, "only the token between: no status %d, no body", code)
	}
	require.EqualValues(t, 4, hits.Load())
	require.NotContains(t, s.Logs(), "allow_private_addresses is true", "no warning on a loopback listener")
}
