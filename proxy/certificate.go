package proxy

import (
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/acmebridge/acmebridge/acmeerr"
)

// handleCertificate serves a certificate chain by POST-as-GET (RFC 8555
// §7.4.2: "The default format of the certificate is
// application/pem-certificate-chain").
func (s *Server) handleCertificate(w http.ResponseWriter, r *http.Request) {
	v, err := s.verifyPOSTAt(r, byKID, postTarget{certificateID: mux.Vars(r)["id"]})
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if !v.postAsGet() {
		s.writeProblem(w, r, acmeerr.New(acmeerr.Malformed, "a certificate is downloaded with POST-as-GET (empty payload)"))
		return
	}
	c, err := s.ra.Certificate(r.Context(), v.Account, mux.Vars(r)["id"])
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	// §7.4.2: "The server MAY provide one or more link relation header
	// fields [RFC8288] with relation "alternate". Each such field SHOULD
	// express an alternative certificate chain starting with the same
	// end-entity certificate."
	chain, alt := c.ChainPEM, 0
	if v := mux.Vars(r)["alt"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > len(c.Alternates) {
			s.writeProblem(w, r, acmeerr.New(acmeerr.NotFound, "no such alternate chain"))
			return
		}
		chain, alt = c.Alternates[n-1], n
	}
	for i := 0; i <= len(c.Alternates); i++ {
		if i == alt {
			continue
		}
		u := s.certURL(c.Directory, c.ID)
		if i > 0 {
			u += "/" + strconv.Itoa(i)
		}
		w.Header().Add("Link", link(u, "alternate"))
	}
	w.Header().Set("Content-Type", "application/pem-certificate-chain")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(chain)
}
