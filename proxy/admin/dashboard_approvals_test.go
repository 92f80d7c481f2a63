package admin

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/ra"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/store/bolt"
)

// approvalDash is a dashboard whose approval buttons decide through a
// real domain core, over a bolt store holding two pending requests.
func approvalDash(t *testing.T) (http.Handler, store.Store, *recorder) {
	st, err := bolt.Open(bolt.Options{Path: filepath.Join(t.TempDir(), "db")})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	rec := &recorder{}
	core, err := ra.New(ra.Options{Config: configs.Default(), Store: st, Audit: rec})
	require.NoError(t, err)
	now := time.Now()
	for _, id := range []string{"apr-one", "apr-two"} {
		require.NoError(t, st.PutApproval(t.Context(), &store.ApprovalRequest{ID: id, AccountID: "acct-" + id, Names: []string{id + ".corp.example.com"},
			Rule: "corp", FirstAttempt: now, LastAttempt: now, Attempts: 1, Status: store.ApprovalPending, PendingUntil: now.Add(time.Hour)}))
	}
	h := New(Options{Store: st, Registry: prometheus.NewRegistry(), API: &APIOptions{Token: dashToken, Store: st, Audit: rec, Approver: core},
		Dashboard: &DashboardOptions{}})
	return h, st, rec
}

func dashPost(h http.Handler, path string, form url.Values, hdr map[string]string, cookie *http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

var sameSite = map[string]string{"Origin": "http://example.com", "Sec-Fetch-Site": "same-origin"}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// dashLogin signs in and returns the session cookie and the CSRF token
// the page's forms carry.
func dashLogin(t *testing.T, h http.Handler) (*http.Cookie, string) {
	c := sessionOf(t, dashPost(h, "/dashboard/login", url.Values{"token": {dashToken}}, sameSite, nil))
	req := httptest.NewRequest(http.MethodGet, "/dashboard", nil)
	req.AddCookie(c)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	require.Equal(t, http.StatusOK, w.Code)
	body := w.Body.String()
	require.Contains(t, body, `id="approval-queue"`)
	require.Contains(t, body, "apr-one.corp.example.com")
	require.NotContains(t, body, dashToken, "the admin token is never in a form")
	requireSecureHeaders(t, w)
	m := csrfRe.FindStringSubmatch(body)
	require.NotNil(t, m, "no CSRF token in the forms")
	return c, m[1]
}

// TestDashboardApprovalCSRF: the queue's approve and deny buttons decide
// only from a live session cookie, from this origin, with that session's
// CSRF token; every other post is refused and decides nothing.
func TestDashboardApprovalCSRF(t *testing.T) {
	h, st, rec := approvalDash(t)
	c, csrf := dashLogin(t, h)
	other, otherCSRF := dashLogin(t, h)
	require.NotEqual(t, csrf, otherCSRF, "the token is bound to the session")

	bearer := map[string]string{"Authorization": "Bearer " + dashToken}
	for name, try := range map[string]struct {
		form   url.Values
		hdr    map[string]string
		cookie *http.Cookie
		status int
	}{
		"no token":              {url.Values{}, sameSite, c, http.StatusForbidden},
		"wrong token":           {url.Values{"csrf": {"AAAA"}}, sameSite, c, http.StatusForbidden},
		"another session's":     {url.Values{"csrf": {otherCSRF}}, sameSite, c, http.StatusForbidden},
		"another origin":        {url.Values{"csrf": {csrf}}, map[string]string{"Origin": "http://evil.example"}, c, http.StatusForbidden},
		"origin null":           {url.Values{"csrf": {csrf}}, map[string]string{"Origin": "null"}, c, http.StatusForbidden},
		"cross-site fetch":      {url.Values{"csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "cross-site"}, c, http.StatusForbidden},
		"bearer without cookie": {url.Values{"csrf": {csrf}}, bearer, nil, http.StatusUnauthorized},
		"no session":            {url.Values{"csrf": {csrf}}, sameSite, nil, http.StatusUnauthorized},
	} {
		w := dashPost(h, "/dashboard/approvals/apr-one/approve", try.form, try.hdr, try.cookie)
		require.Equal(t, try.status, w.Code, name)
		r, err := st.GetApproval(t.Context(), "apr-one")
		require.NoError(t, err)
		require.Equal(t, store.ApprovalPending, r.Status, "%s: nothing decided", name)
	}

	w := dashPost(h, "/dashboard/approvals/apr-one/approve", url.Values{"csrf": {csrf}, "reason": {"ticket 9"}}, sameSite, c)
	require.Equal(t, http.StatusSeeOther, w.Code, w.Body.String())
	require.Equal(t, "/dashboard#approvals", w.Header().Get("Location"))
	r, err := st.GetApproval(t.Context(), "apr-one")
	require.NoError(t, err)
	require.Equal(t, store.ApprovalApproved, r.Status)
	require.Equal(t, "admin", r.DecidedBy)

	w = dashPost(h, "/dashboard/approvals/apr-two/deny", url.Values{"csrf": {otherCSRF}, "reason": {"not ours"}}, sameSite, other)
	require.Equal(t, http.StatusSeeOther, w.Code, w.Body.String())
	r, err = st.GetApproval(t.Context(), "apr-two")
	require.NoError(t, err)
	require.Equal(t, store.ApprovalDenied, r.Status)
	require.Equal(t, "not ours", r.Reason)
	var denied int
	for _, ev := range rec.ev {
		if ev.Event == audit.ApprovalDenied && ev.Actor == "admin" && ev.Approval == "apr-two" {
			denied++
		}
	}
	require.Equal(t, 1, denied)

	// Signed out, the session's token decides nothing.
	require.Equal(t, http.StatusSeeOther, dashPost(h, "/dashboard/logout", nil, sameSite, c).Code)
	require.Equal(t, http.StatusUnauthorized, dashPost(h, "/dashboard/approvals/apr-two/approve", url.Values{"csrf": {csrf}}, sameSite, c).Code)
}
