package proxy

import (
	"encoding/json"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/ra"
	"github.com/acmebridge/acmebridge/store"
)

// accountJSON is the account object (RFC 8555 §7.1.2).
type accountJSON struct {
	Status               string   `json:"status"`
	Contact              []string `json:"contact,omitempty"`
	TermsOfServiceAgreed bool     `json:"termsOfServiceAgreed,omitempty"`
	Orders               string   `json:"orders"`
}

func (s *Server) accountJSON(a *store.Account) accountJSON {
	return accountJSON{Status: a.Status, Contact: a.Contact, TermsOfServiceAgreed: a.TermsOfServiceAgreed,
		Orders: s.accountURL(a.Directory, a.ID) + "/orders"}
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
	jwkJSON, err := v.JWK.MarshalJSON()
	if err != nil {
		s.writeProblem(w, r, acmeerr.Wrap(acmeerr.BadPublicKey, err, "cannot encode the key"))
		return
	}
	// The binding is read here, with the JWS; ra.NewAccount decides on it
	// and binds the key with the account's creation, so it binds once.
	eab, err := parseEAB(req.ExternalAccountBinding, v)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	acct, created, err := s.ra.NewAccount(s.ctx(r), ra.NewAccountRequest{JWK: jwkJSON, Thumbprint: tp,
		Contact: req.Contact, TermsAgreed: req.TermsOfServiceAgreed, OnlyReturnExisting: req.OnlyReturnExisting,
		EAB: eab, Remote: s.clientIP(r)})
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if acct.KeyThumbprint == tp {
		// The account's next requests verify with this key (jws.go verifyKID).
		s.keys.put(acct.ID, accountKey{jwk: v.JWK, tp: tp, dir: acct.Directory})
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	w.Header().Set("Location", s.accountURL(acct.Directory, acct.ID))
	writeJSON(w, status, s.accountJSON(acct))
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
	acct, err = s.ra.UpdateAccount(s.ctx(r), acct, ra.AccountUpdate{Contact: req.Contact, Status: req.Status})
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.accountJSON(acct))
}

// clientIP is the peer address, or the first X-Forwarded-For hop when the
// peer is a trusted proxy.
func (s *Server) clientIP(r *http.Request) string {
	return clientAddr(r, s.ra.Config().Server.TrustedProxies)
}
