package proxy

import (
	"net/http"

	"github.com/acmebridge/acmebridge/store"
)

func (s *Server) newAuthzURL(dir string) string {
	if !s.ra.Config().Orders.PreAuthorization {
		return ""
	}
	return s.root(dir) + pathNewAuthz
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
	a, err := s.ra.NewAuthz(s.ctx(r), v.Account, req.Identifier)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	w.Header().Set("Location", s.authzURL(a.Directory, a.ID))
	writeJSON(w, http.StatusCreated, s.authzJSON(a))
}
