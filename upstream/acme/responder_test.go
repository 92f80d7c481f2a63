package acme

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/upstream/acme/acmetest"
)

// freeAddr is a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// httpGet fetches url and returns the status and body.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestIssueHTTP01OtherReplica: two upstreams sharing one store stand for
// two replicas, each with its own responder; the CA's validation reaches
// the one that did not present the token (Pebble's VA connects to its
// port only), which answers from the store.
func TestIssueHTTP01OtherReplica(t *testing.T) {
	p := acmetest.Start(t, acmetest.Options{AuthzReuse: -1})
	st := newStore(t)
	issuing := httpOptions(t, p, st)
	issuing.Solver.Listen = freeAddr(t)
	issuing.Tokens = st
	answering := httpOptions(t, p, st)
	answering.Tokens = st
	a := newUpstream(t, issuing)
	b := newUpstream(t, answering)
	require.NotSame(t, a.responder.r, b.responder.r, "two responders, as in two processes")

	req := newRequest(t, "other.replica.test", "www.other.replica.test")
	res := issue(t, a, req, nil)
	verifyResult(t, p, res, req)
	require.Empty(t, a.responder.r.tokens, "the issuing responder withdrew its tokens")
	require.Empty(t, b.responder.r.tokens, "the answering responder presented nothing")
}

// TestResponderFromStore: a token presented through one responder is
// served by another sharing the store, until it is cleaned up; a store
// that fails is a 503 that says nothing of it.
func TestResponderFromStore(t *testing.T) {
	log, _ := testLogger(t)
	st := newStore(t)
	u := &Upstream{name: "t", log: log}
	pa, err := startResponder(freeAddr(t), u, st)
	require.NoError(t, err)
	defer pa.close()
	pb, err := startResponder(freeAddr(t), u, st)
	require.NoError(t, err)
	defer pb.close()
	ctx := context.Background()
	const token = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"
	url := "http://" + pb.r.addr() + "/.well-known/acme-challenge/" + token

	code, _ := httpGet(t, url)
	require.Equal(t, http.StatusNotFound, code)
	require.NoError(t, pa.Present(ctx, "a.example", token, token+".thumb"))
	code, body := httpGet(t, url)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, token+".thumb", body)
	require.Empty(t, pb.r.tokens, "served from the store, not presented here")
	require.NoError(t, pa.CleanUp(ctx, "a.example", token, ""))
	code, _ = httpGet(t, url)
	require.Equal(t, http.StatusNotFound, code, "cleaned up in the store too")

	require.NoError(t, pa.Present(ctx, "a.example", token, token+".thumb"))
	require.NoError(t, st.Close())
	code, body = httpGet(t, url)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "service unavailable\n", body)
	code, body = httpGet(t, "http://"+pa.r.addr()+"/.well-known/acme-challenge/"+token)
	require.Equal(t, http.StatusOK, code, "a token presented here needs no store")
	require.Equal(t, token+".thumb", body)
	require.Error(t, pa.Present(ctx, "a.example", token+"x", "k"), "a token the store cannot keep is not presented")
	require.NotContains(t, pa.r.tokens, token+"x")
}

// TestResponderHostilePaths: the token in the path is the requester's; a
// path that is no base64url token (RFC 8555 §8.3) is a plain 404 without
// asking the store, and nothing of the request comes back. A token from
// the CA that is no base64url is refused.
func TestResponderHostilePaths(t *testing.T) {
	log, logs := testLogger(t)
	st := &countingTokens{TokenStore: newStore(t)}
	p, err := startResponder(freeAddr(t), &Upstream{name: "t", log: log}, st)
	require.NoError(t, err)
	defer p.close()
	base := "http://" + p.r.addr() + "/.well-known/acme-challenge/"
	for _, path := range []string{
		"", "%3Cscript%3Ealert(1)%3C%2Fscript%3E", "a%2F..%2F..%2Fetc", "tok%00en", "abc=", "a.b",
		"{acmebridge}:secret:x", strings.Repeat("A", maxTokenLen+1), "abc/def",
	} {
		code, body := httpGet(t, base+path)
		require.Equal(t, http.StatusNotFound, code, path)
		require.Equal(t, "404 page not found\n", body, path)
	}
	require.Zero(t, st.gets.Load(), "the store was asked for a malformed token")
	code, _ := httpGet(t, base+strings.Repeat("A", maxTokenLen))
	require.Equal(t, http.StatusNotFound, code)
	require.Equal(t, int32(1), st.gets.Load(), "a well-formed token is looked up")
	require.NotContains(t, logs.String(), "script")

	for _, tok := range []string{"", "a b", "a/b", "tok=", "{x}", strings.Repeat("A", maxTokenLen+1)} {
		require.Error(t, p.Present(context.Background(), "a.example", tok, "k"), "%q", tok)
	}
	require.Empty(t, p.r.tokens)
	require.Zero(t, st.puts.Load())
}

// countingTokens counts the calls that reach a TokenStore.
type countingTokens struct {
	TokenStore
	gets, puts atomic.Int32
}

func (c *countingTokens) GetChallengeToken(ctx context.Context, token string) (string, error) {
	c.gets.Add(1)
	return c.TokenStore.GetChallengeToken(ctx, token)
}

func (c *countingTokens) PutChallengeToken(ctx context.Context, token, keyAuth string, ttl time.Duration) error {
	c.puts.Add(1)
	return c.TokenStore.PutChallengeToken(ctx, token, keyAuth, ttl)
}
