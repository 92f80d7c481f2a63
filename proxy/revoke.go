package proxy

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"strconv"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/store"
)

// revokeReq is the revokeCert payload (§7.6).
type revokeReq struct {
	Certificate string `json:"certificate"`
	Reason      *int   `json:"reason"`
}

// handleRevoke revokes a certificate (RFC 8555 §7.6), signed either by the
// account that holds it or by the certificate's own key.
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
	if err != nil {
		s.writeProblem(w, r, acmeerr.New(acmeerr.Malformed, "certificate is not base64url DER"))
		return
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		s.writeProblem(w, r, acmeerr.New(acmeerr.Malformed, "certificate could not be parsed"))
		return
	}
	// §7.6: "reason (optional, int): One of the revocation reasonCodes
	// defined in Section 5.3.1 of [RFC5280]" — 7 is unused, 8 (removeFromCRL)
	// does not apply to a revocation request.
	reason := 0
	if req.Reason != nil {
		reason = *req.Reason
		if reason < 0 || reason > 10 || reason == 7 || reason == 8 {
			s.writeProblem(w, r, acmeerr.New(acmeerr.BadRevocationReason, "reason %d is not allowed (0-6, 9, 10)", reason))
			return
		}
	}
	rec, err := s.store.GetCertificateBySerial(r.Context(), serialHex(cert))
	if errors.Is(err, store.ErrNotFound) {
		s.writeProblem(w, r, acmeerr.New(acmeerr.NotFound, "certificate was not issued by this server"))
		return
	}
	if err != nil {
		s.writeProblem(w, r, storeDown(err))
		return
	}
	if b, _ := pem.Decode(rec.ChainPEM); b == nil || !bytes.Equal(b.Bytes, der) {
		s.writeProblem(w, r, acmeerr.New(acmeerr.NotFound, "certificate was not issued by this server"))
		return
	}
	// §7.6: "The server MUST consider at least the following accounts
	// authorized ...: the account that issued the certificate" and, when
	// signed with the certificate key, "the certificate's public key".
	if v.Account != nil {
		if rec.AccountID != v.Account.ID && !s.holdsAuthorizations(r.Context(), v.Account.ID, rec.Names) {
			s.writeProblem(w, r, acmeerr.New(acmeerr.Unauthorized, "the certificate belongs to another account, and this account holds no valid authorizations for all its names"))
			return
		}
	} else {
		spki, err := x509.MarshalPKIXPublicKey(v.JWK.Key)
		if err != nil || !bytes.Equal(spki, cert.RawSubjectPublicKeyInfo) {
			s.writeProblem(w, r, acmeerr.New(acmeerr.Unauthorized, "the JWS key is not the certificate's key"))
			return
		}
	}
	// §7.6: "If the certificate is already revoked ... alreadyRevoked".
	if !rec.RevokedAt.IsZero() {
		s.writeProblem(w, r, acmeerr.New(acmeerr.AlreadyRevoked, "certificate is already revoked"))
		return
	}
	iss, ok := s.issuers[rec.Upstream]
	if !ok {
		s.writeProblem(w, r, acmeerr.New(acmeerr.Internal, "upstream %s that issued the certificate is not configured", rec.Upstream))
		return
	}
	if err := iss.Revoke(r.Context(), cert, reason); err != nil && !acmeerr.Is(err, acmeerr.AlreadyRevoked) {
		s.writeProblem(w, r, err)
		return
	}
	rec.RevokedAt, rec.RevocationReason = s.now(), reason
	if err := s.store.UpdateCertificate(r.Context(), rec); err != nil {
		s.writeProblem(w, r, storeErr(err, "certificate"))
		return
	}
	actor := "account"
	if v.Account == nil {
		actor = "certificate key"
	}
	s.record(r, audit.Event{Event: audit.CertRevoked, Account: rec.AccountID, Order: rec.OrderID, Names: rec.Names,
		Upstream: rec.Upstream, Serial: rec.Serial, Reason: strconv.Itoa(reason), Actor: actor})
	s.log.Info("certificate revoked", "serial", rec.Serial, "account", rec.AccountID, "upstream", rec.Upstream, "reason", reason)
	w.WriteHeader(http.StatusOK)
}

// maxOrdersScanned bounds the search for authorizations in holdsAuthorizations.
const maxOrdersScanned = 1000

// holdsAuthorizations reports whether the account holds valid, unexpired
// authorizations for every name (§7.6: the server MUST consider authorized
// "an account that holds authorizations for all of the identifiers in the
// certificate"). It looks through the account's most recent orders.
func (s *Server) holdsAuthorizations(ctx context.Context, accountID string, names []string) bool {
	have := map[string]bool{}
	now := s.now()
	cursor := ""
	for scanned := 0; scanned < maxOrdersScanned; {
		page, err := s.store.ListOrders(ctx, accountID, cursor, ordersPageSize)
		if err != nil {
			return false
		}
		for _, id := range page.IDs {
			scanned++
			o, err := s.store.GetOrder(ctx, id)
			if err != nil {
				continue
			}
			for _, aid := range o.AuthzIDs {
				a, err := s.store.GetAuthz(ctx, aid)
				if err != nil || authzStatus(a, now) != store.StatusValid {
					continue
				}
				n := a.Identifier.Value
				if a.Wildcard {
					n = "*." + n
				}
				have[n] = true
			}
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	for _, n := range names {
		if !have[n] {
			return false
		}
	}
	return len(names) > 0
}
