package proxy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/store"
)

// rawJWS builds a flattened JWS from a protected header map and payload,
// signed with key when given (else with a junk signature).
func rawJWS(t *testing.T, protected map[string]any, payload string) []byte {
	t.Helper()
	ph, err := json.Marshal(protected)
	require.NoError(t, err)
	p64 := base64.RawURLEncoding.EncodeToString(ph)
	pl64 := base64.RawURLEncoding.EncodeToString([]byte(payload))
	sig := "AAAA"
	b, err := json.Marshal(map[string]string{"protected": p64, "payload": pl64, "signature": sig})
	require.NoError(t, err)
	return b
}

// TestJWSRefusals drives the JWS checks with hostile requests: each gets its
// problem type and status, and no state changes (no account is created).
func TestJWSRefusals(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk := jose.JSONWebKey{Key: key.Public()}
	jwkJSON, _ := jwk.MarshalJSON()
	var jwkMap map[string]any
	require.NoError(t, json.Unmarshal(jwkJSON, &jwkMap))
	url := testBase + pathNewAccount

	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)

	cases := []struct {
		name   string
		path   string
		ctype  string
		body   func() []byte
		status int
		typ    string
	}{
		{"wrong content type", pathNewAccount, "application/json", func() []byte { return c.sign(url, []byte("{}"), true) }, 415, "malformed"},
		{"no content type", pathNewAccount, "", func() []byte { return c.sign(url, []byte("{}"), true) }, 415, "malformed"},
		{"garbage body", pathNewAccount, "application/jose+json", func() []byte { return []byte("\x00\xffnot json") }, 400, "malformed"},
		{"empty body", pathNewAccount, "application/jose+json", func() []byte { return nil }, 400, "malformed"},
		{"oversize body", pathNewAccount, "application/jose+json", func() []byte { return []byte(`{"payload":"` + strings.Repeat("A", maxBodyBytes) + `"}`) }, 413, "malformed"},
		{"compact serialization", pathNewAccount, "application/jose+json", func() []byte { return []byte("a.b.c") }, 400, "malformed"},
		{"alg none", pathNewAccount, "application/jose+json", func() []byte {
			return rawJWS(t, map[string]any{"alg": "none", "jwk": jwkMap, "nonce": e.nonce(), "url": url}, "{}")
		}, 400, "badSignatureAlgorithm"},
		{"HS256 outside EAB", pathNewAccount, "application/jose+json", func() []byte {
			return rawJWS(t, map[string]any{"alg": "HS256", "jwk": jwkMap, "nonce": e.nonce(), "url": url}, "{}")
		}, 400, "badSignatureAlgorithm"},
		{"RS256 with an EC key", pathNewAccount, "application/jose+json", func() []byte {
			return rawJWS(t, map[string]any{"alg": "RS256", "jwk": jwkMap, "nonce": e.nonce(), "url": url}, "{}")
		}, 400, "badSignatureAlgorithm"},
		{"both jwk and kid", pathNewAccount, "application/jose+json", func() []byte {
			return rawJWS(t, map[string]any{"alg": "ES256", "jwk": jwkMap, "kid": c.kid, "nonce": e.nonce(), "url": url}, "{}")
		}, 400, "malformed"},
		{"neither jwk nor kid", pathNewAccount, "application/jose+json", func() []byte {
			return rawJWS(t, map[string]any{"alg": "ES256", "nonce": e.nonce(), "url": url}, "{}")
		}, 400, "malformed"},
		{"bad signature", pathNewAccount, "application/jose+json", func() []byte {
			return rawJWS(t, map[string]any{"alg": "ES256", "jwk": jwkMap, "nonce": e.nonce(), "url": url}, "{}")
		}, 400, "malformed"},
		{"url mismatch", pathNewAccount, "application/jose+json", func() []byte {
			return c.sign(testBase+pathNewOrder, []byte("{}"), true)
		}, 403, "unauthorized"},
		{"kid on newAccount", pathNewAccount, "application/jose+json", func() []byte { return c.sign(url, []byte("{}"), false) }, 400, "malformed"},
		{"jwk on newOrder", pathNewOrder, "application/jose+json", func() []byte {
			return c.sign(testBase+pathNewOrder, []byte(`{"identifiers":[{"type":"dns","value":"a.example"}]}`), true)
		}, 400, "malformed"},
		{"unknown kid", pathNewOrder, "application/jose+json", func() []byte {
			o := &client{e: e, key: key, alg: jose.ES256, kid: testBase + pathAccount + "nobody"}
			return o.sign(testBase+pathNewOrder, []byte(`{}`), false)
		}, 400, "accountDoesNotExist"},
		{"kid of another server", pathNewOrder, "application/jose+json", func() []byte {
			o := &client{e: e, key: key, alg: jose.ES256, kid: "https://evil.test/acme/account/x"}
			return o.sign(testBase+pathNewOrder, []byte(`{}`), false)
		}, 400, "malformed"},
		{"kid of another account, signed by own key", pathNewOrder, "application/jose+json", func() []byte {
			o := &client{e: e, key: key, alg: jose.ES256, kid: c.kid}
			return o.sign(testBase+pathNewOrder, []byte(`{}`), false)
		}, 400, "malformed"},
		{"RSA 1024 account key", pathNewAccount, "application/jose+json", func() []byte {
			o := &client{e: e, key: weak, alg: jose.RS256}
			return o.sign(url, []byte(`{}`), true)
		}, 400, "badPublicKey"},
		{"payload not an object", pathNewAccount, "application/jose+json", func() []byte {
			o := e.newClient()
			return o.sign(url, []byte(`[1,2]`), true)
		}, 400, "malformed"},
		{"payload with trailing data", pathNewAccount, "application/jose+json", func() []byte {
			o := e.newClient()
			return o.sign(url, []byte(`{}{}`), true)
		}, 400, "malformed"},
		{"payload field of wrong type", pathNewAccount, "application/jose+json", func() []byte {
			o := e.newClient()
			return o.sign(url, []byte(`{"contact":"mailto:a@b.c"}`), true)
		}, 400, "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := e.do(http.MethodPost, tc.path, tc.ctype, tc.body())
			requireProblem(t, rec, tc.status, tc.typ)
			require.NotEmpty(t, rec.Header().Get("Replay-Nonce"), "error responses carry a fresh nonce")
		})
	}
	// No refused request created an account for the keys it carried.
	for _, k := range []any{key.Public(), weak.Public()} {
		tp, err := thumbprint(&jose.JSONWebKey{Key: k})
		require.NoError(t, err)
		_, err = e.st.GetAccountByKey(t.Context(), tp)
		require.ErrorIs(t, err, store.ErrNotFound)
	}
}

func TestBadSignatureAlgorithmListsAlgorithms(t *testing.T) {
	e := newEnv(t, nil)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwkJSON, _ := (&jose.JSONWebKey{Key: key.Public()}).MarshalJSON()
	var jwkMap map[string]any
	require.NoError(t, json.Unmarshal(jwkJSON, &jwkMap))
	rec := e.do(http.MethodPost, pathNewAccount, "application/jose+json",
		rawJWS(t, map[string]any{"alg": "none", "jwk": jwkMap, "nonce": e.nonce(), "url": testBase + pathNewAccount}, "{}"))
	p := requireProblem(t, rec, 400, "badSignatureAlgorithm")
	require.Contains(t, p.Algorithms, "ES256")
	require.Contains(t, p.Algorithms, "RS256")
}

// TestNonceReplay: a nonce is accepted once; the signature is verified
// before the nonce is consumed, so a forged request does not burn it.
func TestNonceReplay(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	n := e.nonce()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forged := &client{e: e, key: key, alg: jose.ES256, kid: c.kid}
	body := signWithNonce(t, forged, testBase+pathAccount+strings.TrimPrefix(c.kid, testBase+pathAccount), n)
	requireProblem(t, e.do(http.MethodPost, strings.TrimPrefix(c.kid, testBase), "application/jose+json", body), 400, "malformed")

	good := signWithNonce(t, c, c.kid, n)
	rec := e.do(http.MethodPost, strings.TrimPrefix(c.kid, testBase), "application/jose+json", good)
	require.Equal(t, http.StatusOK, rec.Code, "the forged request must not have consumed the nonce: %s", rec.Body.String())
	rec = e.do(http.MethodPost, strings.TrimPrefix(c.kid, testBase), "application/jose+json", good)
	requireProblem(t, rec, 400, "badNonce")
	// A nonce this server never issued.
	requireProblem(t, e.do(http.MethodPost, strings.TrimPrefix(c.kid, testBase), "application/jose+json", signWithNonce(t, c, c.kid, "bm90LWlzc3VlZA")), 400, "badNonce")
}

func signWithNonce(t *testing.T, c *client, url, nonce string) []byte {
	opts := &jose.SignerOptions{NonceSource: nonceFunc(func() (string, error) { return nonce, nil })}
	opts.WithHeader("url", url)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: c.alg, Key: jose.JSONWebKey{Key: c.key, KeyID: c.kid}}, opts)
	require.NoError(t, err)
	jws, err := signer.Sign([]byte{})
	require.NoError(t, err)
	return []byte(jws.FullSerialize())
}

// TestParseJWSMemberNamesCaseSensitive: RFC 7515's member names are
// case-sensitive, but encoding/json and go-jose match them without case, so
// a body with "Signature" parsed (and failed only at verification), and one
// with "protected" and "PROTECTED" had two readings of its header. The
// parser refuses both, and parses the same body spelled right.
func TestParseJWSMemberNamesCaseSensitive(t *testing.T) {
	e := newEnv(t, nil)
	body := e.newClient().sign(testBase+pathNewAccount, []byte("{}"), true)
	_, _, err := parseJWS(body)
	require.NoError(t, err)
	for name, b := range map[string][]byte{
		"Signature":           bytes.Replace(body, []byte(`"signature"`), []byte(`"Signature"`), 1),
		"Payload":             bytes.Replace(body, []byte(`"payload"`), []byte(`"Payload"`), 1),
		"PROTECTED as well":   append(bytes.Clone(body[:len(body)-1]), []byte(`,"PROTECTED":"e30"}`)...),
		"Header, unprotected": append(bytes.Clone(body[:len(body)-1]), []byte(`,"Header":{"kid":"x"}}`)...),
		"ſignatures (long s)": append(bytes.Clone(body[:len(body)-1]), []byte(`,"ſignatures":[]}`)...),
		"Signature: null":     append(bytes.Clone(body[:len(body)-1]), []byte(`,"Signature":null}`)...),
	} {
		_, _, err := parseJWS(b)
		require.Error(t, err, name)
		require.Equal(t, acmeerr.Malformed, acmeerr.KindOf(err), name)
	}
}
