package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/ra"
	"github.com/acmebridge/acmebridge/store"
)

// twoDirectories is the server: /public/ open sign-up with a rate
// limit, /devices/ EAB required with its own policy; the top level keeps
// the quickstart's settings.
func twoDirectories(c *configs.Config) {
	c.Directories = []configs.Directory{
		{Name: "public", Accounts: configs.Accounts{EAB: "disabled"}, Policy: c.Policy,
			RateLimits:     configs.RateLimits{NewOrdersPerAccount: configs.RateLimit{Count: 3, Period: configs.Duration(time.Hour)}},
			TermsOfService: "https://example.com/public-tos"},
		{Name: "devices", Accounts: configs.Accounts{EAB: "required"},
			Profiles: map[string]string{"printer": "printers"},
			Policy: configs.Policy{
				Rules: []configs.Rule{{Name: "lan", Match: configs.Match{Domains: []string{"*.corp.example.com"}}, Upstreams: []string{"dev"}}},
				// What no rule matches is denied.
				Default: configs.Rule{Name: "default", Action: "deny", Reason: "devices get corp names only"}},
			Validation: configs.DirectoryValidation{AllowPrivateAddresses: true}},
	}
}

// issued finalizes a ready order of c for names and returns the leaf's DER.
func (c *client) issued(names ...string) (orderJSON, []byte) {
	t := c.e.t
	_, o := c.readyOrder(dnsIDs(names...)...)
	certKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return finalized(t, c, o, map[string]string{"csr": b64(makeCSR(t, certKey, "", names, nil))})
}

// finalized finalizes o with the payload csr, requires it valid, and
// returns it with its leaf's DER.
func finalized(t *testing.T, c *client, o orderJSON, csr map[string]string) (orderJSON, []byte) {
	t.Helper()
	rec := c.post(o.Finalize, csr)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	o = decode[orderJSON](t, rec)
	require.Equal(t, "valid", o.Status)
	rec = c.post(o.Certificate, nil)
	require.Equal(t, http.StatusOK, rec.Code)
	blk, _ := pem.Decode(rec.Body.Bytes())
	require.NotNil(t, blk)
	return o, blk.Bytes
}

// registerEAB registers c with the EAB key kid/mac in its directory and
// returns the status.
func (c *client) registerEAB(kid string, mac []byte) int {
	rec := c.post(pathNewAccount, map[string]any{"externalAccountBinding": eabBinding(c.e.t, c, kid, mac, c.url(pathNewAccount))})
	if rec.Code == http.StatusCreated {
		c.kid = rec.Header().Get("Location")
	}
	return rec.Code
}

// TestDirectoriesServed: each directory has its own URLs and meta; the top
// level is unchanged; a directory not configured does not exist.
func TestDirectoriesServed(t *testing.T) {
	e := newEnv(t, twoDirectories)
	top := decode[directory](t, e.do(http.MethodGet, pathDirectory, "", nil))
	require.Equal(t, testBase+pathNewOrder, top.NewOrder)
	require.False(t, top.Meta.ExternalAccountRequired)

	rec := e.do(http.MethodGet, "/devices"+pathDirectory, "", nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Contains(t, rec.Header().Values("Link"), `<`+testBase+`/devices/directory>;rel="index"`)
	dev := decode[directory](t, rec)
	require.Equal(t, testBase+"/devices/acme/new-order", dev.NewOrder)
	require.Equal(t, testBase+"/devices/acme/new-nonce", dev.NewNonce)
	require.Equal(t, testBase+"/devices/acme/renewal-info", dev.RenewalInfo)
	require.True(t, dev.Meta.ExternalAccountRequired)
	require.Equal(t, map[string]string{"printer": "printers"}, dev.Meta.Profiles)
	pub := decode[directory](t, e.do(http.MethodGet, "/public"+pathDirectory, "", nil))
	require.Equal(t, "https://example.com/public-tos", pub.Meta.TermsOfService)

	for _, p := range []string{"/nope/directory", "/nope/acme/new-nonce", "/acme/directory", "/api/acme/new-nonce"} {
		requireProblem(t, e.do(http.MethodGet, p, "", nil), http.StatusNotFound, "malformed")
	}

	// Accounts are made in the directory they are asked of, and their
	// resources carry its URLs.
	c := e.newClientIn("public")
	c.register()
	require.True(t, strings.HasPrefix(c.kid, testBase+"/public/acme/account/"), c.kid)
	o, _ := c.issued("www.example.net")
	require.True(t, strings.HasPrefix(o.Certificate, testBase+"/public/acme/cert/"), o.Certificate)
	require.True(t, strings.HasPrefix(o.Authorizations[0], testBase+"/public/acme/authz/"), o.Authorizations[0])
}

// TestDirectoryIsolation: an account, its orders, authorizations,
// challenges and certificates do not exist through another directory's
// URLs, whether the account's own kid or one rewritten into the other
// directory is used.
func TestDirectoryIsolation(t *testing.T) {
	e := newEnv(t, twoDirectories)
	a := e.newClientIn("public")
	a.register()
	order, certDER := a.issued("shop.example.net")
	pendingRec := a.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("pending.example.net")})
	require.Equal(t, http.StatusCreated, pendingRec.Code)
	pendingURL := pendingRec.Header().Get("Location")
	pending := decode[orderJSON](t, pendingRec)
	authz := decode[authzJSON](t, a.post(pending.Authorizations[0], nil))

	mac := eabKey(t, e, "dev-1", func(k *store.EABKey) { k.Directory = "devices" })
	b := e.newClientIn("devices")
	require.Equal(t, http.StatusCreated, b.registerEAB("dev-1", mac))

	moved := func(u string) string { return strings.Replace(u, "/public/", "/devices/", 1) }
	events := len(e.audit.events)

	// A's kid, used at the devices directory: no such account there.
	intruder := &client{e: e, key: a.key, alg: a.alg, kid: a.kid, dir: "devices"}
	requireProblem(t, intruder.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("x.corp.example.com")}), 400, "accountDoesNotExist")
	// The same account ID under the devices directory's account URL.
	intruder.kid = moved(a.kid)
	requireProblem(t, intruder.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("x.corp.example.com")}), 400, "accountDoesNotExist")
	requireProblem(t, intruder.post(moved(pendingURL), nil), 400, "accountDoesNotExist")
	// The top level does not know it either.
	top := &client{e: e, key: a.key, alg: a.alg, kid: strings.Replace(a.kid, "/public/", "/", 1)}
	requireProblem(t, top.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("x.example.com")}), 400, "accountDoesNotExist")

	// B, a devices account, names A's resources through its URLs.
	requireProblem(t, b.post(moved(pendingURL), nil), 403, "unauthorized")
	requireProblem(t, b.post(moved(pending.Authorizations[0]), nil), 403, "unauthorized")
	requireProblem(t, b.post(moved(authz.Challenges[0].URL), struct{}{}), 403, "unauthorized")
	requireProblem(t, b.post(moved(order.Certificate), nil), 403, "unauthorized")
	// Unauthenticated GETs of another directory's authorization and
	// challenge find nothing; through A's directory they are served.
	requireProblem(t, e.do(http.MethodGet, strings.TrimPrefix(moved(pending.Authorizations[0]), testBase), "", nil), 404, "malformed")
	requireProblem(t, e.do(http.MethodGet, strings.TrimPrefix(moved(authz.Challenges[0].URL), testBase), "", nil), 404, "malformed")
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, strings.TrimPrefix(pending.Authorizations[0], testBase), "", nil).Code)
	// The top level is another directory too.
	requireProblem(t, e.do(http.MethodGet, strings.Replace(strings.TrimPrefix(pending.Authorizations[0], testBase), "/public/", "/", 1), "", nil), 404, "malformed")

	// Revocation by the certificate's key, and by an account holding
	// authorizations for its names, work only in the certificate's
	// directory; ARI answers only there.
	bRevoke := b.post(pathRevoke, map[string]any{"certificate": b64(certDER)})
	requireProblem(t, bRevoke, 404, "malformed")
	leaf, err := x509.ParseCertificate(certDER)
	require.NoError(t, err)
	ari := ariID(leaf)
	requireProblem(t, e.do(http.MethodGet, "/devices"+pathRenewalInfo+"/"+ari, "", nil), 404, "malformed")
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, "/public"+pathRenewalInfo+"/"+ari, "", nil).Code)
	requireProblem(t, e.do(http.MethodGet, pathRenewalInfo+"/"+ari, "", nil), 404, "malformed")
	// Nor can another directory's order name it in "replaces" (RFC 9773
	// §5), even for the same names.
	rec := b.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("shop.example.net"), "replaces": ari})
	requireProblem(t, rec, 400, "malformed")
	require.Contains(t, rec.Body.String(), "replaces names no certificate issued here")

	// Nothing was written by the refused requests but their refusals.
	for _, ev := range e.audit.events[events:] {
		require.NotContains(t, []string{"order.created", "certificate.revoked", "account.created"}, ev.Event, ev)
	}
	// And A's certificate is still good at home.
	require.Equal(t, http.StatusOK, a.post(pathRevoke, map[string]any{"certificate": b64(certDER)}).Code)
}

// TestDirectoryAccountsAndKeys: an account key belongs to one directory; an
// EAB key binds only in the directory it was made for; each directory's
// sign-up mode holds.
func TestDirectoryAccountsAndKeys(t *testing.T) {
	e := newEnv(t, twoDirectories)
	a := e.newClientIn("public")
	a.register()
	// A's key asking the devices directory or the top level.
	for _, dir := range []string{"devices", ""} {
		again := &client{e: e, key: a.key, alg: a.alg, dir: dir}
		requireProblem(t, again.post(pathNewAccount, map[string]any{"onlyReturnExisting": true}), 400, "accountDoesNotExist")
	}
	again := &client{e: e, key: a.key, alg: a.alg}
	requireProblem(t, again.post(pathNewAccount, map[string]any{"termsOfServiceAgreed": true}), 403, "unauthorized")
	// In its own directory it is found (§7.3.1: 200 with its URL).
	home := &client{e: e, key: a.key, alg: a.alg, dir: "public"}
	rec := home.post(pathNewAccount, map[string]any{"onlyReturnExisting": true})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, a.kid, rec.Header().Get("Location"))

	// devices requires EAB; public has it disabled.
	requireProblem(t, e.newClientIn("devices").post(pathNewAccount, map[string]any{}), 401, "externalAccountRequired")
	topMAC := eabKey(t, e, "top-1", nil)
	devMAC := eabKey(t, e, "dev-1", func(k *store.EABKey) { k.Directory = "devices" })
	// A key of the top level does not bind in devices, nor devices' at the
	// top level (whose eab is disabled in the quickstart: make it optional
	// for this check).
	c := e.newClientIn("devices")
	rec = c.post(pathNewAccount, map[string]any{"externalAccountBinding": eabBinding(t, c, "top-1", topMAC, c.url(pathNewAccount))})
	p := requireProblem(t, rec, 403, "unauthorized")
	require.Contains(t, p.Detail, "unknown external account key")
	k, err := e.st.GetEABKey(t.Context(), "top-1")
	require.NoError(t, err)
	require.Empty(t, k.AccountID)
	require.Equal(t, http.StatusCreated, c.registerEAB("dev-1", devMAC))

	e2 := newEnv(t, func(cfg *configs.Config) { twoDirectories(cfg); cfg.Accounts.EAB = "optional" })
	devMAC2 := eabKey(t, e2, "dev-2", func(k *store.EABKey) { k.Directory = "devices" })
	topC := e2.newClient()
	rec = topC.post(pathNewAccount, map[string]any{"externalAccountBinding": eabBinding(t, topC, "dev-2", devMAC2, topC.url(pathNewAccount))})
	requireProblem(t, rec, 403, "unauthorized")
	require.Equal(t, http.StatusCreated, e2.newClientIn("devices").registerEAB("dev-2", devMAC2))
}

// TestDirectoryPolicyAndLimits: each directory routes by its own policy and
// spends its own rate limits.
func TestDirectoryPolicyAndLimits(t *testing.T) {
	e := newEnv(t, twoDirectories)
	mac := eabKey(t, e, "dev-1", func(k *store.EABKey) { k.Directory = "devices" })
	dev := e.newClientIn("devices")
	require.Equal(t, http.StatusCreated, dev.registerEAB("dev-1", mac))
	pub := e.newClientIn("public")
	pub.register()

	// devices: corp names only (its default denies); public: anything
	// the top-level policy allows.
	p := requireProblem(t, dev.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("www.example.net")}), 400, "rejectedIdentifier")
	require.Contains(t, p.Detail, "devices get corp names only")
	require.Equal(t, http.StatusCreated, dev.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("p1.corp.example.com")}).Code)
	// The profile is devices' own.
	requireProblem(t, pub.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("a.example.net"), "profile": "printer"}), 400, "invalidProfile")
	require.Equal(t, http.StatusCreated, dev.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("p2.corp.example.com"), "profile": "printer"}).Code)

	// public: 3 orders an hour per account.
	for i := range 3 {
		require.Equal(t, http.StatusCreated, pub.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("n" + string(rune('a'+i)) + ".example.net")}).Code)
	}
	requireProblem(t, pub.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("over.example.net")}), 429, "rateLimited")
	// devices has no such limit.
	for i := range 4 {
		require.Equal(t, http.StatusCreated, dev.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("q" + string(rune('a'+i)) + ".corp.example.com")}).Code)
	}
	// Orders record their directory.
	page, err := e.st.List(t.Context(), store.KindOrder, "", 100)
	require.NoError(t, err)
	dirs := map[string]int{}
	for _, id := range page.IDs {
		o, err := e.st.GetOrder(t.Context(), id)
		require.NoError(t, err)
		dirs[o.Directory]++
	}
	require.Equal(t, map[string]int{"devices": 6, "public": 3}, dirs)
}

// TestDirectoryNonces: a nonce from one directory is good in another, once.
// Harmless: a nonce only stops replays, and the JWS "url" binds a request
// to one directory's URL; sharing them lets a client use any nonce it has.
func TestDirectoryNonces(t *testing.T) {
	e := newEnv(t, twoDirectories)
	n := e.do(http.MethodHead, "/devices"+pathNewNonce, "", nil).Header().Get("Replay-Nonce")
	require.NotEmpty(t, n)
	c := e.newClientIn("public")
	u := c.url(pathNewAccount)
	opts := &jose.SignerOptions{NonceSource: nonceFunc(func() (string, error) { return n, nil }), EmbedJWK: true}
	opts.WithHeader("url", u)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: c.alg, Key: c.key}, opts)
	require.NoError(t, err)
	jws, err := signer.Sign([]byte(`{"termsOfServiceAgreed":true}`))
	require.NoError(t, err)
	body := []byte(jws.FullSerialize())
	require.Equal(t, http.StatusCreated, e.do(http.MethodPost, "/public"+pathNewAccount, "application/jose+json", body).Code)
	requireProblem(t, e.do(http.MethodPost, "/public"+pathNewAccount, "application/jose+json", body), 400, "badNonce")
	// A request signed for one directory's URL is refused at another's.
	requireProblem(t, e.do(http.MethodPost, "/devices"+pathNewAccount, "application/jose+json", c.sign(u, []byte(`{}`), true)), 403, "unauthorized")
}

// TestDirectoryValidators: each directory validates with the validator its
// allow_private_addresses asks for.
func TestDirectoryValidators(t *testing.T) {
	lan, internet := &fakeVA{fail: map[string]bool{}}, &fakeVA{fail: map[string]bool{}}
	envNewValidator = func(c *configs.Config) ra.Validator {
		if c.Validation.AllowPrivateAddresses {
			return lan
		}
		return internet
	}
	t.Cleanup(func() { envNewValidator = nil })
	e := newEnv(t, twoDirectories)
	mac := eabKey(t, e, "dev-1", func(k *store.EABKey) { k.Directory = "devices" })
	dev := e.newClientIn("devices")
	require.Equal(t, http.StatusCreated, dev.registerEAB("dev-1", mac))
	dev.readyOrder(dnsIDs("p.corp.example.com")...)
	require.Equal(t, 1, lan.calls)
	require.Equal(t, 0, internet.calls)
	pub := e.newClientIn("public")
	pub.register()
	pub.readyOrder(dnsIDs("www.example.net")...)
	require.Equal(t, 1, internet.calls)
	// The top level (the quickstart: private addresses allowed).
	top := e.newClient()
	top.register()
	top.readyOrder(dnsIDs("top.example.net")...)
	require.Equal(t, 2, lan.calls)
}
