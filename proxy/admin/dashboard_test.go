package admin

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/store/bolt"
	"github.com/acmebridge/acmebridge/upstream"
)

const dashToken = "0123456789abcdef-dashboard-token"

// dashEnv is a dashboard over a real bolt store and a real audit log file.
type dashEnv struct {
	h     http.Handler
	st    *bolt.Store
	now   time.Time
	clock *atomic.Pointer[time.Time]
	audit string
	rec   *recorder
	fails map[string]int
	reg   *prometheus.Registry
}

func newDash(t testing.TB, dir string) *dashEnv {
	t.Helper()
	st, err := bolt.Open(bolt.Options{Path: filepath.Join(dir, "acmebridge.db")})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 3, 10, 12, 30, 0, 0, time.UTC)
	e := &dashEnv{st: st, now: now, clock: &atomic.Pointer[time.Time]{}, audit: filepath.Join(dir, "audit.log"), rec: &recorder{},
		fails: map[string]int{}}
	e.clock.Store(&now)
	reg := prometheus.NewRegistry()
	e.reg = reg
	e.h = New(Options{Store: st, Registry: reg, API: &APIOptions{Token: dashToken, Store: st,
		Issuers: map[string]upstream.Issuer{"internal": nil, "public": nil}, Types: map[string]string{"internal": "local", "public": "acme"},
		Audit: e.rec, Clock: func() time.Time { return *e.clock.Load() }},
		Dashboard: &DashboardOptions{AuditFile: e.audit, Health: func(name string) (int, time.Time) {
			if name == "public" && e.fails[name] > 0 {
				return e.fails[name], now.Add(time.Minute)
			}
			return 0, time.Time{}
		}}})
	return e
}

// get requests path with the bearer token (or the cookie when set).
func (e *dashEnv) get(t testing.TB, path string, cookie *http.Cookie) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if cookie != nil {
		req.AddCookie(cookie)
	} else {
		req.Header.Set("Authorization", "Bearer "+dashToken)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	return w
}

func (e *dashEnv) post(path string, form url.Values, hdr map[string]string, cookie *http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	return w
}

func sessionOf(t *testing.T, w *httptest.ResponseRecorder) *http.Cookie {
	t.Helper()
	for _, c := range w.Result().Cookies() {
		if c.Name == sessionCookie {
			return c
		}
	}
	t.Fatalf("no %s cookie in %v", sessionCookie, w.Header().Values("Set-Cookie"))
	return nil
}

func requireSecureHeaders(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	csp := w.Header().Get("Content-Security-Policy")
	require.Contains(t, csp, "default-src 'none'")
	require.Contains(t, csp, "form-action 'self'")
	require.Contains(t, csp, "frame-ancestors 'none'")
	require.NotContains(t, csp, "script-src", "the dashboard runs no script")
	require.Equal(t, "nosniff", w.Header().Get("X-Content-Type-Options"))
	require.Equal(t, "no-store", w.Header().Get("Cache-Control"))
	require.Equal(t, "text/html; charset=utf-8", w.Header().Get("Content-Type"))
	// No external asset: nothing is loaded from anywhere, not even this
	// listener (inline CSS and SVG only, a data: icon).
	body := w.Body.String()
	require.NotRegexp(t, `(?i)<script|<link[^>]+rel="stylesheet"|<img |\bsrc="|url\(`, body)
	require.NotRegexp(t, `(?i)https?://`, strings.ReplaceAll(body, `xmlns="http://www.w3.org/2000/svg"`, ""))
}

func TestDashboardLoginSession(t *testing.T) {
	e := newDash(t, t.TempDir())

	// No session: the login form.
	req := httptest.NewRequest(http.MethodGet, "/dashboard", nil)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	require.Equal(t, http.StatusOK, w.Code)
	require.Contains(t, w.Body.String(), `id="login-form"`)
	require.NotContains(t, w.Body.String(), `id="expiry"`)
	requireSecureHeaders(t, w)

	// A wrong token is refused and audited.
	w = e.post("/dashboard/login", url.Values{"token": {"wrong"}}, nil, nil)
	require.Equal(t, http.StatusUnauthorized, w.Code)
	require.Contains(t, w.Body.String(), "Wrong token.")
	require.Empty(t, w.Result().Cookies())
	require.Equal(t, "dashboard login refused: wrong token", e.rec.ev[len(e.rec.ev)-1].Reason)

	// A form posted from another site is refused before the token is
	// looked at.
	for _, hdr := range []map[string]string{{"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}} {
		w = e.post("/dashboard/login", url.Values{"token": {dashToken}}, hdr, nil)
		require.Equal(t, http.StatusForbidden, w.Code, "%v", hdr)
		require.Empty(t, w.Result().Cookies(), "%v", hdr)
	}

	// The right token, from this origin: a session cookie, never the token.
	w = e.post("/dashboard/login", url.Values{"token": {dashToken}}, map[string]string{"Origin": "http://example.com", "Sec-Fetch-Site": "same-origin"}, nil)
	require.Equal(t, http.StatusSeeOther, w.Code)
	require.Equal(t, "/dashboard", w.Header().Get("Location"))
	c := sessionOf(t, w)
	require.True(t, c.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, c.SameSite)
	require.Equal(t, "/dashboard", c.Path)
	require.Equal(t, int(sessionTTL.Seconds()), c.MaxAge)
	require.NotContains(t, c.Value, dashToken)
	require.NotContains(t, w.Header().Get("Set-Cookie"), dashToken)
	require.Equal(t, "dashboard login", e.rec.ev[len(e.rec.ev)-1].Reason)

	w = e.get(t, "/dashboard", c)
	require.Equal(t, http.StatusOK, w.Code)
	require.Contains(t, w.Body.String(), `id="expiry"`)
	requireSecureHeaders(t, w)

	// A forged or altered cookie is no session.
	for _, v := range []string{"x", c.Value + "x", strings.Replace(c.Value, ".", ".9", 1), "a.b.c"} {
		w = e.get(t, "/dashboard", &http.Cookie{Name: sessionCookie, Value: v})
		require.Contains(t, w.Body.String(), `id="login-form"`, "cookie %q", v)
	}
	// Another process (another key) does not accept it either.
	other := newDash(t, t.TempDir())
	w = other.get(t, "/dashboard", c)
	require.Contains(t, w.Body.String(), `id="login-form"`)

	// The session ends after sessionTTL.
	later := e.now.Add(sessionTTL + time.Second)
	e.clock.Store(&later)
	w = e.get(t, "/dashboard", c)
	require.Contains(t, w.Body.String(), `id="login-form"`)
	e.clock.Store(&e.now)

	// Logout clears the cookie and ends the session on the server too.
	w = e.post("/dashboard/logout", nil, map[string]string{"Origin": "http://example.com"}, c)
	require.Equal(t, http.StatusSeeOther, w.Code)
	require.Equal(t, -1, sessionOf(t, w).MaxAge)
	w = e.get(t, "/dashboard", c)
	require.Contains(t, w.Body.String(), `id="login-form"`)

	// The API's bearer token works too (scripts, curl).
	w = e.get(t, "/dashboard", nil)
	require.Contains(t, w.Body.String(), `id="expiry"`)
	req = httptest.NewRequest(http.MethodGet, "/dashboard", nil)
	req.Header.Set("Authorization", "Bearer wrong")
	w = httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	require.Contains(t, w.Body.String(), `id="login-form"`)
}

func TestDashboardEmptyStore(t *testing.T) {
	e := newDash(t, t.TempDir())
	w := e.get(t, "/dashboard", nil)
	require.Equal(t, http.StatusOK, w.Code)
	body := w.Body.String()
	require.NotContains(t, body, `class="error"`)
	for _, id := range []string{"expiry-empty", "issuance-empty", "orders-empty", "refusals-empty"} {
		require.Contains(t, body, `id="`+id+`"`)
	}
	require.Contains(t, body, "No certificates yet expire in the next 90 days.")
	require.Contains(t, body, "No orders yet.")
	// Both configured upstreams are listed, healthy.
	require.Regexp(t, `data-upstream="internal"[\s\S]*?st-healthy`, body)
	require.Regexp(t, `data-upstream="public"[\s\S]*?st-healthy`, body)

	// A search for nothing known says so.
	w = e.get(t, "/dashboard?q=nothing.example.com", nil)
	require.Equal(t, http.StatusOK, w.Code)
	require.Contains(t, w.Body.String(), `id="search-empty"`)
}

func TestDashboardNoAuditFile(t *testing.T) {
	e := newDash(t, t.TempDir())
	h := New(Options{Store: e.st, Registry: prometheus.NewRegistry(), API: &APIOptions{Token: dashToken, Store: e.st},
		Dashboard: &DashboardOptions{AuditFile: "-"}})
	req := httptest.NewRequest(http.MethodGet, "/dashboard", nil)
	req.Header.Set("Authorization", "Bearer "+dashToken)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	require.Equal(t, http.StatusOK, w.Code)
	require.Contains(t, w.Body.String(), "The audit log is not written to a file")
	require.Contains(t, w.Body.String(), "No upstream is configured.")
}

func TestDashboardStoreDown(t *testing.T) {
	e := newDash(t, t.TempDir())
	seed(t, e.st, e.now, 20)
	writeAudit(t, e.audit, e.now)
	require.NoError(t, e.st.Close())
	w := e.get(t, "/dashboard?q=host-1.example.com", nil)
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	body := w.Body.String()
	require.Contains(t, body, `class="error"`)
	require.Contains(t, body, "The store is unavailable")
	// The rest of the page is still there: the sections that do not need
	// the store, and the others say why they are empty.
	require.Contains(t, body, `id="upstreams"`)
	require.Contains(t, body, "Not available while the store is unavailable.")
	require.Contains(t, body, "legacy names are retired", "refusals come from the audit log")
	requireSecureHeaders(t, w)
}

// TestDashboardStoreFailover: a failover of Redis, and writes that failed
// for want of replicas, are on the page (from the driver's counters, as
// cmd registers them); a store without them shows no note.
func TestDashboardStoreFailover(t *testing.T) {
	e := newDash(t, t.TempDir())
	body := e.get(t, "/dashboard", nil).Body.String()
	require.NotContains(t, body, `id="store-note"`)
	changes := prometheus.NewCounter(prometheus.CounterOpts{Name: "acmebridge_store_master_changes_total"})
	unreplicated := prometheus.NewCounter(prometheus.CounterOpts{Name: "acmebridge_store_writes_not_replicated_total"})
	e.reg.MustRegister(changes, unreplicated)
	changes.Add(2)
	unreplicated.Add(3)
	body = e.get(t, "/dashboard", nil).Body.String()
	require.Contains(t, body, "the Redis master changed 2 time(s) (a failover or a restart); 3 write(s) failed because too few replicas acknowledged them")
}

// hosts names the certificates seed makes.
func host(i int) string { return fmt.Sprintf("host-%d.example.com", i) }

// seed stores n certificates (and their orders and accounts) as the worker
// would: certificate i expires in i%100 days (plus some hours), issued by
// internal or public in turn, within the last 24 hours.
func seed(t testing.TB, st store.Store, now time.Time, n int) {
	t.Helper()
	ctx := context.Background()
	for a := range 7 {
		err := st.CreateAccount(ctx, &store.Account{ID: fmt.Sprintf("acct-%d", a), Status: store.StatusValid, KeyThumbprint: fmt.Sprintf("tp-%d", a),
			Contact: []string{fmt.Sprintf("mailto:ops%d@example.com", a)}, CreatedAt: now.Add(-48 * time.Hour)})
		require.NoError(t, err)
	}
	chain := bytes.Repeat([]byte("MIIB"), 500) // the size of a real chain
	var wg sync.WaitGroup
	var failed atomic.Value
	next := make(chan int)
	workers := 64 // bolt commits concurrent writes in batches
	if n < 1000 {
		workers = 1 // the listings in the order of i
	}
	for range workers {
		wg.Go(func() {
			for i := range next {
				up := []string{"internal", "public"}[i%2]
				issued := now.Add(-time.Duration(i%24)*time.Hour - time.Minute)
				o := &store.Order{ID: fmt.Sprintf("order-%05d", i), AccountID: fmt.Sprintf("acct-%d", i%7), Status: store.StatusProcessing,
					Identifiers: []store.Identifier{{Type: "dns", Value: host(i)}}, Rule: "rule-" + up, Upstreams: []string{up},
					CreatedAt: issued.Add(-time.Duration(1+i%5) * time.Second), Expires: now.Add(24 * time.Hour)}
				if err := st.CreateOrder(ctx, o, nil); err != nil {
					failed.Store(err)
					continue
				}
				c := &store.Certificate{ID: fmt.Sprintf("cert-%05d", i), AccountID: o.AccountID, OrderID: o.ID, Serial: fmt.Sprintf("%08x", i+1),
					Names: []string{host(i)}, NotBefore: issued, NotAfter: now.Add(time.Duration(i%100)*24*time.Hour + 3*time.Hour),
					Upstream: up, ChainPEM: chain, IssuedAt: issued}
				o.Status, o.CertificateID, o.Upstream = store.StatusValid, c.ID, up
				if err := st.PutCertificate(ctx, c, o); err != nil {
					failed.Store(err)
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatalf("seed: %v", err)
	}
}

// writeAudit writes an audit log with issuance, a refusal, a failure and a
// revocation.
func writeAudit(t testing.TB, path string, now time.Time) {
	t.Helper()
	l, err := audit.Open(path)
	require.NoError(t, err)
	defer l.Close()
	rec := func(e audit.Event) { require.NoError(t, l.Record(e)) }
	// An old event, outside the window.
	rec(audit.Event{Time: now.Add(-72 * time.Hour), Event: audit.OrderRefused, Account: "acct-1", Names: []string{"old.example.com"}, Reason: "rejectedIdentifier: rule ancient: gone"})
	for i := range 20 {
		up := []string{"internal", "public"}[i%2]
		issued := now.Add(-time.Duration(i%24)*time.Hour - time.Minute)
		rec(audit.Event{Time: issued.Add(-2 * time.Second), Event: audit.OrderCreated, Account: fmt.Sprintf("acct-%d", i%7), Order: fmt.Sprintf("order-%05d", i),
			Names: []string{host(i)}, Rule: "rule-" + up, Upstreams: []string{up}})
		rec(audit.Event{Time: issued, Event: audit.CertIssued, Account: fmt.Sprintf("acct-%d", i%7), Order: fmt.Sprintf("order-%05d", i),
			Names: []string{host(i)}, Upstream: up, Serial: fmt.Sprintf("%08x", i+1)})
	}
	rec(audit.Event{Time: now.Add(-30 * time.Minute), Event: audit.OrderRefused, Account: "acct-2", Names: []string{"old.legacy.example.com"},
		Reason: "rejectedIdentifier: rule no-legacy: legacy names are retired, see ticket OPS-42"})
	rec(audit.Event{Time: now.Add(-20 * time.Minute), Event: audit.FinalizeRefused, Account: "acct-2", Order: "order-00003", Names: []string{host(3)},
		Reason: "badCSR: CSR names do not match the order"})
	rec(audit.Event{Time: now.Add(-10 * time.Minute), Event: audit.OrderInvalid, Account: "acct-3", Order: "order-x", Names: []string{"down.example.com"},
		Rule: "rule-public", Upstream: "public", Reason: "serverInternal: upstream public is unavailable"})
	rec(audit.Event{Time: now.Add(-5 * time.Minute), Event: audit.CertRevoked, Account: "acct-1", Order: "order-00001", Names: []string{host(1)},
		Upstream: "public", Serial: "00000002", Reason: "1"})
}

func TestDashboardContent(t *testing.T) {
	e := newDash(t, t.TempDir())
	seed(t, e.st, e.now, 20)
	writeAudit(t, e.audit, e.now)
	// Certificate 1 was revoked: it leaves the expiry timeline.
	c, err := e.st.GetCertificate(context.Background(), "cert-00001")
	require.NoError(t, err)
	c.RevokedAt, c.RevocationReason = e.now.Add(-5*time.Minute), 1
	require.NoError(t, e.st.UpdateCertificate(context.Background(), c))
	e.fails["public"] = 3

	w := e.get(t, "/dashboard", nil)
	require.Equal(t, http.StatusOK, w.Code)
	body := w.Body.String()
	require.NotContains(t, body, `class="error"`)

	// Expiry: certificates 0..19 expire in 0..19 days (+3h), one revoked.
	require.Regexp(t, `id="expiring-7"><b>6</b>`, body)   // 0..6 but 1
	require.Regexp(t, `id="expiring-30"><b>19</b>`, body) // 0..19 but 1
	require.Regexp(t, `id="expiring-90"><b>19</b>`, body)
	chart := regexp.MustCompile(`(?s)<svg id="expiry-chart".*?</svg>`).FindString(body)
	require.NotEmpty(t, chart)
	require.Equal(t, 19, strings.Count(chart, `<rect class="bar"`), "one bar per certificate day")
	require.Contains(t, chart, `<g class="legend-item" data-series="internal">`)
	require.Contains(t, chart, `<g class="legend-item" data-series="public">`)
	require.Contains(t, chart, ">Mar 10<", "the axis is labelled with dates")
	soon := regexp.MustCompile(`(?s)<table id="expiring-soon">.*?</table>`).FindString(body)
	require.Contains(t, soon, host(0))
	require.NotContains(t, soon, ">"+host(1)+"<", "revoked")

	// Upstreams: the breaker's state and counts from the audit log.
	require.Regexp(t, `data-upstream="public"[\s\S]*?st-skipped[\s\S]*?3 failures in a row`, body)
	require.Regexp(t, `data-upstream="internal"[\s\S]*?st-healthy[\s\S]*?<td class="num">10</td>`, body)
	require.Contains(t, body, "upstream public is unavailable")
	failures := regexp.MustCompile(`(?s)<table id="failures">.*?</table>`).FindString(body)
	require.Regexp(t, `down\.example\.com[\s\S]*?<td>rule-public</td><td>public</td>`, failures, "a failed order shows the upstream that failed it")

	// Issuance per hour: 20 certificates in the window.
	require.Contains(t, body, `<b id="issued-24h">20</b>`)
	issuance := regexp.MustCompile(`(?s)<svg id="issuance-chart".*?</svg>`).FindString(body)
	require.Equal(t, 20, strings.Count(issuance, `<rect class="bar"`))
	require.Contains(t, body, `<svg id="latency-chart"`)

	// Latest orders, newest first, with the policy decision.
	orders := regexp.MustCompile(`(?s)<table id="orders-table">.*?</table>`).FindString(body)
	require.Equal(t, 20, strings.Count(orders, `<tr class="order"`))
	require.Less(t, strings.Index(orders, "order-00019"), strings.Index(orders, "order-00000"))
	require.Contains(t, orders, "rule-public")

	// Refusals by reason and rule, the old one outside the window.
	require.Contains(t, body, `<b id="refused-24h">2</b>`)
	require.Contains(t, body, "legacy names are retired, see ticket OPS-42")
	require.Regexp(t, `(?s)<svg id="refusals-by-type".*rejectedIdentifier.*badCSR`, body)
	require.Regexp(t, `(?s)<svg id="refusals-by-rule".*no-legacy`, body)
	require.NotContains(t, body, "old.example.com")

	// The history of a name: its order, certificate and revocation.
	w = e.get(t, "/dashboard?q="+strings.ToUpper(host(1)), nil)
	require.Equal(t, http.StatusOK, w.Code)
	body = w.Body.String()
	res := regexp.MustCompile(`(?s)<section class="wide" id="search-results">.*?</section>`).FindString(body)
	require.Contains(t, res, `data-order="order-00001"`)
	require.Contains(t, res, `data-serial="00000002"`)
	require.Contains(t, res, "revoked")
	require.Contains(t, res, "keyCompromise")
	require.Contains(t, res, `<b id="search-revocations">1</b>`)
	require.Contains(t, res, `data-event="certificate.revoked"`)
	require.Contains(t, res, `data-event="certificate.issued"`)

	// The history of an account.
	w = e.get(t, "/dashboard?q=acct-2", nil)
	res = regexp.MustCompile(`(?s)<section class="wide" id="search-results">.*?</section>`).FindString(w.Body.String())
	require.Contains(t, res, "account <code>acct-2</code>")
	require.Contains(t, res, "mailto:ops2@example.com")
	for _, i := range []int{2, 9, 16} {
		require.Contains(t, res, fmt.Sprintf(`data-order="order-%05d"`, i))
	}
	require.Contains(t, res, "legacy names are retired")

	// Text from the store and the log is escaped.
	w = e.get(t, "/dashboard?q="+url.QueryEscape(`<b>x</b>"`), nil)
	require.NotContains(t, w.Body.String(), "<b>x</b>")
}

func TestDashboardLargeStore(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 10,000 certificates")
	}
	e := newDash(t, t.TempDir())
	seed(t, e.st, e.now, 10000)
	w := e.get(t, "/dashboard", nil)
	require.Equal(t, http.StatusOK, w.Code)
	body := w.Body.String()
	require.NotContains(t, body, `class="error"`)
	// 100 certificates expire each day; 0..29 days plus 3h: 30 days.
	require.Regexp(t, `id="expiring-30"><b>3000</b>`, body)
	require.Regexp(t, `id="expiring-90"><b>9100</b>`, body) // today and the next 90 days
	soon := regexp.MustCompile(`(?s)<table id="expiring-soon">.*?</table>`).FindString(body)
	require.Equal(t, soonRows, strings.Count(soon, "<tr>")-1, "a top-N table")
	require.Contains(t, body, "and 2950 more")
	// The orders were stored concurrently: the newest are the last listed.
	var listed []string
	for cursor := ""; ; {
		page, err := e.st.List(context.Background(), store.KindOrder, cursor, 1000)
		require.NoError(t, err)
		listed = append(listed, page.IDs...)
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	require.Len(t, listed, 10000)
	rows := regexp.MustCompile(`<tr class="order" data-order="([^"]+)"`)
	shown := func(body string) []string {
		var ids []string
		for _, m := range rows.FindAllStringSubmatch(body, -1) {
			ids = append(ids, m[1])
		}
		return ids
	}
	newest := func(from, to int) []string {
		var ids []string
		for i := from; i < to; i++ {
			ids = append(ids, listed[len(listed)-1-i])
		}
		return ids
	}
	require.Equal(t, newest(0, ordersPerPage), shown(body))
	require.Contains(t, body, "page 1</span>")
	require.Contains(t, body, `id="orders-older"`)
	require.NotContains(t, body, `id="orders-newer"`)

	// Page 3 of the orders.
	w = e.get(t, "/dashboard?page=2", nil)
	require.Equal(t, newest(2*ordersPerPage, 3*ordersPerPage), shown(w.Body.String()))
	require.Contains(t, w.Body.String(), "page 3</span>")
	w = e.get(t, "/dashboard?page=999", nil)
	require.Contains(t, w.Body.String(), "page 40</span>", "pages stop at the 1,000 newest orders")
	require.NotContains(t, w.Body.String(), `id="orders-older"`)

	// A search reads the newest orders of the store (and those the audit
	// log names: here there is no log), and says so.
	recent := listed[len(listed)-1]
	w = e.get(t, "/dashboard?q="+host(mustAtoi(t, strings.TrimPrefix(recent, "order-"))), nil)
	require.Contains(t, w.Body.String(), `data-order="`+recent+`"`)
	require.Contains(t, w.Body.String(), "The store&#39;s newest 1000 orders were searched")
	old := listed[0]
	w = e.get(t, "/dashboard?q="+host(mustAtoi(t, strings.TrimPrefix(old, "order-"))), nil)
	require.Contains(t, w.Body.String(), `id="search-empty"`)
}

// BenchmarkDashboard10k renders the dashboard over a bolt store holding
// 10,000 certificates (the expiry cache is bypassed: each iteration is a
// fresh dashboard).
func BenchmarkDashboard10k(b *testing.B) {
	e := newDash(b, b.TempDir())
	seed(b, e.st, e.now, 10000)
	writeAudit(b, e.audit, e.now)
	a := &api{APIOptions: APIOptions{Token: dashToken, Store: e.st, Issuers: map[string]upstream.Issuer{"internal": nil, "public": nil},
		Clock: func() time.Time { return e.now }}}
	b.ResetTimer()
	for b.Loop() {
		d := newDashboard(a, DashboardOptions{AuditFile: e.audit}, prometheus.NewRegistry(), discardLogger())
		req := httptest.NewRequest(http.MethodGet, "/dashboard?q="+host(42), nil)
		req.Header.Set("Authorization", "Bearer "+dashToken)
		w := httptest.NewRecorder()
		d.page(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}

func TestAuditWindow(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "audit.log")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	l := audit.New(&buf)
	for i := range 2000 {
		require.NoError(t, l.Record(audit.Event{Time: t0.Add(time.Duration(i) * time.Minute), Event: audit.OrderCreated,
			Order: fmt.Sprintf("o%d", i), Reason: strings.Repeat("x", i%300)}))
	}
	buf.WriteString(`{"time":"2026-01-02T`) // a torn last line
	require.NoError(t, os.WriteFile(p, buf.Bytes(), 0o600))

	first := func(w *auditWindow) string {
		var out []string
		_, err := audit.Read(w.Reader(), audit.Filter{}, func(e audit.Event) { out = append(out, e.Order) })
		require.NoError(t, err)
		if len(out) == 0 {
			return ""
		}
		return out[0]
	}
	for _, c := range []struct {
		since time.Time
		want  string
	}{
		{time.Time{}, "o0"},
		{t0.Add(-time.Hour), "o0"},
		{t0.Add(auditSkew), "o0"},
		{t0.Add(1000*time.Minute + auditSkew), "o1000"},
		{t0.Add(1999*time.Minute + auditSkew), "o1999"},
		{t0.Add(5000 * time.Minute), ""},
	} {
		w, err := openAuditWindow(p, c.since, 1<<30)
		require.NoError(t, err)
		require.Equal(t, c.want, first(w), "since %s", c.since)
		require.False(t, w.Truncated)
		w.Close()
	}
	// A cap on the bytes keeps the newest whole lines.
	w, err := openAuditWindow(p, time.Time{}, 10000)
	require.NoError(t, err)
	defer w.Close()
	require.True(t, w.Truncated)
	got := first(w)
	require.NotEmpty(t, got)
	require.NotEqual(t, "o0", got)
	b, err := io.ReadAll(w.Reader())
	require.NoError(t, err)
	require.LessOrEqual(t, len(b), 10000)
	require.True(t, bytes.HasPrefix(b, []byte(`{"time"`)), "starts on a line")

	// A missing file is an empty window; "-" is no file.
	w, err = openAuditWindow(filepath.Join(dir, "none.log"), t0, 100)
	require.NoError(t, err)
	require.Equal(t, "", first(w))
	_, err = openAuditWindow("-", t0, 100)
	require.ErrorIs(t, err, errNoAuditFile)
}

func TestCharts(t *testing.T) {
	top, step := niceScale(7)
	require.Equal(t, 8.0, top)
	require.Equal(t, 2.0, step)
	top, step = niceScale(0)
	require.Equal(t, 1.0, top)
	require.Equal(t, 1.0, step)
	top, _ = niceScale(9000)
	require.GreaterOrEqual(t, top, 9000.0)

	ss := []series{{Name: `<up>`, Color: colorOf(0)}, {Name: "b", Color: colorOf(1)}}
	svg := string(stackedBars("c", `a "chart"`, []column{{Label: "x", Title: "t&", Values: []float64{1, 2}}, {Values: []float64{0, 0}}}, ss, 300, 100))
	require.Equal(t, 2, strings.Count(svg, `<rect class="bar"`))
	require.Contains(t, svg, "&lt;up&gt;")
	require.NotContains(t, svg, "<up>")
	require.Contains(t, svg, `aria-label="a &#34;chart&#34;"`)
	line := string(lineChart("l", "l", []column{{Values: []float64{1, nanValue()}}, {Values: []float64{2, 3}}}, ss, "s", 300, 100))
	require.Equal(t, 3, strings.Count(line, `<circle class="point"`))
	require.Contains(t, line, `<path d="M`)

	require.InDelta(t, 0.5, quantile([]float64{0.1, 0.5, 0.9}, 0.5), 1e-9)
	require.InDelta(t, 0.9, quantile([]float64{0.9, 0.1, 0.5}, 0.95), 1e-9)
	require.Equal(t, "—", fmtSeconds(quantile(nil, 0.5)))
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func nanValue() float64 { return math.NaN() }

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}

// TestTailIDs: the last n IDs of an oldest-first listing, newest first,
// whether the listing is shorter than n, a multiple of it, or not.
func TestTailIDs(t *testing.T) {
	for _, total := range []int{0, 3, 7, 10, 2503} {
		var all []string
		for i := range total {
			all = append(all, fmt.Sprint("id", i))
		}
		list := func(cursor string, limit int) (store.Page, error) {
			from := 0
			if cursor != "" {
				from, _ = strconv.Atoi(cursor)
			}
			to := min(from+limit, len(all))
			p := store.Page{IDs: all[from:to]}
			if to < len(all) {
				p.Next = strconv.Itoa(to)
			}
			return p, nil
		}
		got, err := tailIDs(list, 7)
		require.NoError(t, err)
		want := []string{}
		for i := len(all) - 1; i >= 0 && len(want) < 7; i-- {
			want = append(want, all[i])
		}
		require.Equal(t, want, append([]string{}, got...), "total %d", total)
	}
}
