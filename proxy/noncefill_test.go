package proxy

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/store"
)

// postFrom sends a signed body to path as the client at ip.
func (e *env) postFrom(ip, path string, jws []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, testBase+path, bytes.NewReader(jws))
	req.Header.Set("Content-Type", "application/jose+json")
	req.RemoteAddr = ip + ":1234"
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

// lookupJWS is a throwaway key's newAccount with onlyReturnExisting.
func lookupJWS(e *env) []byte {
	return e.newClient().sign(testBase+pathNewAccount, []byte(`{"onlyReturnExisting":true}`), true)
}

// TestUnknownKeyRequestsLimitedPerIP (issue 14, hole 4): signed requests
// from keys without an account (any throwaway key can make one, and each
// takes room in the record of used nonces) are limited per client address
// by default: past rate_limits.unknown_key_requests_per_ip, onlyReturnExisting
// lookups and new accounts from one address get 429 rateLimited with
// Retry-After, before their nonce is used; another address, and an
// existing account's key from the same address, are not limited.
func TestUnknownKeyRequestsLimitedPerIP(t *testing.T) {
	e := newEnv(t, nil)
	limit := configs.DefaultUnknownKeyRequestsPerIP
	require.True(t, e.srv.ra.Config().RateLimits.UnknownKeyRequestsPerIP.On(), "on by default")
	known := e.newClient()
	known.register() // from 192.0.2.1: one spend

	const attacker, other = "198.51.100.7", "203.0.113.9"
	// The bucket refills by one every Period/Count while the loop runs.
	start := time.Now()
	answered := int64(0)
	var jws []byte
	var rec *httptest.ResponseRecorder
	for {
		jws = lookupJWS(e)
		rec = e.postFrom(attacker, pathNewAccount, jws)
		if rec.Code == http.StatusTooManyRequests {
			break
		}
		requireProblem(t, rec, http.StatusBadRequest, "accountDoesNotExist")
		answered++
		require.LessOrEqual(t, answered, limit.Count+1+int64(time.Since(start)/(limit.Period.D()/time.Duration(limit.Count))),
			"never limited")
	}
	require.GreaterOrEqual(t, answered, limit.Count)
	requireRateLimited(t, rec, time.Hour, "too many requests signed by keys without an account from "+attacker+" (1000 per 1h0m0s)")
	requireRateLimited(t, e.postFrom(attacker, pathNewAccount, e.newClient().sign(testBase+pathNewAccount,
		[]byte(`{"termsOfServiceAgreed":true}`), true)), time.Hour, "keys without an account")
	require.Equal(t, 1, e.count(store.KindAccount), "no account was created past the limit")

	// The refused request did not use its nonce: the same JWS from another
	// address is answered.
	requireProblem(t, e.postFrom(other, pathNewAccount, jws), http.StatusBadRequest, "accountDoesNotExist")
	// An IPv6 client is limited per /64: another /64 is not.
	requireProblem(t, e.postFrom("2001:db8:1::1", pathNewAccount, lookupJWS(e)), http.StatusBadRequest, "accountDoesNotExist")

	// An existing account's key, from the limited address: answered.
	body, err := json.Marshal(map[string]any{"onlyReturnExisting": true})
	require.NoError(t, err)
	rec = e.postFrom(attacker, pathNewAccount, known.sign(testBase+pathNewAccount, body, true))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	rec = e.postFrom(attacker, strings.TrimPrefix(known.kid, testBase), known.sign(known.kid, []byte{}, false))
	require.Equal(t, http.StatusOK, rec.Code, "kid requests are not counted: %s", rec.Body.String())
}

// TestUnknownKeyLimitConfigured: the limit follows the config, an exempt
// network is not limited, and {count: 0} turns it off.
func TestUnknownKeyLimitConfigured(t *testing.T) {
	e := newEnv(t, func(c *configs.Config) {
		c.RateLimits.UnknownKeyRequestsPerIP = perHour(2)
		c.RateLimits.Exempt.IPs = []string{"10.0.0.0/8"}
	})
	for range 2 {
		requireProblem(t, e.postFrom("198.51.100.7", pathNewAccount, lookupJWS(e)), http.StatusBadRequest, "accountDoesNotExist")
	}
	requireRateLimited(t, e.postFrom("198.51.100.7", pathNewAccount, lookupJWS(e)), 30*time.Minute, "(2 per 1h0m0s)")
	for range 3 {
		requireProblem(t, e.postFrom("10.1.2.3", pathNewAccount, lookupJWS(e)), http.StatusBadRequest, "accountDoesNotExist")
	}

	off := newEnv(t, func(c *configs.Config) { c.RateLimits.UnknownKeyRequestsPerIP = configs.RateLimit{} })
	for range 5 {
		requireProblem(t, off.postFrom("198.51.100.7", pathNewAccount, lookupJWS(off)), http.StatusBadRequest, "accountDoesNotExist")
	}
}

// TestFullNonceRecordLocksNoOneOut (issue 14, hole 4): once the record of
// used nonces is full (here a bolt store bounded to 40 uses, filled by one
// account's requests), a client with a fresh nonce is still served; a
// nonce minted before the flood is refused as badNonce instead. Before,
// every signed request got badNonce until the record's nonces expired.
func TestFullNonceRecordLocksNoOneOut(t *testing.T) {
	maxUsedNonces = 40
	defer func() { maxUsedNonces = 0 }()
	e := newEnv(t, nil)
	victim, flood := e.newClient(), e.newClient()
	victim.register()
	flood.register()
	old := e.nonce()
	served := 0
	for range 100 {
		rec := flood.post(flood.kid, nil)
		if rec.Code != http.StatusOK {
			// Nonces carry their expiry to the second: a record filled
			// within one second refuses the nonces of that second.
			requireProblem(t, rec, http.StatusBadRequest, "badNonce")
			continue
		}
		served++
	}
	require.GreaterOrEqual(t, served, maxUsedNonces/2, "the flood was served until it filled the record")
	// The victim's next nonce is minted after every nonce of the flood.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))

	rec := victim.post(victim.kid, nil)
	require.Equal(t, http.StatusOK, rec.Code, "a fresh nonce is served: %s", rec.Body.String())

	requireProblem(t, e.do(http.MethodPost, strings.TrimPrefix(victim.kid, testBase), "application/jose+json",
		victim.signKIDWithNonce(victim.kid, []byte{}, old)), http.StatusBadRequest, "badNonce")
}

// signKIDWithNonce makes a JWS for url with the account's kid and nonce.
func (c *client) signKIDWithNonce(url string, payload []byte, nonce string) []byte {
	opts := &jose.SignerOptions{NonceSource: nonceFunc(func() (string, error) { return nonce, nil })}
	opts.WithHeader("url", url)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: c.alg, Key: jose.JSONWebKey{Key: c.key, KeyID: c.kid}}, opts)
	require.NoError(c.e.t, err)
	jws, err := signer.Sign(payload)
	require.NoError(c.e.t, err)
	return []byte(jws.FullSerialize())
}
