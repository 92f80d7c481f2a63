package ra

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/policy"
	"github.com/acmebridge/acmebridge/store"
)

// Approvals (configs.Rule.Approval). A rule that requires approval refuses
// newOrder, with rejectedIdentifier naming an approval request, until an
// administrator approves the names for the account: a refusal every ACME
// client shows and recovers from (its next ordinary run orders again),
// where an order held "processing" for hours would trip clients' timeouts.
// The request is one record per (directory, account, names, rule), so a
// client's retries refresh it rather than open new ones.

// maxAccountApprovals bounds the approval requests of one account read at
// newOrder; maxHeldScan the orders of an account read to find the names
// it already holds (rule approval: new-names). Both read oldest first: a
// name an account has held was first held early, and approvals beyond the
// bound ask again (never grant).
const (
	maxAccountApprovals = 1000
	maxHeldScan         = 1000
)

// ApprovalID is the ID of the approval request of an account's names
// under a rule in a directory: the same inputs always give the same ID,
// whichever replica computes it.
func ApprovalID(directory, accountID string, names []string, rule string) string {
	h := sha256.New()
	for _, s := range append([]string{directory, accountID, rule}, names...) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "apr-" + hex.EncodeToString(h.Sum(nil))[:24]
}

// approvalCovers reports whether approval r, in force at now, lets the
// account order name under rule: the name is one it approved, or matches
// its pattern when the order is routed by the rule the request was made
// under. A pattern never covers a wildcard name: a wildcard certificate
// is approved by name.
func approvalCovers(r *store.ApprovalRequest, name, rule string, now time.Time) bool {
	if r.Status != store.ApprovalApproved || (!r.Expires.IsZero() && !now.Before(r.Expires)) {
		return false
	}
	if slices.Contains(r.Names, name) {
		return true
	}
	return r.Pattern != "" && r.Rule == rule && !strings.HasPrefix(name, "*.") && policy.MatchDomain(r.Pattern, name)
}

// checkApproval enforces the approval the policy's decision asks for: nil
// when every name of the order is approved for the account (or, for
// new-names, held by it already), else a rejectedIdentifier problem naming
// the denied request and its reason, or the pending request it opened or
// refreshed.
func (ra *RA) checkApproval(ctx context.Context, acct *store.Account, ids []store.Identifier, dec *policy.Decision, ttl time.Duration) error {
	if dec.Approval == "" {
		return nil
	}
	now := ra.now()
	approvals, err := ra.store.AccountApprovals(ctx, acct.ID, maxAccountApprovals)
	if err != nil {
		return storeDown(err)
	}
	// Defence in depth: an account lives in one directory, and so do its
	// requests; another directory's never count.
	approvals = slices.DeleteFunc(approvals, func(r *store.ApprovalRequest) bool {
		return r.Directory != acct.Directory || r.AccountID != acct.ID
	})
	var need []store.Identifier
	for _, id := range ids {
		if !slices.ContainsFunc(approvals, func(r *store.ApprovalRequest) bool { return approvalCovers(r, id.Value, dec.Rule, now) }) {
			need = append(need, id)
		}
	}
	if len(need) > 0 && dec.Approval == configs.ApprovalNewNames {
		if need, err = ra.notHeld(ctx, acct, need); err != nil {
			return err
		}
	}
	if len(need) == 0 {
		return nil
	}
	names := identValues(need)
	slices.Sort(names)
	for _, r := range approvals {
		if r.Status == store.ApprovalDenied && slices.ContainsFunc(names, func(n string) bool { return slices.Contains(r.Names, n) }) {
			reason := r.Reason
			if reason == "" {
				reason = "no reason given"
			}
			return approvalProblem(need, fmt.Sprintf("approval denied: request %s for %s was denied: %s", r.ID, strings.Join(r.Names, ", "), reason))
		}
	}
	r, err := ra.openApproval(ctx, acct, names, dec.Rule, now, ttl)
	if err != nil {
		return err
	}
	return approvalProblem(need, fmt.Sprintf("approval required: request %s for %s is pending; an administrator decides with `acmebridge approval approve %s`; run your client again after",
		r.ID, strings.Join(names, ", "), r.ID))
}

// approvalProblem is the refusal of names waiting for (or refused) an
// approval: rejectedIdentifier (RFC 8555 §6.7: "the server will not issue
// certificates for the identifier"), which clients show with its detail,
// with the same detail for each name.
func approvalProblem(ids []store.Identifier, detail string) error {
	e := &acmeerr.Error{Kind: acmeerr.RejectedIdentifier, Detail: detail}
	for _, id := range ids {
		e.Sub = append(e.Sub, acmeerr.New(acmeerr.RejectedIdentifier, "%s", detail).For(id.Type, id.Value))
	}
	return e
}

// notHeld returns the identifiers of need the account holds no
// certificate for: names of its orders that issued, in its first
// maxHeldScan orders.
func (ra *RA) notHeld(ctx context.Context, acct *store.Account, need []store.Identifier) ([]store.Identifier, error) {
	left := slices.Clone(need)
	cursor, seen := "", 0
	for len(left) > 0 && seen < maxHeldScan {
		page, err := ra.store.ListOrders(ctx, acct.ID, cursor, OrdersPageSize)
		if err != nil {
			return nil, storeDown(err)
		}
		for _, id := range page.IDs {
			seen++
			o, err := ra.store.GetOrder(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, storeDown(err)
			}
			if o.CertificateID == "" || o.Directory != acct.Directory || o.AccountID != acct.ID {
				continue
			}
			left = slices.DeleteFunc(left, func(n store.Identifier) bool { return slices.Contains(o.Identifiers, n) })
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	return left, nil
}

// openApproval creates the pending request for the names, or refreshes
// the one that exists (its last attempt and the client's address; a
// request that expired, or whose approval ended, is pending again), and
// audits approval.requested when it opens.
func (ra *RA) openApproval(ctx context.Context, acct *store.Account, names []string, rule string, now time.Time, ttl time.Duration) (*store.ApprovalRequest, error) {
	c, _ := ctx.Value(clientKey{}).(Client)
	id := ApprovalID(acct.Directory, acct.ID, names, rule)
	for range 3 {
		r, err := ra.store.GetApproval(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			r = &store.ApprovalRequest{ID: id, Directory: acct.Directory, AccountID: acct.ID, EABKey: acct.EABKeyID, Group: acct.Group,
				Names: names, Rule: rule, Remote: c.Remote, FirstAttempt: now, LastAttempt: now, Attempts: 1,
				Status: store.ApprovalPending, PendingUntil: now.Add(ttl)}
			err = ra.store.PutApproval(ctx, r)
			if err == nil {
				ra.auditApproval(ctx, audit.ApprovalRequested, r, "")
				return r, nil
			}
			if errors.Is(err, store.ErrConflict) {
				continue // another replica opened it: refresh that one
			}
			return nil, storeDown(err)
		}
		if err != nil {
			return nil, storeDown(err)
		}
		reopened := false
		// One the sweep has not marked expired yet is audited expired here
		// first (ExpireApprovals), so the log never skips the expiry.
		var expired *store.ApprovalRequest
		if why := approvalExpiry(r, now); why != "" {
			was := *r
			was.Status, was.Reason = store.ApprovalExpired, why
			expired = &was
		}
		if expired != nil || r.Status == store.ApprovalExpired {
			r.Status, r.PendingUntil, r.FirstAttempt, r.Attempts = store.ApprovalPending, now.Add(ttl), now, 0
			r.DecidedBy, r.DecidedAt, r.Reason, r.Expires, r.Pattern = "", time.Time{}, "", time.Time{}, ""
			reopened = true
		}
		r.LastAttempt, r.Attempts = now, r.Attempts+1
		if c.Remote != "" {
			r.Remote = c.Remote
		}
		err = ra.store.UpdateApproval(ctx, r)
		if err == nil {
			if expired != nil {
				ra.auditApproval(ctx, audit.ApprovalExpired, expired, "")
			}
			if reopened {
				ra.auditApproval(ctx, audit.ApprovalRequested, r, "")
			}
			return r, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, storeDown(err)
		}
	}
	return nil, acmeerr.New(acmeerr.Conflict, "approval request %s was changed concurrently; retry", id)
}

func (ra *RA) auditApproval(ctx context.Context, event string, r *store.ApprovalRequest, actor string) {
	ra.record(ctx, audit.Event{Event: event, Account: r.AccountID, EABKey: r.EABKey, Group: r.Group, Names: r.Names,
		Rule: r.Rule, Directory: r.Directory, Approval: r.ID, Actor: actor, Reason: r.Reason})
}

// ApprovalDecision is an administrator's decision on an approval request.
type ApprovalDecision struct {
	// Approve approves the request; false denies it.
	Approve bool
	// By names who decided, for the audit log ("admin", "admin:NAME").
	By string
	// Reason is told to the client of a denied request (and kept with an
	// approval).
	Reason string
	// Expires ends an approval (zero: it does not end).
	Expires time.Time
	// Pattern, with an approval, covers the account's later names matching
	// it under the same rule: "*.suffix" or a first-label glob covering
	// every name of the request.
	Pattern string
}

// DecideApproval records an administrator's decision on an approval
// request and audits it with who decided. A request may be decided again
// (an approval withdrawn by a denial, a denial reversed); the account's
// next order sees the decision. Expired requests are decided as pending
// ones (the next order would reopen them anyway).
func (ra *RA) DecideApproval(ctx context.Context, id string, d ApprovalDecision) (*store.ApprovalRequest, error) {
	now := ra.now()
	if d.Approve && !d.Expires.IsZero() && !d.Expires.After(now) {
		return nil, acmeerr.New(acmeerr.Malformed, "expires %s is in the past", d.Expires.UTC().Format(time.RFC3339))
	}
	if !d.Approve && (d.Pattern != "" || !d.Expires.IsZero()) {
		return nil, acmeerr.New(acmeerr.Malformed, "a denial takes no pattern or expiry")
	}
	for range 3 {
		r, err := ra.store.GetApproval(ctx, id)
		if err != nil {
			return nil, storeErr(err, "approval request")
		}
		if d.Pattern != "" {
			if err := checkApprovalPattern(d.Pattern, r.Names); err != nil {
				return nil, err
			}
		}
		event := audit.ApprovalDenied
		r.Status, r.DecidedBy, r.DecidedAt, r.Reason, r.Expires, r.Pattern = store.ApprovalDenied, d.By, now, d.Reason, time.Time{}, ""
		if d.Approve {
			event = audit.ApprovalApproved
			r.Status, r.Expires, r.Pattern = store.ApprovalApproved, d.Expires, d.Pattern
		}
		err = ra.store.UpdateApproval(ctx, r)
		if err == nil {
			ra.auditApproval(ctx, event, r, d.By)
			ra.log.Info("approval decided", "approval", r.ID, "status", r.Status, "by", d.By, "names", r.Names)
			return r, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, storeErr(err, "approval request")
		}
	}
	return nil, acmeerr.New(acmeerr.Conflict, "approval request %s was changed concurrently; retry", id)
}

// checkApprovalPattern accepts a pattern that is "*.suffix" (a suffix of
// at least two labels) or a glob in the first label, and covers every
// name of the request: a pattern approves more of what was asked, never
// something else.
func checkApprovalPattern(p string, names []string) error {
	a, err := configs.ALabels(p)
	if err != nil || !strings.Contains(a, "*") {
		return acmeerr.New(acmeerr.Malformed, "pattern %s is not *.suffix or a glob in the first label", acmeerr.Quote(p))
	}
	if suffix, ok := strings.CutPrefix(a, "*."); ok && (strings.Count(suffix, ".") < 1 || strings.Contains(suffix, "*")) {
		return acmeerr.New(acmeerr.Malformed, "pattern %s is too broad: its suffix needs at least two labels", acmeerr.Quote(p))
	}
	for _, n := range names {
		if strings.HasPrefix(n, "*.") || !policy.MatchDomain(a, n) {
			return acmeerr.New(acmeerr.Malformed, "pattern %s does not cover %s, a name of the request", acmeerr.Quote(p), n)
		}
	}
	return nil
}

// Approval reads one approval request (for the admin API).
func (ra *RA) Approval(ctx context.Context, id string) (*store.ApprovalRequest, error) {
	r, err := ra.store.GetApproval(ctx, id)
	if err != nil {
		return nil, storeErr(err, "approval request")
	}
	return ra.withExpiry(r), nil
}

// approvalExpiry says why r has expired at now, if it has and is not
// marked so yet: a pending request past its PendingUntil, or an approval
// past its Expires. "" otherwise.
func approvalExpiry(r *store.ApprovalRequest, now time.Time) string {
	switch {
	case r.Status == store.ApprovalPending && !now.Before(r.PendingUntil):
		return "no administrator decided by " + r.PendingUntil.UTC().Format(time.RFC3339)
	case r.Status == store.ApprovalApproved && !r.Expires.IsZero() && !now.Before(r.Expires):
		return "the approval by " + r.DecidedBy + " ended at " + r.Expires.UTC().Format(time.RFC3339)
	}
	return ""
}

// approvalSweepPage is how many approval requests ExpireApprovals reads
// per page.
const approvalSweepPage = 256

// ExpireApprovals marks expired the approval requests whose time ran out
// (approvalExpiry) and audits approval.expired for each, once: a replica
// that loses the compare-and-set to another leaves the event to it. The
// retention loop calls it every retention.sweep_interval; the account's
// next order for those names does the same for one not swept yet. It
// returns how many it marked.
func (ra *RA) ExpireApprovals(ctx context.Context) (int, error) {
	now := ra.now()
	marked := 0
	for cursor := ""; ctx.Err() == nil; {
		page, err := ra.store.List(ctx, store.KindApproval, cursor, approvalSweepPage)
		if err != nil {
			return marked, storeDown(err)
		}
		for _, id := range page.IDs {
			r, err := ra.store.GetApproval(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return marked, storeDown(err)
			}
			why := approvalExpiry(r, now)
			if why == "" {
				continue
			}
			r.Status, r.Reason = store.ApprovalExpired, why
			switch err := ra.store.UpdateApproval(ctx, r); {
			case err == nil:
				ra.auditApproval(ctx, audit.ApprovalExpired, r, "")
				marked++
			case !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound):
				return marked, storeDown(err)
			}
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	return marked, nil
}

// ApprovalStatus is r's status at now: expired once its time ran out
// (approvalExpiry), though the stored record turns so only at the next
// sweep (ExpireApprovals) or at the account's next order.
func ApprovalStatus(r *store.ApprovalRequest, now time.Time) string {
	if approvalExpiry(r, now) != "" {
		return store.ApprovalExpired
	}
	return r.Status
}

// withExpiry is r with its status at the RA's clock (ApprovalStatus).
func (ra *RA) withExpiry(r *store.ApprovalRequest) *store.ApprovalRequest {
	r.Status = ApprovalStatus(r, ra.now())
	return r
}
