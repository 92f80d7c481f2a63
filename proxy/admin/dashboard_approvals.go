package admin

import (
	"context"
	"crypto/hmac"
	"encoding/base64"
	"net/http"

	"github.com/acmebridge/acmebridge/store"
)

// The approval queue: the dashboard's first writes. A decision is a
// same-origin POST (Origin and Sec-Fetch-Site checked, the session cookie
// SameSite=Strict) carrying a CSRF token bound to the session (an HMAC of
// the session's ID under the process's key); the admin token is never in
// a form. The decision goes through the domain core like the API's.

// queueSize bounds the pending requests the dashboard lists.
const queueSize = 50

// approvalQueue is the pending approval requests of the directory shown.
type approvalQueue struct {
	Items []approvalView
	// More: more requests are pending than shown.
	More bool
}

// pendingApprovals reads the queue, oldest first.
func (d *dashboard) pendingApprovals(ctx context.Context, p *pageData) error {
	now := d.api.now()
	recs, next, err := scan(ctx, func(c string, l int) (store.Page, error) { return d.api.Store.List(ctx, store.KindApproval, c, l) },
		d.api.Store.GetApproval, func(q *store.ApprovalRequest) bool {
			return inDirectory(q.Directory, p.Directory) && approvalOf(q, now).Status == store.ApprovalPending
		}, "", queueSize)
	if err != nil {
		return err
	}
	p.Approvals = &approvalQueue{More: next != "" && len(recs) >= queueSize}
	for _, q := range recs {
		p.Approvals.Items = append(p.Approvals.Items, approvalOf(q, now))
	}
	return nil
}

// sessionID is the ID of r's live session cookie ("" without one).
func (d *dashboard) sessionID(r *http.Request) string {
	c, err := r.Cookie(sessionCookie)
	if err != nil || !d.session(r) {
		return ""
	}
	sid, _, ok := d.parseSession(c.Value)
	if !ok {
		return ""
	}
	return sid
}

// csrfToken is the CSRF token of a session.
func (d *dashboard) csrfToken(sid string) string {
	return base64.RawURLEncoding.EncodeToString(d.mac("csrf", sid))
}

// decideApproval serves POST /dashboard/approvals/{id}/approve and .../deny
// (form fields csrf and reason): only with a session cookie (a script
// with the bearer token uses the API), from this origin, with the
// session's CSRF token.
func (d *dashboard) decideApproval(w http.ResponseWriter, r *http.Request) {
	verb := r.PathValue("verb")
	if verb != "approve" && verb != "deny" {
		http.NotFound(w, r)
		return
	}
	if !sameOrigin(r) {
		d.record(r, "dashboard approval refused: posted from another origin")
		d.showLogin(w, http.StatusForbidden, "The decision must be posted from the dashboard.")
		return
	}
	sid := d.sessionID(r)
	if sid == "" {
		d.showLogin(w, http.StatusUnauthorized, "Sign in to decide approvals.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		d.showLogin(w, http.StatusBadRequest, "The form could not be read.")
		return
	}
	got, err := base64.RawURLEncoding.DecodeString(r.PostForm.Get("csrf"))
	if err != nil || !hmac.Equal(got, d.mac("csrf", sid)) {
		d.record(r, "dashboard approval refused: missing or wrong CSRF token")
		d.showLogin(w, http.StatusForbidden, "The form has expired: reload the dashboard and try again.")
		return
	}
	// The dashboard takes the global token only (login).
	r = r.WithContext(context.WithValue(r.Context(), scopeKey{}, scope{global: true}))
	if status, msg := d.api.decide(r, r.PathValue("id"), verb == "approve", decisionReq{Reason: r.PostForm.Get("reason")}); status != 0 {
		secure(w)
		http.Error(w, msg, status)
		return
	}
	secure(w)
	http.Redirect(w, r, "/dashboard#approvals", http.StatusSeeOther)
}
