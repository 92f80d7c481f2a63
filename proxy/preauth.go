package proxy

import (
	"errors"
	"net/http"
	"slices"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/store"
)

func (s *Server) newAuthzURL() string {
	if !s.cfg.Orders.PreAuthorization {
		return ""
	}
	return s.base + pathNewAuthz
}

// reusableAuthz returns the ID of the account's valid authorization for
// the identifier, when reuse is configured, it was validated within
// orders.valid_authz_reuse by a challenge type the rule still allows, and
// it outlives the reuse check ("" otherwise). RFC 8555 §7.1.3 lets an
// order list authorizations the account already holds.
func (s *Server) reusableAuthz(r *http.Request, accountID string, id store.Identifier, allowed []string) string {
	window := s.cfg.Orders.ValidAuthzReuse.D()
	if window <= 0 {
		return ""
	}
	base, wildcard := trimWildcard(id)
	now := s.now()
	a, err := s.store.FindValidAuthz(r.Context(), accountID, base, wildcard, now)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("authorization reuse: lookup", "err", err)
		}
		return ""
	}
	for _, c := range a.Challenges {
		if c.Status == store.StatusValid && now.Sub(c.Validated) <= window && slices.Contains(allowed, c.Type) {
			return a.ID
		}
	}
	return ""
}

// newAuthzReq is the newAuthz payload (§7.4.1).
type newAuthzReq struct {
	Identifier store.Identifier `json:"identifier"`
}

// handleNewAuthz creates an authorization ahead of an order (RFC 8555
// §7.4.1, offered when orders.pre_authorization is set).
func (s *Server) handleNewAuthz(w http.ResponseWriter, r *http.Request) {
	v, err := s.verifyPOST(r, byKID)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	var req newAuthzReq
	if err := decodePayload(v.Payload, &req); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	ids, err := normalizeIdentifiers([]store.Identifier{req.Identifier}, 1)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	id := ids[0]
	// §7.4.1: "pre-authorization cannot be used to authorize issuance of
	// certificates containing wildcard domain names".
	if _, wildcard := trimWildcard(id); wildcard {
		s.writeProblem(w, r, acmeerr.New(acmeerr.RejectedIdentifier, "a wildcard cannot be pre-authorized; order it").For(id.Type, id.Value))
		return
	}
	// The account with the grants its EAB key gives now (proxy/eab.go).
	acct, err := s.eabGrants(r.Context(), v.Account)
	if err != nil {
		s.refuse(w, r, audit.OrderRefused, v.Account.ID, "", ids, err)
		return
	}
	if err := accountAllows(acct, ids); err != nil {
		s.refuse(w, r, audit.OrderRefused, v.Account.ID, "", ids, err)
		return
	}
	dec, err := s.route(acct, ids, "")
	if err != nil {
		s.refuse(w, r, audit.OrderRefused, v.Account.ID, "", ids, err)
		return
	}
	a := s.newAuthz(v.Account.ID, id, dec.Challenges, s.now())
	if len(a.Challenges) == 0 {
		s.writeProblem(w, r, acmeerr.New(acmeerr.RejectedIdentifier, "rule %s allows no challenge type that can validate %s", dec.Rule, id.Value).For(id.Type, id.Value))
		return
	}
	spent, err := s.limits.newAuthz(r.Context(), acct, id)
	if err != nil {
		s.refuse(w, r, audit.OrderRefused, v.Account.ID, "", ids, err)
		return
	}
	if err := s.store.CreateAuthz(r.Context(), a); err != nil {
		s.limits.refund(r.Context(), spent)
		s.writeProblem(w, r, storeErr(err, "authorization"))
		return
	}
	w.Header().Set("Location", s.authzURL(a.ID))
	writeJSON(w, http.StatusCreated, s.authzJSON(a))
}
