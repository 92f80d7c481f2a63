package proxy

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/ra"
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
		Finalize: s.orderURL(o.Directory, o.ID) + "/finalize", Profile: o.Profile,
	}
	for _, a := range o.AuthzIDs {
		j.Authorizations = append(j.Authorizations, s.authzURL(o.Directory, a))
	}
	if o.CertificateID != "" {
		j.Certificate = s.certURL(o.Directory, o.CertificateID)
	}
	return j
}

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
	o, err := s.ra.NewOrder(s.ctx(r), v.Account, ra.NewOrderRequest{Identifiers: req.Identifiers,
		NotBefore: req.NotBefore, NotAfter: req.NotAfter, Profile: req.Profile, Replaces: req.Replaces})
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	w.Header().Set("Location", s.orderURL(o.Directory, o.ID))
	writeJSON(w, http.StatusCreated, s.orderJSON(o))
}

// handleOrder serves POST-as-GET of an order (§7.4).
func (s *Server) handleOrder(w http.ResponseWriter, r *http.Request) {
	v, err := s.verifyPOSTAt(r, byKID, postTarget{orderID: mux.Vars(r)["id"], orderAuthzs: true})
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if !v.postAsGet() {
		s.writeProblem(w, r, acmeerr.New(acmeerr.Malformed, "an order is read with POST-as-GET (empty payload)"))
		return
	}
	o, err := s.ra.Order(s.ctx(r), v.Account, mux.Vars(r)["id"])
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
	w.Header().Set("Location", s.orderURL(o.Directory, o.ID))
	writeJSON(w, status, s.orderJSON(o))
}

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
	page, err := s.ra.AccountOrders(r.Context(), v.Account, r.URL.Query().Get("cursor"))
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	urls := []string{}
	for _, id := range page.IDs {
		urls = append(urls, s.orderURL(v.Account.Directory, id))
	}
	if page.Next != "" {
		w.Header().Add("Link", link(s.accountURL(v.Account.Directory, v.Account.ID)+"/orders?cursor="+url.QueryEscape(page.Next), "next"))
	}
	writeJSON(w, http.StatusOK, map[string][]string{"orders": urls})
}
