package proxy

import (
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/policy"
	"github.com/acmebridge/acmebridge/store"
)

// orderJSON is the order object (RFC 8555 §7.1.3).
type orderJSON struct {
	Status         string             `json:"status"`
	Expires        string             `json:"expires,omitempty"`
	Identifiers    []store.Identifier `json:"identifiers"`
	NotBefore      string             `json:"notBefore,omitempty"`
	NotAfter       string             `json:"notAfter,omitempty"`
	Error          *store.Problem     `json:"error,omitempty"`
	Authorizations []string           `json:"authorizations"`
	Finalize       string             `json:"finalize"`
	Certificate    string             `json:"certificate,omitempty"`
	Profile        string             `json:"profile,omitempty"`
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func (s *Server) orderJSON(o *store.Order) orderJSON {
	j := orderJSON{
		Status: o.Status, Expires: rfc3339(o.Expires), Identifiers: o.Identifiers,
		NotBefore: rfc3339(o.NotBefore), NotAfter: rfc3339(o.NotAfter), Error: o.Error,
		Finalize: s.orderURL(o.ID) + "/finalize", Profile: o.Profile,
	}
	for _, a := range o.AuthzIDs {
		j.Authorizations = append(j.Authorizations, s.authzURL(a))
	}
	if o.CertificateID != "" {
		j.Certificate = s.certURL(o.CertificateID)
	}
	return j
}

// maxBackdate is how far in the past newOrder's notBefore may lie: enough
// for a client's clock skew, not for a certificate claiming validity long
// before its issuance. The upstreams' own backdating of a default
// notBefore (the local CA's minute) is not the client's request and is not
// limited by it.
const maxBackdate = time.Hour

// newOrderReq is the newOrder payload (§7.4; "profile" from
// draft-ietf-acme-profiles).
type newOrderReq struct {
	Identifiers []store.Identifier `json:"identifiers"`
	NotBefore   *time.Time         `json:"notBefore"`
	NotAfter    *time.Time         `json:"notAfter"`
	Profile     string             `json:"profile"`
	Replaces    string             `json:"replaces"`
}

// handleNewOrder creates an order and its authorizations (RFC 8555 §7.4).
func (s *Server) handleNewOrder(w http.ResponseWriter, r *http.Request) {
	v, err := s.verifyPOST(r, byKID)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	var req newOrderReq
	if err := decodePayload(v.Payload, &req); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	idents, err := normalizeIdentifiers(req.Identifiers, s.cfg.Orders.MaxIdentifiers)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	// The account with the grants its EAB key gives now (proxy/eab.go).
	acct, err := s.eabGrants(r.Context(), v.Account)
	if err != nil {
		s.refuse(w, r, audit.OrderRefused, v.Account.ID, "", idents, err)
		return
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
		case !s.cfg.Orders.AllowValidityRequest:
			s.writeProblem(w, r, acmeerr.New(acmeerr.Malformed, "this server does not accept notBefore/notAfter"))
			return
		case !nb.IsZero() && !na.IsZero() && !na.After(nb):
			s.writeProblem(w, r, acmeerr.New(acmeerr.Malformed, "notAfter must be after notBefore"))
			return
		case !na.IsZero() && !na.After(s.now()):
			s.writeProblem(w, r, acmeerr.New(acmeerr.Malformed, "notAfter is in the past"))
			return
		case !nb.IsZero() && nb.Before(s.now().Add(-maxBackdate)):
			// A certificate must not claim to be valid long before it
			// was issued (and before control was shown).
			s.writeProblem(w, r, acmeerr.New(acmeerr.Malformed, "notBefore %s lies more than %s in the past", nb.UTC().Format(time.RFC3339), maxBackdate))
			return
		}
	}
	if req.Profile != "" {
		if _, ok := s.cfg.Orders.Profiles[req.Profile]; !ok {
			s.writeProblem(w, r, acmeerr.New(acmeerr.InvalidProfile, "profile %s is not offered (see the directory's meta.profiles)", quote(req.Profile)))
			return
		}
	}
	var replaced *store.Certificate
	if req.Replaces != "" {
		if replaced, err = s.checkReplaces(r, acct, req.Replaces, idents); err != nil {
			s.writeProblem(w, r, err)
			return
		}
	}
	if err := accountAllows(acct, idents); err != nil {
		s.refuse(w, r, audit.OrderRefused, acct.ID, "", idents, err)
		return
	}
	dec, err := s.route(acct, idents, req.Profile)
	if err != nil {
		s.refuse(w, r, audit.OrderRefused, acct.ID, "", idents, err)
		return
	}
	now := s.now()
	o := &store.Order{
		ID: randomID(), AccountID: acct.ID, Status: store.StatusPending, Identifiers: idents,
		NotBefore: nb, NotAfter: na, Expires: now.Add(s.cfg.Orders.OrderLifetime.D()), Profile: req.Profile,
		Rule: dec.Rule, Upstreams: dec.Upstreams, UpstreamProfile: dec.UpstreamProfile, MaxValidity: dec.MaxValidity,
		CreatedAt: now,
	}
	if replaced != nil {
		o.Replaces = replaced.ID
	}
	var authzs []*store.Authorization
	for _, id := range idents {
		if reused := s.reusableAuthz(r, acct.ID, id, dec.Challenges); reused != "" {
			o.AuthzIDs = append(o.AuthzIDs, reused)
			continue
		}
		a := s.newAuthz(acct.ID, id, dec.Challenges, now)
		if len(a.Challenges) == 0 {
			s.writeProblem(w, r, acmeerr.New(acmeerr.RejectedIdentifier, "rule %s allows no challenge type that can validate %s", dec.Rule, id.Value).For(id.Type, id.Value))
			return
		}
		if a.Expires.After(o.Expires) {
			a.Expires = o.Expires
		}
		authzs = append(authzs, a)
		o.AuthzIDs = append(o.AuthzIDs, a.ID)
	}
	spent, err := s.limits.newOrder(r.Context(), acct, idents, len(authzs))
	if err != nil {
		s.refuse(w, r, audit.OrderRefused, acct.ID, "", idents, err)
		return
	}
	if err := s.store.CreateOrder(r.Context(), o, authzs); err != nil {
		s.limits.refund(r.Context(), spent)
		s.writeProblem(w, r, storeErr(err, "order"))
		return
	}
	s.log.Info("order created", "order", o.ID, "account", o.AccountID, "rule", o.Rule, "upstreams", o.Upstreams, "identifiers", identValues(idents))
	s.record(r, audit.Event{Event: audit.OrderCreated, Account: o.AccountID, EABKey: v.Account.EABKeyID, Order: o.ID,
		Names: identValues(idents), Rule: o.Rule, Upstreams: o.Upstreams})
	s.metrics.order(store.StatusPending)
	if replaced != nil {
		// Best effort: the replacement is on the order either way; the mark
		// on the certificate makes a second "replaces" of it alreadyReplaced.
		replaced.ReplacedBy = o.ID
		if err := s.store.UpdateCertificate(r.Context(), replaced); err != nil {
			s.log.Warn("replaces: mark certificate", "certificate", replaced.ID, "err", err)
		}
	}
	w.Header().Set("Location", s.orderURL(o.ID))
	writeJSON(w, http.StatusCreated, s.orderJSON(o))
}

func identValues(ids []store.Identifier) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.Value
	}
	return out
}

// refuse audits a refusal (with its problem type and detail) and answers
// with the problem.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, event, account, order string, ids []store.Identifier, err error) {
	p := toProblem(err, requestID(r))
	detail := p.Detail
	for _, sp := range p.Subproblems {
		if sp.Identifier != nil {
			detail += "; " + sp.Identifier.Value + ": " + sp.Detail
		}
	}
	s.record(r, audit.Event{Event: event, Account: account, Order: order, Names: identValues(ids),
		Rule: policy.RefusingRule(err), Problem: strings.TrimPrefix(p.Type, errNS), Detail: detail})
	s.writeProblem(w, r, err)
}

// route asks the policy for a decision on an account's order.
func (s *Server) route(acct *store.Account, ids []store.Identifier, profile string) (*policy.Decision, error) {
	req := policy.Request{EABKey: acct.EABKeyID, Group: acct.Group, Profile: profile}
	for _, id := range ids {
		req.Identifiers = append(req.Identifiers, policy.Identifier{Type: id.Type, Value: id.Value})
	}
	return s.router.Route(req)
}

// accountAllows enforces the identifier allow-list an account inherited
// from its EAB key (design.md §5: "a binding can limit the account's
// identifiers").
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
func (s *Server) newAuthz(accountID string, id store.Identifier, allowed []string, now time.Time) *store.Authorization {
	a := &store.Authorization{ID: randomID(), AccountID: accountID, Status: store.StatusPending,
		Identifier: id, Expires: now.Add(s.cfg.Orders.AuthzLifetime.D())}
	types := []string{"http-01", "dns-01", "tls-alpn-01"}
	if base, ok := trimWildcard(id); ok {
		a.Identifier, a.Wildcard = base, true
		types = []string{"dns-01"}
	} else if id.Type == "ip" {
		types = []string{"http-01", "tls-alpn-01"}
	}
	types = slices.DeleteFunc(types, func(t string) bool { return !slices.Contains(allowed, t) })
	for _, t := range types {
		// §8: "token ... MUST have at least 128 bits of entropy".
		a.Challenges = append(a.Challenges, store.Challenge{ID: randomID()[:12], Type: t, Status: store.StatusPending, Token: randomID()})
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
func (s *Server) loadOrder(r *http.Request, id string, acct *store.Account) (*store.Order, error) {
	o, err := s.store.GetOrder(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, acmeerr.New(acmeerr.NotFound, "no such order")
	}
	if err != nil {
		return nil, storeDown(err)
	}
	if o.AccountID != acct.ID {
		return nil, acmeerr.New(acmeerr.Unauthorized, "the order belongs to another account")
	}
	return s.refreshOrder(r, o)
}

// refreshOrder applies the transitions the order's authorizations and
// expiry imply (RFC 8555 §7.1.6): pending → ready when every authorization
// is valid; pending/ready → invalid when one is invalid, deactivated,
// expired or revoked, or when the order expired. A ready order is checked
// again each time it is read, finalize included: an authorization the
// client deactivated (§7.5.2) or that expired since makes it invalid.
func (s *Server) refreshOrder(r *http.Request, o *store.Order) (*store.Order, error) {
	for attempt := 0; attempt < 3; attempt++ {
		if o.Status != store.StatusPending && o.Status != store.StatusReady {
			return o, nil
		}
		next, prob, err := s.orderState(r, o)
		if err != nil {
			return nil, err
		}
		if next == o.Status {
			return o, nil
		}
		o.Status, o.Error = next, prob
		err = s.store.UpdateOrder(r.Context(), o)
		if err == nil {
			s.metrics.order(next)
			if next == store.StatusInvalid {
				s.record(r, audit.Event{Event: audit.OrderInvalid, Account: o.AccountID, Order: o.ID, Names: identValues(o.Identifiers),
					Rule: o.Rule, Problem: problemType(prob), Detail: prob.Detail})
			}
			return o, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, storeDown(err)
		}
		if o, err = s.store.GetOrder(r.Context(), o.ID); err != nil {
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
func (s *Server) orderState(r *http.Request, o *store.Order) (string, *store.Problem, error) {
	now := s.now()
	if now.After(o.Expires) {
		return store.StatusInvalid, storedProblem(acmeerr.New(acmeerr.Malformed, "order expired")), nil
	}
	allValid := true
	for _, id := range o.AuthzIDs {
		a, err := s.store.GetAuthz(r.Context(), id)
		if errors.Is(err, store.ErrNotFound) {
			return store.StatusInvalid, storedProblem(acmeerr.New(acmeerr.Unauthorized, "authorization %s no longer exists", id)), nil
		}
		if err != nil {
			return "", nil, storeDown(err)
		}
		switch st := authzStatus(a, now); st {
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

// handleOrder serves POST-as-GET of an order (§7.4).
func (s *Server) handleOrder(w http.ResponseWriter, r *http.Request) {
	v, err := s.verifyPOST(r, byKID)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if !v.postAsGet() {
		s.writeProblem(w, r, acmeerr.New(acmeerr.Malformed, "an order is read with POST-as-GET (empty payload)"))
		return
	}
	o, err := s.loadOrder(r, mux.Vars(r)["id"], v.Account)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	s.writeOrder(w, o, http.StatusOK)
}

// writeOrder answers with the order; a processing order carries Retry-After
// (§7.4: "the server SHOULD include a Retry-After header field").
func (s *Server) writeOrder(w http.ResponseWriter, o *store.Order, status int) {
	if o.Status == store.StatusProcessing {
		w.Header().Set("Retry-After", strconv.Itoa(1))
	}
	w.Header().Set("Location", s.orderURL(o.ID))
	writeJSON(w, status, s.orderJSON(o))
}

// ordersPageSize is the number of orders per page of an orders list.
const ordersPageSize = 50

// handleAccountOrders lists an account's orders (RFC 8555 §7.1.2.1), in
// pages linked with Link rel="next".
func (s *Server) handleAccountOrders(w http.ResponseWriter, r *http.Request) {
	v, err := s.verifyPOST(r, byKID)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if v.Account.ID != mux.Vars(r)["id"] {
		s.writeProblem(w, r, acmeerr.New(acmeerr.Unauthorized, "the request is signed by another account"))
		return
	}
	if !v.postAsGet() {
		s.writeProblem(w, r, acmeerr.New(acmeerr.Malformed, "the orders list is read with POST-as-GET (empty payload)"))
		return
	}
	page, err := s.store.ListOrders(r.Context(), v.Account.ID, r.URL.Query().Get("cursor"), ordersPageSize)
	if errors.Is(err, store.ErrNotFound) {
		s.writeProblem(w, r, acmeerr.New(acmeerr.Malformed, "unknown orders cursor"))
		return
	}
	if err != nil {
		s.writeProblem(w, r, storeDown(err))
		return
	}
	urls := []string{}
	for _, id := range page.IDs {
		urls = append(urls, s.orderURL(id))
	}
	if page.Next != "" {
		w.Header().Add("Link", link(s.accountURL(v.Account.ID)+"/orders?cursor="+url.QueryEscape(page.Next), "next"))
	}
	writeJSON(w, http.StatusOK, map[string][]string{"orders": urls})
}
