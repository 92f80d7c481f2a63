package proxy

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/ra"
	"github.com/acmebridge/acmebridge/store"
)

// maxBodyBytes caps every request body; a CSR for 100 names fits easily.
const maxBodyBytes = 64 << 10

// allowedAlgs is the JWS algorithm allow-list (docs/security.md).
var allowedAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}

func algNames() []string {
	n := make([]string, len(allowedAlgs))
	for i, a := range allowedAlgs {
		n[i] = string(a)
	}
	return n
}

// keyMode says which of "jwk" and "kid" a resource accepts.
type keyMode int

const (
	// byKID: every resource but newAccount and revokeCert (RFC 8555 §6.2).
	byKID keyMode = iota
	// byJWK: newAccount (and the inner JWS of keyChange).
	byJWK
	// byEither: revokeCert (§7.6: signed by the account key or the
	// certificate's key).
	byEither
)

// verified is a request whose JWS passed every check, handed to a handler.
type verified struct {
	// Payload is the verified payload; empty for POST-as-GET (§6.3).
	Payload []byte
	// JWK is the key that signed; Account is set for kid requests.
	JWK     *jose.JSONWebKey
	Account *store.Account
	// URL is the protected "url" header.
	URL string
}

// postAsGet reports whether the request is a POST-as-GET (RFC 8555 §6.3:
// "the "payload" field of the JWS object MUST be present and set to the
// empty string").
func (v *verified) postAsGet() bool { return len(v.Payload) == 0 }

// postTarget names the record a signed request's URL names, which is read
// in the same store operation as its account (store.ReadPOST) and handed to
// the domain core once the request verified (ra.Prefetched).
type postTarget struct {
	orderID       string
	orderAuthzs   bool
	authzID       string
	certificateID string
}

// verifyPOST runs the JWS checks in Boulder's order (wfe2/verify.go): media
// type, size, serialization, algorithm, key, signature, url, and only then
// the nonce, so a forged request cannot burn a client's nonce.
func (s *Server) verifyPOST(r *http.Request, mode keyMode) (*verified, error) {
	return s.verifyPOSTAt(r, mode, postTarget{})
}

// verifyPOSTAt is verifyPOST for a request whose URL names t.
func (s *Server) verifyPOSTAt(r *http.Request, mode keyMode, t postTarget) (*verified, error) {
	// RFC 8555 §6.2: "Because client requests in ACME carry JWS objects in
	// the Flattened JSON Serialization, they must have the Content-Type
	// header field set to "application/jose+json". If a request does not
	// meet this requirement, then the server MUST return a response with
	// status code 415 (Unsupported Media Type)."
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/jose+json" {
		return nil, acmeerr.New(acmeerr.UnsupportedMediaType, "Content-Type must be application/jose+json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, acmeerr.New(acmeerr.PayloadTooLarge, "request body is larger than %d bytes", maxBodyBytes)
		}
		return nil, acmeerr.Wrap(acmeerr.Malformed, err, "reading request body")
	}
	jws, hdr, err := parseJWS(body)
	if err != nil {
		return nil, err
	}
	// §6.2: "The JWS Protected Header MUST include ... either "jwk" or
	// "kid" ... these fields are mutually exclusive".
	if (hdr.JSONWebKey == nil) == (hdr.KeyID == "") {
		return nil, acmeerr.New(acmeerr.Malformed, "JWS must carry exactly one of jwk and kid")
	}
	switch {
	case hdr.JSONWebKey != nil && mode == byKID:
		return nil, acmeerr.New(acmeerr.Malformed, "this resource requires a kid (account URL), not a jwk")
	case hdr.KeyID != "" && mode == byJWK:
		return nil, acmeerr.New(acmeerr.Malformed, "this resource requires a jwk, not a kid")
	case hdr.KeyID != "":
		return s.verifyKID(r, jws, hdr, t)
	}
	if err := checkAccountKey(hdr.JSONWebKey); err != nil {
		return nil, err
	}
	v := &verified{JWK: hdr.JSONWebKey}
	if err := checkAlgForKey(hdr.Algorithm, v.JWK); err != nil {
		return nil, err
	}
	if v.Payload, err = jws.Verify(v.JWK); err != nil {
		return nil, acmeerr.New(acmeerr.Malformed, "JWS verification error")
	}
	if v.URL, err = s.checkURL(r, hdr); err != nil {
		return nil, err
	}
	// A key without an account is limited per client address before its
	// nonce is recorded (rate_limits.unknown_key_requests_per_ip).
	tp, err := thumbprint(v.JWK)
	if err != nil {
		return nil, err
	}
	if err := s.ra.LimitUnknownKey(r.Context(), tp, s.clientIP(r)); err != nil {
		return nil, err
	}
	if err := s.spendNonce(r, hdr); err != nil {
		return nil, err
	}
	return v, nil
}

// verifyKID verifies a request signed by an account's key ("kid", §6.2).
// When this server knows the account's key (keyCache) and the signature
// verifies with it, one store operation reads the account and the record
// the URL names and uses the nonce, but only if the account's stored key
// is still that key (store.ReadPOST): one round trip where the account
// and the nonce took two. Otherwise the account (and the record) are read
// first, the signature is checked with the stored key, and the nonce is
// used after, as before. Either way a nonce is used only by a request the
// account's key signed, and the errors come in the same order: no account,
// algorithm, signature, url, nonce, account status.
func (s *Server) verifyKID(r *http.Request, jws *jose.JSONWebSignature, hdr jose.Header, t postTarget) (*verified, error) {
	ctx := r.Context()
	id, err := s.kidAccountID(r, hdr.KeyID)
	if err != nil {
		return nil, err
	}
	q := &store.POSTRead{AccountID: id, OrderID: t.orderID, OrderAuthzs: t.orderAuthzs, AuthzID: t.authzID, CertificateID: t.certificateID}
	k, known := s.keys.get(id)
	if known && k.dir == ra.DirectoryOf(ctx) && checkAlgForKey(hdr.Algorithm, k.jwk) == nil {
		if payload, err := jws.Verify(k.jwk); err == nil {
			u, urlErr := s.checkURL(r, hdr)
			var nonceErr error
			if urlErr == nil {
				nonceErr = s.nonceFor(ctx, hdr, q, k.tp)
			}
			rec, err := s.store.ReadPOST(ctx, q)
			if err != nil {
				return nil, storeDown(err)
			}
			acct, err := ra.AccountIn(ctx, id, rec.Account, nil)
			if err != nil {
				return nil, err
			}
			if acct.KeyThumbprint == k.tp {
				// The key the signature verified with is the account's.
				switch {
				case urlErr != nil:
					return nil, urlErr
				case nonceErr != nil:
					return nil, nonceErr
				case !rec.NonceFresh:
					return nil, badNonce(hdr.Nonce)
				}
				return s.verifiedKID(ctx, &verified{Payload: payload, JWK: k.jwk, Account: acct, URL: u}, q, rec)
			}
			// The key changed (RFC 8555 §7.3.5, perhaps on another
			// replica): check the request with the stored one.
			s.keys.drop(id)
			return s.verifyStored(r, jws, hdr, q, rec)
		}
	}
	q.Nonce = ""
	rec, err := s.store.ReadPOST(ctx, q)
	if err != nil {
		return nil, storeDown(err)
	}
	return s.verifyStored(r, jws, hdr, q, rec)
}

// verifyStored verifies a kid request with the account's key as rec holds
// it, then its url and nonce (one store operation of its own).
func (s *Server) verifyStored(r *http.Request, jws *jose.JSONWebSignature, hdr jose.Header, q *store.POSTRead, rec *store.POSTRecords) (*verified, error) {
	ctx := r.Context()
	acct, err := ra.AccountIn(ctx, q.AccountID, rec.Account, nil)
	if err != nil {
		return nil, err
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(acct.JWK); err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "stored account key")
	}
	v := &verified{JWK: &k, Account: acct}
	if err := checkAlgForKey(hdr.Algorithm, v.JWK); err != nil {
		return nil, err
	}
	if v.Payload, err = jws.Verify(v.JWK); err != nil {
		return nil, acmeerr.New(acmeerr.Malformed, "JWS verification error")
	}
	s.keys.put(acct.ID, accountKey{jwk: v.JWK, tp: acct.KeyThumbprint, dir: acct.Directory})
	if v.URL, err = s.checkURL(r, hdr); err != nil {
		return nil, err
	}
	if err := s.spendNonce(r, hdr); err != nil {
		return nil, err
	}
	return s.verifiedKID(ctx, v, q, rec)
}

// verifiedKID ends the checks of a kid request whose signature, url and
// nonce passed: the account must be valid to act (§7.3.6: "If a server
// receives a POST or POST-as-GET from a deactivated account, it MUST
// return an error response with status code 401 (Unauthorized) and type
// "urn:ietf:params:acme:error:unauthorized""). The records read with the
// account go to the domain core.
func (s *Server) verifiedKID(ctx context.Context, v *verified, q *store.POSTRead, rec *store.POSTRecords) (*verified, error) {
	if v.Account.Status != store.StatusValid {
		return nil, acmeerr.New(acmeerr.AccountNotValid, "account is %s", v.Account.Status)
	}
	ra.Prefetched(ctx, q, rec)
	return v, nil
}

// checkURL returns the protected "url" header if it is the request's URL
// (§6.4: "the server MUST reject the request as unauthorized" if not).
func (s *Server) checkURL(r *http.Request, hdr jose.Header) (string, error) {
	u, ok := hdr.ExtraHeaders["url"].(string)
	if !ok || u == "" {
		return "", acmeerr.New(acmeerr.Malformed, "JWS header lacks a url")
	}
	if u != s.base+r.URL.RequestURI() {
		return "", acmeerr.New(acmeerr.Unauthorized, "JWS url %q does not match the request URL", u)
	}
	return u, nil
}

// spendNonce uses the request's nonce (§6.5.2: "If the value of the
// "nonce" header parameter is not valid ... the server MUST reject the
// request with badNonce").
func (s *Server) spendNonce(r *http.Request, hdr jose.Header) error {
	if hdr.Nonce == "" {
		return acmeerr.New(acmeerr.BadNonce, "JWS has no nonce")
	}
	fresh, err := s.useNonce(r.Context(), hdr.Nonce)
	if err != nil {
		return storeDown(err)
	}
	if !fresh {
		return badNonce(hdr.Nonce)
	}
	return nil
}

// nonceFor checks the request's nonce as spendNonce does before the store
// and, when it may be good, sets q to use it if the account's key
// thumbprint is tp. The error is spendNonce's for a nonce refused without
// the store.
func (s *Server) nonceFor(ctx context.Context, hdr jose.Header, q *store.POSTRead, tp string) error {
	if hdr.Nonce == "" {
		return acmeerr.New(acmeerr.BadNonce, "JWS has no nonce")
	}
	exp, ok, err := s.checkNonce(ctx, hdr.Nonce)
	if err != nil {
		return storeDown(err)
	}
	if !ok {
		return badNonce(hdr.Nonce)
	}
	q.Nonce, q.NonceUntil, q.KeyThumbprint = hdr.Nonce, exp, tp
	return nil
}

// badNonce is the problem of a nonce that is not good (§6.5.2).
func badNonce(n string) error {
	return acmeerr.New(acmeerr.BadNonce, "JWS has an invalid or used nonce %q", n)
}

// parseJWS parses a Flattened JSON Serialization with exactly one signature
// and no unprotected header. The body is scanned once (scanFlatJWS: its
// syntax, duplicate names at any depth, which members it has, the protected
// header's text) and parsed once by go-jose; only a request go-jose refuses
// is read again, to name its fault (jwsFault).
func parseJWS(body []byte) (*jose.JSONWebSignature, jose.Header, error) {
	flat, err := scanFlatJWS(body)
	if err != nil {
		return nil, jose.Header{}, err
	}
	if flat.signatures {
		return nil, jose.Header{}, acmeerr.New(acmeerr.Malformed, "JWS must use the flattened serialization with one signature")
	}
	if flat.header {
		return nil, jose.Header{}, acmeerr.New(acmeerr.Malformed, "JWS must not have an unprotected header")
	}
	if flat.protected == nil || !flat.payload || !flat.signature {
		return nil, jose.Header{}, acmeerr.New(acmeerr.Malformed, "JWS needs protected, payload and signature")
	}
	jws, err := jose.ParseSignedJSON(string(body), allowedAlgs)
	if err != nil {
		return nil, jose.Header{}, jwsFault(*flat.protected)
	}
	if len(jws.Signatures) != 1 {
		return nil, jose.Header{}, acmeerr.New(acmeerr.Malformed, "JWS must have exactly one signature")
	}
	// go-jose decodes the header leniently (padding, the last of two
	// names): read it as jwsFault does, strictly.
	raw, err := decodeB64(*flat.protected)
	if err != nil {
		return nil, jose.Header{}, acmeerr.New(acmeerr.Malformed, "JWS protected header is not base64url")
	}
	if err := checkUniqueKeys(raw); err != nil {
		return nil, jose.Header{}, acmeerr.New(acmeerr.Malformed, "JWS protected header: %s", err)
	}
	hdr := jws.Signatures[0].Protected
	if hdr.JSONWebKey != nil && !hdr.JSONWebKey.IsPublic() {
		return nil, jose.Header{}, badJWK()
	}
	return jws, hdr, nil
}

// jwsFault names what is wrong with a JWS go-jose refused to parse, from
// its protected header: a refused algorithm is badSignatureAlgorithm with
// the list (§6.2) and a "jwk" go-jose cannot load badPublicKey, not parse
// errors; anything else is malformed.
func jwsFault(protected string) error {
	alg, jwk, err := protectedAlg(protected)
	if err != nil {
		return err
	}
	if !algAllowed(alg) {
		return &acmeerr.Error{Kind: acmeerr.BadSignatureAlgorithm,
			Detail: "JWS algorithm " + acmeerr.Quote(alg) + " is not accepted", Algorithms: algNames()}
	}
	// A "jwk" go-jose cannot load (an unsupported curve or key type, a
	// point off its curve, a private key) is badPublicKey (§6.7:
	// "badPublicKey: The JWS was signed by a public key the server does not
	// support").
	if jwk != nil {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(jwk); err != nil || !k.IsPublic() {
			return badJWK()
		}
	}
	return acmeerr.New(acmeerr.Malformed, "JWS could not be parsed")
}

func badJWK() error {
	return acmeerr.New(acmeerr.BadPublicKey, "JWS jwk is not a supported public key")
}

// protectedAlg returns the "alg" of a protected header and its "jwk", if
// any, unparsed.
func protectedAlg(protected string) (string, json.RawMessage, error) {
	raw, err := decodeB64(protected)
	if err != nil {
		return "", nil, acmeerr.New(acmeerr.Malformed, "JWS protected header is not base64url")
	}
	var h struct {
		Alg *string         `json:"alg"`
		JWK json.RawMessage `json:"jwk"`
	}
	if err := json.Unmarshal(raw, &h); err != nil || h.Alg == nil {
		return "", nil, acmeerr.New(acmeerr.Malformed, "JWS protected header has no alg")
	}
	// RFC 7515 §4: "The Header Parameter names within the JOSE Header MUST
	// be unique; JWS parsers MUST either reject JWSs with duplicate Header
	// Parameter names or use a JSON parser that returns only the lexically
	// last duplicate member name". We reject: "alg" or "url" read one way
	// here and another way by go-jose would be a confusion.
	if err := checkUniqueKeys(raw); err != nil {
		return "", nil, acmeerr.New(acmeerr.Malformed, "JWS protected header: %s", err)
	}
	if string(h.JWK) == "null" {
		h.JWK = nil
	}
	return *h.Alg, h.JWK, nil
}

func algAllowed(alg string) bool {
	for _, a := range allowedAlgs {
		if string(a) == alg {
			return true
		}
	}
	return false
}

// checkAccountKey accepts the key types ACME accounts may use: RSA of 2048 to
// 4096 bits, ECDSA on P-256/P-384/P-521, Ed25519 (§6.2: "the server MUST
// ... reject ... keys it does not support with badPublicKey").
func checkAccountKey(k *jose.JSONWebKey) error {
	if !k.Valid() || !k.IsPublic() {
		return acmeerr.New(acmeerr.BadPublicKey, "JWK is not a valid public key")
	}
	switch pk := k.Key.(type) {
	case *rsa.PublicKey:
		if n := pk.N.BitLen(); n < 2048 || n > 4096 {
			return acmeerr.New(acmeerr.BadPublicKey, "RSA keys must be 2048 to 4096 bits, not %d", n)
		}
		if pk.E < 3 || pk.E%2 == 0 {
			return acmeerr.New(acmeerr.BadPublicKey, "RSA public exponent is unusable")
		}
	case *ecdsa.PublicKey:
		switch pk.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return acmeerr.New(acmeerr.BadPublicKey, "unsupported elliptic curve")
		}
	case ed25519.PublicKey:
	default:
		return acmeerr.New(acmeerr.BadPublicKey, "unsupported key type %T", k.Key)
	}
	return nil
}

// checkAlgForKey: the algorithm must be the one the key type implies, so an
// RS256 header cannot be paired with an EC key (algorithm confusion).
func checkAlgForKey(alg string, k *jose.JSONWebKey) error {
	want := ""
	switch pk := k.Key.(type) {
	case *rsa.PublicKey:
		want = string(jose.RS256)
	case *ecdsa.PublicKey:
		switch pk.Curve {
		case elliptic.P256():
			want = string(jose.ES256)
		case elliptic.P384():
			want = string(jose.ES384)
		case elliptic.P521():
			want = string(jose.ES512)
		}
	case ed25519.PublicKey:
		want = string(jose.EdDSA)
	}
	if alg != want {
		return &acmeerr.Error{Kind: acmeerr.BadSignatureAlgorithm,
			Detail: "JWS algorithm " + acmeerr.Quote(alg) + " does not match the key (want " + want + ")", Algorithms: algNames()}
	}
	if k.Algorithm != "" && k.Algorithm != alg {
		return &acmeerr.Error{Kind: acmeerr.BadSignatureAlgorithm,
			Detail: "JWS algorithm does not match the JWK's alg", Algorithms: algNames()}
	}
	return nil
}

// kidAccountID returns the ID of the account a kid header names (§6.2:
// "the "kid" field MUST contain an account URL received by POSTing to the
// newAccount resource").
func (s *Server) kidAccountID(r *http.Request, kid string) (string, error) {
	prefix := s.root(ra.DirectoryOf(r.Context())) + pathAccount
	id, ok := strings.CutPrefix(kid, prefix)
	if !ok {
		// Another directory's account URL names no account here.
		if rest, found := strings.CutPrefix(kid, s.base+"/"); found && strings.Contains("/"+rest, pathAccount) {
			return "", acmeerr.New(acmeerr.AccountDoesNotExist, "no account at %s in this directory", kid)
		}
	}
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", acmeerr.New(acmeerr.Malformed, "kid is not an account URL of this server")
	}
	return id, nil
}

// thumbprint is the RFC 7638 SHA-256 thumbprint, base64url.
func thumbprint(k *jose.JSONWebKey) (string, error) {
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", acmeerr.Wrap(acmeerr.BadPublicKey, err, "cannot compute the key thumbprint")
	}
	return b64(tp), nil
}

// decodePayload decodes a JSON object payload into v (types checked, one
// value, no trailing data).
func decodePayload(p []byte, v any) error {
	if t := bytes.TrimLeft(p, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return acmeerr.New(acmeerr.Malformed, "payload must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(p))
	if err := dec.Decode(v); err != nil {
		return acmeerr.New(acmeerr.Malformed, "payload is not the expected JSON object: %s", jsonErr(err))
	}
	if dec.More() {
		return acmeerr.New(acmeerr.Malformed, "payload has data after the JSON object")
	}
	if err := checkUniqueKeys(p); err != nil {
		return acmeerr.New(acmeerr.Malformed, "payload: %s", err)
	}
	return nil
}

func jsonErr(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "field " + acmeerr.Quote(te.Field) + " has the wrong type"
	}
	return "invalid JSON"
}

// thumbprintOf is the RFC 7638 thumbprint of a public key.
func thumbprintOf(pub any) (string, error) { return thumbprint(&jose.JSONWebKey{Key: pub}) }
