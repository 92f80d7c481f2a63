package acme

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	legoacme "github.com/go-acme/lego/v5/acme"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/upstream/acme/acmetest"
)

// TestRejectedIdentifier: a name the CA refuses passes through as
// rejectedIdentifier naming the upstream and the CA, and no order exists.
func TestRejectedIdentifier(t *testing.T) {
	p := acmetest.Start(t, acmetest.Options{Blocklist: []string{"blocked.pebble.test"}})
	u := newUpstream(t, dnsOptions(t, p, newStore(t)))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	refs := &refLog{}
	_, err := u.Issue(ctx, newRequest(t, "ok.pebble.test", "blocked.pebble.test"), refs.set)
	require.Error(t, err)
	var e *acmeerr.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, acmeerr.RejectedIdentifier, e.Kind, "%v", err)
	require.Contains(t, e.Detail, "acme pebble: the CA will not issue for this identifier (rejectedIdentifier at 127.0.0.1:")
	require.Contains(t, e.Detail, "blocked.pebble.test")
	require.Empty(t, refs.all())
	require.Equal(t, 0, p.Orders())
}

// TestUnreachableCA: a CA that is down is a Connection error (transient:
// the worker retries and fails over), before and after the session exists.
func TestUnreachableCA(t *testing.T) {
	p := acmetest.Start(t, acmetest.Options{})
	down := dnsOptions(t, p, newStore(t))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	down.Directory = fmt.Sprintf("https://%s/dir", l.Addr())
	require.NoError(t, l.Close())
	ud := newUpstream(t, down)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = ud.Issue(ctx, newRequest(t, "down.pebble.test"), nil)
	require.Equal(t, acmeerr.Connection, acmeerr.KindOf(err), "%v", err)
	require.ErrorContains(t, err, "acme pebble: fetching the directory: cannot reach the CA at 127.0.0.1:")

	u := newUpstream(t, dnsOptions(t, p, newStore(t)))
	issue(t, u, newRequest(t, "up.pebble.test"), nil)
	p.Stop()
	_, err = u.Issue(ctx, newRequest(t, "up.pebble.test"), nil)
	require.Equal(t, acmeerr.Connection, acmeerr.KindOf(err), "%v", err)
	require.ErrorContains(t, err, "placing the order: cannot reach the CA")
	// A revocation is answered at once: Unavailable, not the client's
	// "connection" problem.
	err = u.Revoke(ctx, newCert(t), 0)
	require.Equal(t, acmeerr.Unavailable, acmeerr.KindOf(err), "%v", err)
}

// fakeCA is a TLS server speaking just enough ACME to answer newAccount
// with the given status and problem.
func fakeCA(t *testing.T, status int, problem string, header http.Header) (dirURL, caFile string) {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Replay-Nonce", fmt.Sprintf("n%d", time.Now().UnixNano()))
		switch r.URL.Path {
		case "/dir":
			fmt.Fprintf(w, `{"newNonce":%q,"newAccount":%q,"newOrder":%q,"revokeCert":%q,"keyChange":%q}`,
				srv.URL+"/nonce", srv.URL+"/account", srv.URL+"/order", srv.URL+"/revoke", srv.URL+"/key")
		case "/nonce":
			w.WriteHeader(http.StatusOK)
		default:
			for k, v := range header {
				w.Header()[k] = v
			}
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(status)
			fmt.Fprint(w, problem)
		}
	}))
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, writeFile(caFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))))
	return srv.URL + "/dir", caFile
}

// TestCAProblemsOverHTTP: the CA's rateLimited keeps its Retry-After; a
// 503 is Unavailable.
func TestCAProblemsOverHTTP(t *testing.T) {
	cases := []struct {
		name    string
		status  int
		problem string
		header  http.Header
		kind    acmeerr.Kind
		retry   time.Duration
		detail  string
	}{
		{"rateLimited", 429, `{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many new registrations"}`,
			http.Header{"Retry-After": {"120"}}, acmeerr.RateLimited, 120 * time.Second,
			"acme fake: the CA at 127.0.0.1:%s rate-limits this request: too many new registrations"},
		{"serverInternal", 503, `{"type":"urn:ietf:params:acme:error:serverInternal","detail":"down for maintenance"}`,
			nil, acmeerr.Unavailable, unavailableRetry, "acme fake: registering the account: the CA at 127.0.0.1:%s is failing (HTTP 503)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, ca := fakeCA(t, tc.status, tc.problem, tc.header)
			o := Options{Name: "fake", Directory: dir, CAFile: ca, Secrets: newStore(t),
				Solver: Solver{Type: SolverDNS01, DNSProvider: wrongTXT{}}}
			u := newUpstream(t, o)
			_, err := u.Issue(t.Context(), newRequest(t, "x.example"), nil)
			var e *acmeerr.Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, tc.kind, e.Kind, "%v", err)
			require.Equal(t, tc.retry, e.RetryAfter)
			_, port, _ := net.SplitHostPort(u.host)
			require.Equal(t, fmt.Sprintf(tc.detail, port), e.Detail)
		})
	}
}

// TestMapError: the CA's problem types and transport failures map to the
// kinds the worker and the client expect.
func TestMapError(t *testing.T) {
	u := &Upstream{name: "le", host: "acme.example", solver: Solver{Type: SolverDNS01}}
	pd := func(typ, detail string, status int, subs ...legoacme.SubProblem) error {
		return fmt.Errorf("wrapped: %w", &legoacme.ProblemDetails{Type: errNS + typ, Detail: detail, HTTPStatus: status, SubProblems: subs})
	}
	cases := []struct {
		name string
		op   string
		err  error
		kind acmeerr.Kind
	}{
		{"caa", "finalizing the order", pd("caa", "CAA record forbids", 403), acmeerr.CAA},
		{"badCSR", "finalizing the order", pd("badCSR", "key too small", 400), acmeerr.BadCSR},
		{"rejected", "placing the order", pd("rejectedIdentifier", "no", 400), acmeerr.RejectedIdentifier},
		{"compound", "placing the order", pd("compound", "several", 400,
			legoacme.SubProblem{Type: errNS + "rejectedIdentifier", Detail: "policy forbids", Identifier: legoacme.Identifier{Type: "dns", Value: "bad.example"}}),
			acmeerr.RejectedIdentifier},
		{"rateLimited without 429", "placing the order", pd("rateLimited", "slow down", 403), acmeerr.RateLimited},
		{"validation", "solving challenges", pd("incorrectResponse", "wrong TXT", 403), acmeerr.Unavailable},
		{"account refused", "registering the account", pd("unauthorized", "account deactivated", 403), acmeerr.Unavailable},
		{"500", "finalizing the order", pd("serverInternal", "oops", 500), acmeerr.Unavailable},
		{"malformed", "placing the order", pd("malformed", "bad JSON", 400), acmeerr.Internal},
		{"net", "placing the order", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, acmeerr.Connection},
		{"canceled", "polling the order", context.Canceled, acmeerr.Unavailable},
		{"deadline", "polling the order", context.DeadlineExceeded, acmeerr.Unavailable},
		{"other", "downloading", errors.New("odd"), acmeerr.Internal},
		{"rateLimited 429", "placing the order", &legoacme.RateLimitedError{
			ProblemDetails: &legoacme.ProblemDetails{Type: errNS + "rateLimited", Detail: "too many certificates\x00\n for example.com"},
			RetryAfter:     3 * time.Hour}, acmeerr.RateLimited},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := u.mapError(tc.op, tc.err)
			var e *acmeerr.Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, tc.kind, e.Kind, "%v", err)
			require.Contains(t, e.Detail, "acme le: ", "the detail names the upstream")
			require.ErrorIs(t, err, tc.err, "the cause is kept for the logs")
		})
	}
	var e, rl *acmeerr.Error
	require.ErrorAs(t, u.mapError("placing the order", cases[3].err), &e)
	require.Len(t, e.Sub, 1)
	require.Equal(t, &acmeerr.Identifier{Type: "dns", Value: "bad.example"}, e.Identifier)
	require.ErrorAs(t, u.mapError("placing the order", cases[len(cases)-1].err), &rl)
	require.Equal(t, 3*time.Hour, rl.RetryAfter)
	require.Equal(t, "acme le: the CA at acme.example rate-limits this request: too many certificates   for example.com", rl.Detail)
	passed := acmeerr.New(acmeerr.BadCSR, "kept")
	require.Same(t, passed, u.mapError("x", passed))
}

// TestIPWithDNS01: an IP identifier cannot be validated with dns-01
// (RFC 8738 §7), which is said before the CA is contacted.
func TestIPWithDNS01(t *testing.T) {
	o := Options{Name: "le", Directory: "https://127.0.0.1:1/dir", Secrets: newStore(t),
		Solver: Solver{Type: SolverDNS01, DNSProvider: wrongTXT{}}}
	u := newUpstream(t, o)
	_, err := u.Issue(t.Context(), newRequest(t, "192.0.2.1"), nil)
	require.Equal(t, acmeerr.UnsupportedIdentifier, acmeerr.KindOf(err), "%v", err)
	_, err = u.Issue(t.Context(), nil, nil)
	require.Equal(t, acmeerr.Malformed, acmeerr.KindOf(err))
}
