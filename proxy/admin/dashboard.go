package admin

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acmebridge/acmebridge/audit"
)

// DashboardOptions turn on the operator dashboard: a page at /dashboard on
// the admin listener (read-only but for the approval queue's buttons), behind the admin API's bearer token
// (entered once in a login form and kept in a session cookie).
type DashboardOptions struct {
	// AuditFile is the audit log (audit.file): refusals, issuance over
	// time and the history a search shows come from its newest part.
	// "" or "-": those sections say the log cannot be read.
	AuditFile string
	// Health reports an upstream's circuit breaker: transient failures in
	// a row and until when it is skipped (proxy.Server.UpstreamHealth).
	// Nil: the health column says unknown.
	Health func(name string) (failures int, skippedUntil time.Time)
}

// Limits that keep one page bounded whatever the size of the store.
const (
	// sessionTTL is how long a login lasts.
	sessionTTL = 12 * time.Hour
	// sessionCookie names the session cookie.
	sessionCookie = "acmebridge_dashboard"
	// pageTimeout bounds the data gathering of one page.
	pageTimeout = 20 * time.Second
)

//go:embed dashboard/*.html
var dashboardFiles embed.FS

// dashboardTemplates are the page and the login form.
var dashboardTemplates = template.Must(template.New("").Funcs(template.FuncMap{
	"when":  func(t time.Time) string { return fmtTime(t) },
	"ago":   ago,
	"join":  strings.Join,
	"short": shortID,
	"names": namesOf,
	"first": func(s []string) string {
		if len(s) == 0 {
			return ""
		}
		return s[0]
	},
	"add":     func(a, b int) int { return a + b },
	"percent": func(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" },
}).ParseFS(dashboardFiles, "dashboard/*.html"))

// dashboard serves /dashboard.
type dashboard struct {
	api  *api
	opts DashboardOptions
	reg  prometheus.Gatherer
	log  *slog.Logger
	// key signs sessions; new each process, so a restart logs everyone
	// out.
	key []byte
	// tokenMAC is the HMAC of the token under key, compared in constant
	// time with the HMAC of what the login form posts.
	tokenMAC []byte

	mu sync.Mutex
	// loggedOut holds the sessions ended by logout until they expire.
	loggedOut map[string]time.Time
	// expiry caches the expiry timeline of each directory filter ("" all)
	// a while (the most costly part); guarded by mu.
	expiry map[string]*cached[*expiryView]
}

func newDashboard(a *api, opts DashboardOptions, reg prometheus.Gatherer, log *slog.Logger) *dashboard {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	d := &dashboard{api: a, opts: opts, reg: reg, log: log, key: key, loggedOut: map[string]time.Time{},
		expiry: map[string]*cached[*expiryView]{}}
	d.tokenMAC = d.mac("token", a.Token)
	return d
}

func (d *dashboard) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /dashboard", d.page)
	mux.HandleFunc("POST /dashboard/login", d.login)
	mux.HandleFunc("POST /dashboard/logout", d.logout)
	mux.HandleFunc("POST /dashboard/approvals/{id}/{verb}", d.decideApproval)
}

// mac is HMAC-SHA256 under the process's key of a purpose and its parts.
func (d *dashboard) mac(purpose string, parts ...string) []byte {
	m := hmac.New(sha256.New, d.key)
	m.Write([]byte("acmebridge-dashboard\x00" + purpose))
	for _, p := range parts {
		m.Write([]byte{0})
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// secure sets the headers of every dashboard response: no script, no
// external request, no framing, nothing cached.
func secure(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// Not no-referrer: with it browsers send "Origin: null" on form posts,
	// which sameOrigin refuses.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// session reports whether r carries a live session cookie, or the bearer
// token itself (scripts).
func (d *dashboard) session(r *http.Request) bool {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return hmac.Equal(d.mac("token", strings.TrimSpace(tok)), d.tokenMAC)
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return false
	}
	sid, exp, ok := d.parseSession(c.Value)
	if !ok {
		return false
	}
	d.mu.Lock()
	_, out := d.loggedOut[sid]
	d.mu.Unlock()
	return !out && d.api.now().Before(exp)
}

// parseSession checks a cookie value "sid.expiry.mac" and returns its
// session ID and expiry.
func (d *dashboard) parseSession(v string) (string, time.Time, bool) {
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return "", time.Time{}, false
	}
	sum, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sum, d.mac("session", parts[0], parts[1], d.api.Token)) {
		return "", time.Time{}, false
	}
	sec, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return "", time.Time{}, false
	}
	return parts[0], time.Unix(sec, 0), true
}

// newSession returns a cookie value for a session that ends at exp: a
// random ID, the expiry and an HMAC binding both to the token under the
// process's key. The token itself is never in it.
func (d *dashboard) newSession(exp time.Time) string {
	raw := make([]byte, 16)
	_, _ = rand.Read(raw)
	sid, e := base64.RawURLEncoding.EncodeToString(raw), strconv.FormatInt(exp.Unix(), 10)
	return sid + "." + e + "." + base64.RawURLEncoding.EncodeToString(d.mac("session", sid, e, d.api.Token))
}

// sameOrigin refuses a form posted from another site: Origin, when the
// browser sends it, must be this listener's; so must Sec-Fetch-Site.
// (The session cookie is SameSite=Strict as well.)
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && strings.EqualFold(u.Host, r.Host)
}

func (d *dashboard) setCookie(w http.ResponseWriter, r *http.Request, value string, exp time.Time) {
	// Secure whenever the admin listener serves TLS (admin.tls); without it the
	// admin API is plain HTTP (on loopback by default), where a browser would
	// never send a Secure cookie back.
	c := &http.Cookie{Name: sessionCookie, Value: value, Path: "/dashboard", HttpOnly: true, //nolint:gosec // G124: see above
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
	if value == "" {
		c.MaxAge = -1
	} else {
		c.Expires, c.MaxAge = exp, int(exp.Sub(d.api.now()).Seconds())
	}
	http.SetCookie(w, c)
}

// loginData fills the login form.
type loginData struct {
	Error string
}

func (d *dashboard) showLogin(w http.ResponseWriter, status int, msg string) {
	secure(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := dashboardTemplates.ExecuteTemplate(w, "login", loginData{Error: msg}); err != nil {
		d.log.Warn("dashboard: login form", "err", err)
	}
}

func (d *dashboard) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		d.showLogin(w, http.StatusForbidden, "The login form must be posted from this page.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		d.showLogin(w, http.StatusBadRequest, "The form could not be read.")
		return
	}
	tok := strings.TrimSpace(r.PostForm.Get("token"))
	if !hmac.Equal(d.mac("token", tok), d.tokenMAC) {
		if s, ok := d.api.match(tok); ok && !s.global {
			// The dashboard shows every directory: the global token only.
			d.record(r, "dashboard login refused: a token scoped to a directory")
			d.showLogin(w, http.StatusForbidden, "This token is scoped to a directory: the dashboard takes the global admin token.")
			return
		}
		d.record(r, "dashboard login refused: wrong token")
		d.showLogin(w, http.StatusUnauthorized, "Wrong token.")
		return
	}
	exp := d.api.now().Add(sessionTTL)
	d.setCookie(w, r, d.newSession(exp), exp)
	d.record(r, "dashboard login")
	secure(w)
	http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
}

func (d *dashboard) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		d.showLogin(w, http.StatusForbidden, "The logout form must be posted from this page.")
		return
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		if sid, exp, ok := d.parseSession(c.Value); ok {
			now := d.api.now()
			d.mu.Lock()
			for s, e := range d.loggedOut {
				if now.After(e) {
					delete(d.loggedOut, s)
				}
			}
			d.loggedOut[sid] = exp
			d.mu.Unlock()
		}
	}
	d.setCookie(w, r, "", time.Time{})
	secure(w)
	http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
}

// record audits a login or a refused one.
func (d *dashboard) record(r *http.Request, what string) {
	if d.api.Audit == nil {
		return
	}
	e := audit.Event{Event: audit.AdminAction, Actor: "admin", Remote: r.RemoteAddr, Reason: what}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		e.Remote = host
	}
	_ = d.api.Audit.Record(e)
}

// page renders the dashboard: 503 with the error in view when the store
// does not answer.
func (d *dashboard) page(w http.ResponseWriter, r *http.Request) {
	if !d.session(r) {
		d.showLogin(w, http.StatusOK, "")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	p := d.gather(ctx, r.URL.Query())
	if sid := d.sessionID(r); sid != "" {
		p.CSRF = d.csrfToken(sid)
	}
	status := http.StatusOK
	if p.StoreDown {
		status = http.StatusServiceUnavailable
	}
	secure(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := dashboardTemplates.ExecuteTemplate(w, "page", p); err != nil {
		d.log.Warn("dashboard: render", "err", err)
	}
}

// fmtTime writes a time in UTC to the minute.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04")
}

// ago writes how far t is from now, roughly ("3h ago", "in 12d").
func ago(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := t.Sub(now)
	suffix, prefix := "", "in "
	if d < 0 {
		d, suffix, prefix = -d, " ago", ""
	}
	var s string
	switch {
	case d < time.Minute:
		s = strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		s = strconv.Itoa(int(d.Minutes())) + "m"
	case d < 48*time.Hour:
		s = strconv.Itoa(int(d.Hours())) + "h"
	default:
		s = strconv.Itoa(int(d.Hours()/24)) + "d"
	}
	return prefix + s + suffix
}

// shortID keeps the start of a long ID (the full one is in the title).
func shortID(id string) string {
	if len(id) > 12 {
		return id[:10] + "…"
	}
	return id
}

// namesOf writes a list of names, the first few in full.
func namesOf(names []string) string {
	if len(names) > 3 {
		return strings.Join(names[:3], ", ") + " +" + strconv.Itoa(len(names)-3)
	}
	return strings.Join(names, ", ")
}
