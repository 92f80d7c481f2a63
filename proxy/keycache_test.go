package proxy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"
)

// TestKeyChangedElsewhere: a server verifies an account's requests with
// the key it last read for it (jws.go verifyKID), but a key changed since
// by another replica (RFC 8555 §7.3.5; here written to the shared store
// directly) is what counts: a request signed by the old key is refused as
// a bad signature without spending its nonce, and the new key's request
// with that nonce goes through.
func TestKeyChangedElsewhere(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	path := strings.TrimPrefix(c.kid, testBase)
	require.Equal(t, http.StatusOK, c.post(c.kid, nil).Code, "the account's key is known to the server")

	newKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	jwk := jose.JSONWebKey{Key: newKey.Public()}
	raw, err := jwk.MarshalJSON()
	require.NoError(t, err)
	tp, err := jwk.Thumbprint(crypto.SHA256)
	require.NoError(t, err)
	id := strings.TrimPrefix(c.kid, testBase+pathAccount)
	acct, err := e.st.GetAccount(t.Context(), id)
	require.NoError(t, err)
	acct.JWK, acct.KeyThumbprint = raw, b64(tp)
	require.NoError(t, e.st.UpdateAccount(t.Context(), acct))

	n := e.nonce()
	rec := e.do(http.MethodPost, path, "application/jose+json", signWithNonce(t, c, c.kid, n))
	requireProblem(t, rec, http.StatusBadRequest, "malformed")

	owner := &client{e: e, key: newKey, alg: jose.ES256, kid: c.kid}
	rec = e.do(http.MethodPost, path, "application/jose+json", signWithNonce(t, owner, c.kid, n))
	require.Equal(t, http.StatusOK, rec.Code, "the old key's request left the nonce unused: %s", rec.Body.String())
	rec = e.do(http.MethodPost, path, "application/jose+json", signWithNonce(t, owner, c.kid, n))
	requireProblem(t, rec, http.StatusBadRequest, "badNonce")
}
