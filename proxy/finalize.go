package proxy

import (
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/ra"
	"github.com/acmebridge/acmebridge/store"
)

// finalizeReq is the finalize payload (§7.4).
type finalizeReq struct {
	CSR string `json:"csr"`
}

// handleFinalize checks the CSR against the order and policy, queues the
// issuance job, and waits a short while for a fast upstream (RFC 8555 §7.4).
func (s *Server) handleFinalize(w http.ResponseWriter, r *http.Request) {
	v, err := s.verifyPOST(r, byKID)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	o, err := s.loadOrder(r, mux.Vars(r)["id"], v.Account)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	// §7.4: "A request to finalize an order will result in error if the
	// order is not in the "ready" state. In such cases, the server MUST
	// return a 403 (Forbidden) error with a problem document of type
	// "orderNotReady"."
	// loadOrder re-checked every authorization of the order at this moment:
	// one deactivated or expired since made the order invalid (§7.1.6).
	if o.Status != store.StatusReady {
		s.writeProblem(w, r, acmeerr.New(acmeerr.OrderNotReady, "order is %s, not ready", o.Status))
		return
	}
	// The account with the grants its EAB key gives now (proxy/eab.go): a
	// key revoked since newOrder takes them away.
	acct, err := s.eabGrants(r.Context(), v.Account)
	if err != nil {
		s.refuse(w, r, audit.FinalizeRefused, o.AccountID, o.ID, o.Identifiers, err)
		return
	}
	var req finalizeReq
	if err := decodePayload(v.Payload, &req); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	der, err := decodeB64(req.CSR)
	if err != nil || len(der) == 0 {
		s.writeProblem(w, r, acmeerr.New(acmeerr.BadCSR, "csr is not base64url DER"))
		return
	}
	// What the certificate may hold is decided in ra, from the order and
	// the CSR (design.md §5).
	content, err := ra.CheckCSR(der, o.Identifiers, v.JWK.Key)
	if err != nil {
		s.refuse(w, r, audit.FinalizeRefused, o.AccountID, o.ID, o.Identifiers, err)
		return
	}
	// Policy is checked again at finalize: the configuration may have
	// changed since newOrder (design.md §5). The route taken at newOrder
	// stays: the order goes to the upstreams it was given.
	dec, err := s.route(acct, o.Identifiers, o.Profile)
	if err != nil {
		s.refuse(w, r, audit.FinalizeRefused, o.AccountID, o.ID, o.Identifiers, err)
		return
	}
	if err := ra.KeyAllowed(content.CSR.PublicKey, dec); err != nil {
		s.refuse(w, r, audit.FinalizeRefused, o.AccountID, o.ID, o.Identifiers, err)
		return
	}
	if dec.MaxValidity > 0 && (o.MaxValidity == 0 || dec.MaxValidity < o.MaxValidity) {
		o.MaxValidity = dec.MaxValidity
	}
	// CAA, last, just before issuance (proxy/caa.go): the route keeps the
	// upstreams CAA lets issue; none left is a caa (or dns) problem.
	ups, err := s.caaRoute(r.Context(), o)
	if err != nil {
		if k := acmeerr.KindOf(err); k == acmeerr.CAA || k == acmeerr.DNS {
			s.refuse(w, r, audit.FinalizeRefused, o.AccountID, o.ID, o.Identifiers, err)
		} else {
			s.writeProblem(w, r, err)
		}
		return
	}
	spent, err := s.limits.finalize(r.Context(), acct, o.Identifiers)
	if err != nil {
		s.refuse(w, r, audit.FinalizeRefused, o.AccountID, o.ID, o.Identifiers, err)
		return
	}
	o.Upstreams, o.CAACheckedAt = ups, s.now()
	o.Status, o.CSR = store.StatusProcessing, der
	wait := s.subscribe("order:" + o.ID)
	defer s.unsubscribe("order:"+o.ID, wait)
	if err := s.store.EnqueueJob(r.Context(), &store.Job{OrderID: o.ID, NotBefore: s.now()}, o); err != nil {
		s.limits.refund(r.Context(), spent)
		if errors.Is(err, store.ErrConflict) {
			// Another finalize won the race (§7.1.6 allows one).
			s.writeProblem(w, r, acmeerr.New(acmeerr.OrderNotReady, "order is already being finalized"))
			return
		}
		s.writeProblem(w, r, storeDown(err))
		return
	}
	s.log.Info("order finalizing", "order", o.ID, "account", o.AccountID, "rule", o.Rule, "upstreams", o.Upstreams)
	s.metrics.order(store.StatusProcessing)
	s.kickWorker()
	// ended is the order as this process's worker stored it, when the
	// worker ended it here (val is read only once done is closed).
	var ended *store.Order
	select {
	case <-wait.done:
		ended, _ = wait.val.(*store.Order)
	case <-time.After(s.cfg.Orders.FinalizeWait.D()):
	case <-r.Context().Done():
	}
	if ended != nil {
		o = ended
	} else if cur, err := s.store.GetOrder(r.Context(), o.ID); err == nil {
		o = cur
	}
	s.writeOrder(w, o, http.StatusOK)
}
