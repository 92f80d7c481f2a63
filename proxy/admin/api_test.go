package admin

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/policy"
	"github.com/acmebridge/acmebridge/ra"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/store/bolt"
	"github.com/acmebridge/acmebridge/upstream"
	"github.com/acmebridge/acmebridge/upstream/local"
)

type recorder struct {
	mu sync.Mutex
	ev []audit.Event
}

func (r *recorder) Record(e audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ev = append(r.ev, e)
	return nil
}

type apiEnv struct {
	t   *testing.T
	h   http.Handler
	st  store.Store
	ca  *local.CA
	rec *recorder
}

func newAPI(t *testing.T) *apiEnv {
	dir := t.TempDir()
	raw, err := bolt.Open(bolt.Options{Path: filepath.Join(dir, "db")})
	require.NoError(t, err)
	t.Cleanup(func() { raw.Close() })
	st, err := store.Sealed(raw, bytes.Repeat([]byte{1}, 32))
	require.NoError(t, err)
	ca, err := local.New(local.Options{Name: "dev", Dir: filepath.Join(dir, "ca")})
	require.NoError(t, err)
	rec := &recorder{}
	eng := policy.New(configs.Policy{Rules: []configs.Rule{{Name: "corp", Match: configs.Match{Domains: []string{"*.corp.example.com"}}, Upstreams: []string{"dev"}}},
		Default: configs.Rule{Action: "deny", Reason: "not here"}})
	issuers := map[string]upstream.Issuer{"dev": ca}
	core, err := ra.New(ra.Options{Store: st, Issuers: issuers, Audit: rec})
	require.NoError(t, err)
	h := New(Options{Store: st, API: &APIOptions{Token: "s3cret", Store: st, Policy: eng,
		Issuers: issuers, Types: map[string]string{"dev": "local"}, Audit: rec, RA: core}})
	return &apiEnv{t: t, h: h, st: st, ca: ca, rec: rec}
}

func (e *apiEnv) do(method, path string, body any) *httptest.ResponseRecorder {
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set("Authorization", "Bearer s3cret")
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	return w
}

func TestAPIRequiresToken(t *testing.T) {
	e := newAPI(t)
	for _, auth := range []string{"", "Bearer wrong", "s3cret", "Basic czNjcmV0"} {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/eab", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, req)
		require.Equal(t, http.StatusUnauthorized, w.Code, auth)
	}
	// Health and metrics need no token.
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	require.Equal(t, http.StatusOK, w.Code)
}

func TestAPIEAB(t *testing.T) {
	e := newAPI(t)
	w := e.do(http.MethodPost, "/api/v1/eab", map[string]any{"group": "printers", "allow": []string{"*.corp.example.com", "10.0.0.0/8"}, "expires": "720h", "note": "floor 3"})
	require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	var created createdEAB
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &created))
	mac, err := base64.RawURLEncoding.DecodeString(created.HMACKey)
	require.NoError(t, err)
	require.Len(t, mac, 32)
	require.Equal(t, "unused", created.Status)
	stored, err := e.st.GetEABKey(context.Background(), created.ID)
	require.NoError(t, err)
	require.Equal(t, mac, stored.HMACKey)
	require.Equal(t, "printers", stored.Group)

	for _, bad := range []map[string]any{{"expires": "soon"}, {"allow": []string{"a b"}}, {"allow": []string{"10.0.0.0/99"}}, {"bogus": 1}} {
		require.Equal(t, http.StatusBadRequest, e.do(http.MethodPost, "/api/v1/eab", bad).Code, bad)
	}

	w = e.do(http.MethodGet, "/api/v1/eab", nil)
	require.Equal(t, http.StatusOK, w.Code)
	require.NotContains(t, w.Body.String(), created.HMACKey, "the secret is shown once")
	require.NotContains(t, w.Body.String(), "hmac")
	var list listing[eabView]
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &list))
	require.Len(t, list.Items, 1)

	w = e.do(http.MethodPost, "/api/v1/eab/"+created.ID+"/revoke", nil)
	require.Equal(t, http.StatusOK, w.Code)
	require.Contains(t, w.Body.String(), `"revoked"`)
	require.Equal(t, http.StatusNotFound, e.do(http.MethodPost, "/api/v1/eab/nope/revoke", nil).Code)
	require.Len(t, e.rec.ev, 2)
	require.Equal(t, audit.EABCreated, e.rec.ev[0].Event)
	require.Equal(t, "admin", e.rec.ev[1].Actor)
	for _, ev := range e.rec.ev {
		require.NotContains(t, ev.Reason, created.HMACKey)
	}
}

// seed stores an account, an order and a certificate issued by the CA.
func (e *apiEnv) seed(name string, notAfter time.Duration) (*store.Account, *store.Certificate) {
	t := e.t
	ctx := context.Background()
	a := &store.Account{ID: "acct-" + name, Status: store.StatusValid, JWK: []byte("{}"), KeyThumbprint: "tp-" + name, CreatedAt: time.Now()}
	require.NoError(t, e.st.CreateAccount(ctx, a))
	o := &store.Order{ID: "order-" + name, AccountID: a.ID, Status: store.StatusProcessing, Identifiers: []store.Identifier{{Type: "dns", Value: name}},
		Rule: "corp", Upstreams: []string{"dev"}, Expires: time.Now().Add(time.Hour), CreatedAt: time.Now()}
	require.NoError(t, e.st.CreateOrder(ctx, o, nil))
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}}, key)
	csr, _ := x509.ParseCertificateRequest(csrDER)
	res, err := e.ca.Issue(ctx, &upstream.Request{OrderID: o.ID, CSR: csr, DNSNames: []string{name}, NotAfter: time.Now().Add(notAfter)}, nil)
	require.NoError(t, err)
	c := &store.Certificate{ID: "cert-" + name, AccountID: a.ID, OrderID: o.ID, Serial: strings.ToLower(res.Leaf.SerialNumber.Text(16)),
		Names: []string{name}, NotBefore: res.Leaf.NotBefore, NotAfter: res.Leaf.NotAfter, Upstream: "dev", ChainPEM: res.ChainPEM, IssuedAt: time.Now()}
	o.Status, o.CertificateID, o.Upstream = store.StatusValid, c.ID, "dev"
	require.NoError(t, e.st.PutCertificate(ctx, c, o))
	return a, c
}

func TestAPIAccountsOrdersCertificates(t *testing.T) {
	e := newAPI(t)
	a1, c1 := e.seed("a.corp.example.com", 10*24*time.Hour)
	_, c2 := e.seed("b.corp.example.com", 60*24*time.Hour)

	w := e.do(http.MethodGet, "/api/v1/accounts", nil)
	require.Equal(t, http.StatusOK, w.Code)
	var accts listing[accountView]
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &accts))
	require.Len(t, accts.Items, 2)
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, "/api/v1/accounts/"+a1.ID, nil).Code)
	require.Equal(t, http.StatusNotFound, e.do(http.MethodGet, "/api/v1/accounts/none", nil).Code)

	w = e.do(http.MethodGet, "/api/v1/orders?identifier=B.corp.example.com", nil)
	var orders listing[orderView]
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &orders))
	require.Len(t, orders.Items, 1)
	require.Equal(t, "corp", orders.Items[0].Rule)
	require.Equal(t, "dev", orders.Items[0].Upstream)
	w = e.do(http.MethodGet, "/api/v1/orders?account="+a1.ID+"&state=valid", nil)
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &orders))
	require.Len(t, orders.Items, 1)
	require.Equal(t, http.StatusBadRequest, e.do(http.MethodGet, "/api/v1/orders?limit=0", nil).Code)

	var certs listing[certView]
	w = e.do(http.MethodGet, "/api/v1/certificates?expiring=30d", nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &certs))
	require.Len(t, certs.Items, 1)
	require.Equal(t, c1.Serial, certs.Items[0].Serial)
	w = e.do(http.MethodGet, "/api/v1/certificates?expiring=90d", nil)
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &certs))
	require.Len(t, certs.Items, 2)
	require.Equal(t, http.StatusBadRequest, e.do(http.MethodGet, "/api/v1/certificates?expiring=soon", nil).Code)

	// Show by serial; revoke by ID; revoked ones leave the expiring list.
	w = e.do(http.MethodGet, "/api/v1/certificates/"+c2.Serial, nil)
	require.Equal(t, http.StatusOK, w.Code)
	require.Contains(t, w.Body.String(), "BEGIN CERTIFICATE")
	require.Equal(t, http.StatusBadRequest, e.do(http.MethodPost, "/api/v1/certificates/"+c1.ID+"/revoke", map[string]int{"reason": 7}).Code)
	w = e.do(http.MethodPost, "/api/v1/certificates/"+c1.ID+"/revoke", map[string]int{"reason": 4})
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, http.StatusConflict, e.do(http.MethodPost, "/api/v1/certificates/"+c1.ID+"/revoke", nil).Code)
	w = e.do(http.MethodGet, "/api/v1/certificates?expiring=30d", nil)
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &certs))
	require.Empty(t, certs.Items)
	crl, err := e.ca.CRL(context.Background())
	require.NoError(t, err)
	rl, err := x509.ParseRevocationList(crl)
	require.NoError(t, err)
	require.Len(t, rl.RevokedCertificateEntries, 1, "the revocation reached the upstream")

	w = e.do(http.MethodPost, "/api/v1/accounts/"+a1.ID+"/deactivate", nil)
	require.Equal(t, http.StatusOK, w.Code)
	require.Contains(t, w.Body.String(), "deactivated")

	w = e.do(http.MethodGet, "/api/v1/upstreams", nil)
	require.JSONEq(t, `[{"name":"dev","type":"local"}]`, w.Body.String())
	w = e.do(http.MethodGet, "/api/v1/policy/explain?name=x.corp.example.com&name=www.example.org", nil)
	require.Equal(t, http.StatusOK, w.Code)
	var ex []policy.Explanation
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &ex))
	require.Equal(t, "corp", ex[0].Rule)
	require.Equal(t, "deny", ex[1].Action)
	require.Equal(t, http.StatusBadRequest, e.do(http.MethodGet, "/api/v1/policy/explain", nil).Code)
}

func TestAPIRenewNow(t *testing.T) {
	e := newAPI(t)
	_, c1 := e.seed("r1.corp.example.com", 60*24*time.Hour)
	_, c2 := e.seed("r2.corp.example.com", 60*24*time.Hour)
	w := e.do(http.MethodPost, "/api/v1/certificates/"+c1.Serial+"/renew-now", nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	got, err := e.st.GetCertificate(context.Background(), c1.ID)
	require.NoError(t, err)
	require.False(t, got.RenewBy.IsZero())
	w = e.do(http.MethodPost, "/api/v1/upstreams/dev/renew-now", nil)
	require.Equal(t, http.StatusOK, w.Code)
	require.JSONEq(t, `{"marked": 2}`, w.Body.String())
	got, err = e.st.GetCertificate(context.Background(), c2.ID)
	require.NoError(t, err)
	require.False(t, got.RenewBy.IsZero())
	require.Equal(t, http.StatusNotFound, e.do(http.MethodPost, "/api/v1/upstreams/nope/renew-now", nil).Code)
}

// TestHMACKeyNeverLooksLikeAFlag: EAB HMAC keys are pasted after a flag
// (certbot --eab-hmac-key KEY), so their base64url form never starts with
// '-' or '_' (one key in 32 would, drawn uniformly).
func TestHMACKeyNeverLooksLikeAFlag(t *testing.T) {
	for range 2000 {
		k := base64.RawURLEncoding.EncodeToString(newHMACKey())
		require.Len(t, k, 43)
		require.NotContains(t, "-_", k[:1], k)
	}
}

// TestAPIEABUnicodeAllow: an allow pattern written in Unicode is stored as
// the A-labels identifiers arrive in (as policy patterns are), so it
// matches them; one that is no IDNA name is refused. Before, it was stored
// as written and matched no identifier.
func TestAPIEABUnicodeAllow(t *testing.T) {
	e := newAPI(t)
	w := e.do(http.MethodPost, "/api/v1/eab", map[string]any{"allow": []string{"*.bücher.example.com", "drucker-*.corp.example.com", "Straße.example", "10.0.0.0/8"}})
	require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	var created createdEAB
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &created))
	stored, err := e.st.GetEABKey(context.Background(), created.ID)
	require.NoError(t, err)
	require.Equal(t, []string{"*.xn--bcher-kva.example.com", "drucker-*.corp.example.com", "xn--strae-oqa.example", "10.0.0.0/8"}, stored.Allow)
	require.True(t, policy.MatchDomain(stored.Allow[0], "shop.xn--bcher-kva.example.com"))

	for _, bad := range []string{"bü*cher.example.com", "xn--a.example.com"} {
		w := e.do(http.MethodPost, "/api/v1/eab", map[string]any{"allow": []string{bad}})
		require.Equal(t, http.StatusBadRequest, w.Code, bad)
		require.Contains(t, w.Body.String(), "allow pattern", bad)
	}
}
