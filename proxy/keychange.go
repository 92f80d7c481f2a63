package proxy

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/go-jose/go-jose/v4"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/ra"
)

// keyChangeReq is the inner payload of a key change (§7.3.5).
type keyChangeReq struct {
	Account string          `json:"account"`
	OldKey  json.RawMessage `json:"oldKey"`
}

// handleKeyChange rolls an account over to a new key (RFC 8555 §7.3.5).
func (s *Server) handleKeyChange(w http.ResponseWriter, r *http.Request) {
	outer, err := s.verifyPOST(r, byKID)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	// §7.3.5: "The inner JWS MUST meet the normal requirements, with the
	// following differences: the inner JWS MUST have a "jwk" header
	// parameter ... MUST have the same "url" header parameter as the outer
	// JWS ... MAY omit the "nonce" header parameter".
	jws, hdr, err := parseJWS(outer.Payload)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if hdr.JSONWebKey == nil || hdr.KeyID != "" {
		s.writeProblem(w, r, acmeerr.New(acmeerr.Malformed, "inner JWS must carry a jwk and no kid"))
		return
	}
	newKey := hdr.JSONWebKey
	if err := checkAccountKey(newKey); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if err := checkAlgForKey(hdr.Algorithm, newKey); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	payload, err := jws.Verify(newKey)
	if err != nil {
		s.writeProblem(w, r, acmeerr.New(acmeerr.Malformed, "inner JWS verification error"))
		return
	}
	if u, _ := hdr.ExtraHeaders["url"].(string); u != outer.URL {
		s.writeProblem(w, r, acmeerr.New(acmeerr.Malformed, "inner JWS url must equal the outer url"))
		return
	}
	var req keyChangeReq
	if err := decodePayload(payload, &req); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	acct := outer.Account
	// §7.3.5: "Check that the "account" field of the keyChange object
	// contains the URL for the account matching the old key (i.e., the
	// "kid" field in the outer JWS)" and "Check that the "oldKey" field
	// ... is the key currently associated with the account".
	if req.Account != s.accountURL(acct.Directory, acct.ID) {
		s.writeProblem(w, r, acmeerr.New(acmeerr.Malformed, "keyChange account does not match the outer kid"))
		return
	}
	var old jose.JSONWebKey
	if err := old.UnmarshalJSON(req.OldKey); err != nil {
		s.writeProblem(w, r, acmeerr.New(acmeerr.Malformed, "keyChange oldKey is not a JWK"))
		return
	}
	oldTP, err := thumbprint(&old)
	if err != nil {
		s.writeProblem(w, r, acmeerr.New(acmeerr.Unauthorized, "keyChange oldKey is not the account's current key"))
		return
	}
	newTP, err := thumbprint(newKey)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	newJSON, err := newKey.MarshalJSON()
	if err != nil {
		s.writeProblem(w, r, acmeerr.Wrap(acmeerr.BadPublicKey, err, "cannot encode the key"))
		return
	}
	dir := acct.Directory
	acct, err = s.ra.KeyChange(s.ctx(r), acct, oldTP, newJSON, newTP)
	var inUse *ra.KeyInUseError
	if errors.As(err, &inUse) {
		w.Header().Set("Location", s.accountURL(dir, inUse.AccountID))
	}
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.accountJSON(acct))
}
