package proxy

import (
	"crypto/hmac"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/go-jose/go-jose/v4"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/store"
)

// eabAlgs are the MAC algorithms an EAB inner JWS may use (RFC 8555 §7.3.4:
// "The "alg" field MUST indicate a MAC-based algorithm").
var eabAlgs = []jose.SignatureAlgorithm{jose.HS256, jose.HS384, jose.HS512}

// checkEAB verifies the externalAccountBinding of a newAccount request
// (RFC 8555 §7.3.4) and returns the key to bind, or nil when there is
// none and none is required. The binding itself happens atomically with the
// account's creation (store.CreateAccount), so a key binds once.
func (s *Server) checkEAB(r *http.Request, raw json.RawMessage, outer *verified) (*store.EABKey, error) {
	mode := s.cfg.Accounts.EAB
	if len(raw) == 0 || string(raw) == "null" {
		// §7.3.4: "If the server requires an external account binding
		// and the newAccount request does not include one, the server
		// MUST return an error of type externalAccountRequired".
		if mode == "required" {
			return nil, acmeerr.New(acmeerr.ExternalAccountRequired, "this server requires an external account binding")
		}
		return nil, nil
	}
	if mode == "disabled" {
		return nil, acmeerr.New(acmeerr.Malformed, "this server does not use external account binding")
	}
	jws, err := jose.ParseSignedJSON(string(raw), eabAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, acmeerr.New(acmeerr.Malformed, "externalAccountBinding is not a JWS with one MAC (HS256/384/512)")
	}
	hdr := jws.Signatures[0].Protected
	// §7.3.4: "The "kid" field MUST contain the key identifier provided by
	// the CA ... The "nonce" field MUST NOT be present ... The "url" field
	// MUST be set to the same value as the outer JWS".
	if hdr.KeyID == "" {
		return nil, acmeerr.New(acmeerr.Malformed, "externalAccountBinding has no kid")
	}
	if hdr.Nonce != "" {
		return nil, acmeerr.New(acmeerr.Malformed, "externalAccountBinding must not have a nonce")
	}
	if u, _ := jws.Signatures[0].Protected.ExtraHeaders["url"].(string); u != outer.URL {
		return nil, acmeerr.New(acmeerr.Malformed, "externalAccountBinding url must equal the outer JWS url")
	}
	key, err := s.store.GetEABKey(r.Context(), hdr.KeyID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, acmeerr.New(acmeerr.Unauthorized, "unknown external account key %s", acmeerr.Quote(hdr.KeyID))
	}
	if err != nil {
		return nil, storeDown(err)
	}
	payload, err := jws.Verify(key.HMACKey)
	if err != nil {
		return nil, acmeerr.New(acmeerr.Unauthorized, "externalAccountBinding MAC does not verify with key %s", acmeerr.Quote(hdr.KeyID))
	}
	now := s.now()
	switch {
	case !key.RevokedAt.IsZero():
		return nil, acmeerr.New(acmeerr.Unauthorized, "external account key %s is revoked", acmeerr.Quote(key.ID))
	case !key.ExpiresAt.IsZero() && now.After(key.ExpiresAt):
		return nil, acmeerr.New(acmeerr.Unauthorized, "external account key %s has expired", acmeerr.Quote(key.ID))
	case key.AccountID != "":
		return nil, acmeerr.New(acmeerr.Unauthorized, "external account key %s is already bound to an account", acmeerr.Quote(key.ID))
	}
	// §7.3.4: "The "payload" field MUST contain the public key of the new
	// account ... the server MUST verify that ... the inner JWS payload
	// equals the outer jwk".
	var inner jose.JSONWebKey
	if err := inner.UnmarshalJSON(payload); err != nil {
		return nil, acmeerr.New(acmeerr.Malformed, "externalAccountBinding payload is not a JWK")
	}
	a, err1 := thumbprint(&inner)
	b, err2 := thumbprint(outer.JWK)
	if err1 != nil || err2 != nil || !hmac.Equal([]byte(a), []byte(b)) {
		return nil, acmeerr.New(acmeerr.Malformed, "externalAccountBinding payload is not the account key")
	}
	return key, nil
}
