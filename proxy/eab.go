package proxy

import (
	"crypto/hmac"
	"encoding/json"

	"github.com/go-jose/go-jose/v4"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/ra"
)

// eabAlgs are the MAC algorithms an EAB inner JWS may use (RFC 8555 §7.3.4:
// "The "alg" field MUST indicate a MAC-based algorithm").
var eabAlgs = []jose.SignatureAlgorithm{jose.HS256, jose.HS384, jose.HS512}

// parseEAB reads the externalAccountBinding of a newAccount request (RFC
// 8555 §7.3.4): nil when there is none. The binding it returns names the
// key and verifies the MAC and the payload with the key's secret; the
// domain core (ra.NewAccount) decides whether a binding is wanted, which
// keys may bind, and binds atomically with the account's creation.
func parseEAB(raw json.RawMessage, outer *verified) (*ra.EABBinding, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
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
	kid := hdr.KeyID
	return &ra.EABBinding{KID: kid, Verify: func(hmacKey []byte) error {
		payload, err := jws.Verify(hmacKey)
		if err != nil {
			return acmeerr.New(acmeerr.Unauthorized, "externalAccountBinding MAC does not verify with key %s", acmeerr.Quote(kid))
		}
		// §7.3.4: "The "payload" field MUST contain the public key of the
		// new account ... the server MUST verify that ... the inner JWS
		// payload equals the outer jwk".
		var inner jose.JSONWebKey
		if err := inner.UnmarshalJSON(payload); err != nil {
			return acmeerr.New(acmeerr.Malformed, "externalAccountBinding payload is not a JWK")
		}
		a, err1 := thumbprint(&inner)
		b, err2 := thumbprint(outer.JWK)
		if err1 != nil || err2 != nil || !hmac.Equal([]byte(a), []byte(b)) {
			return acmeerr.New(acmeerr.Malformed, "externalAccountBinding payload is not the account key")
		}
		return nil
	}}, nil
}
