package admin

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/internal/testutil"
	"github.com/acmebridge/acmebridge/policy"
	"github.com/acmebridge/acmebridge/ra"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/store/bolt"
	"github.com/acmebridge/acmebridge/store/redis"
	"github.com/acmebridge/acmebridge/upstream"
	"github.com/acmebridge/acmebridge/upstream/local"
)

// Tokens of the tenant tests: the global one and one per directory.
const (
	globalTok  = "s3cret"
	devicesTok = "devices-0123456789abcdef0123456789abcdef"
	publicTok  = "public-0123456789abcdef0123456789abcdef0"
)

// tenantConfig serves the top level, /public/ and /devices/, each with a
// policy of its own.
func tenantConfig() *configs.Config {
	c := configs.Default()
	c.Policy = configs.Policy{Rules: []configs.Rule{{Name: "top", Match: configs.Match{Domains: []string{"*.example.com"}}, Upstreams: []string{"dev"}}},
		Default: configs.Rule{Name: "default", Action: "deny"}}
	c.Directories = []configs.Directory{
		{Name: "public", Accounts: configs.Accounts{EAB: "disabled"},
			Policy: configs.Policy{Rules: []configs.Rule{{Name: "web", Match: configs.Match{Domains: []string{"*.example.net"}}, Upstreams: []string{"dev"}}},
				Default: configs.Rule{Name: "default", Action: "deny"}}},
		{Name: "devices", Accounts: configs.Accounts{EAB: "required"},
			Policy: configs.Policy{Rules: []configs.Rule{{Name: "lan", Match: configs.Match{Domains: []string{"*.corp.example.com"}}, Upstreams: []string{"dev"}}},
				Default: configs.Rule{Name: "default", Action: "deny"}}},
	}
	return c
}

// newTenantAPI is the admin API over st with the global token and a token
// scoped to each directory, with a domain core serving tenantConfig.
func newTenantAPI(t *testing.T, st store.Store) *apiEnv {
	ca, err := local.New(local.Options{Name: "dev", Dir: filepath.Join(t.TempDir(), "ca")})
	require.NoError(t, err)
	rec := &recorder{}
	issuers := map[string]upstream.Issuer{"dev": ca}
	cfg := tenantConfig()
	core, err := ra.New(ra.Options{Config: cfg, Store: st, Issuers: issuers, Audit: rec})
	require.NoError(t, err)
	h := New(Options{Store: st, API: &APIOptions{Token: globalTok, Store: st, Policy: policy.New(cfg.Policy),
		Scoped:      NewScopedTokens([]DirectoryToken{{Directory: "devices", Token: devicesTok}, {Directory: "public", Token: publicTok}}),
		Directories: core, Issuers: issuers, Types: map[string]string{"dev": "local"}, Audit: rec, RA: core, Approver: core},
		Dashboard: &DashboardOptions{}})
	return &apiEnv{t: t, h: h, st: st, ca: ca, rec: rec}
}

// boltStore is a fresh sealed bolt store.
func boltStore(t *testing.T) store.Store {
	raw, err := bolt.Open(bolt.Options{Path: filepath.Join(t.TempDir(), "db")})
	require.NoError(t, err)
	t.Cleanup(func() { raw.Close() })
	st, err := store.Sealed(raw, bytes.Repeat([]byte{1}, 32))
	require.NoError(t, err)
	return st
}

// redisStore is a sealed store on a redis-server of its own (skipped
// without redis-server outside CI).
func redisStore(t *testing.T) store.Store {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is not on PATH (apt-get install -y redis-server)")
		}
		t.Skip("redis-server is not on PATH")
	}
	port := testutil.FreePorts(t, 1)[0]
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var raw *redis.Store
	require.Eventually(t, func() bool {
		raw, err = redis.Open(context.Background(), redis.Options{Addrs: []string{"127.0.0.1:" + strconv.Itoa(port)}})
		return err == nil
	}, 10*time.Second, 50*time.Millisecond)
	t.Cleanup(func() { raw.Close() })
	st, err := store.Sealed(raw, bytes.Repeat([]byte{1}, 32))
	require.NoError(t, err)
	return st
}

// as sends a request with a bearer token.
func (e *apiEnv) as(tok, method, path string, body any) *httptest.ResponseRecorder {
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	req := httptest.NewRequest(method, path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	return w
}

// tenant are the records seeded in one directory.
type tenant struct {
	acct *store.Account
	cert *store.Certificate
	key  *store.EABKey
}

// seedIn stores an EAB key, an account bound with it, an order and a
// certificate issued by the CA, all in directory dir.
func (e *apiEnv) seedIn(dir, name string) tenant {
	t := e.t
	ctx := context.Background()
	k := &store.EABKey{ID: "kid-" + name, HMACKey: bytes.Repeat([]byte{2}, 32), Directory: dir, CreatedAt: time.Now()}
	require.NoError(t, e.st.PutEABKey(ctx, k))
	a := &store.Account{ID: "acct-" + name, Status: store.StatusValid, JWK: []byte("{}"), KeyThumbprint: "tp-" + name,
		CreatedAt: time.Now(), Directory: dir}
	require.NoError(t, e.st.CreateAccount(ctx, a))
	o := &store.Order{ID: "order-" + name, AccountID: a.ID, Status: store.StatusProcessing, Identifiers: []store.Identifier{{Type: "dns", Value: name}},
		Rule: "r", Upstreams: []string{"dev"}, Expires: time.Now().Add(time.Hour), CreatedAt: time.Now(), Directory: dir}
	require.NoError(t, e.st.CreateOrder(ctx, o, nil))
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}}, key)
	csr, _ := x509.ParseCertificateRequest(csrDER)
	res, err := e.ca.Issue(ctx, &upstream.Request{OrderID: o.ID, CSR: csr, DNSNames: []string{name}, NotAfter: time.Now().Add(10 * 24 * time.Hour)}, nil)
	require.NoError(t, err)
	c := &store.Certificate{ID: "cert-" + name, AccountID: a.ID, OrderID: o.ID, Serial: strings.ToLower(res.Leaf.SerialNumber.Text(16)),
		Names: []string{name}, NotBefore: res.Leaf.NotBefore, NotAfter: res.Leaf.NotAfter, Upstream: "dev", ChainPEM: res.ChainPEM,
		IssuedAt: time.Now(), Directory: dir}
	o.Status, o.CertificateID, o.Upstream = store.StatusValid, c.ID, "dev"
	require.NoError(t, e.st.PutCertificate(ctx, c, o))
	return tenant{acct: a, cert: c, key: k}
}

// ids lists a collection as tok and returns the IDs (serials for
// certificates) and directories of its items.
func (e *apiEnv) ids(tok, path string) ([]string, []string) {
	w := e.as(tok, http.MethodGet, path, nil)
	require.Equal(e.t, http.StatusOK, w.Code, path+": "+w.Body.String())
	var l listing[map[string]any]
	require.NoError(e.t, json.Unmarshal(w.Body.Bytes(), &l))
	var ids, dirs []string
	for _, it := range l.Items {
		id, _ := it["id"].(string)
		if s, ok := it["serial"].(string); ok {
			id = s
		}
		ids = append(ids, id)
		d, _ := it["directory"].(string)
		dirs = append(dirs, d)
	}
	return ids, dirs
}

// onStores runs a test on bolt and on Redis: the filters and scopes are
// the API's, over each store's listings.
func onStores(t *testing.T, run func(t *testing.T, st store.Store)) {
	t.Run("bolt", func(t *testing.T) { run(t, boltStore(t)) })
	t.Run("redis", func(t *testing.T) { run(t, redisStore(t)) })
}

// TestScopedTokenCannotReachAnotherTenant: a token scoped to /devices/
// lists only its directory's EAB keys, accounts, orders and certificates;
// another directory's are 404 by ID (as an ID that names nothing), in
// every verb (show, revoke, renew-now, deactivate, EAB revoke) and by
// serial, and nothing of theirs changes; naming another directory in a
// query or body is 403; server-wide endpoints are 403; the dashboard does
// not take it.
func TestScopedTokenCannotReachAnotherTenant(t *testing.T) {
	onStores(t, func(t *testing.T, st store.Store) {
		e := newTenantAPI(t, st)
		dev := e.seedIn("devices", "p1.corp.example.com")
		pub := e.seedIn("public", "www.example.net")
		top := e.seedIn("", "www.example.com")
		ctx := context.Background()

		for _, coll := range []string{"/api/v1/eab", "/api/v1/accounts", "/api/v1/orders", "/api/v1/certificates", "/api/v1/certificates?expiring=30d"} {
			ids, dirs := e.ids(devicesTok, coll)
			require.Len(t, ids, 1, coll)
			require.Equal(t, []string{"devices"}, dirs, coll)
			for _, q := range []string{"directory=public", "directory=/", "directory=nope", "directory=DEVICES"} {
				sep := "?"
				if strings.Contains(coll, "?") {
					sep = "&"
				}
				w := e.as(devicesTok, http.MethodGet, coll+sep+q, nil)
				require.Equal(t, http.StatusForbidden, w.Code, coll+sep+q)
				require.NotContains(t, w.Body.String(), "www.example.net")
			}
			ids, _ = e.ids(devicesTok, coll+map[bool]string{true: "&", false: "?"}[strings.Contains(coll, "?")]+"directory=devices")
			require.Len(t, ids, 1, coll)
		}
		// Another tenant's account named as a filter: nothing.
		ids, _ := e.ids(devicesTok, "/api/v1/orders?account="+pub.acct.ID)
		require.Empty(t, ids)
		ids, _ = e.ids(devicesTok, "/api/v1/certificates?account="+pub.acct.ID)
		require.Empty(t, ids)

		// By ID: 404 with the answer of a missing ID, whatever the verb.
		missing := e.as(devicesTok, http.MethodGet, "/api/v1/accounts/acct-none", nil)
		require.Equal(t, http.StatusNotFound, missing.Code)
		for _, other := range []tenant{pub, top} {
			for _, req := range []struct {
				method, path string
				body         any
			}{
				{http.MethodGet, "/api/v1/accounts/" + other.acct.ID, nil},
				{http.MethodPost, "/api/v1/accounts/" + other.acct.ID + "/deactivate", nil},
				{http.MethodGet, "/api/v1/orders/" + other.cert.OrderID, nil},
				{http.MethodGet, "/api/v1/certificates/" + other.cert.ID, nil},
				{http.MethodGet, "/api/v1/certificates/" + other.cert.Serial, nil},
				{http.MethodPost, "/api/v1/certificates/" + other.cert.ID + "/revoke", map[string]int{"reason": 1}},
				{http.MethodPost, "/api/v1/certificates/" + other.cert.Serial + "/revoke", nil},
				{http.MethodPost, "/api/v1/certificates/" + other.cert.ID + "/renew-now", nil},
				{http.MethodPost, "/api/v1/eab/" + other.key.ID + "/revoke", nil},
			} {
				w := e.as(devicesTok, req.method, req.path, req.body)
				require.Equal(t, http.StatusNotFound, w.Code, req.method+" "+req.path+": "+w.Body.String())
				require.NotContains(t, w.Body.String(), other.cert.Serial)
				require.NotContains(t, w.Body.String(), "forbidden")
			}
			a, err := e.st.GetAccount(ctx, other.acct.ID)
			require.NoError(t, err)
			require.Equal(t, store.StatusValid, a.Status)
			c, err := e.st.GetCertificate(ctx, other.cert.ID)
			require.NoError(t, err)
			require.True(t, c.RevokedAt.IsZero(), "another tenant's certificate is not revoked")
			require.True(t, c.RenewBy.IsZero(), "nor marked for renewal")
			k, err := e.st.GetEABKey(ctx, other.key.ID)
			require.NoError(t, err)
			require.True(t, k.RevokedAt.IsZero())
		}
		crl, err := e.ca.CRL(ctx)
		require.NoError(t, err)
		rl, err := x509.ParseRevocationList(crl)
		require.NoError(t, err)
		require.Empty(t, rl.RevokedCertificateEntries, "no revocation reached the upstream")

		// EAB keys: in its own directory only.
		for _, d := range []string{"public", "/", "nope"} {
			w := e.as(devicesTok, http.MethodPost, "/api/v1/eab", map[string]any{"directory": d, "group": "g"})
			require.Equal(t, http.StatusForbidden, w.Code, d)
		}
		w := e.as(devicesTok, http.MethodPost, "/api/v1/eab", map[string]any{"group": "printers"})
		require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
		var created createdEAB
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &created))
		require.Equal(t, "devices", created.Directory)
		k, err := e.st.GetEABKey(ctx, created.ID)
		require.NoError(t, err)
		require.Equal(t, "devices", k.Directory)

		// Server-wide endpoints.
		require.Equal(t, http.StatusForbidden, e.as(devicesTok, http.MethodGet, "/api/v1/upstreams", nil).Code)
		require.Equal(t, http.StatusForbidden, e.as(devicesTok, http.MethodPost, "/api/v1/upstreams/dev/renew-now", nil).Code)
		// A tenant cannot reload the server's configuration (its answer
		// is the same whether or not a reloader is configured).
		require.Equal(t, http.StatusForbidden, e.as(devicesTok, http.MethodPost, "/api/v1/reload", nil).Code)
		c, err := e.st.GetCertificate(ctx, pub.cert.ID)
		require.NoError(t, err)
		require.True(t, c.RenewBy.IsZero())

		// Policy explain: its directory's policy; another's is 403.
		w = e.as(devicesTok, http.MethodGet, "/api/v1/policy/explain?name=x.corp.example.com", nil)
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		var ex []policy.Explanation
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &ex))
		require.Equal(t, "lan", ex[0].Rule)
		require.Equal(t, http.StatusForbidden, e.as(devicesTok, http.MethodGet, "/api/v1/policy/explain?name=www.example.net&directory=public", nil).Code)

		// The dashboard wants the global token: a scoped one gets the
		// login form, and the form refuses it.
		w = e.as(devicesTok, http.MethodGet, "/dashboard", nil)
		require.Equal(t, http.StatusOK, w.Code)
		require.Contains(t, w.Body.String(), `name="token"`)
		require.NotContains(t, w.Body.String(), "www.example.net")
		login := httptest.NewRequest(http.MethodPost, "/dashboard/login", strings.NewReader("token="+devicesTok))
		login.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w = httptest.NewRecorder()
		e.h.ServeHTTP(w, login)
		require.Equal(t, http.StatusForbidden, w.Code)
		require.Contains(t, w.Body.String(), "scoped to a directory")
		require.Empty(t, w.Result().Cookies(), "no session")

		// Its own records: shown and acted on, audited with its directory
		// and the scoped token as actor.
		require.Equal(t, http.StatusOK, e.as(devicesTok, http.MethodGet, "/api/v1/certificates/"+dev.cert.Serial, nil).Code)
		w = e.as(devicesTok, http.MethodPost, "/api/v1/certificates/"+dev.cert.ID+"/renew-now", nil)
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		w = e.as(devicesTok, http.MethodPost, "/api/v1/certificates/"+dev.cert.ID+"/revoke", map[string]int{"reason": 1})
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		w = e.as(devicesTok, http.MethodPost, "/api/v1/accounts/"+dev.acct.ID+"/deactivate", nil)
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		var revoked, renew, deactivated bool
		for _, ev := range e.rec.ev {
			switch {
			case ev.Event == audit.CertRevoked:
				revoked = ev.Directory == "devices" && ev.Serial == dev.cert.Serial
			case ev.Event == audit.AdminAction && ev.Serial == dev.cert.Serial:
				renew = ev.Directory == "devices" && ev.Actor == "admin:devices"
			case ev.Event == audit.AccountDeactivated:
				deactivated = ev.Directory == "devices" && ev.Actor == "admin:devices"
			}
		}
		require.True(t, revoked && renew && deactivated, "%+v", e.rec.ev)
	})
}

// TestGlobalTokenSeesEveryTenant: the global token lists every
// directory's records, filters by directory ("/" the top level), refuses
// a directory that is not configured, creates EAB keys in any configured
// directory and explains with a directory's policy.
func TestGlobalTokenSeesEveryTenant(t *testing.T) {
	onStores(t, func(t *testing.T, st store.Store) {
		e := newTenantAPI(t, st)
		e.seedIn("devices", "p1.corp.example.com")
		e.seedIn("public", "www.example.net")
		e.seedIn("", "www.example.com")
		for _, coll := range []string{"/api/v1/eab", "/api/v1/accounts", "/api/v1/orders", "/api/v1/certificates"} {
			_, dirs := e.ids(globalTok, coll)
			require.ElementsMatch(t, []string{"devices", "public", "/"}, dirs, coll)
			for _, d := range []string{"devices", "public", "/"} {
				_, dirs := e.ids(globalTok, coll+"?directory="+d)
				require.Equal(t, []string{d}, dirs, coll+" "+d)
			}
			require.Equal(t, http.StatusBadRequest, e.as(globalTok, http.MethodGet, coll+"?directory=nope", nil).Code)
		}
		w := e.as(globalTok, http.MethodPost, "/api/v1/eab", map[string]any{"directory": "nope"})
		require.Equal(t, http.StatusBadRequest, w.Code)
		require.Contains(t, w.Body.String(), "no directory nope is configured")
		for d, want := range map[string]string{"devices": "devices", "public": "public", "/": "", "": ""} {
			w := e.as(globalTok, http.MethodPost, "/api/v1/eab", map[string]any{"directory": d})
			require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
			var created createdEAB
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &created))
			k, err := e.st.GetEABKey(context.Background(), created.ID)
			require.NoError(t, err)
			require.Equal(t, want, k.Directory, d)
		}
		for d, rule := range map[string]string{"": "top", "/": "top", "public": "web", "devices": "lan"} {
			w := e.as(globalTok, http.MethodGet, "/api/v1/policy/explain?name=a.corp.example.com&name=www.example.net&directory="+d, nil)
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			var ex []policy.Explanation
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &ex))
			got := ex[0].Rule
			if d == "public" {
				got = ex[1].Rule
			}
			require.Equal(t, rule, got, d)
		}
		require.Equal(t, http.StatusOK, e.as(globalTok, http.MethodGet, "/api/v1/upstreams", nil).Code)
	})
}

// TestScopedTokenMatching: only a whole token opens a scope; a prefix, a
// suffix or another case is 401; a token of no scope is 401 everywhere.
func TestScopedTokenMatching(t *testing.T) {
	e := newTenantAPI(t, boltStore(t))
	for _, tok := range []string{devicesTok[:len(devicesTok)-1], devicesTok + "0", strings.ToUpper(devicesTok), "", globalTok + devicesTok} {
		for _, path := range []string{"/api/v1/eab", "/api/v1/upstreams"} {
			require.Equal(t, http.StatusUnauthorized, e.as(tok, http.MethodGet, path, nil).Code, tok)
		}
	}
}

// TestReadDirectoryTokens: a scoped token file is created when missing;
// one shorter than 32 characters, the global token or another
// directory's token is refused.
func TestReadDirectoryTokens(t *testing.T) {
	dir := t.TempDir()
	f := func(name, content string) string {
		p := filepath.Join(dir, name)
		if content != "" {
			require.NoError(t, os.WriteFile(p, []byte(content+"\n"), 0o600))
		}
		return p
	}
	toks, err := ReadDirectoryTokens("global", []configs.DirectoryToken{{Directory: "devices", TokenFile: f("new", "")}, {Directory: "/", TokenFile: f("top", devicesTok+"x")}})
	require.NoError(t, err)
	require.Len(t, toks[0].Token, 64)
	require.Equal(t, "devices", toks[0].Directory)
	require.Equal(t, "", toks[1].Directory, `"/" is the top level`)
	fi, err := os.Stat(filepath.Join(dir, "new"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	_, err = ReadDirectoryTokens("global", []configs.DirectoryToken{{Directory: "devices", TokenFile: f("short", "abc")}})
	require.ErrorContains(t, err, "shorter than 32")
	_, err = ReadDirectoryTokens(devicesTok, []configs.DirectoryToken{{Directory: "devices", TokenFile: f("same", devicesTok)}})
	require.ErrorContains(t, err, "is the global admin token")
	_, err = ReadDirectoryTokens("global", []configs.DirectoryToken{{Directory: "devices", TokenFile: f("a", publicTok)}, {Directory: "public", TokenFile: f("b", publicTok)}})
	require.ErrorContains(t, err, "is also directory devices's")
}

// TestDashboardDirectorySelector: the dashboard shows every directory or
// the one ?directory= names (its latest orders, a search's history); the
// selector offers the configured directories; a name not configured
// shows every directory with an error.
func TestDashboardDirectorySelector(t *testing.T) {
	e := newTenantAPI(t, boltStore(t))
	dev := e.seedIn("devices", "p1.corp.example.com")
	pub := e.seedIn("public", "www.example.net")
	page := func(q string) string {
		w := e.as(globalTok, http.MethodGet, "/dashboard"+q, nil)
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		return w.Body.String()
	}
	all := page("")
	require.Contains(t, all, `data-order="`+dev.cert.OrderID+`"`)
	require.Contains(t, all, `data-order="`+pub.cert.OrderID+`"`)
	for _, opt := range []string{`<option value="/"`, `<option value="devices"`, `<option value="public"`} {
		require.Contains(t, all, opt)
	}
	one := page("?directory=devices")
	require.Contains(t, one, `data-order="`+dev.cert.OrderID+`"`)
	require.NotContains(t, one, `data-order="`+pub.cert.OrderID+`"`)
	require.Contains(t, one, `<option value="devices" selected>`)
	// A search in one directory finds nothing of another's.
	s := page("?directory=devices&q=www.example.net")
	require.Contains(t, s, `id="search-empty"`)
	s = page("?directory=public&q=www.example.net")
	require.Contains(t, s, `id="search-orders"`)
	bad := page("?directory=nope")
	require.Contains(t, bad, "No directory nope is configured")
	require.Contains(t, bad, `data-order="`+pub.cert.OrderID+`"`)
}

// TestAccountEmailOptOut: POST /api/v1/accounts/{id}/notifications
// {"email": false} opts the account's contacts out of notification mail
// (stored on the account, shown, audited) and true opts back in; a token
// scoped to another directory gets 404 and changes nothing; a body
// without "email" is 400.
func TestAccountEmailOptOut(t *testing.T) {
	onStores(t, func(t *testing.T, st store.Store) {
		e := newTenantAPI(t, st)
		dev := e.seedIn("devices", "p2.corp.example.com")
		path := "/api/v1/accounts/" + dev.acct.ID + "/notifications"
		w := e.as(publicTok, http.MethodPost, path, map[string]bool{"email": false})
		require.Equal(t, http.StatusNotFound, w.Code, w.Body.String())
		a, err := e.st.GetAccount(t.Context(), dev.acct.ID)
		require.NoError(t, err)
		require.False(t, a.EmailOptOut)
		require.Equal(t, http.StatusBadRequest, e.as(devicesTok, http.MethodPost, path, map[string]any{"mail": false}).Code)

		w = e.as(devicesTok, http.MethodPost, path, map[string]bool{"email": false})
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		require.Contains(t, w.Body.String(), `"email_notifications": false`)
		a, err = e.st.GetAccount(t.Context(), dev.acct.ID)
		require.NoError(t, err)
		require.True(t, a.EmailOptOut)
		require.Contains(t, e.as(globalTok, http.MethodGet, "/api/v1/accounts/"+dev.acct.ID, nil).Body.String(), `"email_notifications": false`)

		w = e.as(globalTok, http.MethodPost, path, map[string]bool{"email": true})
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		a, err = e.st.GetAccount(t.Context(), dev.acct.ID)
		require.NoError(t, err)
		require.False(t, a.EmailOptOut)
	})
}
