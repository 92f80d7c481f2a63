package ra

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/core"
	"github.com/acmebridge/acmebridge/policy"
	"github.com/acmebridge/acmebridge/store"
)

// maxBackdate is how far in the past newOrder's notBefore may lie: enough
// for a client's clock skew, not for a certificate claiming validity long
// before its issuance. The upstreams' own backdating of a default
// notBefore (the local CA's minute) is not the client's request and is not
// limited by it.
const maxBackdate = time.Hour

func identValues(ids []store.Identifier) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.Value
	}
	return out
}

// route asks the policy for a decision on an account's order.
// The account's directory decides, with its own policy.
func (ra *RA) route(acct *store.Account, ids []store.Identifier, profile string) (*policy.Decision, error) {
	d, err := ra.accountDir(acct)
	if err != nil {
		return nil, err
	}
	req := policy.Request{EABKey: acct.EABKeyID, Group: acct.Group, Profile: profile}
	req.Identifiers = ids
	return d.router.Route(req)
}

// accountDir is the directory an account was made in, as the setup in
// force runs it; an account whose directory a reload removed may order
// nothing more.
func (ra *RA) accountDir(acct *store.Account) (*Directory, error) {
	if d, ok := ra.current().dirs[acct.Directory]; ok {
		return d, nil
	}
	return nil, acmeerr.New(acmeerr.Unauthorized, "the directory %s of this account is no longer served", acmeerr.Quote(acct.Directory))
}

// accountAllows enforces the identifier allow-list an account inherited
// from its EAB key (docs/policy.md: a binding can limit the account's
// identifiers).
func accountAllows(acct *store.Account, ids []store.Identifier) error {
	if len(acct.Allow) == 0 {
		return nil
	}
	var subs []*acmeerr.Error
	for _, id := range ids {
		if !patternsAllow(acct.Allow, id) {
			subs = append(subs, acmeerr.New(acmeerr.RejectedIdentifier, "this account may not order %s", id.Value).For(id.Type, id.Value))
		}
	}
	if len(subs) > 0 {
		return &acmeerr.Error{Kind: acmeerr.RejectedIdentifier, Detail: "the account's external account binding does not allow some identifiers", Sub: subs}
	}
	return nil
}

// patternsAllow matches an identifier against domain patterns and CIDRs.
func patternsAllow(patterns []string, id store.Identifier) bool {
	for _, p := range patterns {
		if id.Type == "ip" {
			if pfx, err := netip.ParsePrefix(p); err == nil {
				if a, err := netip.ParseAddr(id.Value); err == nil && pfx.Contains(a) {
					return true
				}
			}
			continue
		}
		if policy.MatchDomain(p, id.Value) {
			return true
		}
	}
	return false
}

// newAuthz makes a pending authorization with one challenge of each type the
// identifier allows (§7.1.4; wildcards only by dns-01, §7.1.3; IP addresses
// not by dns-01, RFC 8738 §7).
func (ra *RA) newAuthz(accountID string, id store.Identifier, allowed []string, now time.Time) *store.Authorization {
	a := &store.Authorization{ID: core.RandomID(), AccountID: accountID, Status: store.StatusPending,
		Identifier: id, Expires: now.Add(ra.conf().Orders.AuthzLifetime.D())}
	base, wildcard := trimWildcard(id)
	if wildcard {
		a.Identifier, a.Wildcard = base, true
	}
	types := slices.DeleteFunc(slices.Clone(core.ChallengesFor(id, wildcard)), func(t string) bool { return !slices.Contains(allowed, t) })
	for _, t := range types {
		// §8: "token ... MUST have at least 128 bits of entropy".
		a.Challenges = append(a.Challenges, store.Challenge{ID: core.RandomID()[:12], Type: t, Status: store.StatusPending, Token: core.RandomID()})
	}
	return a
}

func trimWildcard(id store.Identifier) (store.Identifier, bool) {
	if id.Type == "dns" && len(id.Value) > 2 && id.Value[:2] == "*." {
		return store.Identifier{Type: "dns", Value: id.Value[2:]}, true
	}
	return id, false
}

// loadOrder fetches an order for its account and brings its state up to
// date (§7.1.6).
func (ra *RA) loadOrder(ctx context.Context, id string, acct *store.Account) (*store.Order, error) {
	o, _, err := ra.loadOrderWith(ctx, id, acct, true)
	return o, err
}

// loadOrderWith is loadOrder; storeReady false (finalize) leaves a pending
// order that is now ready unstored as ready: the caller stores it next, in
// state processing, compare-and-set on the version read here, so the
// order takes one write instead of two. unstored says it did so.
func (ra *RA) loadOrderWith(ctx context.Context, id string, acct *store.Account, storeReady bool) (o *store.Order, unstored bool, err error) {
	o, err = ra.readOrder(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, acmeerr.New(acmeerr.NotFound, "no such order")
	}
	if err != nil {
		return nil, false, storeDown(err)
	}
	if o.AccountID != acct.ID {
		return nil, false, acmeerr.New(acmeerr.Unauthorized, "the order belongs to another account")
	}
	was := o.Status
	if o, err = ra.refreshOrderWith(ctx, o, storeReady); err != nil {
		return nil, false, err
	}
	return o, !storeReady && was == store.StatusPending && o.Status == store.StatusReady, nil
}

// refreshOrder applies the transitions the order's authorizations and
// expiry imply (RFC 8555 §7.1.6): pending → ready when every authorization
// is valid; pending/ready → invalid when one is invalid, deactivated,
// expired or revoked, or when the order expired. A ready order is checked
// again each time it is read, finalize included: an authorization the
// client deactivated (§7.5.2) or that expired since makes it invalid.
func (ra *RA) refreshOrder(ctx context.Context, o *store.Order) (*store.Order, error) {
	return ra.refreshOrderWith(ctx, o, true)
}

// refreshOrderWith is refreshOrder; storeReady false leaves a pending →
// ready transition in o only (loadOrder).
func (ra *RA) refreshOrderWith(ctx context.Context, o *store.Order, storeReady bool) (*store.Order, error) {
	for attempt := 0; attempt < 3; attempt++ {
		if o.Status != store.StatusPending && o.Status != store.StatusReady {
			return o, nil
		}
		next, prob, err := ra.orderState(ctx, o)
		if err != nil {
			return nil, err
		}
		if next == o.Status {
			return o, nil
		}
		if next == store.StatusReady && !storeReady {
			o.Status, o.Error = next, nil
			return o, nil
		}
		o.Status, o.Error = next, prob
		err = ra.store.UpdateOrder(ctx, o)
		if err == nil {
			ra.metrics.Order(o.Directory, next)
			if next == store.StatusInvalid {
				ra.record(ctx, audit.Event{Event: audit.OrderInvalid, Account: o.AccountID, Order: o.ID, Names: identValues(o.Identifiers),
					Rule: o.Rule, Problem: problemType(prob), Detail: prob.Detail, Directory: o.Directory})
			}
			return o, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, storeDown(err)
		}
		if o, err = ra.store.GetOrder(ctx, o.ID); err != nil {
			return nil, storeDown(err)
		}
	}
	return o, nil
}

// orderState is the state a pending or ready order is in now, from its
// expiry and its authorizations' states at this moment (RFC 8555 §7.1.6:
// the order is "invalid" once an authorization is, a deactivated or
// expired one included; "ready" only while every one is "valid"). An
// authorization that cannot be read is an error, never a pass.
func (ra *RA) orderState(ctx context.Context, o *store.Order) (string, *store.Problem, error) {
	now := ra.now()
	if now.After(o.Expires) {
		return store.StatusInvalid, storedProblem(acmeerr.New(acmeerr.Malformed, "order expired")), nil
	}
	allValid := true
	for _, id := range o.AuthzIDs {
		a, err := ra.readAuthz(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return store.StatusInvalid, storedProblem(acmeerr.New(acmeerr.Unauthorized, "authorization %s no longer exists", id)), nil
		}
		if err != nil {
			return "", nil, storeDown(err)
		}
		noteStateAuthz(ctx, a)
		switch st := AuthzStatus(a, now); st {
		case store.StatusValid:
		case store.StatusPending:
			allValid = false
		default:
			return store.StatusInvalid, storedProblem(acmeerr.New(acmeerr.Unauthorized, "authorization for %s is %s", a.Identifier.Value, st)), nil
		}
	}
	if allValid {
		return store.StatusReady, nil, nil
	}
	// A ready order cannot go back to pending: its authorizations were
	// all valid, and a valid authorization only becomes deactivated or
	// expired (handled above).
	return o.Status, nil, nil
}

// NewOrderRequest is a newOrder payload (RFC 8555 §7.4; "profile" from
// draft-ietf-acme-profiles, "replaces" from RFC 9773 §5).
type NewOrderRequest struct {
	Identifiers         []store.Identifier
	NotBefore, NotAfter *time.Time
	Profile             string
	Replaces            string
}

// NewOrder creates an order and its authorizations (RFC 8555 §7.4) for an
// account whose request verified: identifiers normalised, the account's
// EAB grants as they are now, validity, profile and replacement checked,
// the policy's route decided and stored on the order, authorizations
// reused or created, rate limits spent. A refusal is audited.
func (ra *RA) NewOrder(ctx context.Context, acct *store.Account, req NewOrderRequest) (*store.Order, error) {
	owner := acct
	idents, err := NormalizeIdentifiers(req.Identifiers, ra.conf().Orders.MaxIdentifiers)
	if err != nil {
		return nil, err
	}
	// The account with the grants its EAB key gives now (eab.go).
	acct, err = ra.eabGrants(ctx, owner)
	if err != nil {
		return nil, ra.refuse(ctx, audit.OrderRefused, owner.ID, "", idents, err)
	}
	// Zero times are treated as absent (the step CLI sends
	// 0001-01-01T00:00:00Z for "no preference").
	var nb, na time.Time
	if req.NotBefore != nil {
		nb = *req.NotBefore
	}
	if req.NotAfter != nil {
		na = *req.NotAfter
	}
	if !nb.IsZero() || !na.IsZero() {
		// §7.4: "If the server is unwilling to issue certificates with
		// the requested validity ... it MUST return an error".
		switch {
		case !ra.conf().Orders.AllowValidityRequest:
			return nil, acmeerr.New(acmeerr.Malformed, "this server does not accept notBefore/notAfter")
		case !nb.IsZero() && !na.IsZero() && !na.After(nb):
			return nil, acmeerr.New(acmeerr.Malformed, "notAfter must be after notBefore")
		case !na.IsZero() && !na.After(ra.now()):
			return nil, acmeerr.New(acmeerr.Malformed, "notAfter is in the past")
		case !nb.IsZero() && nb.Before(ra.now().Add(-maxBackdate)):
			// A certificate must not claim to be valid long before it
			// was issued (and before control was shown).
			return nil, acmeerr.New(acmeerr.Malformed, "notBefore %s lies more than %s in the past", nb.UTC().Format(time.RFC3339), maxBackdate)
		}
	}
	d, err := ra.accountDir(owner)
	if err != nil {
		return nil, err
	}
	if req.Profile != "" {
		if _, ok := d.Config.Orders.Profiles[req.Profile]; !ok {
			return nil, acmeerr.New(acmeerr.InvalidProfile, "profile %s is not offered (see the directory's meta.profiles)", acmeerr.Quote(req.Profile))
		}
	}
	var replaced *store.Certificate
	if req.Replaces != "" {
		if replaced, err = ra.checkReplaces(ctx, acct, req.Replaces, idents); err != nil {
			return nil, err
		}
	}
	if err := accountAllows(acct, idents); err != nil {
		return nil, ra.refuse(ctx, audit.OrderRefused, acct.ID, "", idents, err)
	}
	dec, err := ra.route(acct, idents, req.Profile)
	if err != nil {
		return nil, ra.refuse(ctx, audit.OrderRefused, acct.ID, "", idents, err)
	}
	// A rule requiring approval (approval.go) refuses until an
	// administrator approved the names for the account.
	if err := ra.checkApproval(ctx, acct, idents, dec, d.Config.Orders.ApprovalTTL.D()); err != nil {
		return nil, ra.refuse(ctx, audit.OrderRefused, acct.ID, "", idents, err)
	}
	now := ra.now()
	o := &store.Order{
		ID: core.RandomID(), AccountID: acct.ID, Status: store.StatusPending, Identifiers: idents,
		NotBefore: nb, NotAfter: na, Expires: now.Add(ra.conf().Orders.OrderLifetime.D()), Profile: req.Profile,
		Rule: dec.Rule, Upstreams: dec.Upstreams, UpstreamProfile: dec.UpstreamProfile, MaxValidity: dec.MaxValidity,
		CreatedAt: now, Directory: acct.Directory,
	}
	if replaced != nil {
		o.Replaces = replaced.ID
	}
	var authzs []*store.Authorization
	pending := 0
	for _, id := range idents {
		if dec.Delegated {
			// Delegated validation (delegate.go): a fresh valid
			// authorization per order, never one reused.
			a := ra.delegatedAuthz(acct.ID, id, dec.Rule, now)
			a.Directory = acct.Directory
			if a.Expires.After(o.Expires) {
				a.Expires = o.Expires
			}
			authzs = append(authzs, a)
			o.AuthzIDs = append(o.AuthzIDs, a.ID)
			o.Delegated = true
			continue
		}
		if reused := ra.reusableAuthz(ctx, acct.ID, id, dec.Challenges); reused != "" {
			o.AuthzIDs = append(o.AuthzIDs, reused)
			continue
		}
		pending++
		a := ra.newAuthz(acct.ID, id, dec.Challenges, now)
		a.Directory = acct.Directory
		if len(a.Challenges) == 0 {
			return nil, acmeerr.New(acmeerr.RejectedIdentifier, "rule %s allows no challenge type that can validate %s", dec.Rule, id.Value).For(id.Type, id.Value)
		}
		if a.Expires.After(o.Expires) {
			a.Expires = o.Expires
		}
		authzs = append(authzs, a)
		o.AuthzIDs = append(o.AuthzIDs, a.ID)
	}
	spent, err := d.lim.newOrder(ctx, acct, idents, pending)
	if err != nil {
		return nil, ra.refuse(ctx, audit.OrderRefused, acct.ID, "", idents, err)
	}
	if err := ra.store.CreateOrder(ctx, o, authzs); err != nil {
		d.lim.refund(ctx, spent)
		return nil, storeErr(err, "order")
	}
	ra.log.Info("order created", "order", o.ID, "account", o.AccountID, "rule", o.Rule, "upstreams", o.Upstreams, "identifiers", identValues(idents))
	ra.record(ctx, audit.Event{Event: audit.OrderCreated, Account: o.AccountID, EABKey: owner.EABKeyID, Order: o.ID,
		Names: identValues(idents), Rule: o.Rule, Upstreams: o.Upstreams})
	ra.metrics.Order(o.Directory, store.StatusPending)
	if o.Delegated {
		ra.auditDelegated(ctx, acct, o, authzs)
		// §7.1.6: every authorization is valid, so the order is "ready".
		if ready, err := ra.refreshOrder(ctx, o); err == nil {
			o = ready
		}
	}
	if replaced != nil {
		// Best effort: the replacement is on the order either way; the mark
		// on the certificate makes a second "replaces" of it alreadyReplaced.
		replaced.ReplacedBy = o.ID
		if err := ra.store.UpdateCertificate(ctx, replaced); err != nil {
			ra.log.Warn("replaces: mark certificate", "certificate", replaced.ID, "err", err)
		}
	}
	return o, nil
}

// refuse audits a refusal (with its problem type and detail) and returns
// it.
func (ra *RA) refuse(ctx context.Context, event, account, order string, ids []store.Identifier, err error) error {
	p := acmeerr.ToProblem(err, "")
	detail := p.Detail
	for _, sp := range p.Subproblems {
		if sp.Identifier != nil {
			detail += "; " + sp.Identifier.Value + ": " + sp.Detail
		}
	}
	ra.record(ctx, audit.Event{Event: event, Account: account, Order: order, Names: identValues(ids),
		Rule: policy.RefusingRule(err), Problem: strings.TrimPrefix(p.Type, core.ErrorNS), Detail: detail})
	return err
}

// Order reads an order of the account and brings its state up to date
// (RFC 8555 §7.1.6).
func (ra *RA) Order(ctx context.Context, acct *store.Account, id string) (*store.Order, error) {
	return ra.loadOrder(ctx, id, acct)
}

// OrdersPageSize is the number of orders per page of an orders list.
const OrdersPageSize = 50

// AccountOrders is one page of an account's orders (RFC 8555 §7.1.2.1).
func (ra *RA) AccountOrders(ctx context.Context, acct *store.Account, cursor string) (store.Page, error) {
	page, err := ra.store.ListOrders(ctx, acct.ID, cursor, OrdersPageSize)
	if errors.Is(err, store.ErrNotFound) {
		return store.Page{}, acmeerr.New(acmeerr.Malformed, "unknown orders cursor")
	}
	if err != nil {
		return store.Page{}, storeDown(err)
	}
	return page, nil
}
