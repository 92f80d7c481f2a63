package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

var challengeTokenCases = []testCase{
	{"PutGetDelete", testChallengeTokenPutGetDelete},
	{"Replace", testChallengeTokenReplace},
	{"Expires", testChallengeTokenExpires},
	{"RefusesBadInput", testChallengeTokenBadInput},
}

// newToken is a fresh token shaped like a CA's (base64url, 43
// characters), unique across runs.
func newToken() string {
	return (newID("tok") + "_0123456789abcdefghijklmnopqrstuvwxyz")[:43]
}

// testChallengeTokenPutGetDelete: a token's key authorization reads back
// as stored, tokens are distinct keys, and a deleted (or never stored)
// token is ErrNotFound; deleting a missing token is not an error.
func testChallengeTokenPutGetDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := newToken(), newToken()
	require.NoError(t, s.PutChallengeToken(ctx, a, a+".thumbprint-a", time.Minute))
	got, err := s.GetChallengeToken(ctx, a)
	require.NoError(t, err)
	require.Equal(t, a+".thumbprint-a", got)
	_, err = s.GetChallengeToken(ctx, b)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.NoError(t, s.PutChallengeToken(ctx, b, b+".thumbprint-b", time.Minute))
	got, err = s.GetChallengeToken(ctx, b)
	require.NoError(t, err)
	require.Equal(t, b+".thumbprint-b", got)

	require.NoError(t, s.DeleteChallengeToken(ctx, a))
	_, err = s.GetChallengeToken(ctx, a)
	require.ErrorIs(t, err, store.ErrNotFound)
	got, err = s.GetChallengeToken(ctx, b)
	require.NoError(t, err, "deleting one token left the other")
	require.Equal(t, b+".thumbprint-b", got)
	require.NoError(t, s.DeleteChallengeToken(ctx, a), "deleting a missing token")
}

// testChallengeTokenReplace: a second Put of a token replaces its value
// and its expiry (a later, longer ttl keeps it past the first one's end;
// a shorter one ends it sooner).
func testChallengeTokenReplace(t *testing.T, s store.Store) {
	ctx := t.Context()
	tok := newToken()
	require.NoError(t, s.PutChallengeToken(ctx, tok, "first", 300*time.Millisecond))
	require.NoError(t, s.PutChallengeToken(ctx, tok, "second", time.Minute))
	time.Sleep(600 * time.Millisecond)
	got, err := s.GetChallengeToken(ctx, tok)
	require.NoError(t, err, "the longer ttl of the second Put holds")
	require.Equal(t, "second", got)

	require.NoError(t, s.PutChallengeToken(ctx, tok, "third", 300*time.Millisecond))
	time.Sleep(600 * time.Millisecond)
	_, err = s.GetChallengeToken(ctx, tok)
	require.ErrorIs(t, err, store.ErrNotFound, "the shorter ttl of the third Put holds")
}

// testChallengeTokenExpires: a token is readable within its ttl and
// ErrNotFound after it, while one with a longer ttl stays; storing after
// the expiry works as for a new token.
func testChallengeTokenExpires(t *testing.T, s store.Store) {
	ctx := t.Context()
	short, long := newToken(), newToken()
	require.NoError(t, s.PutChallengeToken(ctx, short, "short", 400*time.Millisecond))
	require.NoError(t, s.PutChallengeToken(ctx, long, "long", time.Minute))
	got, err := s.GetChallengeToken(ctx, short)
	require.NoError(t, err, "read within its ttl")
	require.Equal(t, "short", got)
	time.Sleep(800 * time.Millisecond)
	_, err = s.GetChallengeToken(ctx, short)
	require.ErrorIs(t, err, store.ErrNotFound, "read after its ttl")
	got, err = s.GetChallengeToken(ctx, long)
	require.NoError(t, err)
	require.Equal(t, "long", got)

	require.NoError(t, s.PutChallengeToken(ctx, short, "again", time.Minute))
	got, err = s.GetChallengeToken(ctx, short)
	require.NoError(t, err)
	require.Equal(t, "again", got)
	require.NoError(t, s.DeleteChallengeToken(ctx, short))
}

// testChallengeTokenBadInput: an empty token or a ttl that is not
// positive is refused, and nothing is stored.
func testChallengeTokenBadInput(t *testing.T, s store.Store) {
	ctx := t.Context()
	require.Error(t, s.PutChallengeToken(ctx, "", "x", time.Minute), "empty token")
	tok := newToken()
	require.Error(t, s.PutChallengeToken(ctx, tok, "x", 0), "zero ttl")
	require.Error(t, s.PutChallengeToken(ctx, tok, "x", -time.Second), "negative ttl")
	_, err := s.GetChallengeToken(ctx, tok)
	require.ErrorIs(t, err, store.ErrNotFound)
}
