package proxy

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/acmebridge/acmebridge/store"
)

// handleChallenge serves a challenge: GET and POST-as-GET return it; a POST
// with a JSON object asks the server to validate it (RFC 8555 §7.5.1: "The
// client indicates to the server that it is ready for the challenge
// validation by sending an empty JSON body ("{}")").
func (s *Server) handleChallenge(w http.ResponseWriter, r *http.Request) {
	vars := mux.Vars(r)
	authzID, chalID := vars["authz"], vars["id"]
	var acct *store.Account
	var v *verified
	if r.Method == http.MethodPost {
		var err error
		if v, err = s.verifyPOSTAt(r, byKID, postTarget{authzID: authzID}); err != nil {
			s.writeProblem(w, r, err)
			return
		}
		acct = v.Account
	}
	var a *store.Authorization
	var idx int
	var err error
	if v != nil && !v.postAsGet() {
		if err := decodePayload(v.Payload, &struct{}{}); err != nil {
			s.writeProblem(w, r, err)
			return
		}
		a, idx, err = s.ra.Validate(s.ctx(r), acct, authzID, chalID)
	} else {
		a, idx, err = s.ra.Challenge(r.Context(), acct, authzID, chalID)
	}
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	w.Header().Add("Link", link(s.authzURL(a.Directory, a.ID), "up"))
	writeJSON(w, http.StatusOK, s.challengeJSON(a, a.Challenges[idx]))
}
