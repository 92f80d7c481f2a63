package proxy

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/policy"
	"github.com/acmebridge/acmebridge/ra"
	"github.com/acmebridge/acmebridge/ra/ratest"
	"github.com/acmebridge/acmebridge/store"
)

// The fuzz targets of every entry point of the proxy that takes untrusted
// bytes (issue 8, item 1). Their seed corpora are real traffic: lego v5
// driven against the proxy in-process (fuzzseed_test.go writes the files
// under testdata/fuzz), plus requests made by the test helpers. Invariants,
// for every input: no panic, no 5xx, every refusal an RFC 7807 problem
// document of the ACME namespace, and the input caps hold.

// fuzzAccountKeyPEM is a fixed account key, so that the external account
// binding lego signs while the seeds are captured binds the same key
// FuzzEAB's outer request carries.
const fuzzAccountKeyPEM = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgj0XCKhnU10O7gZiL
PKtTVyeFd2gpbKQvxIvuGXYGxgWhRANCAASVXi/uwPZNVWGM3EqOjwpBMK81P8JX
uXuCaSmbzFrDCRKjhFr9QC8TvbYZPZdMfxAC3mBlZqk0ScOn+rqUA0pe
-----END PRIVATE KEY-----
`

// fuzzEABKID and fuzzEABMAC are the EAB key of the fuzz servers.
const fuzzEABKID = "fuzz-kid"

var fuzzEABMAC = []byte("acmebridge-fuzz-eab-hmac-key-32b")

// fuzzName is the name of the orders the seeds and the fuzz servers share.
const fuzzName = "fuzz.example.com"

func fuzzAccountKey(tb testing.TB) *ecdsa.PrivateKey {
	blk, _ := pem.Decode([]byte(fuzzAccountKeyPEM))
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	require.NoError(tb, err)
	return k.(*ecdsa.PrivateKey)
}

// fuzzConfig is the configuration of every fuzz server: EAB optional with
// one key, pre-authorization on, and a deny rule the fuzzer must not get
// around.
func fuzzConfig(c *configs.Config) {
	c.Accounts.EAB = "optional"
	c.Orders.PreAuthorization = true
	c.Orders.ValidAuthzReuse = configs.Duration(time.Hour)
	c.Orders.MaxIdentifiers = 10
	c.Policy.Rules = []configs.Rule{{Name: "no-forbidden", Match: configs.Match{Domains: []string{"*.forbidden.example", "forbidden.example"}},
		Action: "deny", Reason: "forbidden names are not issued"}}
}

// fuzzEnv is newEnv for a fuzz target: built once per fuzzing process, with
// its database on tmpfs when there is one (a write per accepted request
// costs no disk sync) and its files removed with f's.
func fuzzEnv(f *testing.F) *env {
	dir := f.TempDir()
	if d, err := os.MkdirTemp("/dev/shm", "acmebridge-fuzz-"); err == nil {
		dir = d
		f.Cleanup(func() { _ = os.RemoveAll(d) })
	}
	t := &testing.T{} // newEnv wants a *testing.T; the fuzz T of each input is set on e.t
	e := newEnv(t, func(c *configs.Config) {
		fuzzConfig(c)
		c.DataDir = dir
	})
	// newEnv made an empty temporary directory (root/001) before DataDir
	// was replaced; a bare testing.T never runs its cleanups, so remove it.
	_ = os.RemoveAll(filepath.Dir(t.TempDir()))
	require.NoError(f, e.st.PutEABKey(f.Context(), &store.EABKey{ID: fuzzEABKID, HMACKey: fuzzEABMAC}))
	return e
}

// checkResponse asserts the invariants of every answer.
func checkResponse(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	require.Less(t, rec.Code, 500, rec.Body.String())
	if rec.Code >= 400 {
		require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
		var p problemDoc
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p), rec.Body.String())
		require.True(t, strings.HasPrefix(p.Type, errNS), p.Type)
		require.Equal(t, rec.Code, p.Status)
	}
}

// fuzzAcme is the state a fuzz target signs requests against.
type fuzzAcme struct {
	e *env
	// a is the account that signs; u is the one whose updates are fuzzed
	// (it may get deactivated, and is then replaced).
	a, u *client
	// readyURL/ready is an order of a's for fuzzName, ready to finalize.
	readyURL string
	ready    orderJSON
	pending  orderJSON
	// chall and authz are a's pending challenge and another pending
	// authorization of a's.
	chall, authz string
	certURL      string
	certDER      []byte
}

func newFuzzAcme(f *testing.F) *fuzzAcme {
	e := fuzzEnv(f)
	t := e.t
	z := &fuzzAcme{e: e, a: e.newClient(), u: e.newClient()}
	z.a.register()
	z.u.register()
	z.readyURL, z.ready = z.a.readyOrder(dnsIDs(fuzzName)...)
	rec := z.a.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("pending."+fuzzName, "other."+fuzzName)})
	require.Equal(f, http.StatusCreated, rec.Code, rec.Body.String())
	z.pending = decode[orderJSON](t, rec)
	az := decode[authzJSON](t, z.a.post(z.pending.Authorizations[0], nil))
	z.chall, z.authz = az.Challenges[0].URL, z.pending.Authorizations[1]
	// An issued certificate of a's, to download and revoke.
	_, o := z.a.readyOrder(dnsIDs("cert." + fuzzName)...)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rec = z.a.post(o.Finalize, map[string]string{"csr": b64(makeCSR(t, key, "", []string{"cert." + fuzzName}, nil))})
	require.Equal(f, http.StatusOK, rec.Code, rec.Body.String())
	z.certURL = decode[orderJSON](t, rec).Certificate
	rec = z.a.post(z.certURL, nil)
	require.Equal(f, http.StatusOK, rec.Code)
	blk, _ := pem.Decode(rec.Body.Bytes())
	z.certDER = blk.Bytes
	return z
}

// use points the env's helpers at the T of the current input.
func (z *fuzzAcme) use(t *testing.T) { z.e.t = t }

// --- FuzzParseJWS ---------------------------------------------------------

// FuzzParseJWS: the JWS parser alone (RFC 7515 flattened serialization,
// RFC 8555 §6.2): any input is either refused with malformed,
// badSignatureAlgorithm or badPublicKey, or parses to exactly one signature
// with an allowed algorithm, no duplicate member anywhere in the object or
// its protected header.
func FuzzParseJWS(f *testing.F) {
	key := fuzzAccountKey(f)
	f.Add(signRaw(f, key, "ES256", obj("alg", js("ES256"), "jwk", jwkJSON(f, key), "nonce", js("n"), "url", js(testBase+pathNewAccount)), []byte(`{}`)))
	f.Add(signRaw(f, key, "ES256", obj("alg", js("ES256"), "kid", js(testBase+pathAccount+"x"), "nonce", js("n"), "url", js(testBase+pathNewOrder)), []byte(``)))
	f.Add([]byte(`{"protected":"eyJhbGciOiJub25lIn0","payload":"","signature":""}`))
	f.Add([]byte(`{"protected":"e30","payload":"e30","signature":"AA","header":{}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		jws, hdr, err := parseJWS(body)
		if err != nil {
			var ae *acmeerr.Error
			require.ErrorAs(t, err, &ae)
			require.Contains(t, []acmeerr.Kind{acmeerr.Malformed, acmeerr.BadSignatureAlgorithm, acmeerr.BadPublicKey}, ae.Kind, ae.Detail)
			return
		}
		require.Len(t, jws.Signatures, 1)
		require.True(t, algAllowed(hdr.Algorithm), hdr.Algorithm)
		require.NoError(t, checkUniqueKeys(body))
		if hdr.JSONWebKey != nil {
			require.True(t, hdr.JSONWebKey.IsPublic())
		}
	})
}

// --- FuzzSignedHeader -----------------------------------------------------

// fuzzHeaderTargets are the resources FuzzSignedHeader posts to, each with a
// payload that changes nothing once the JWS is accepted (or is refused
// after it), so the target explores the header checks at full speed.
func (z *fuzzAcme) headerTargets(t *testing.T) []struct {
	url     string
	payload []byte
} {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	wrongCSR := `{"csr":` + js(b64(makeCSR(t, key, "", []string{"wrong." + fuzzName}, nil))) + `}`
	return []struct {
		url     string
		payload []byte
	}{
		{testBase + pathNewAccount, []byte(`{"termsOfServiceAgreed":true}`)},
		{testBase + pathNewOrder, []byte(`{"identifiers":[{"type":"dns","value":"` + fuzzName + `"}]}`)},
		{z.a.kid, nil},
		{z.a.kid + "/orders", nil},
		{z.readyURL, nil},
		{z.pending.Authorizations[0], nil},
		{z.chall, []byte(`{}`)},
		{z.ready.Finalize, []byte(wrongCSR)},
		{z.certURL, nil},
		{testBase + pathRevoke, []byte(`{"certificate":` + js(b64(z.certDER)) + `,"reason":7}`)},
		{testBase + pathKeyChange, []byte(`{}`)},
		{testBase + pathNewAuthz, []byte(`{"identifier":{"type":"dns","value":"` + fuzzName + `"}}`)},
	}
}

// headerPlaceholders are replaced in a fuzzed protected header before it is
// signed: "$NONCE" by a fresh nonce, "$KID" by the account URL, "$URL" by
// the request URL, and the string "$JWK" by the account's JWK object.
func (z *fuzzAcme) fillHeader(t *testing.T, h []byte, url string) []byte {
	h = bytes.ReplaceAll(h, []byte(`"$JWK"`), []byte(jwkJSON(t, z.a.key)))
	h = bytes.ReplaceAll(h, []byte("$NONCE"), []byte(z.e.nonce()))
	h = bytes.ReplaceAll(h, []byte("$KID"), []byte(z.a.kid))
	return bytes.ReplaceAll(h, []byte("$URL"), []byte(url))
}

// FuzzSignedHeader fuzzes the JWS protected header of requests that are
// really signed by a registered account's key, so the fuzzer gets past the
// signature to the jwk/kid, url, nonce and account checks (RFC 8555 §6.2 to
// §6.5). A request is accepted only if its header names this request's URL,
// carries a nonce, and identifies the signing account.
func FuzzSignedHeader(f *testing.F) {
	z := newFuzzAcme(f)
	kidHdr := obj("alg", js("ES256"), "kid", js("$KID"), "nonce", js("$NONCE"), "url", js("$URL"))
	for i := range z.headerTargets(z.e.t) {
		f.Add(uint8(i), kidHdr)
	}
	f.Add(uint8(0), obj("alg", js("ES256"), "jwk", js("$JWK"), "nonce", js("$NONCE"), "url", js("$URL")))
	f.Add(uint8(1), obj("alg", js("ES256"), "kid", js("$KID"), "jwk", js("$JWK"), "nonce", js("$NONCE"), "url", js("$URL")))
	f.Add(uint8(1), obj("alg", js("ES256"), "kid", js("$KID"), "nonce", js("$NONCE"), "url", js("$URL?x")))
	f.Add(uint8(2), obj("alg", js("ES384"), "kid", js("$KID"), "nonce", js("$NONCE"), "url", js("$URL")))
	var targets []struct {
		url     string
		payload []byte
	}
	f.Fuzz(func(t *testing.T, which uint8, header []byte) {
		z.use(t)
		if targets == nil {
			targets = z.headerTargets(t)
		}
		tg := targets[int(which)%len(targets)]
		h := z.fillHeader(t, header, tg.url)
		alg := "ES256"
		var probe struct {
			Alg string `json:"alg"`
		}
		if json.Unmarshal(h, &probe) == nil && probe.Alg != "" {
			alg = probe.Alg
		}
		body := signRaw(t, z.a.key, alg, h, tg.payload)
		rec := z.e.do(http.MethodPost, strings.TrimPrefix(tg.url, testBase), "application/jose+json", body)
		checkResponse(t, rec)
		if rec.Code >= 300 {
			return
		}
		// Accepted: the header must be what RFC 8555 §6.2 to §6.5 require.
		var got map[string]any
		require.NoError(t, json.Unmarshal(h, &got), "accepted a header that is not a JSON object: %q", h)
		require.NoError(t, checkUniqueKeys(h), "accepted a header with duplicate names: %q", h)
		require.Equal(t, tg.url, got["url"], "accepted a request for another URL")
		require.NotEmpty(t, got["nonce"])
		require.Equal(t, "ES256", got["alg"])
		_, hasJWK := got["jwk"]
		_, hasKID := got["kid"]
		require.True(t, hasJWK != hasKID, "accepted a header with jwk and kid both or neither")
		if hasKID {
			require.Equal(t, z.a.kid, got["kid"])
		}
	})
}

// --- FuzzPayload ----------------------------------------------------------

// Payload kinds of FuzzPayload (the first argument, modulo their number).
const (
	payNewAccount = iota
	payNewOrder
	payFinalize
	payRevoke
	payKeyChangeJWS   // the inner JWS of a key change, as sent
	payKeyChangeInner // the inner payload, signed by a fresh key here
	payChallenge
	payAuthzUpdate
	payAccountUpdate
	payNewAuthz
	payOrderGet
	payCertGet
	payKinds
)

// payloadPlaceholders are replaced in a fuzzed payload: "$CERT" by the
// base64url DER of an issued certificate, "$ACCOUNT" by the account URL,
// the string "$OLDKEY" by the account's JWK, and "$CSR" by a CSR for the
// ready order's name.
func (z *fuzzAcme) fillPayload(t *testing.T, p []byte, csr string) []byte {
	p = bytes.ReplaceAll(p, []byte(`"$OLDKEY"`), []byte(jwkJSON(t, z.a.key)))
	p = bytes.ReplaceAll(p, []byte("$ACCOUNT"), []byte(z.a.kid))
	p = bytes.ReplaceAll(p, []byte("$CERT"), []byte(b64(z.certDER)))
	return bytes.ReplaceAll(p, []byte("$CSR"), []byte(csr))
}

// FuzzPayload fuzzes the payload of every resource that decodes one,
// signed by the right key with a fresh nonce and the right URL, so the
// fuzzer reaches the payload decoders and the checks behind them: newAccount
// (with EAB), newOrder, finalize (CSR), revokeCert, keyChange (its inner JWS,
// and its inner payload), challenge, authorization and account updates,
// newAuthz, and the POST-as-GET resources. Beyond the common invariants:
// an order is created only for valid, permitted names; a certificate is
// issued only for the order's names; POST-as-GET resources answer only an
// empty payload.
func FuzzPayload(f *testing.F) {
	z := newFuzzAcme(f)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.Add(uint8(payNewAccount), []byte(`{"termsOfServiceAgreed":true,"contact":["mailto:fuzz@example.com"]}`))
	f.Add(uint8(payNewAccount), []byte(`{"onlyReturnExisting":true}`))
	f.Add(uint8(payNewOrder), []byte(`{"identifiers":[{"type":"dns","value":"`+fuzzName+`"},{"type":"ip","value":"192.0.2.1"}],"notAfter":"2999-01-01T00:00:00Z"}`))
	f.Add(uint8(payNewOrder), []byte(`{"identifiers":[{"type":"dns","value":"*.`+fuzzName+`"}],"profile":"x","replaces":"a.b"}`))
	f.Add(uint8(payFinalize), []byte(`{"csr":"$CSR"}`))
	f.Add(uint8(payRevoke), []byte(`{"certificate":"$CERT","reason":4}`))
	f.Add(uint8(payKeyChangeInner), []byte(`{"account":"$ACCOUNT","oldKey":"$OLDKEY"}`))
	f.Add(uint8(payChallenge), []byte(`{}`))
	f.Add(uint8(payAuthzUpdate), []byte(`{"status":"deactivated"}`))
	f.Add(uint8(payAccountUpdate), []byte(`{"contact":["mailto:new@example.com"]}`))
	f.Add(uint8(payAccountUpdate), []byte(`{"status":"deactivated"}`))
	f.Add(uint8(payNewAuthz), []byte(`{"identifier":{"type":"dns","value":"pre.`+fuzzName+`"}}`))
	f.Add(uint8(payOrderGet), []byte(``))
	f.Add(uint8(payCertGet), []byte(`{}`))
	csr := b64(makeCSR(z.e.t, key, "", []string{fuzzName}, nil))
	router := policy.New(z.e.srv.ra.Config().Policy)

	f.Fuzz(func(t *testing.T, which uint8, payload []byte) {
		z.use(t)
		kind := int(which) % payKinds
		// Empty, not nil: go-jose leaves out a nil payload altogether.
		p := append([]byte{}, z.fillPayload(t, payload, csr)...)
		signer := z.a
		var url string
		useJWK := false
		var newKey *ecdsa.PrivateKey
		switch kind {
		case payNewAccount:
			signer, url, useJWK = z.e.newClient(), testBase+pathNewAccount, true
			p = bytes.ReplaceAll(p, []byte(`"$JWK"`), []byte(jwkJSON(t, signer.key)))
		case payNewOrder:
			url = testBase + pathNewOrder
		case payFinalize:
			url = z.ready.Finalize
		case payRevoke:
			url = testBase + pathRevoke
		case payKeyChangeJWS:
			url = testBase + pathKeyChange
		case payKeyChangeInner:
			url = testBase + pathKeyChange
			newKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			p = signRaw(t, newKey, "ES256", obj("alg", js("ES256"), "jwk", jwkJSON(t, newKey), "url", js(url)), p)
		case payChallenge:
			url = z.chall
		case payAuthzUpdate:
			url = z.authz
		case payAccountUpdate:
			signer, url = z.u, z.u.kid
		case payNewAuthz:
			url = testBase + pathNewAuthz
		case payOrderGet:
			url = z.readyURL
		case payCertGet:
			url = z.certURL
		}
		rec := z.e.do(http.MethodPost, strings.TrimPrefix(url, testBase), "application/jose+json", signer.sign(url, p, useJWK))
		checkResponse(t, rec)
		if rec.Code >= 300 {
			return
		}
		switch kind {
		case payNewOrder:
			o := decode[orderJSON](t, rec)
			ids, err := ra.NormalizeIdentifiers(o.Identifiers, 10)
			require.NoError(t, err, "an order was created for identifiers that are not valid: %v", o.Identifiers)
			require.Equal(t, o.Identifiers, ids, "identifiers stored unnormalised")
			_, err = router.Route(policy.Request{Identifiers: toPolicyIDs(o.Identifiers)})
			require.NoError(t, err, "an order was created for names the policy denies: %v", o.Identifiers)
		case payFinalize:
			o := decode[orderJSON](t, rec)
			if o.Certificate != "" {
				cr := z.a.post(o.Certificate, nil)
				require.Equal(t, http.StatusOK, cr.Code)
				blk, _ := pem.Decode(cr.Body.Bytes())
				leaf, err := x509.ParseCertificate(blk.Bytes)
				require.NoError(t, err)
				require.Equal(t, []string{fuzzName}, leaf.DNSNames, "a certificate was issued for other names than the order's")
				require.Empty(t, leaf.IPAddresses)
			}
			// The order is used up: make another one ready.
			z.readyURL, z.ready = z.a.readyOrder(dnsIDs(fuzzName)...)
		case payKeyChangeInner:
			// The account now has the new key.
			z.a.key = newKey
		case payAccountUpdate:
			if decode[accountJSON](t, rec).Status != store.StatusValid {
				z.u = z.e.newClient()
				z.u.register()
			}
		case payOrderGet, payCertGet:
			require.Empty(t, payload, "a POST-as-GET resource accepted a payload")
		}
	})
}

func toPolicyIDs(ids []store.Identifier) []policy.Identifier {
	return append([]policy.Identifier(nil), ids...)
}

// --- FuzzCSR --------------------------------------------------------------

// FuzzCSR fuzzes the CSR checks of finalize (RFC 8555 §7.4, docs/security.md):
// a CSR is accepted only if it parses, its signature verifies, its key is an
// allowed type and size and not the account key, its names (SANs and
// common name, compared case-insensitively) are exactly the order's, its
// subject holds at most a common name and it requests no extension beyond
// the allow-list (ra.DecideContent).
func FuzzCSR(f *testing.F) {
	acct := fuzzAccountKey(f)
	ids := []store.Identifier{{Type: "dns", Value: fuzzName}, {Type: "dns", Value: "*." + fuzzName}, {Type: "ip", Value: "192.0.2.1"}}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	names := []string{fuzzName, "*." + fuzzName}
	ip := []net.IP{net.ParseIP("192.0.2.1")}
	t0 := &testing.T{} // makeCSR wants a *testing.T
	f.Add(makeCSR(t0, key, fuzzName, names, ip))
	f.Add(makeCSR(t0, key, "", []string{"FUZZ.example.com", "*." + fuzzName}, ip))
	f.Add(makeCSR(t0, acct, "", names, ip))
	f.Add(makeCSR(t0, key, "", names, nil))
	f.Add(makeCSR(t0, key, "other.example.com", names, ip))
	for _, c := range ratest.Clients(t0, key, names, ip) {
		f.Add(c.DER)
	}
	for _, c := range ratest.Hostile(t0, key, names) {
		f.Add(c.DER)
	}
	dec := &policy.Decision{Rule: "fuzz", KeyTypes: []string{"rsa", "ecdsa", "ed25519"}, MinRSABits: 2048}
	want := []string{"dns:*." + fuzzName, "dns:" + fuzzName, "ip:192.0.2.1"}
	allowed := map[string]bool{"2.5.29.17": true, "2.5.29.15": true, "2.5.29.37": true, "2.5.29.19": true}
	f.Fuzz(func(t *testing.T, der []byte) {
		content, err := ra.CheckCSR(der, ids, acct.Public())
		if err != nil {
			require.Equal(t, acmeerr.BadCSR, acmeerr.KindOf(err), err.Error())
			return
		}
		csr := content.CSR
		require.NoError(t, csr.CheckSignature())
		require.NoError(t, ra.CheckKey(csr.PublicKey))
		_ = ra.KeyAllowed(csr.PublicKey, dec)
		spki, _ := x509.MarshalPKIXPublicKey(acct.Public())
		require.NotEqual(t, spki, csr.RawSubjectPublicKeyInfo, "the account key was accepted as the certificate key")
		require.Empty(t, csr.EmailAddresses)
		require.Empty(t, csr.URIs)
		for _, a := range csr.Subject.Names {
			require.Equal(t, "2.5.4.3", a.Type.String(), "a subject attribute other than CN was accepted")
		}
		for _, e := range csr.Extensions {
			require.True(t, allowed[e.Id.String()], "extension %s was accepted", e.Id)
		}
		var got []string
		for _, n := range csr.DNSNames {
			got = append(got, "dns:"+strings.ToLower(n))
		}
		for _, a := range csr.IPAddresses {
			got = append(got, "ip:"+a.String())
		}
		if cn := csr.Subject.CommonName; cn != "" {
			if a := net.ParseIP(cn); a != nil {
				got = append(got, "ip:"+a.String())
			} else {
				got = append(got, "dns:"+strings.ToLower(cn))
			}
		}
		sort.Strings(got)
		require.Equal(t, want, slices.Compact(got), "CSR names accepted that are not the order's")
		require.Equal(t, []string{fuzzName, "*." + fuzzName}, content.DNSNames, "the content is the order's names")
	})
}

// --- FuzzEAB --------------------------------------------------------------

// FuzzEAB fuzzes the externalAccountBinding of newAccount (RFC 8555 §7.3.4):
// a binding is accepted only if it is a JWS MACed with the key of its kid
// (the one key the server knows), over the outer account key, for the outer
// URL, without a nonce; anything else is malformed or unauthorized.
func FuzzEAB(f *testing.F) {
	e := fuzzEnv(f)
	acct := fuzzAccountKey(f)
	outer := &verified{URL: testBase + pathNewAccount, JWK: &jose.JSONWebKey{Key: acct.Public()}}
	c := &client{e: e, key: acct, alg: jose.ES256}
	good, err := json.Marshal(eabBinding(&testing.T{}, c, fuzzEABKID, fuzzEABMAC, outer.URL))
	require.NoError(f, err)
	f.Add(good)
	f.Add([]byte(`null`))
	f.Add([]byte(`{"protected":"e30","payload":"","signature":""}`))
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	bad, _ := json.Marshal(eabBinding(&testing.T{}, &client{e: e, key: other, alg: jose.ES256}, fuzzEABKID, fuzzEABMAC, outer.URL))
	f.Add(bad)
	f.Fuzz(func(t *testing.T, binding []byte) {
		parsed, err := parseEAB(json.RawMessage(binding), outer)
		var key *store.EABKey
		if err == nil {
			key, err = e.srv.ra.BindableKey(t.Context(), parsed)
		}
		if err != nil {
			require.Contains(t, []acmeerr.Kind{acmeerr.Malformed, acmeerr.Unauthorized}, acmeerr.KindOf(err), err.Error())
			return
		}
		if key == nil {
			// Optional EAB and no binding.
			require.Contains(t, []string{"", "null"}, strings.TrimSpace(string(binding)))
			return
		}
		require.Equal(t, fuzzEABKID, key.ID)
		// The binding verifies with the key's MAC and names the outer key.
		jws, err := jose.ParseSignedJSON(string(binding), eabAlgs)
		require.NoError(t, err)
		payload, err := jws.Verify(fuzzEABMAC)
		require.NoError(t, err)
		var inner jose.JSONWebKey
		require.NoError(t, inner.UnmarshalJSON(payload))
		a, _ := inner.Thumbprint(crypto.SHA256)
		b, _ := outer.JWK.Thumbprint(crypto.SHA256)
		require.Equal(t, b, a)
	})
}
