package proxy

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/mail"
	"strings"

	"github.com/gorilla/mux"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/store"
)

// maxContacts caps the contacts of one account.
const maxContacts = 10

// accountJSON is the account object (RFC 8555 §7.1.2).
type accountJSON struct {
	Status               string   `json:"status"`
	Contact              []string `json:"contact,omitempty"`
	TermsOfServiceAgreed bool     `json:"termsOfServiceAgreed,omitempty"`
	Orders               string   `json:"orders"`
}

func (s *Server) accountJSON(a *store.Account) accountJSON {
	return accountJSON{Status: a.Status, Contact: a.Contact, TermsOfServiceAgreed: a.TermsOfServiceAgreed,
		Orders: s.accountURL(a.ID) + "/orders"}
}

// newAccountReq is the newAccount payload (§7.3).
type newAccountReq struct {
	Contact                []string        `json:"contact"`
	TermsOfServiceAgreed   bool            `json:"termsOfServiceAgreed"`
	OnlyReturnExisting     bool            `json:"onlyReturnExisting"`
	ExternalAccountBinding json.RawMessage `json:"externalAccountBinding"`
}

// handleNewAccount creates or finds an account (RFC 8555 §7.3).
func (s *Server) handleNewAccount(w http.ResponseWriter, r *http.Request) {
	v, err := s.verifyPOST(r, byJWK)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	var req newAccountReq
	if err := decodePayload(v.Payload, &req); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	tp, err := thumbprint(v.JWK)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	// §7.3.1: "If the server already has an account registered with the
	// provided account key, then it MUST return a response with status
	// code 200 (OK) and provide the URL of that account in the Location
	// header field."
	existing, err := s.store.GetAccountByKey(r.Context(), tp)
	switch {
	case err == nil:
		// §7.3.6: a request from a deactivated account is a 401
		// unauthorized, newAccount with its key included.
		if existing.Status != store.StatusValid {
			s.writeProblem(w, r, acmeerr.New(acmeerr.AccountNotValid, "the account of this key is %s", existing.Status))
			return
		}
		w.Header().Set("Location", s.accountURL(existing.ID))
		writeJSON(w, http.StatusOK, s.accountJSON(existing))
		return
	case !errors.Is(err, store.ErrNotFound):
		s.writeProblem(w, r, storeDown(err))
		return
	}
	// §7.3.1: "If this field is present with the value "true", then the
	// server MUST NOT create a new account if one does not already exist.
	// ... return an error response with status code 400 (Bad Request) and
	// type "urn:ietf:params:acme:error:accountDoesNotExist"".
	if req.OnlyReturnExisting {
		s.writeProblem(w, r, acmeerr.New(acmeerr.AccountDoesNotExist, "no account exists with this key"))
		return
	}
	if err := s.checkContacts(req.Contact); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	// §7.3: "If the server wishes to require the client to agree to terms
	// under which the ACME service is to be used, it MUST indicate the URL
	// where such terms can be accessed in the "termsOfService" subfield".
	if s.cfg.Accounts.RequireTermsAgreement && s.cfg.Server.TermsOfService != "" && !req.TermsOfServiceAgreed {
		s.writeProblem(w, r, acmeerr.New(acmeerr.Malformed, "you must agree to the terms of service at %s", s.cfg.Server.TermsOfService))
		return
	}
	jwkJSON, err := v.JWK.MarshalJSON()
	if err != nil {
		s.writeProblem(w, r, acmeerr.Wrap(acmeerr.BadPublicKey, err, "cannot encode the key"))
		return
	}
	acct := &store.Account{
		ID:                   randomID(),
		Status:               store.StatusValid,
		Contact:              req.Contact,
		JWK:                  jwkJSON,
		KeyThumbprint:        tp,
		TermsOfServiceAgreed: req.TermsOfServiceAgreed,
		CreatedAt:            s.now(),
		CreatedFrom:          s.clientIP(r),
	}
	eab, err := s.checkEAB(r, req.ExternalAccountBinding, v)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	kid := ""
	if eab != nil {
		kid = eab.ID
		acct.EABKeyID, acct.Group, acct.Allow = eab.ID, eab.Group, eab.Allow
	}
	spent, err := s.limits.newAccount(r.Context(), acct.CreatedFrom, acct.Group)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if err := s.store.CreateAccount(r.Context(), acct); err != nil {
		s.limits.refund(r.Context(), spent)
		switch {
		case errors.Is(err, store.ErrConflict) && kid != "":
			s.writeProblem(w, r, acmeerr.New(acmeerr.Unauthorized, "external account key %q is already bound to an account", kid))
		case errors.Is(err, store.ErrConflict):
			// A concurrent newAccount with the same key won; answer as
			// for an existing account.
			if a, gerr := s.store.GetAccountByKey(r.Context(), tp); gerr == nil {
				w.Header().Set("Location", s.accountURL(a.ID))
				writeJSON(w, http.StatusOK, s.accountJSON(a))
				return
			}
			s.writeProblem(w, r, storeDown(err))
		case errors.Is(err, store.ErrNotFound):
			s.writeProblem(w, r, acmeerr.New(acmeerr.Unauthorized, "unknown external account key %q", kid))
		default:
			s.writeProblem(w, r, storeDown(err))
		}
		return
	}
	s.log.Info("account created", "account", acct.ID, "eab_kid", kid, "remote", acct.CreatedFrom)
	s.record(r, audit.Event{Event: audit.AccountCreated, Account: acct.ID, EABKey: kid, Contacts: acct.Contact})
	if kid != "" {
		s.record(r, audit.Event{Event: audit.EABBound, Account: acct.ID, EABKey: kid})
	}
	w.Header().Set("Location", s.accountURL(acct.ID))
	writeJSON(w, http.StatusCreated, s.accountJSON(acct))
}

// checkContacts validates contact URLs (§7.3: "the server MUST ... return an
// error of type unsupportedContact" for schemes it does not support and
// invalidContact for invalid ones).
func (s *Server) checkContacts(contacts []string) error {
	if s.cfg.Accounts.RequireContact && len(contacts) == 0 {
		return acmeerr.New(acmeerr.InvalidContact, "a contact is required")
	}
	if len(contacts) > maxContacts {
		return acmeerr.New(acmeerr.InvalidContact, "at most %d contacts", maxContacts)
	}
	for _, c := range contacts {
		addr, ok := strings.CutPrefix(c, "mailto:")
		if !ok {
			return acmeerr.New(acmeerr.UnsupportedContact, "contact %s: only mailto: is supported", quote(c))
		}
		// §7.3: "mailto" URLs with hfields or several addresses are refused.
		if strings.ContainsAny(addr, "?,; \t") || len(addr) > 254 {
			return acmeerr.New(acmeerr.InvalidContact, "contact %s is not a single email address", quote(c))
		}
		a, err := mail.ParseAddress(addr)
		if err != nil || a.Address != addr || !strings.Contains(addr[strings.LastIndex(addr, "@")+1:], ".") {
			return acmeerr.New(acmeerr.InvalidContact, "contact %s is not a valid email address", quote(c))
		}
	}
	return nil
}

// accountUpdateReq is the payload of a POST to an account URL (§7.3.2,
// §7.3.6).
type accountUpdateReq struct {
	Contact *[]string `json:"contact"`
	Status  string    `json:"status"`
}

// handleAccount serves POST-as-GET of an account, contact updates and
// deactivation (RFC 8555 §7.3.2, §7.3.6).
func (s *Server) handleAccount(w http.ResponseWriter, r *http.Request) {
	v, err := s.verifyPOST(r, byKID)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	acct := v.Account
	if acct.ID != mux.Vars(r)["id"] {
		s.writeProblem(w, r, acmeerr.New(acmeerr.Unauthorized, "the request is signed by another account"))
		return
	}
	if v.postAsGet() {
		writeJSON(w, http.StatusOK, s.accountJSON(acct))
		return
	}
	var req accountUpdateReq
	if err := decodePayload(v.Payload, &req); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	switch req.Status {
	case "":
	case store.StatusDeactivated:
		// §7.3.6: "a client can deactivate an account by posting a signed
		// update to the account URL with a status field of "deactivated"".
		acct.Status = store.StatusDeactivated
	default:
		s.writeProblem(w, r, acmeerr.New(acmeerr.Malformed, "status may only be changed to deactivated"))
		return
	}
	if req.Contact != nil {
		if err := s.checkContacts(*req.Contact); err != nil {
			s.writeProblem(w, r, err)
			return
		}
		acct.Contact = *req.Contact
	}
	if err := s.store.UpdateAccount(r.Context(), acct); err != nil {
		s.writeProblem(w, r, storeErr(err, "account"))
		return
	}
	if acct.Status == store.StatusDeactivated {
		s.log.Info("account deactivated", "account", acct.ID)
		s.record(r, audit.Event{Event: audit.AccountDeactivated, Account: acct.ID})
	} else {
		s.record(r, audit.Event{Event: audit.AccountUpdated, Account: acct.ID, Contacts: acct.Contact})
	}
	writeJSON(w, http.StatusOK, s.accountJSON(acct))
}

// storeErr classifies a store error on a write: a lost compare-and-set is a
// conflict the client may retry; anything else is the store failing.
func storeErr(err error, what string) error {
	switch {
	case errors.Is(err, store.ErrConflict):
		return acmeerr.Wrap(acmeerr.Conflict, err, "%s was changed concurrently; retry", what)
	case errors.Is(err, store.ErrNotFound):
		return acmeerr.Wrap(acmeerr.NotFound, err, "%s not found", what)
	default:
		return storeDown(err)
	}
}

// clientIP is the peer address, or the first X-Forwarded-For hop when the
// peer is a trusted proxy.
func (s *Server) clientIP(r *http.Request) string {
	return clientAddr(r, s.cfg.Server.TrustedProxies)
}
