package proxy

import (
	"context"
	"crypto/x509"
	"net/http"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/ra"
)

// revokeReq is the revokeCert payload (§7.6).
type revokeReq struct {
	Certificate string `json:"certificate"`
	Reason      *int   `json:"reason"`
}

// handleRevoke revokes a certificate (RFC 8555 §7.6), signed either by the
// account that holds it or by the certificate's own key; ra.Revoke decides.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	v, err := s.verifyPOST(r, byEither)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	var req revokeReq
	if err := decodePayload(v.Payload, &req); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	der, err := decodeB64(req.Certificate)
	if err != nil || len(der) == 0 {
		s.writeProblem(w, r, acmeerr.New(acmeerr.Malformed, "certificate is not base64url DER"))
		return
	}
	rr := ra.RevokeRequest{By: ra.ByAccount, Account: v.Account, CertificateDER: der, Client: s.client(r)}
	// §7.6: "reason (optional, int)"; absent is unspecified (0).
	if req.Reason != nil {
		rr.Reason = *req.Reason
	}
	if v.Account == nil {
		rr.By = ra.ByCertificateKey
		if rr.KeySPKI, err = x509.MarshalPKIXPublicKey(v.JWK.Key); err != nil {
			s.writeProblem(w, r, acmeerr.New(acmeerr.BadPublicKey, "the JWS key cannot be a certificate key"))
			return
		}
	}
	if _, err := s.ra.Revoke(r.Context(), rr); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// client is who sent r, for the domain core's audit lines.
func (s *Server) client(r *http.Request) ra.Client {
	return ra.Client{RequestID: requestID(r), Remote: s.clientIP(r)}
}

// ctx is r's context carrying who sent it (ra.WithClient), for the
// operations of the domain core.
func (s *Server) ctx(r *http.Request) context.Context {
	return ra.WithClient(r.Context(), s.client(r))
}
