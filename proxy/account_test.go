package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/store"
)

func TestNewAccount(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	// onlyReturnExisting before registration → accountDoesNotExist.
	requireProblem(t, c.post(pathNewAccount, map[string]any{"onlyReturnExisting": true}), 400, "accountDoesNotExist")

	rec := c.post(pathNewAccount, map[string]any{"contact": []string{"mailto:a@example.com"}, "termsOfServiceAgreed": true})
	require.Equal(t, http.StatusCreated, rec.Code)
	loc := rec.Header().Get("Location")
	a := decode[accountJSON](t, rec)
	require.Equal(t, "valid", a.Status)
	require.Equal(t, loc+"/orders", a.Orders)

	// Same key again → 200 with the same Location (§7.3.1).
	rec = c.post(pathNewAccount, map[string]any{})
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, loc, rec.Header().Get("Location"))
	rec = c.post(pathNewAccount, map[string]any{"onlyReturnExisting": true})
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, loc, rec.Header().Get("Location"))

	// POST-as-GET of the account; another account may not read it.
	c.kid = loc
	require.Equal(t, http.StatusOK, c.post(loc, nil).Code)
	o := e.newClient()
	o.register()
	requireProblem(t, o.post(loc, nil), 403, "unauthorized")
}

func TestContacts(t *testing.T) {
	e := newEnv(t, func(c *configs.Config) { c.Accounts.RequireContact = true })
	for _, tc := range []struct {
		contact []string
		typ     string
	}{
		{nil, "invalidContact"},
		{[]string{"tel:+1555"}, "unsupportedContact"},
		{[]string{"mailto:not-an-address"}, "invalidContact"},
		{[]string{"mailto:a@example.com?subject=x"}, "invalidContact"},
		{[]string{"mailto:a@example.com,b@example.com"}, "invalidContact"},
		{[]string{"mailto:a@localhost"}, "invalidContact"},
		{strings.Split(strings.Repeat("mailto:a@example.com ", 11), " ")[:11], "invalidContact"},
	} {
		c := e.newClient()
		requireProblem(t, c.post(pathNewAccount, map[string]any{"contact": tc.contact}), 400, tc.typ)
	}
	c := e.newClient()
	c.register()
	// Update contacts, with the same checks.
	requireProblem(t, c.post(c.kid, map[string]any{"contact": []string{"http://x"}}), 400, "unsupportedContact")
	rec := c.post(c.kid, map[string]any{"contact": []string{"mailto:new@example.com"}})
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, []string{"mailto:new@example.com"}, decode[accountJSON](t, rec).Contact)
}

func TestTermsRequired(t *testing.T) {
	e := newEnv(t, func(c *configs.Config) {
		c.Server.TermsOfService = "https://example.com/tos"
		c.Accounts.RequireTermsAgreement = true
	})
	c := e.newClient()
	requireProblem(t, c.post(pathNewAccount, map[string]any{}), 400, "malformed")
	c.register()
}

func TestAccountDeactivation(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	requireProblem(t, c.post(c.kid, map[string]any{"status": "valid"}), 400, "malformed")
	rec := c.post(c.kid, map[string]any{"status": "deactivated"})
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "deactivated", decode[accountJSON](t, rec).Status)
	// §7.3.6: no further requests with that key (401 unauthorized).
	requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("a.example.com")}), 401, "unauthorized")
	requireProblem(t, c.post(pathNewAccount, map[string]any{}), 401, "unauthorized")
}

func TestKeyChange(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	newKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	oldJWK, _ := (&jose.JSONWebKey{Key: c.key.Public()}).MarshalJSON()

	inner := func(key *ecdsa.PrivateKey, account string, old json.RawMessage, url string) map[string]any {
		opts := &jose.SignerOptions{EmbedJWK: true}
		opts.WithHeader("url", url)
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
		require.NoError(t, err)
		payload, _ := json.Marshal(map[string]any{"account": account, "oldKey": old})
		jws, err := signer.Sign(payload)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(jws.FullSerialize()), &m))
		return m
	}
	url := testBase + pathKeyChange
	// Wrong account, wrong old key, wrong inner url.
	requireProblem(t, c.post(pathKeyChange, inner(newKey, testBase+pathAccount+"other", oldJWK, url)), 400, "malformed")
	otherJWK, _ := (&jose.JSONWebKey{Key: newKey.Public()}).MarshalJSON()
	requireProblem(t, c.post(pathKeyChange, inner(newKey, c.kid, otherJWK, url)), 403, "unauthorized")
	requireProblem(t, c.post(pathKeyChange, inner(newKey, c.kid, oldJWK, testBase+pathNewOrder)), 400, "malformed")
	// The new key belongs to another account → 409 with its Location.
	o := e.newClient()
	o.register()
	ok, _ := o.key.(*ecdsa.PrivateKey)
	rec := c.post(pathKeyChange, inner(ok, c.kid, oldJWK, url))
	requireProblem(t, rec, 409, "malformed")
	require.Equal(t, o.kid, rec.Header().Get("Location"))

	rec = c.post(pathKeyChange, inner(newKey, c.kid, oldJWK, url))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	// The old key no longer works; the new one does.
	requireProblem(t, c.post(c.kid, nil), 400, "malformed")
	c.key = newKey
	require.Equal(t, http.StatusOK, c.post(c.kid, nil).Code)
}

// eabKey stores an EAB key and returns its MAC key.
func eabKey(t *testing.T, e *env, id string, mutate func(*store.EABKey)) []byte {
	mac := make([]byte, 32)
	_, _ = rand.Read(mac)
	k := &store.EABKey{ID: id, HMACKey: mac, CreatedAt: time.Now()}
	if mutate != nil {
		mutate(k)
	}
	require.NoError(t, e.st.PutEABKey(t.Context(), k))
	return mac
}

// eabBinding builds the externalAccountBinding object (§7.3.4).
func eabBinding(t *testing.T, c *client, kid string, mac []byte, url string) map[string]any {
	jwk, err := (&jose.JSONWebKey{Key: c.key.Public()}).MarshalJSON()
	require.NoError(t, err)
	opts := &jose.SignerOptions{}
	opts.WithHeader("url", url)
	opts.WithHeader("kid", kid)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: mac}, opts)
	require.NoError(t, err)
	jws, err := signer.Sign(jwk)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(jws.FullSerialize()), &m))
	return m
}

func TestExternalAccountBinding(t *testing.T) {
	e := newEnv(t, func(c *configs.Config) { c.Accounts.EAB = "required" })
	url := testBase + pathNewAccount
	mac := eabKey(t, e, "kid-1", nil)

	c := e.newClient()
	requireProblem(t, c.post(pathNewAccount, map[string]any{}), 401, "externalAccountRequired")
	requireProblem(t, c.post(pathNewAccount, map[string]any{"externalAccountBinding": eabBinding(t, c, "nope", mac, url)}), 403, "unauthorized")
	wrong := append([]byte(nil), mac...)
	wrong[0] ^= 1
	requireProblem(t, c.post(pathNewAccount, map[string]any{"externalAccountBinding": eabBinding(t, c, "kid-1", wrong, url)}), 403, "unauthorized")
	requireProblem(t, c.post(pathNewAccount, map[string]any{"externalAccountBinding": eabBinding(t, c, "kid-1", mac, testBase+pathNewOrder)}), 400, "malformed")
	// Inner payload is another key.
	other := e.newClient()
	requireProblem(t, c.post(pathNewAccount, map[string]any{"externalAccountBinding": eabBinding(t, other, "kid-1", mac, url)}), 400, "malformed")

	rec := c.post(pathNewAccount, map[string]any{"externalAccountBinding": eabBinding(t, c, "kid-1", mac, url)})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	k, err := e.st.GetEABKey(t.Context(), "kid-1")
	require.NoError(t, err)
	require.NotEmpty(t, k.AccountID)
	require.True(t, hmac.Equal(mac, k.HMACKey))

	// The key binds once.
	requireProblem(t, other.post(pathNewAccount, map[string]any{"externalAccountBinding": eabBinding(t, other, "kid-1", mac, url)}), 403, "unauthorized")

	// Revoked and expired keys.
	mac2 := eabKey(t, e, "kid-revoked", func(k *store.EABKey) { k.RevokedAt = time.Now() })
	requireProblem(t, other.post(pathNewAccount, map[string]any{"externalAccountBinding": eabBinding(t, other, "kid-revoked", mac2, url)}), 403, "unauthorized")
	mac3 := eabKey(t, e, "kid-expired", func(k *store.EABKey) { k.ExpiresAt = time.Now().Add(-time.Hour) })
	requireProblem(t, other.post(pathNewAccount, map[string]any{"externalAccountBinding": eabBinding(t, other, "kid-expired", mac3, url)}), 403, "unauthorized")
}

// TestEABBindsOnceUnderRace: eight accounts race to bind one key; one wins.
func TestEABBindsOnceUnderRace(t *testing.T) {
	e := newEnv(t, func(c *configs.Config) { c.Accounts.EAB = "optional" })
	mac := eabKey(t, e, "race", nil)
	var wg sync.WaitGroup
	codes := make(chan int, 8)
	for i := 0; i < 8; i++ {
		c := e.newClient()
		body := map[string]any{"externalAccountBinding": eabBinding(t, c, "race", mac, testBase+pathNewAccount)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- c.post(pathNewAccount, body).Code
		}()
	}
	wg.Wait()
	close(codes)
	created := 0
	for code := range codes {
		if code == http.StatusCreated {
			created++
		} else {
			require.Equal(t, http.StatusForbidden, code)
		}
	}
	require.Equal(t, 1, created)
}
