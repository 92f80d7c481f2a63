package proxy

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/acmebridge/acmebridge/ra"
	"github.com/acmebridge/acmebridge/store"
)

// authzJSON is the authorization object (RFC 8555 §7.1.4).
type authzJSON struct {
	Identifier store.Identifier `json:"identifier"`
	Status     string           `json:"status"`
	Expires    string           `json:"expires,omitempty"`
	Challenges []challengeJSON  `json:"challenges"`
	Wildcard   bool             `json:"wildcard,omitempty"`
}

// challengeJSON is the challenge object (RFC 8555 §8).
type challengeJSON struct {
	Type      string         `json:"type"`
	URL       string         `json:"url"`
	Status    string         `json:"status"`
	Token     string         `json:"token"`
	Validated string         `json:"validated,omitempty"`
	Error     *store.Problem `json:"error,omitempty"`
}

func (s *Server) challengeJSON(a *store.Authorization, c store.Challenge) challengeJSON {
	return challengeJSON{Type: c.Type, URL: s.challURL(a.Directory, a.ID, c.ID), Status: c.Status, Token: c.Token,
		Validated: rfc3339(c.Validated), Error: c.Error}
}

func (s *Server) authzJSON(a *store.Authorization) authzJSON {
	j := authzJSON{Identifier: a.Identifier, Status: ra.AuthzStatus(a, s.now()), Expires: rfc3339(a.Expires), Wildcard: a.Wildcard}
	for _, c := range a.Challenges {
		// §7.1.4: "For final authorizations (in the "valid" or
		// "invalid" state), the challenges that were used" are listed;
		// the others may be omitted.
		if j.Status == store.StatusValid && c.Status != store.StatusValid {
			continue
		}
		j.Challenges = append(j.Challenges, s.challengeJSON(a, c))
	}
	if j.Challenges == nil {
		j.Challenges = []challengeJSON{}
	}
	return j
}

// authzUpdateReq is the payload of a POST to an authorization (§7.5.2).
type authzUpdateReq struct {
	Status string `json:"status"`
}

// handleAuthz serves an authorization: GET, POST-as-GET, and deactivation
// (RFC 8555 §7.5, §7.5.2).
func (s *Server) handleAuthz(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		a, err := s.ra.Authz(r.Context(), nil, id)
		if err != nil {
			s.writeProblem(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, s.authzJSON(a))
		return
	}
	v, err := s.verifyPOSTAt(r, byKID, postTarget{authzID: id})
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	a, err := s.ra.Authz(r.Context(), v.Account, id)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if v.postAsGet() {
		writeJSON(w, http.StatusOK, s.authzJSON(a))
		return
	}
	var req authzUpdateReq
	if err := decodePayload(v.Payload, &req); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if a, err = s.ra.DeactivateAuthz(s.ctx(r), a, req.Status); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.authzJSON(a))
}
