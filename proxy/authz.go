package proxy

import (
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/acmebridge/acmebridge/acmeerr"
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

// authzStatus is the authorization's status at now: a pending or valid one
// past its expiry is expired (§7.1.6).
func authzStatus(a *store.Authorization, now time.Time) string {
	if (a.Status == store.StatusPending || a.Status == store.StatusValid) && now.After(a.Expires) {
		return store.StatusExpired
	}
	return a.Status
}

func (s *Server) challengeJSON(a *store.Authorization, c store.Challenge) challengeJSON {
	return challengeJSON{Type: c.Type, URL: s.challURL(a.ID, c.ID), Status: c.Status, Token: c.Token,
		Validated: rfc3339(c.Validated), Error: c.Error}
}

func (s *Server) authzJSON(a *store.Authorization) authzJSON {
	j := authzJSON{Identifier: a.Identifier, Status: authzStatus(a, s.now()), Expires: rfc3339(a.Expires), Wildcard: a.Wildcard}
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

// getAuthz loads an authorization; when acct is set it must own it.
func (s *Server) getAuthz(r *http.Request, id string, acct *store.Account) (*store.Authorization, error) {
	a, err := s.store.GetAuthz(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, acmeerr.New(acmeerr.NotFound, "no such authorization")
	}
	if err != nil {
		return nil, storeDown(err)
	}
	if acct != nil && a.AccountID != acct.ID {
		return nil, acmeerr.New(acmeerr.Unauthorized, "the authorization belongs to another account")
	}
	return a, nil
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
		a, err := s.getAuthz(r, id, nil)
		if err != nil {
			s.writeProblem(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, s.authzJSON(a))
		return
	}
	v, err := s.verifyPOST(r, byKID)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	a, err := s.getAuthz(r, id, v.Account)
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
	// §7.5.2: "If a client wishes to relinquish its authorization ... the
	// client ... send a POST request to the authorization URL with the
	// status field "deactivated"" and the authorization must be "valid"
	// or "pending" (§7.1.6).
	if req.Status != store.StatusDeactivated {
		s.writeProblem(w, r, acmeerr.New(acmeerr.Malformed, "an authorization may only be deactivated"))
		return
	}
	st := authzStatus(a, s.now())
	if st != store.StatusPending && st != store.StatusValid {
		s.writeProblem(w, r, acmeerr.New(acmeerr.Malformed, "an authorization that is %s cannot be deactivated", st))
		return
	}
	a.Status = store.StatusDeactivated
	if err := s.store.UpdateAuthz(r.Context(), a); err != nil {
		s.writeProblem(w, r, storeErr(err, "authorization"))
		return
	}
	if st == store.StatusPending {
		s.limits.deactivated(r.Context(), a.AccountID)
	}
	writeJSON(w, http.StatusOK, s.authzJSON(a))
}
