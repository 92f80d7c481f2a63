package proxy

import (
	"crypto"
	"crypto/dsa" //nolint:staticcheck // a DSA CSR is one of the hostile inputs
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	_ "crypto/sha512" // crypto.SHA384 and SHA512 for signRaw
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/store"
)

// The hostile-request suite's helpers (the cases are in hostile_test.go):
// raw JWS signing, state snapshots, and the fixture the cases share.

// signRaw makes a flattened JWS whose protected header is exactly the bytes
// given (duplicate keys and all), signed with key under alg. The signature
// is real when key can make one for alg's hash (ES* with any curve, RS256,
// EdDSA), so the request gets past signature checks to what is under test;
// for other algorithms it is junk.
func signRaw(t testing.TB, key crypto.Signer, alg string, protected, payload []byte) []byte {
	t.Helper()
	p64 := base64.RawURLEncoding.EncodeToString(protected)
	pl64 := base64.RawURLEncoding.EncodeToString(payload)
	input := []byte(p64 + "." + pl64)
	var sig []byte
	digest := func(h crypto.Hash) []byte { d := h.New(); d.Write(input); return d.Sum(nil) }
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		h := map[string]crypto.Hash{"ES256": crypto.SHA256, "ES384": crypto.SHA384, "ES512": crypto.SHA512}[alg]
		if h == 0 {
			h = crypto.SHA256
		}
		r, s, err := ecdsa.Sign(rand.Reader, k, digest(h))
		require.NoError(t, err)
		n := (k.Curve.Params().BitSize + 7) / 8
		sig = make([]byte, 2*n)
		r.FillBytes(sig[:n])
		s.FillBytes(sig[n:])
	case *rsa.PrivateKey:
		var err error
		sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest(crypto.SHA256))
		require.NoError(t, err)
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, input)
	default:
		sig = []byte{0, 0, 0}
	}
	return []byte(`{"protected":"` + p64 + `","payload":"` + pl64 + `","signature":"` + base64.RawURLEncoding.EncodeToString(sig) + `"}`)
}

// obj writes a JSON object from key, raw-value pairs, in order and with any
// duplicates the caller wants (a map cannot express them).
func obj(pairs ...string) []byte {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(pairs); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(pairs[i])
		b.Write(k)
		b.WriteByte(':')
		b.WriteString(pairs[i+1])
	}
	b.WriteByte('}')
	return []byte(b.String())
}

// js is a JSON string literal.
func js(s string) string { b, _ := json.Marshal(s); return string(b) }

// jwkJSON is the public JWK of key.
func jwkJSON(t testing.TB, key any) string {
	t.Helper()
	if s, ok := key.(crypto.Signer); ok {
		key = s.Public()
	}
	b, err := (&jose.JSONWebKey{Key: key}).MarshalJSON()
	require.NoError(t, err)
	return string(b)
}

// stateSnapshot is every record the store holds, as JSON by kind and ID,
// with the jobs and authorizations reachable from the orders.
func stateSnapshot(t *testing.T, e *env) map[string]string {
	t.Helper()
	ctx := t.Context()
	out := map[string]string{}
	put := func(key string, v any, err error) {
		if err != nil {
			out[key] = "error: " + err.Error()
			return
		}
		b, jerr := json.Marshal(v)
		require.NoError(t, jerr)
		out[key] = string(b)
	}
	for _, kind := range []store.Kind{store.KindAccount, store.KindOrder, store.KindCertificate, store.KindEABKey} {
		cursor := ""
		for {
			page, err := e.st.List(ctx, kind, cursor, 100)
			require.NoError(t, err)
			for _, id := range page.IDs {
				switch kind {
				case store.KindAccount:
					v, err := e.st.GetAccount(ctx, id)
					put("account/"+id, v, err)
				case store.KindOrder:
					o, err := e.st.GetOrder(ctx, id)
					put("order/"+id, o, err)
					if err != nil {
						continue
					}
					for _, aid := range o.AuthzIDs {
						a, err := e.st.GetAuthz(ctx, aid)
						put("authz/"+aid, a, err)
					}
					j, err := e.st.GetJob(ctx, id)
					put("job/"+id, j, err)
				case store.KindCertificate:
					v, err := e.st.GetCertificate(ctx, id)
					put("cert/"+id, v, err)
				case store.KindEABKey:
					v, err := e.st.GetEABKey(ctx, id)
					put("eab/"+id, v, err)
				}
			}
			if page.Next == "" {
				break
			}
			cursor = page.Next
		}
	}
	return out
}

// stateEvents counts the audit events that record a change of state.
func stateEvents(e *env) int {
	n := 0
	for _, typ := range []string{audit.AccountCreated, audit.AccountUpdated, audit.AccountDeactivated, audit.AccountKeyRolled,
		audit.OrderCreated, audit.EABBound, audit.CertRevoked} {
		n += len(e.audit.of(typ))
	}
	return n
}

// hostileReq is one request of the suite.
type hostileReq struct {
	method, path, ctype string
	body                []byte
}

// jose builds a signed JOSE POST.
func josePOST(path string, body []byte) hostileReq {
	return hostileReq{http.MethodPost, strings.TrimPrefix(path, testBase), "application/jose+json", body}
}

// dsaCSR is a CSR for names whose key is DSA (which x509 cannot create):
// an ECDSA CSR's request info with the key swapped, re-signed with DSA.
func dsaCSR(t *testing.T, names []string) []byte {
	t.Helper()
	var priv dsa.PrivateKey
	require.NoError(t, dsa.GenerateParameters(&priv.Parameters, rand.Reader, dsa.L1024N160))
	require.NoError(t, dsa.GenerateKey(&priv, rand.Reader))
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := x509.ParseCertificateRequest(makeCSR(t, ec, "", names, nil))
	require.NoError(t, err)
	var info struct {
		Version    int
		Subject    asn1.RawValue
		PublicKey  asn1.RawValue
		Attributes asn1.RawValue
	}
	_, err = asn1.Unmarshal(csr.RawTBSCertificateRequest, &info)
	require.NoError(t, err)
	params, err := asn1.Marshal(struct{ P, Q, G *big.Int }{priv.P, priv.Q, priv.G})
	require.NoError(t, err)
	y, err := asn1.Marshal(priv.Y)
	require.NoError(t, err)
	spki, err := asn1.Marshal(struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}{pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 1}, Parameters: asn1.RawValue{FullBytes: params}},
		asn1.BitString{Bytes: y, BitLength: 8 * len(y)}})
	require.NoError(t, err)
	info.PublicKey = asn1.RawValue{FullBytes: spki}
	tbs, err := asn1.Marshal(info)
	require.NoError(t, err)
	d := sha256.Sum256(tbs)
	r, s, err := dsa.Sign(rand.Reader, &priv, d[:20])
	require.NoError(t, err)
	sig, err := asn1.Marshal(struct{ R, S *big.Int }{r, s})
	require.NoError(t, err)
	der, err := asn1.Marshal(struct {
		TBS       asn1.RawValue
		Algorithm pkix.AlgorithmIdentifier
		Signature asn1.BitString
	}{asn1.RawValue{FullBytes: tbs}, pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 2}},
		asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}})
	require.NoError(t, err)
	parsed, err := x509.ParseCertificateRequest(der)
	require.NoError(t, err, "the DSA CSR must parse, so the key check is what refuses it")
	require.Equal(t, x509.DSA, parsed.PublicKeyAlgorithm)
	return der
}

// keyChangeInner is the inner JWS of a key change (RFC 8555 §7.3.5) as a
// JSON value, signed by newKey with the header fields given.
func keyChangeInner(t *testing.T, newKey crypto.Signer, alg string, hdr []string, account, oldJWK string) []byte {
	t.Helper()
	return signRaw(t, newKey, alg, obj(hdr...), obj("account", js(account), "oldKey", oldJWK))
}

// hostileFixture is the state the suite attacks: accounts A and B with
// orders in several states, a certificate of A's, a deactivated account, an
// account on a P-384 key, and an EAB key already bound.
type hostileFixture struct {
	e                      *env
	a, b, p384, dead       *client
	aReady, aPending       orderJSON
	aReadyURL, aPendingURL string
	aValidURL              string
	aValid                 orderJSON
	aCertDER               []byte
	bReady, bPending       orderJSON
	bReadyURL              string
	bPendingAuthz          authzJSON
	eabKID                 string
	eabMAC                 []byte
	eabFreshKID            string
	eabFreshMAC            []byte
}

func newHostileFixture(t *testing.T) *hostileFixture {
	e := newEnv(t, func(c *configs.Config) {
		c.Accounts.EAB = "optional"
		c.Orders.MaxIdentifiers = 5
		c.Policy.Rules = []configs.Rule{{Name: "no-forbidden", Match: configs.Match{Domains: []string{"*.forbidden.example", "forbidden.example"}},
			Action: "deny", Reason: "forbidden names are not issued"}}
	})
	f := &hostileFixture{e: e}
	f.a, f.b, f.dead = e.newClient(), e.newClient(), e.newClient()
	f.a.register()
	f.b.register()
	f.dead.register()
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	f.p384 = &client{e: e, key: p384, alg: jose.ES384}
	f.p384.register()

	f.aReadyURL, f.aReady = f.a.readyOrder(dnsIDs("ready.example.com")...)
	rec := f.a.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("pending.example.com")})
	require.Equal(t, http.StatusCreated, rec.Code)
	f.aPendingURL, f.aPending = rec.Header().Get("Location"), decode[orderJSON](t, rec)

	f.aValidURL, f.aValid = f.a.readyOrder(dnsIDs("issued.example.com")...)
	certKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rec = f.a.post(f.aValid.Finalize, map[string]string{"csr": b64(makeCSR(t, certKey, "", []string{"issued.example.com"}, nil))})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	f.aValid = decode[orderJSON](t, rec)
	require.Equal(t, "valid", f.aValid.Status)
	rec = f.a.post(f.aValid.Certificate, nil)
	require.Equal(t, http.StatusOK, rec.Code)
	blk, _ := pem.Decode(rec.Body.Bytes())
	require.NotNil(t, blk)
	f.aCertDER = blk.Bytes

	f.bReadyURL, f.bReady = f.b.readyOrder(dnsIDs("b-ready.example.com")...)
	rec = f.b.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("b-pending.example.com")})
	require.Equal(t, http.StatusCreated, rec.Code)
	f.bPending = decode[orderJSON](t, rec)
	f.bPendingAuthz = decode[authzJSON](t, f.b.post(f.bPending.Authorizations[0], nil))

	require.Equal(t, http.StatusOK, f.dead.post(f.dead.kid, map[string]any{"status": "deactivated"}).Code)

	f.eabKID = "bound-kid"
	f.eabMAC = eabKey(t, e, f.eabKID, nil)
	bound := e.newClient()
	rec = bound.post(pathNewAccount, map[string]any{"externalAccountBinding": eabBinding(t, bound, f.eabKID, f.eabMAC, testBase+pathNewAccount)})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	f.eabFreshKID = "fresh-kid"
	f.eabFreshMAC = eabKey(t, e, f.eabFreshKID, nil)
	return f
}

// hostileCase is one hostile request and what the server must answer.
type hostileCase struct {
	name   string
	req    func(t *testing.T) hostileReq
	status int
	typ    string
	// check, when set, runs after the state comparison.
	check func(t *testing.T, rec *httptest.ResponseRecorder)
}
