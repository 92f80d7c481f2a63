package proxy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha512" // crypto.SHA384 and SHA512 for signRaw
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/core"
	"github.com/acmebridge/acmebridge/ra/ratest"
)

// This file is the hostile-request suite (issue 8, item 2): requests an
// attacker, a broken client or a confused one may send. Each case asserts the
// status, the problem type, and that the server's state is unchanged: every
// account, order, authorization, job, certificate and EAB key is compared
// before and after, and no audit event of a state change is written.

// hostileGroups names the groups of the suite by their first case.
var hostileGroups = map[string]string{
	"alg none":                             "algorithm confusion",
	"both jwk and kid":                     "jwk and kid",
	"read another account":                 "another account's resources",
	"url of another resource":              "url header",
	"replayed nonce":                       "nonces",
	"oversize body":                        "size, nesting, duplicate keys, media type",
	"order read with a payload":            "POST-as-GET",
	"IDN U-label":                          "identifiers",
	"CSR with an extra name":               "CSR at finalize",
	"account key RSA 1024":                 "account keys",
	"finalize of a pending order":          "finalize out of order",
	"revoke another account's certificate": "revocation",
	"EAB key reused by another account":    "external account binding",
	"deactivated account orders":           "deactivated account",
	"key change to a key in use":           "key change",
}

func hostileCases(t *testing.T, f *hostileFixture) []hostileCase {
	e, a, b := f.e, f.a, f.b
	newAcct := testBase + pathNewAccount
	newOrder := testBase + pathNewOrder
	orderPayload := []byte(`{"identifiers":[{"type":"dns","value":"new.example.com"}]}`)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecJWK := jwkJSON(t, ec)
	aJWK := jwkJSON(t, a.key)
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	require.NoError(t, err)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	certKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	// hdr is a protected header for A's kid (or a jwk) with a fresh nonce.
	kidHdr := func(c *client, alg, u string) []string {
		return []string{"alg", js(alg), "kid", js(c.kid), "nonce", js(e.nonce()), "url", js(u)}
	}
	jwkHdr := func(alg, jwk, u string) []string {
		return []string{"alg", js(alg), "jwk", jwk, "nonce", js(e.nonce()), "url", js(u)}
	}
	signed := func(c *client, u string, payload string) func(*testing.T) hostileReq {
		return func(t *testing.T) hostileReq { return josePOST(u, c.sign(u, []byte(payload), false)) }
	}
	// finalizeWith posts a CSR to A's ready order.
	finalizeWith := func(der []byte) func(*testing.T) hostileReq {
		return signed(a, f.aReady.Finalize, `{"csr":`+js(b64(der))+`}`)
	}
	readyName := []string{"ready.example.com"}
	// hostileCSR posts ra/ratest's hostile CSR of that name to A's ready
	// order; the problem's detail must name what it asked for.
	hostileCSRs := map[string]ratest.Case{}
	for _, c := range ratest.Hostile(t, certKey, readyName) {
		hostileCSRs[c.Name] = c
	}
	hostileCSR := func(name string) (func(*testing.T) hostileReq, func(*testing.T, *httptest.ResponseRecorder)) {
		c, ok := hostileCSRs[name]
		require.True(t, ok, "ratest.Hostile has no case %q", name)
		return finalizeWith(c.DER), detailHas(c.Detail)
	}
	csrCase := func(name, ratestName string) hostileCase {
		req, check := hostileCSR(ratestName)
		return hostileCase{name, req, 400, "badCSR", check}
	}
	weakCSR := func(key crypto.Signer) func(*testing.T) hostileReq {
		return finalizeWith(ratest.CSR(t, key, &x509.CertificateRequest{DNSNames: readyName}))
	}
	// newAccountEAB is a newAccount by a fresh key with the binding given.
	newAccountEAB := func(binding func(c *client) map[string]any) func(*testing.T) hostileReq {
		return func(t *testing.T) hostileReq {
			c := e.newClient()
			p, err := json.Marshal(map[string]any{"externalAccountBinding": binding(c)})
			require.NoError(t, err)
			return josePOST(newAcct, c.sign(newAcct, p, true))
		}
	}
	nested := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	revoke := func(c *client, useJWK bool, payload string) func(*testing.T) hostileReq {
		u := testBase + pathRevoke
		return func(t *testing.T) hostileReq { return josePOST(u, c.sign(u, []byte(payload), useJWK)) }
	}
	revokePayload := `{"certificate":` + js(b64(f.aCertDER)) + `}`
	keyChange := testBase + pathKeyChange
	keyChangeBy := func(c *client, inner func() []byte) func(*testing.T) hostileReq {
		return func(t *testing.T) hostileReq { return josePOST(keyChange, c.sign(keyChange, inner(), false)) }
	}
	dead := f.dead
	hugeRSA := func() string {
		// Only the size is checked before the signature, so a random odd
		// 4200-bit modulus does.
		b := make([]byte, 525)
		_, _ = rand.Read(b)
		b[0] |= 0x80
		b[len(b)-1] |= 1
		n := new(big.Int).SetBytes(b)
		return `{"kty":"RSA","n":` + js(b64(n.Bytes())) + `,"e":"AQAB"}`
	}()

	return []hostileCase{
		// Algorithm confusion (RFC 8555 §6.2, docs/security.md).
		{"alg none", func(t *testing.T) hostileReq {
			return josePOST(newAcct, signRaw(t, nil, "none", obj(jwkHdr("none", ecJWK, newAcct)...), []byte(`{}`)))
		}, 400, "badSignatureAlgorithm", nil},
		{"alg HS256 outside EAB", func(t *testing.T) hostileReq {
			return josePOST(newAcct, signRaw(t, nil, "HS256", obj(jwkHdr("HS256", ecJWK, newAcct)...), []byte(`{}`)))
		}, 400, "badSignatureAlgorithm", nil},
		{"alg HS256 with a kid", func(t *testing.T) hostileReq {
			return josePOST(newOrder, signRaw(t, nil, "HS256", obj(kidHdr(a, "HS256", newOrder)...), orderPayload))
		}, 400, "badSignatureAlgorithm", nil},
		{"RS256 with an EC key", func(t *testing.T) hostileReq {
			return josePOST(newOrder, signRaw(t, a.key, "RS256", obj(kidHdr(a, "RS256", newOrder)...), orderPayload))
		}, 400, "badSignatureAlgorithm", nil},
		{"ES256 with an RSA key", func(t *testing.T) hostileReq {
			return josePOST(newAcct, signRaw(t, rsa2048, "ES256", obj(jwkHdr("ES256", jwkJSON(t, rsa2048), newAcct)...), []byte(`{}`)))
		}, 400, "badSignatureAlgorithm", nil},
		{"ES384 with a P-256 key", func(t *testing.T) hostileReq {
			return josePOST(newOrder, signRaw(t, a.key, "ES384", obj(kidHdr(a, "ES384", newOrder)...), orderPayload))
		}, 400, "badSignatureAlgorithm", nil},
		{"ES256 with a P-384 key", func(t *testing.T) hostileReq {
			return josePOST(newOrder, signRaw(t, f.p384.key, "ES256", obj(kidHdr(f.p384, "ES256", newOrder)...), orderPayload))
		}, 400, "badSignatureAlgorithm", nil},
		{"EdDSA with an EC key", func(t *testing.T) hostileReq {
			return josePOST(newOrder, signRaw(t, a.key, "EdDSA", obj(kidHdr(a, "EdDSA", newOrder)...), orderPayload))
		}, 400, "badSignatureAlgorithm", nil},
		{"alg in the JWK differs from the header", func(t *testing.T) hostileReq {
			j := strings.Replace(ecJWK, "{", `{"alg":"ES384",`, 1)
			return josePOST(newAcct, signRaw(t, ec, "ES256", obj(jwkHdr("ES256", j, newAcct)...), []byte(`{}`)))
		}, 400, "badSignatureAlgorithm", nil},
		{"alg in lower case", func(t *testing.T) hostileReq {
			return josePOST(newOrder, signRaw(t, a.key, "es256", obj(kidHdr(a, "es256", newOrder)...), orderPayload))
		}, 400, "badSignatureAlgorithm", nil},
		{"no alg", func(t *testing.T) hostileReq {
			return josePOST(newOrder, signRaw(t, a.key, "ES256", obj(kidHdr(a, "ES256", newOrder)[2:]...), orderPayload))
		}, 400, "malformed", nil},
		{"unknown crit header", func(t *testing.T) hostileReq {
			h := append(kidHdr(a, "ES256", newOrder), "crit", `["exp"]`, "exp", "1")
			return josePOST(newOrder, signRaw(t, a.key, "ES256", obj(h...), orderPayload))
		}, 400, "malformed", nil},
		{"unencoded payload (b64 false, RFC 7797)", func(t *testing.T) hostileReq {
			h := append(kidHdr(a, "ES256", newOrder), "b64", "false", "crit", `["b64"]`)
			return josePOST(newOrder, signRaw(t, a.key, "ES256", obj(h...), orderPayload))
		}, 400, "malformed", nil},

		// jwk and kid (RFC 8555 §6.2: "mutually exclusive").
		{"both jwk and kid", func(t *testing.T) hostileReq {
			h := append(kidHdr(a, "ES256", newOrder), "jwk", aJWK)
			return josePOST(newOrder, signRaw(t, a.key, "ES256", obj(h...), orderPayload))
		}, 400, "malformed", nil},
		{"neither jwk nor kid", func(t *testing.T) hostileReq {
			return josePOST(newOrder, signRaw(t, a.key, "ES256", obj("alg", js("ES256"), "nonce", js(e.nonce()), "url", js(newOrder)), orderPayload))
		}, 400, "malformed", nil},
		{"kid of another account, signed with one's own key", func(t *testing.T) hostileReq {
			return josePOST(newOrder, signRaw(t, a.key, "ES256", obj(kidHdr(b, "ES256", newOrder)...), orderPayload))
		}, 400, "malformed", nil},
		{"kid of an account that does not exist", func(t *testing.T) hostileReq {
			h := []string{"alg", js("ES256"), "kid", js(testBase + pathAccount + "nobody"), "nonce", js(e.nonce()), "url", js(newOrder)}
			return josePOST(newOrder, signRaw(t, a.key, "ES256", obj(h...), orderPayload))
		}, 400, "accountDoesNotExist", nil},
		{"kid on another host", func(t *testing.T) hostileReq {
			h := []string{"alg", js("ES256"), "kid", js(strings.Replace(a.kid, testBase, "https://evil.test", 1)), "nonce", js(e.nonce()), "url", js(newOrder)}
			return josePOST(newOrder, signRaw(t, a.key, "ES256", obj(h...), orderPayload))
		}, 400, "malformed", nil},
		{"jwk where a kid is required", func(t *testing.T) hostileReq {
			return josePOST(newOrder, signRaw(t, a.key, "ES256", obj(jwkHdr("ES256", aJWK, newOrder)...), orderPayload))
		}, 400, "malformed", nil},
		{"kid on newAccount", signed(a, newAcct, `{}`), 400, "malformed", nil},

		// Another account's resources.
		{"read another account", signed(a, b.kid, ``), 403, "unauthorized", nil},
		{"deactivate another account", signed(a, b.kid, `{"status":"deactivated"}`), 403, "unauthorized", nil},
		{"list another account's orders", signed(a, b.kid+"/orders", ``), 403, "unauthorized", nil},
		{"read another account's order", signed(a, f.bReadyURL, ``), 403, "unauthorized", nil},
		{"finalize another account's order", signed(a, f.bReady.Finalize,
			`{"csr":`+js(b64(makeCSR(t, certKey, "", []string{"b-ready.example.com"}, nil)))+`}`), 403, "unauthorized", nil},
		{"answer another account's challenge", signed(a, f.bPendingAuthz.Challenges[0].URL, `{}`), 403, "unauthorized", nil},
		{"deactivate another account's authorization", signed(a, f.bPending.Authorizations[0], `{"status":"deactivated"}`), 403, "unauthorized", nil},
		{"download another account's certificate", signed(b, f.aValid.Certificate, ``), 403, "unauthorized", nil},

		// The url header (RFC 8555 §6.4).
		{"url of another resource", func(t *testing.T) hostileReq {
			return josePOST(newOrder, a.sign(testBase+pathNewAuthz, orderPayload, false))
		}, 403, "unauthorized", nil},
		{"url on another host", func(t *testing.T) hostileReq {
			return josePOST(newOrder, a.sign("https://evil.test"+pathNewOrder, orderPayload, false))
		}, 403, "unauthorized", nil},
		{"url with http scheme", func(t *testing.T) hostileReq {
			return josePOST(newOrder, a.sign(strings.Replace(newOrder, "https:", "http:", 1), orderPayload, false))
		}, 403, "unauthorized", nil},
		{"request has a query the url lacks", func(t *testing.T) hostileReq {
			r := josePOST(newOrder, a.sign(newOrder, orderPayload, false))
			r.path += "?x=1"
			return r
		}, 403, "unauthorized", nil},
		{"url has a query the request lacks", func(t *testing.T) hostileReq {
			return josePOST(newOrder, a.sign(newOrder+"?x=1", orderPayload, false))
		}, 403, "unauthorized", nil},
		{"url with a different path encoding", func(t *testing.T) hostileReq {
			return josePOST(newOrder, a.sign(testBase+"/acme/new%2Dorder", orderPayload, false))
		}, 403, "unauthorized", nil},
		{"no url", func(t *testing.T) hostileReq {
			h := []string{"alg", js("ES256"), "kid", js(a.kid), "nonce", js(e.nonce())}
			return josePOST(newOrder, signRaw(t, a.key, "ES256", obj(h...), orderPayload))
		}, 400, "malformed", nil},

		// Nonces (RFC 8555 §6.5).
		{"replayed nonce", func(t *testing.T) hostileReq {
			n := e.nonce()
			first := signWithNonce(t, a, a.kid, n)
			require.Equal(t, http.StatusOK, e.do(http.MethodPost, strings.TrimPrefix(a.kid, testBase), "application/jose+json", first).Code)
			h := []string{"alg", js("ES256"), "kid", js(a.kid), "nonce", js(n), "url", js(newOrder)}
			return josePOST(newOrder, signRaw(t, a.key, "ES256", obj(h...), orderPayload))
		}, 400, "badNonce", nil},
		{"nonce never issued", func(t *testing.T) hostileReq {
			h := []string{"alg", js("ES256"), "kid", js(a.kid), "nonce", js(core.RandomID()), "url", js(newOrder)}
			return josePOST(newOrder, signRaw(t, a.key, "ES256", obj(h...), orderPayload))
		}, 400, "badNonce", nil},
		{"no nonce", func(t *testing.T) hostileReq {
			h := []string{"alg", js("ES256"), "kid", js(a.kid), "url", js(newOrder)}
			return josePOST(newOrder, signRaw(t, a.key, "ES256", obj(h...), orderPayload))
		}, 400, "badNonce", nil},
		{"forged signature does not burn the nonce", func(t *testing.T) hostileReq {
			n := e.nonce()
			h := obj("alg", js("ES256"), "kid", js(a.kid), "nonce", js(n), "url", js(newOrder))
			forged := signRaw(t, ec, "ES256", h, orderPayload)
			t.Cleanup(func() {
				// The owner's request with the same nonce still goes through
				// (a POST-as-GET, which changes nothing).
				rec := e.do(http.MethodPost, strings.TrimPrefix(a.kid, testBase), "application/jose+json", signWithNonce(t, a, a.kid, n))
				require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			})
			return josePOST(newOrder, forged)
		}, 400, "malformed", nil},

		// Size, nesting, duplicates, media type.
		{"oversize body", func(t *testing.T) hostileReq {
			return josePOST(newOrder, append(a.sign(newOrder, orderPayload, false), make([]byte, maxBodyBytes)...))
		}, 413, "malformed", nil},
		{"payload nested 10k levels deep", signed(a, newOrder, `{"identifiers":[{"type":"dns","value":"new.example.com"}],"x":`+nested+`}`), 400, "malformed", nil},
		{"identifiers nested 10k levels deep", signed(a, newOrder, `{"identifiers":`+nested+`}`), 400, "malformed", nil},
		{"protected header nested 10k levels deep", func(t *testing.T) hostileReq {
			h := append(kidHdr(a, "ES256", newOrder), "x", nested)
			return josePOST(newOrder, signRaw(t, a.key, "ES256", obj(h...), orderPayload))
		}, 400, "malformed", nil},
		{"duplicate url in the protected header", func(t *testing.T) hostileReq {
			h := append([]string{"url", js("https://evil.test/")}, kidHdr(a, "ES256", newOrder)...)
			return josePOST(newOrder, signRaw(t, a.key, "ES256", obj(h...), orderPayload))
		}, 400, "malformed", nil},
		{"duplicate alg in the protected header", func(t *testing.T) hostileReq {
			h := append([]string{"alg", js("none")}, kidHdr(a, "ES256", newOrder)...)
			return josePOST(newOrder, signRaw(t, a.key, "ES256", obj(h...), orderPayload))
		}, 400, "malformed", nil},
		{"duplicate payload in the JWS object", func(t *testing.T) hostileReq {
			body := a.sign(newOrder, orderPayload, false)
			return josePOST(newOrder, []byte(strings.Replace(string(body), `"payload":`, `"payload":"e30","payload":`, 1)))
		}, 400, "malformed", nil},
		{"duplicate identifiers key in the payload", signed(a, newOrder,
			`{"identifiers":[{"type":"dns","value":"a.forbidden.example"}],"identifiers":[{"type":"dns","value":"new.example.com"}]}`), 400, "malformed", nil},
		{"duplicate value key in an identifier", signed(a, newOrder,
			`{"identifiers":[{"type":"dns","value":"a.forbidden.example","value":"new.example.com"}]}`), 400, "malformed", nil},
		{"duplicate contact key in an account update", signed(a, a.kid,
			`{"contact":["mailto:a@example.com"],"contact":["mailto:b@example.com"]}`), 400, "malformed", nil},
		{"duplicate csr key in finalize", signed(a, f.aReady.Finalize,
			`{"csr":"AAAA","csr":`+js(b64(makeCSR(t, certKey, "", readyName, nil)))+`}`), 400, "malformed", nil},
		{"Content-Type application/json", func(t *testing.T) hostileReq {
			r := josePOST(newOrder, a.sign(newOrder, orderPayload, false))
			r.ctype = "application/json"
			return r
		}, 415, "malformed", nil},
		{"Content-Type text/plain", func(t *testing.T) hostileReq {
			r := josePOST(newOrder, a.sign(newOrder, orderPayload, false))
			r.ctype = "text/plain"
			return r
		}, 415, "malformed", nil},
		{"no Content-Type", func(t *testing.T) hostileReq {
			r := josePOST(newOrder, a.sign(newOrder, orderPayload, false))
			r.ctype = ""
			return r
		}, 415, "malformed", nil},
		{"compact serialization", func(t *testing.T) hostileReq {
			var m map[string]string
			require.NoError(t, json.Unmarshal(a.sign(newOrder, orderPayload, false), &m))
			return josePOST(newOrder, []byte(m["protected"]+"."+m["payload"]+"."+m["signature"]))
		}, 400, "malformed", nil},
		{"general serialization", func(t *testing.T) hostileReq {
			var m map[string]string
			require.NoError(t, json.Unmarshal(a.sign(newOrder, orderPayload, false), &m))
			body, _ := json.Marshal(map[string]any{"payload": m["payload"], "signatures": []map[string]string{{"protected": m["protected"], "signature": m["signature"]}}})
			return josePOST(newOrder, body)
		}, 400, "malformed", nil},
		{"unprotected header", func(t *testing.T) hostileReq {
			body := a.sign(newOrder, orderPayload, false)
			return josePOST(newOrder, append(body[:len(body)-1], []byte(`,"header":{"kid":"x"}}`)...))
		}, 400, "malformed", nil},

		// POST-as-GET where it is required (RFC 8555 §6.3).
		{"order read with a payload", signed(a, f.aPendingURL, `{}`), 400, "malformed", nil},
		{"certificate download with a payload", signed(a, f.aValid.Certificate, `{}`), 400, "malformed", nil},
		{"orders list with a payload", signed(a, a.kid+"/orders", `{}`), 400, "malformed", nil},
		{"unauthenticated GET of an order", func(t *testing.T) hostileReq {
			return hostileReq{http.MethodGet, strings.TrimPrefix(f.aPendingURL, testBase), "", nil}
		}, 405, "malformed", nil},

		// Names (RFC 8555 §7.1.3, §7.4; RFC 5890 for IDNs).
		{"IDN U-label", signed(a, newOrder, `{"identifiers":[{"type":"dns","value":"bücher.example"}]}`), 400, "rejectedIdentifier", nil},
		{"invalid IDN A-label", signed(a, newOrder, `{"identifiers":[{"type":"dns","value":"xn--a.example"}]}`), 400, "rejectedIdentifier", nil},
		{"trailing dot", signed(a, newOrder, `{"identifiers":[{"type":"dns","value":"new.example.com."}]}`), 400, "rejectedIdentifier", nil},
		{"wildcard of a wildcard", signed(a, newOrder, `{"identifiers":[{"type":"dns","value":"*.*"}]}`), 400, "rejectedIdentifier", nil},
		{"wildcard alone", signed(a, newOrder, `{"identifiers":[{"type":"dns","value":"*"}]}`), 400, "rejectedIdentifier", nil},
		{"wildcard in an inner label", signed(a, newOrder, `{"identifiers":[{"type":"dns","value":"a.*.example.com"}]}`), 400, "rejectedIdentifier", nil},
		{"too many names", signed(a, newOrder, `{"identifiers":[`+func() string {
			var s []string
			for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
				s = append(s, `{"type":"dns","value":"`+n+`.example.com"}`)
			}
			return strings.Join(s, ",")
		}()+`]}`), 400, "rejectedIdentifier", nil},
		{"254-character name", signed(a, newOrder, `{"identifiers":[{"type":"dns","value":"`+
			strings.Repeat(strings.Repeat("a", 62)+".", 4)+"ab"+`"}]}`), 400, "rejectedIdentifier", nil},
		{"forbidden by policy", signed(a, newOrder, `{"identifiers":[{"type":"dns","value":"a.forbidden.example"}]}`), 400, "rejectedIdentifier", nil},
		{"forbidden name hidden behind an allowed one", signed(a, newOrder,
			`{"identifiers":[{"type":"dns","value":"new.example.com"},{"type":"dns","value":"FORBIDDEN.example"}]}`), 400, "rejectedIdentifier", nil},
		{"NUL byte in a name", signed(a, newOrder, `{"identifiers":[{"type":"dns","value":"a\u0000.example.com"}]}`), 400, "rejectedIdentifier", nil},
		{"IP address as a dns identifier", signed(a, newOrder, `{"identifiers":[{"type":"dns","value":"192.0.2.1"}]}`), 400, "rejectedIdentifier", nil},
		{"unknown identifier type", signed(a, newOrder, `{"identifiers":[{"type":"email","value":"a@example.com"}]}`), 400, "unsupportedIdentifier", nil},
		{"no identifiers", signed(a, newOrder, `{"identifiers":[]}`), 400, "malformed", nil},

		// CSRs at finalize (RFC 8555 §7.4).
		{"CSR with an extra name", finalizeWith(makeCSR(t, certKey, "", []string{"ready.example.com", "extra.example.com"}, nil)), 400, "badCSR", nil},
		{"CSR for another name", finalizeWith(makeCSR(t, certKey, "", []string{"other.example.com"}, nil)), 400, "badCSR", nil},
		{"CSR with a foreign common name", finalizeWith(makeCSR(t, certKey, "other.example.com", readyName, nil)), 400, "badCSR", nil},
		{"CSR with the account key", finalizeWith(makeCSR(t, a.key, "", readyName, nil)), 400, "badCSR", nil},
		{"CSR with an RSA 1024 key", finalizeWith(makeCSR(t, rsa1024, "", readyName, nil)), 400, "badCSR", nil},
		{"CSR with a P-224 key", finalizeWith(makeCSR(t, p224, "", readyName, nil)), 400, "badCSR", nil},
		{"CSR with a DSA key", finalizeWith(dsaCSR(t, readyName)), 400, "badCSR", nil},
		{"CSR with an email address", func(t *testing.T) hostileReq {
			der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: readyName, EmailAddresses: []string{"a@example.com"}}, certKey)
			require.NoError(t, err)
			return finalizeWith(der)(t)
		}, 400, "badCSR", nil},
		{"CSR with a URI", func(t *testing.T) hostileReq {
			u, _ := url.Parse("spiffe://example.com/x")
			der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: readyName, URIs: []*url.URL{u}}, certKey)
			require.NoError(t, err)
			return finalizeWith(der)(t)
		}, 400, "badCSR", nil},
		{"CSR with a broken signature", func(t *testing.T) hostileReq {
			der := makeCSR(t, certKey, "", readyName, nil)
			der[len(der)-3] ^= 0xff
			return finalizeWith(der)(t)
		}, 400, "badCSR", nil},
		{"CSR in standard base64", signed(a, f.aReady.Finalize, `{"csr":`+js(base64.StdEncoding.EncodeToString(makeCSR(t, certKey, "", readyName, nil)))+`}`), 400, "badCSR", nil},
		{"CSR that is a certificate", finalizeWith(f.aCertDER), 400, "badCSR", nil},
		// What the certificate may hold is decided from the order (ra),
		// never copied from the CSR: issue 14's first hole.
		{"CSR of issue 14 (O, OU, two CNs, UPN, directoryName, codeSigning, CA:TRUE, policies)",
			finalizeWith(ratest.IssueCSR(t, certKey, readyName)), 400, "badCSR", detailHas("organizationName")},
		csrCase("CSR subject with O", "subject with O"),
		csrCase("CSR subject with OU", "subject with OU"),
		csrCase("CSR subject with two common names", "subject with a second, foreign common name"),
		csrCase("CSR subject with CN and O in one RDN", "common name and O in one RDN"),
		csrCase("CSR subject emailAddress", "subject emailAddress"),
		csrCase("CSR SAN otherName (UPN)", "UPN otherName SAN"),
		csrCase("CSR SAN directoryName", "directoryName SAN"),
		csrCase("CSR SAN registeredID", "registeredID SAN"),
		csrCase("CSR with subjectAltName twice", "subjectAltName twice"),
		csrCase("CSR EKU codeSigning", "EKU codeSigning"),
		csrCase("CSR EKU smartcardLogon", "EKU smartcardLogon"),
		csrCase("CSR EKU anyExtendedKeyUsage", "EKU anyExtendedKeyUsage"),
		csrCase("CSR keyUsage keyCertSign", "keyUsage keyCertSign"),
		csrCase("CSR keyUsage nonRepudiation", "keyUsage nonRepudiation"),
		csrCase("CSR basicConstraints CA:TRUE", "basicConstraints CA TRUE"),
		csrCase("CSR certificatePolicies", "certificatePolicies"),
		csrCase("CSR nameConstraints", "nameConstraints"),
		csrCase("CSR subjectKeyIdentifier", "subjectKeyIdentifier"),
		csrCase("CSR CT precertificate poison", "CT precertificate poison"),
		csrCase("CSR OCSP must-staple", "OCSP must-staple (certbot --must-staple, lego --must-staple)"),
		csrCase("CSR challengePassword attribute", "challengePassword attribute"),
		{"CSR with a Fermat-factorable RSA key", weakCSR(ratest.FermatKey(t)), 400, "badCSR", detailHas("Fermat")},
		{"CSR with a ROCA-vulnerable RSA key", weakCSR(ratest.ROCAKey(t)), 400, "badCSR", detailHas("ROCA")},

		// Account keys (RFC 8555 §6.7 badPublicKey: "The JWS was signed by a
		// public key the server does not support").
		{"account key RSA 1024", func(t *testing.T) hostileReq {
			return josePOST(newAcct, signRaw(t, rsa1024, "RS256", obj(jwkHdr("RS256", jwkJSON(t, rsa1024), newAcct)...), []byte(`{}`)))
		}, 400, "badPublicKey", nil},
		{"account key RSA 4200 bits", func(t *testing.T) hostileReq {
			return josePOST(newAcct, signRaw(t, nil, "RS256", obj(jwkHdr("RS256", hugeRSA, newAcct)...), []byte(`{}`)))
		}, 400, "badPublicKey", nil},
		{"account key RSA with exponent 1", func(t *testing.T) hostileReq {
			j := `{"kty":"RSA","n":` + js(b64(rsa2048.N.Bytes())) + `,"e":"AQ"}`
			return josePOST(newAcct, signRaw(t, nil, "RS256", obj(jwkHdr("RS256", j, newAcct)...), []byte(`{}`)))
		}, 400, "badPublicKey", nil},
		{"account key P-224", func(t *testing.T) hostileReq {
			j := `{"kty":"EC","crv":"P-224","x":` + js(b64(p224.X.FillBytes(make([]byte, 28)))) + `,"y":` + js(b64(p224.Y.FillBytes(make([]byte, 28)))) + `}`
			return josePOST(newAcct, signRaw(t, p224, "ES256", obj(jwkHdr("ES256", j, newAcct)...), []byte(`{}`)))
		}, 400, "badPublicKey", nil},
		{"account key Ed448", func(t *testing.T) hostileReq {
			j := `{"kty":"OKP","crv":"Ed448","x":` + js(b64(make([]byte, 57))) + `}`
			return josePOST(newAcct, signRaw(t, nil, "EdDSA", obj(jwkHdr("EdDSA", j, newAcct)...), []byte(`{}`)))
		}, 400, "badPublicKey", nil},
		{"account key X25519 (not a signing key)", func(t *testing.T) hostileReq {
			j := `{"kty":"OKP","crv":"X25519","x":` + js(b64(make([]byte, 32))) + `}`
			return josePOST(newAcct, signRaw(t, nil, "EdDSA", obj(jwkHdr("EdDSA", j, newAcct)...), []byte(`{}`)))
		}, 400, "badPublicKey", nil},
		{"account key that is a private key", func(t *testing.T) hostileReq {
			j, err := (&jose.JSONWebKey{Key: edKey}).MarshalJSON()
			require.NoError(t, err)
			return josePOST(newAcct, signRaw(t, edKey, "EdDSA", obj(jwkHdr("EdDSA", string(j), newAcct)...), []byte(`{}`)))
		}, 400, "badPublicKey", nil},
		{"account key not on its curve", func(t *testing.T) hostileReq {
			j := `{"kty":"EC","crv":"P-256","x":` + js(b64(make([]byte, 32))) + `,"y":` + js(b64(append(make([]byte, 31), 1))) + `}`
			return josePOST(newAcct, signRaw(t, nil, "ES256", obj(jwkHdr("ES256", j, newAcct)...), []byte(`{}`)))
		}, 400, "badPublicKey", nil},

		// Finalize out of order (RFC 8555 §7.4: "orderNotReady").
		{"finalize of a pending order", signed(a, f.aPending.Finalize, `{"csr":`+js(b64(makeCSR(t, certKey, "", []string{"pending.example.com"}, nil)))+`}`), 403, "orderNotReady", nil},
		{"finalize of a valid order again", signed(a, f.aValid.Finalize, `{"csr":`+js(b64(makeCSR(t, certKey, "", []string{"issued.example.com"}, nil)))+`}`), 403, "orderNotReady", nil},

		// Revocation (RFC 8555 §7.6).
		{"revoke another account's certificate", revoke(b, false, revokePayload), 403, "unauthorized", nil},
		{"revoke with an unrelated key", revoke(e.newClient(), true, revokePayload), 403, "unauthorized", nil},
		{"revoke with reason 7", revoke(a, false, `{"certificate":`+js(b64(f.aCertDER))+`,"reason":7}`), 400, "badRevocationReason", nil},
		{"revoke a certificate not issued here", func(t *testing.T) hostileReq {
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), DNSNames: []string{"issued.example.com"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, certKey.Public(), certKey)
			require.NoError(t, err)
			return revoke(a, false, `{"certificate":`+js(b64(der))+`}`)(t)
		}, 404, "malformed", nil},

		// External account binding (RFC 8555 §7.3.4).
		{"EAB key reused by another account", newAccountEAB(func(c *client) map[string]any {
			return eabBinding(t, c, f.eabKID, f.eabMAC, newAcct)
		}), 403, "unauthorized", nil},
		{"EAB with a wrong MAC key", newAccountEAB(func(c *client) map[string]any {
			return eabBinding(t, c, f.eabFreshKID, f.eabMAC, newAcct)
		}), 403, "unauthorized", nil},
		{"EAB inner JWS signed with ES256", newAccountEAB(func(c *client) map[string]any {
			var m map[string]any
			require.NoError(t, json.Unmarshal(signRaw(t, ec, "ES256", obj("alg", js("ES256"), "kid", js(f.eabFreshKID), "url", js(newAcct)), []byte(jwkJSON(t, c.key))), &m))
			return m
		}), 400, "malformed", nil},
		{"EAB over another account key", newAccountEAB(func(c *client) map[string]any {
			return eabBinding(t, e.newClient(), f.eabFreshKID, f.eabFreshMAC, newAcct)
		}), 400, "malformed", nil},
		{"EAB with another url", newAccountEAB(func(c *client) map[string]any {
			return eabBinding(t, c, f.eabFreshKID, f.eabFreshMAC, newOrder)
		}), 400, "malformed", nil},
		{"EAB with a nonce", newAccountEAB(func(c *client) map[string]any {
			jwk := jwkJSON(t, c.key)
			opts := &jose.SignerOptions{NonceSource: nonceFunc(func() (string, error) { return e.nonce(), nil })}
			opts.WithHeader("url", newAcct)
			opts.WithHeader("kid", f.eabFreshKID)
			s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: f.eabFreshMAC}, opts)
			require.NoError(t, err)
			j, err := s.Sign([]byte(jwk))
			require.NoError(t, err)
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(j.FullSerialize()), &m))
			return m
		}), 400, "malformed", nil},
		{"EAB request replayed", func(t *testing.T) hostileReq {
			c := e.newClient()
			mac := eabKey(t, e, "replayed-kid", nil)
			p, _ := json.Marshal(map[string]any{"externalAccountBinding": eabBinding(t, c, "replayed-kid", mac, newAcct)})
			body := c.sign(newAcct, p, true)
			rec := e.do(http.MethodPost, pathNewAccount, "application/jose+json", body)
			require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
			return josePOST(newAcct, body)
		}, 400, "badNonce", nil},

		// A deactivated account (RFC 8555 §7.3.6: "If a server receives a
		// POST or POST-as-GET from a deactivated account, it MUST return an
		// error response with status code 401 (Unauthorized) and type
		// "urn:ietf:params:acme:error:unauthorized"").
		{"deactivated account orders", signed(dead, newOrder, string(orderPayload)), 401, "unauthorized", nil},
		{"deactivated account reads itself", signed(dead, dead.kid, ``), 401, "unauthorized", nil},
		{"deactivated account reactivates", signed(dead, dead.kid, `{"status":"valid"}`), 401, "unauthorized", nil},
		{"deactivated account registers again", func(t *testing.T) hostileReq {
			return josePOST(newAcct, dead.sign(newAcct, []byte(`{}`), true))
		}, 401, "unauthorized", nil},
		{"deactivated account changes its key", keyChangeBy(dead, func() []byte {
			return keyChangeInner(t, ec, "ES256", []string{"alg", js("ES256"), "jwk", ecJWK, "url", js(keyChange)}, dead.kid, jwkJSON(t, dead.key))
		}), 401, "unauthorized", nil},

		// Key change (RFC 8555 §7.3.5).
		{"key change to a key in use", keyChangeBy(a, func() []byte {
			return keyChangeInner(t, b.key, "ES256", []string{"alg", js("ES256"), "jwk", jwkJSON(t, b.key), "url", js(keyChange)}, a.kid, aJWK)
		}), 409, "malformed", func(t *testing.T, rec *httptest.ResponseRecorder) {
			require.Equal(t, b.kid, rec.Header().Get("Location"))
		}},
		{"key change to the same key", keyChangeBy(a, func() []byte {
			return keyChangeInner(t, a.key, "ES256", []string{"alg", js("ES256"), "jwk", aJWK, "url", js(keyChange)}, a.kid, aJWK)
		}), 409, "malformed", nil},
		{"key change inner JWS with a kid", keyChangeBy(a, func() []byte {
			return keyChangeInner(t, ec, "ES256", []string{"alg", js("ES256"), "kid", js(a.kid), "url", js(keyChange)}, a.kid, aJWK)
		}), 400, "malformed", nil},
		{"key change inner url differs", keyChangeBy(a, func() []byte {
			return keyChangeInner(t, ec, "ES256", []string{"alg", js("ES256"), "jwk", ecJWK, "url", js(newOrder)}, a.kid, aJWK)
		}), 400, "malformed", nil},
		{"key change for another account", keyChangeBy(a, func() []byte {
			return keyChangeInner(t, ec, "ES256", []string{"alg", js("ES256"), "jwk", ecJWK, "url", js(keyChange)}, b.kid, jwkJSON(t, b.key))
		}), 400, "malformed", nil},
		{"key change with the wrong old key", keyChangeBy(a, func() []byte {
			return keyChangeInner(t, ec, "ES256", []string{"alg", js("ES256"), "jwk", ecJWK, "url", js(keyChange)}, a.kid, ecJWK)
		}), 403, "unauthorized", nil},
		{"key change to an RSA 1024 key", keyChangeBy(a, func() []byte {
			return keyChangeInner(t, rsa1024, "RS256", []string{"alg", js("RS256"), "jwk", jwkJSON(t, rsa1024), "url", js(keyChange)}, a.kid, aJWK)
		}), 400, "badPublicKey", nil},
		{"key change inner JWS signed with alg none", keyChangeBy(a, func() []byte {
			return keyChangeInner(t, nil, "none", []string{"alg", js("none"), "jwk", ecJWK, "url", js(keyChange)}, a.kid, aJWK)
		}), 400, "badSignatureAlgorithm", nil},
		{"key change inner signature forged", keyChangeBy(a, func() []byte {
			other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			return keyChangeInner(t, other, "ES256", []string{"alg", js("ES256"), "jwk", ecJWK, "url", js(keyChange)}, a.kid, aJWK)
		}), 400, "malformed", nil},
	}
}

// TestHostileRequests runs the suite: status, problem type, and no change
// of state for every case.
func TestHostileRequests(t *testing.T) {
	f := newHostileFixture(t)
	e := f.e
	cases := hostileCases(t, f)
	require.GreaterOrEqual(t, len(cases), 40)
	names := map[string]bool{}
	group := ""
	for _, tc := range cases {
		require.False(t, names[tc.name], "duplicate case name %q", tc.name)
		names[tc.name] = true
		if g, ok := hostileGroups[tc.name]; ok {
			group = g
		}
		t.Run(tc.name, func(t *testing.T) {
			// Read by test/security_report.sh for SECURITY.md.
			t.Logf("hostile-case group=%q status=%d type=%s", group, tc.status, tc.typ)
			r := tc.req(t)
			before, events := stateSnapshot(t, e), stateEvents(e)
			rec := e.do(r.method, r.path, r.ctype, r.body)
			p := requireProblem(t, rec, tc.status, tc.typ)
			require.NotEmpty(t, p.Detail)
			require.Equal(t, before, stateSnapshot(t, e), "state changed")
			require.Equal(t, events, stateEvents(e), "a state change was audited")
			if tc.check != nil {
				tc.check(t, rec)
			}
		})
	}
	for first := range hostileGroups {
		require.True(t, names[first], "hostileGroups names a case that does not exist: %q", first)
	}
	// The certificate under attack is still unrevoked, A still holds its
	// key, and B's resources are as they were.
	acct, err := e.st.GetAccount(t.Context(), strings.TrimPrefix(f.a.kid, testBase+pathAccount))
	require.NoError(t, err)
	tp, _ := thumbprintOf(f.a.key.Public())
	require.Equal(t, tp, acct.KeyThumbprint)
	require.Equal(t, http.StatusOK, f.a.post(f.a.kid, nil).Code)
	require.Equal(t, "ready", decode[orderJSON](t, f.b.post(f.bReadyURL, nil)).Status)
}

// TestHostileCaseFoldedDuplicates: names that differ only in case are one
// identifier (RFC 4343: DNS names compare case-insensitively), so the order
// has one identifier and one authorization, not two.
func TestHostileCaseFoldedDuplicates(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	rec := c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("Case.Example.COM", "case.example.com", "CASE.EXAMPLE.COM")})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	o := decode[orderJSON](t, rec)
	require.Equal(t, dnsIDs("case.example.com"), o.Identifiers)
	require.Len(t, o.Authorizations, 1)
}

// TestStateSnapshotSeesChanges: the comparison the suite relies on does see
// a change of each kind of record it claims to watch.
func TestStateSnapshotSeesChanges(t *testing.T) {
	e := newEnv(t, func(c *configs.Config) { c.Accounts.EAB = "optional" })
	c := e.newClient()
	c.register()
	before, events := stateSnapshot(t, e), stateEvents(e)
	require.Equal(t, http.StatusOK, c.post(c.kid, map[string]any{"contact": []string{"mailto:changed@example.com"}}).Code)
	require.NotEqual(t, before, stateSnapshot(t, e), "an account update")
	require.Greater(t, stateEvents(e), events)
	before = stateSnapshot(t, e)
	rec := c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("snap.example.com")})
	require.Equal(t, http.StatusCreated, rec.Code)
	require.NotEqual(t, before, stateSnapshot(t, e), "a new order")
	before = stateSnapshot(t, e)
	a := decode[authzJSON](t, c.post(decode[orderJSON](t, rec).Authorizations[0], nil))
	require.Equal(t, http.StatusOK, c.post(a.Challenges[0].URL, struct{}{}).Code)
	require.NotEqual(t, before, stateSnapshot(t, e), "a validated authorization")
	before = stateSnapshot(t, e)
	eabKey(t, e, "snap-kid", nil)
	require.NotEqual(t, before, stateSnapshot(t, e), "a new EAB key")
}
