package test

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// dashboardYAML: two local CAs with different lifetimes (so the expiry
// timeline has bars at two dates), a deny rule with a reason and a default
// deny.
const dashboardYAML = `accounts:
  eab: optional
upstreams:
  - name: internal
    type: local
    local: {validity: 240h}
  - name: public
    type: local
    local: {validity: 1440h}
policy:
  rules:
    - name: corp
      match: {domains: ["*.corp.e2e.test"]}
      upstreams: [internal]
    - name: no-legacy
      match: {domains: ["*.legacy.e2e.test"]}
      action: deny
      reason: "legacy names are retired, see ticket OPS-42"
    - name: pub
      match: {domains: ["*.pub.e2e.test"]}
      upstreams: [public]
  default: {action: deny}
`

// chromiumPath is Debian's chromium, installed by make deps.
const chromiumPath = "/usr/bin/chromium"

// browserTimeout bounds the whole browser session.
const browserTimeout = 3 * time.Minute

// TestDashboardBrowser populates a server with real issuances through two
// upstreams, a revocation and policy refusals, then drives headless
// chromium through the dashboard: login with the admin token, the sections'
// content (DOM), the charts' geometry, a search, logout; no request leaves
// the admin listener. It saves a full-page screenshot (t.TempDir, and
// $ACMEBRIDGE_SCREENSHOT_OUT when set: relative to the repository root).
func TestDashboardBrowser(t *testing.T) {
	_, err := os.Stat(chromiumPath)
	require.NoError(t, err, "chromium is installed by `make deps` (apt-get install chromium)")
	quietLego(t)
	s := startServer(t, dashboardYAML)

	c, u := legoAccount(t, s, "dash@example.com", nil)
	for _, n := range []string{"a.corp.e2e.test", "c.corp.e2e.test", "www.pub.e2e.test", "api.pub.e2e.test"} {
		legoObtain(t, c, n)
	}
	revoked := legoObtain(t, c, "b.corp.e2e.test")
	leaf := leafOf(t, revoked.Certificate)
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	require.NoError(t, c.Certificate.Revoke(ctx, revoked.Certificate))
	revokedSerial := hex.EncodeToString(leaf.SerialNumber.Bytes())
	_, err = legoObtainErr(c, "old.legacy.e2e.test")
	requireProblem(t, err, "rejectedIdentifier")
	_, err = legoObtainErr(c, "y.other.e2e.test")
	requireProblem(t, err, "rejectedIdentifier")
	account := accountID(u.reg.Location)

	token, err := os.ReadFile(s.TokenFile())
	require.NoError(t, err)

	// The browser, with a profile of its own.
	actx, acancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("window-size", "1440,1000"))...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer bcancel()
	bctx, tcancel := context.WithTimeout(bctx, browserTimeout)
	defer tcancel()

	var mu sync.Mutex
	var requested []string
	require.NoError(t, chromedp.Do(bctx, chromedp.EmulateViewport(1440, 1000)))
	require.NoError(t, chromedp.Listen(bctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			requested = append(requested, e.Request.URL)
			mu.Unlock()
		}
	}))

	// Login: the form, then the token typed in and posted.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Navigate(s.AdminURL+"/dashboard"),
		chromedp.WaitVisible(chromedp.ID("login-form")),
		chromedp.SendKeys(chromedp.ID("token"), "not-the-token"),
		chromedp.Submit(chromedp.ID("login-form")),
		chromedp.WaitVisible(chromedp.ID("login-error")),
	))
	msg, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("login-error")))
	require.NoError(t, err)
	require.Equal(t, "Wrong token.", msg)
	require.NoError(t, chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.ID("token"), strings.TrimSpace(string(token))),
		chromedp.Submit(chromedp.ID("login-form")),
		chromedp.WaitVisible(chromedp.ID("expiry")),
	))
	loc, err := chromedp.Run(bctx, chromedp.Location())
	require.NoError(t, err)
	require.Equal(t, s.AdminURL+"/dashboard", loc, "the token is not in the URL")
	cookie, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.cookie`))
	require.NoError(t, err)
	require.Empty(t, cookie, "the session cookie is HttpOnly")

	// The page's content, read from the DOM the browser built.
	type chartInfo struct {
		Width, Height float64
		Bars          int
		BarsDrawn     int
		Legend        []string
	}
	type pageInfo struct {
		Orders        string
		OrderRows     int
		Expiry        chartInfo
		Issuance      chartInfo
		Latency       chartInfo
		Refusals      string
		RefusalRules  string
		Upstreams     []string
		Expiring30    string
		Issued24h     string
		Refused24h    string
		Errors        int
		ExpiringTable string
	}
	info, err := chromedp.Run(bctx, chromedp.Evaluate[pageInfo](`(() => {
		const chart = id => {
			const svg = document.getElementById(id);
			if (!svg) return {Width: 0, Height: 0, Bars: 0, BarsDrawn: 0, Legend: []};
			const box = svg.getBoundingClientRect();
			const bars = [...svg.querySelectorAll('rect.bar, circle.point')];
			return {
				Width: box.width, Height: box.height, Bars: bars.length,
				BarsDrawn: bars.filter(b => { const r = b.getBoundingClientRect(); return r.width > 0 && r.height > 0; }).length,
				Legend: [...svg.querySelectorAll('.legend-item')].filter(g => g.getBBox().width > 0).map(g => g.dataset.series),
			};
		};
		const text = sel => (document.querySelector(sel) || {innerText: ''}).innerText;
		return {
			Orders: text('#orders-table'),
			OrderRows: document.querySelectorAll('#orders-table tr.order').length,
			Expiry: chart('expiry-chart'), Issuance: chart('issuance-chart'), Latency: chart('latency-chart'),
			Refusals: text('#refusals-table'), RefusalRules: document.getElementById('refusals-by-rule')?.textContent ?? '',
			Upstreams: [...document.querySelectorAll('#upstreams tr.upstream')].map(r => r.innerText.replace(/\s+/g, ' ')),
			Expiring30: text('#expiring-30 b'), Issued24h: text('#issued-24h'), Refused24h: text('#refused-24h'),
			Errors: document.querySelectorAll('.error').length,
			ExpiringTable: text('#expiring-soon'),
		};
	})()`))
	require.NoError(t, err)
	t.Logf("dashboard: %+v", info)
	require.Zero(t, info.Errors, "no error box")
	for _, n := range []string{"a.corp.e2e.test", "b.corp.e2e.test", "c.corp.e2e.test", "www.pub.e2e.test", "api.pub.e2e.test"} {
		require.Contains(t, info.Orders, n, "the latest orders list %s", n)
	}
	require.Equal(t, 5, info.OrderRows, "refused orders are never stored")
	require.Contains(t, info.Orders, "corp")
	require.Contains(t, info.Orders, "pub")
	require.Contains(t, info.Orders, "valid")
	for name, ch := range map[string]chartInfo{"expiry": info.Expiry, "issuance": info.Issuance, "latency": info.Latency} {
		require.Positive(t, ch.Width, "%s chart has a size", name)
		require.Positive(t, ch.Height, "%s chart has a size", name)
		require.Positive(t, ch.BarsDrawn, "%s chart draws its bars", name)
		require.Equal(t, ch.Bars, ch.BarsDrawn, "%s chart: every bar is drawn", name)
		require.ElementsMatch(t, []string{"internal", "public"}, ch.Legend, "%s chart: a legend entry per upstream", name)
	}
	// Four unrevoked certificates on two days (10 and 60 days out).
	require.Equal(t, 2, info.Expiry.Bars)
	require.Equal(t, "2", info.Expiring30, "a.corp and c.corp expire in 10 days; b.corp is revoked")
	require.Contains(t, info.ExpiringTable, "a.corp.e2e.test")
	require.NotContains(t, info.ExpiringTable, "b.corp.e2e.test")
	require.Equal(t, "5", info.Issued24h)
	require.Equal(t, "2", info.Refused24h)
	require.Contains(t, info.Refusals, "legacy names are retired, see ticket OPS-42")
	require.Contains(t, info.RefusalRules, "no-legacy")
	require.Contains(t, info.RefusalRules, "default")
	require.Len(t, info.Upstreams, 2)
	for _, row := range info.Upstreams {
		require.Contains(t, row, "local")
		require.Contains(t, row, "healthy")
	}

	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	saveScreenshot(t, shot)

	// Search a name: its order, certificate and revocation.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.ID("search"), "b.corp.e2e.test"),
		chromedp.Submit(chromedp.ID("search-form")),
		chromedp.WaitVisible(chromedp.ID("search-results")),
	))
	type searchInfo struct {
		Orders, Certs, Events, Revocations, Heading string
		Serials                                     []string
	}
	found, err := chromedp.Run(bctx, chromedp.Evaluate[searchInfo](`(() => {
		const text = sel => (document.querySelector(sel) || {innerText: ''}).innerText;
		return {
			Heading: text('#search-results h2'), Orders: text('#search-orders'), Certs: text('#search-certs'),
			Events: text('#search-events'), Revocations: text('#search-revocations'),
			Serials: [...document.querySelectorAll('#search-certs tr[data-serial]')].map(r => r.dataset.serial),
		};
	})()`))
	require.NoError(t, err)
	t.Logf("search: %+v", found)
	require.Contains(t, found.Heading, "b.corp.e2e.test")
	require.Contains(t, found.Orders, "b.corp.e2e.test")
	require.Contains(t, found.Orders, "corp")
	require.Equal(t, []string{revokedSerial}, found.Serials)
	require.Contains(t, found.Certs, "revoked")
	require.Contains(t, found.Events, "certificate.revoked")
	require.Contains(t, found.Events, "certificate.issued")
	require.Contains(t, found.Events, "order.created")
	require.Equal(t, "1", found.Revocations)

	// Search the account: its history holds the refusals too.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Navigate(s.AdminURL+"/dashboard?q="+account),
		chromedp.WaitVisible(chromedp.ID("search-account")),
	))
	events, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("search-events")))
	require.NoError(t, err)
	require.Contains(t, events, "order.refused")
	require.Contains(t, events, "legacy names are retired")

	// Logout ends the session.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Submit(chromedp.ID("logout-form")),
		chromedp.WaitVisible(chromedp.ID("login-form")),
		chromedp.Navigate(s.AdminURL+"/dashboard"),
		chromedp.WaitVisible(chromedp.ID("login-form")),
	))

	// Nothing was fetched from anywhere but the admin listener.
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, requested)
	for _, r := range requested {
		if !strings.HasPrefix(r, s.AdminURL+"/") && !strings.HasPrefix(r, "data:") {
			t.Errorf("the page requested %s: only %s may be asked", r, s.AdminURL)
		}
	}
}

// saveScreenshot writes the PNG under t.TempDir (logged) and to
// $ACMEBRIDGE_SCREENSHOT_OUT when set (a relative path is relative to the
// repository root).
func saveScreenshot(t *testing.T, png []byte) {
	t.Helper()
	require.True(t, strings.HasPrefix(string(png), "\x89PNG"), "a PNG")
	p := filepath.Join(t.TempDir(), "dashboard.png")
	require.NoError(t, os.WriteFile(p, png, 0o644))
	t.Logf("screenshot: %s (%d bytes)", p, len(png))
	if out := os.Getenv("ACMEBRIDGE_SCREENSHOT_OUT"); out != "" {
		if !filepath.IsAbs(out) {
			out = filepath.Join("..", out)
		}
		require.NoError(t, os.MkdirAll(filepath.Dir(out), 0o755))
		require.NoError(t, os.WriteFile(out, png, 0o644))
		t.Logf("screenshot: %s", out)
	}
}
