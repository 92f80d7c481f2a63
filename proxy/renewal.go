package proxy

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/store"
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

// certByARIID finds the certificate an ARI certificate identifier names
// (RFC 9773 §4.1: "the base64url-encoding of the keyIdentifier field of the
// certificate's Authority Key Identifier extension, a literal period, and
// the base64url-encoding of the DER-encoded Serial Number field (without
// the tag and length bytes)").
func (s *Server) certByARIID(r *http.Request, id string) (*store.Certificate, *x509.Certificate, error) {
	aki64, serial64, ok := strings.Cut(id, ".")
	aki, err1 := decodeB64(aki64)
	serial, err2 := decodeB64(serial64)
	if !ok || err1 != nil || err2 != nil || len(aki) == 0 || len(serial) == 0 || len(serial) > 21 {
		return nil, nil, acmeerr.New(acmeerr.Malformed, "%s is not an ARI certificate identifier", quote(id))
	}
	// A DER INTEGER's content carries a leading zero when its high bit
	// would otherwise make it negative; our serials are stored without it.
	serial = bytes.TrimLeft(serial, "\x00")
	c, err := s.store.GetCertificateBySerial(r.Context(), hex.EncodeToString(serial))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, acmeerr.New(acmeerr.NotFound, "no certificate with that identifier was issued here")
	}
	if err != nil {
		return nil, nil, storeDown(err)
	}
	blk, _ := pem.Decode(c.ChainPEM)
	if blk == nil {
		return nil, nil, acmeerr.New(acmeerr.Internal, "stored chain of %s is unreadable", c.ID)
	}
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, nil, acmeerr.Wrap(acmeerr.Internal, err, "stored certificate %s is unreadable", c.ID)
	}
	if !bytes.Equal(leaf.AuthorityKeyId, aki) {
		return nil, nil, acmeerr.New(acmeerr.NotFound, "no certificate with that identifier was issued here")
	}
	return c, leaf, nil
}

// window is the suggested renewal window of a certificate: in the past when
// it is revoked or an operator asked for early renewal (RFC 9773 §4.2: "a
// window in the past ... indicates that the client should attempt renewal
// immediately"), otherwise from two thirds of its lifetime on.
func (s *Server) window(c *store.Certificate) (time.Time, time.Time) {
	now := s.now()
	switch {
	case !c.RevokedAt.IsZero():
		return now.Add(-2 * time.Hour), now.Add(-time.Hour)
	case !c.RenewBy.IsZero() && c.RenewBy.Before(c.NotAfter):
		end := c.RenewBy
		return end.Add(-time.Hour), end
	}
	life := c.NotAfter.Sub(c.NotBefore)
	start := c.NotBefore.Add(life * 2 / 3)
	end := start.Add(life / 9)
	return start, end
}

// handleRenewalInfo answers GET renewal-info/{certID} (RFC 9773 §4.2).
func (s *Server) handleRenewalInfo(w http.ResponseWriter, r *http.Request) {
	c, _, err := s.certByARIID(r, mux.Vars(r)["id"])
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	start, end := s.window(c)
	var ri renewalInfo
	ri.SuggestedWindow.Start, ri.SuggestedWindow.End = start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339)
	// §4.2: "The server SHOULD include a Retry-After header indicating the
	// polling interval that the ACME server recommends."
	w.Header().Set("Retry-After", strconv.Itoa(int(s.cfg.Orders.RenewalRetryAfter.D().Seconds())))
	writeJSON(w, http.StatusOK, ri)
}

// checkReplaces validates newOrder's "replaces" (RFC 9773 §5): the
// certificate must have been issued here to this account and share an
// identifier with the new order, and not be replaced already.
func (s *Server) checkReplaces(r *http.Request, acct *store.Account, id string, idents []store.Identifier) (*store.Certificate, error) {
	c, _, err := s.certByARIID(r, id)
	if acmeerr.Is(err, acmeerr.NotFound) {
		return nil, acmeerr.New(acmeerr.Malformed, "replaces names no certificate issued here")
	}
	if err != nil {
		return nil, err
	}
	if c.AccountID != acct.ID {
		return nil, acmeerr.New(acmeerr.Unauthorized, "replaces names a certificate of another account")
	}
	if c.ReplacedBy != "" {
		return nil, acmeerr.New(acmeerr.AlreadyReplaced, "the certificate was already replaced by order %s", c.ReplacedBy)
	}
	for _, id := range idents {
		for _, n := range c.Names {
			if strings.EqualFold(n, id.Value) {
				return c, nil
			}
		}
	}
	return nil, acmeerr.New(acmeerr.Malformed, "the order shares no identifier with the certificate it replaces")
}
