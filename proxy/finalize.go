package proxy

import (
	"net/http"

	"github.com/gorilla/mux"
)

// finalizeReq is the finalize payload (§7.4).
type finalizeReq struct {
	CSR string `json:"csr"`
}

// handleFinalize finalizes an order with the client's CSR (RFC 8555
// §7.4); ra.Finalize decides and waits a short while for a fast upstream.
func (s *Server) handleFinalize(w http.ResponseWriter, r *http.Request) {
	v, err := s.verifyPOSTAt(r, byKID, postTarget{orderID: mux.Vars(r)["id"], orderAuthzs: true})
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	var req finalizeReq
	if err := decodePayload(v.Payload, &req); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	der, err := decodeB64(req.CSR)
	if err != nil || len(der) == 0 {
		der = nil
	}
	o, err := s.ra.Finalize(s.ctx(r), v.Account, mux.Vars(r)["id"], der)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	s.writeOrder(w, o, http.StatusOK)
}
