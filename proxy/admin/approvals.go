package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/ra"
	"github.com/acmebridge/acmebridge/store"
)

// Approver decides approval requests (implemented by ra.RA): every
// decision goes through the domain core, which audits it with who decided.
type Approver interface {
	DecideApproval(ctx context.Context, id string, d ra.ApprovalDecision) (*store.ApprovalRequest, error)
}

// approvalView is an approval request for operators.
type approvalView struct {
	ID string `json:"id"`
	// Directory is the request's directory ("/" the top level).
	Directory    string    `json:"directory"`
	Account      string    `json:"account"`
	EABKey       string    `json:"eab_key,omitempty"`
	Group        string    `json:"group,omitempty"`
	Names        []string  `json:"names"`
	Rule         string    `json:"rule"`
	Remote       string    `json:"remote,omitempty"`
	FirstAttempt time.Time `json:"first_attempt"`
	LastAttempt  time.Time `json:"last_attempt"`
	Attempts     int       `json:"attempts"`
	// Status is pending, approved, denied or expired (a pending request
	// past pending_until, an approval past expires: ra.ApprovalStatus).
	Status       string    `json:"status"`
	PendingUntil time.Time `json:"pending_until"`
	DecidedBy    string    `json:"decided_by,omitempty"`
	DecidedAt    time.Time `json:"decided_at,omitzero"`
	Reason       string    `json:"reason,omitempty"`
	Expires      time.Time `json:"expires,omitzero"`
	Pattern      string    `json:"pattern,omitempty"`
}

// approvalOf is the view of r at now.
func approvalOf(r *store.ApprovalRequest, now time.Time) approvalView {
	v := approvalView{ID: r.ID, Directory: audit.DirectoryLabel(r.Directory), Account: r.AccountID, EABKey: r.EABKey, Group: r.Group,
		Names: r.Names, Rule: r.Rule, Remote: r.Remote, FirstAttempt: r.FirstAttempt, LastAttempt: r.LastAttempt, Attempts: r.Attempts,
		Status: ra.ApprovalStatus(r, now), PendingUntil: r.PendingUntil, DecidedBy: r.DecidedBy, DecidedAt: r.DecidedAt, Reason: r.Reason,
		Expires: r.Expires, Pattern: r.Pattern}
	return v
}

// approvalStatuses are the values ?status= takes.
var approvalStatuses = map[string]bool{"": true, store.ApprovalPending: true, store.ApprovalApproved: true,
	store.ApprovalDenied: true, store.ApprovalExpired: true}

// listApprovals is GET /api/v1/approvals (?status=, ?directory=, pages):
// oldest first, the queue's order.
func (a *api) listApprovals(w http.ResponseWriter, r *http.Request) {
	cursor, limit, dir, ok := a.listParams(w, r)
	if !ok {
		return
	}
	status := r.URL.Query().Get("status")
	if !approvalStatuses[status] {
		fail(w, http.StatusBadRequest, "status must be pending, approved, denied or expired")
		return
	}
	now := a.now()
	recs, next, err := scan(r.Context(), func(c string, l int) (store.Page, error) { return a.Store.List(r.Context(), store.KindApproval, c, l) },
		a.Store.GetApproval, func(q *store.ApprovalRequest) bool {
			return inDirectory(q.Directory, dir) && visible(r, q.Directory) && (status == "" || approvalOf(q, now).Status == status)
		}, cursor, limit)
	if err != nil {
		storeFail(w, err, "listing")
		return
	}
	out := listing[approvalView]{Items: []approvalView{}, Next: next}
	for _, q := range recs {
		out.Items = append(out.Items, approvalOf(q, now))
	}
	writeJSON(w, http.StatusOK, out)
}

// approval reads the request of the path, hidden from a token scoped to
// another directory.
func (a *api) approval(r *http.Request) (*store.ApprovalRequest, error) {
	return fetchVisible(r, a.Store.GetApproval, func(q *store.ApprovalRequest) string { return q.Directory }, r.PathValue("id"))
}

func (a *api) showApproval(w http.ResponseWriter, r *http.Request) {
	q, err := a.approval(r)
	if err != nil {
		storeFail(w, err, "approval request")
		return
	}
	writeJSON(w, http.StatusOK, approvalOf(q, a.now()))
}

// decisionReq is the body of POST /api/v1/approvals/{id}/approve and
// .../deny (which takes only a reason).
type decisionReq struct {
	Reason string `json:"reason"`
	// Expires is a duration such as "720h" after which the approval ends;
	// empty: it does not end.
	Expires string `json:"expires"`
	// Pattern also approves the account's later names matching it, such
	// as "*.floor3.corp.example.com".
	Pattern string `json:"pattern"`
}

func (a *api) approveApproval(w http.ResponseWriter, r *http.Request) { a.decideApproval(w, r, true) }
func (a *api) denyApproval(w http.ResponseWriter, r *http.Request)    { a.decideApproval(w, r, false) }

func (a *api) decideApproval(w http.ResponseWriter, r *http.Request, approve bool) {
	var req decisionReq
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		fail(w, http.StatusBadRequest, "body must be {reason, expires, pattern}: "+err.Error())
		return
	}
	q, err := a.approval(r)
	if err != nil {
		storeFail(w, err, "approval request")
		return
	}
	if status, msg := a.decide(r, q.ID, approve, req); status != 0 {
		fail(w, status, msg)
		return
	}
	q, err = a.Store.GetApproval(r.Context(), q.ID)
	if err != nil {
		storeFail(w, err, "approval request")
		return
	}
	writeJSON(w, http.StatusOK, approvalOf(q, a.now()))
}

// decide takes an administrator's decision to the domain core, with who
// decided (the token, the address) for its audit line; it returns the
// HTTP status and message of a refusal (0 when decided).
func (a *api) decide(r *http.Request, id string, approve bool, req decisionReq) (int, string) {
	if a.Approver == nil {
		return http.StatusNotImplemented, "this server decides no approvals"
	}
	d := ra.ApprovalDecision{Approve: approve, By: actor(r), Reason: req.Reason, Pattern: req.Pattern}
	if req.Expires != "" {
		ttl, err := time.ParseDuration(req.Expires)
		if err != nil || ttl <= 0 {
			return http.StatusBadRequest, "expires must be a positive duration such as 720h"
		}
		d.Expires = a.now().Add(ttl)
	}
	host := r.RemoteAddr
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		host = h
	}
	ctx := ra.WithClient(r.Context(), ra.Client{Remote: host})
	if _, err := a.Approver.DecideApproval(ctx, id, d); err != nil {
		return domainStatus(err)
	}
	return 0, ""
}
