package proxy

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
)

// pathRenewalInfo is the ARI resource (RFC 9773).
const pathRenewalInfo = "/acme/renewal-info"

// renewalInfo is the ARI answer (RFC 9773 §4.2).
type renewalInfo struct {
	SuggestedWindow struct {
		Start string `json:"start"`
		End   string `json:"end"`
	} `json:"suggestedWindow"`
	ExplanationURL string `json:"explanationURL,omitempty"`
}

// handleRenewalInfo answers GET renewal-info/{certID} (RFC 9773 §4.2).
func (s *Server) handleRenewalInfo(w http.ResponseWriter, r *http.Request) {
	start, end, retry, err := s.ra.RenewalInfo(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	var ri renewalInfo
	ri.SuggestedWindow.Start, ri.SuggestedWindow.End = start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339)
	// §4.2: "The server SHOULD include a Retry-After header indicating the
	// polling interval that the ACME server recommends."
	w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds())))
	writeJSON(w, http.StatusOK, ri)
}
