package ra

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/core"
	"github.com/acmebridge/acmebridge/internal/expiring"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/upstream"
)

// certByARIID finds the certificate an ARI certificate identifier names
// (RFC 9773 §4.1: "the base64url-encoding of the keyIdentifier field of the
// certificate's Authority Key Identifier extension, a literal period, and
// the base64url-encoding of the DER-encoded Serial Number field (without
// the tag and length bytes)").
func (ra *RA) certByARIID(ctx context.Context, id string) (*store.Certificate, *x509.Certificate, error) {
	aki64, serial64, ok := strings.Cut(id, ".")
	aki, err1 := base64.RawURLEncoding.DecodeString(aki64)
	serial, err2 := base64.RawURLEncoding.DecodeString(serial64)
	if !ok || err1 != nil || err2 != nil || len(aki) == 0 || len(serial) == 0 || len(serial) > 21 {
		return nil, nil, acmeerr.New(acmeerr.Malformed, "%s is not an ARI certificate identifier", acmeerr.Quote(id))
	}
	// A DER INTEGER's content carries a leading zero when its high bit
	// would otherwise make it negative; our serials are stored without it.
	serial = bytes.TrimLeft(serial, "\x00")
	c, err := ra.store.GetCertificateBySerial(ctx, hex.EncodeToString(serial))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, acmeerr.New(acmeerr.NotFound, "no certificate with that identifier was issued here")
	}
	if err != nil {
		return nil, nil, storeDown(err)
	}
	leaf, err := core.LeafFromPEM(c.ChainPEM)
	if err != nil {
		return nil, nil, acmeerr.Wrap(acmeerr.Internal, err, "stored certificate %s is unreadable", c.ID)
	}
	// A directory answers for its own certificates only.
	if !bytes.Equal(leaf.AuthorityKeyId, aki) || c.Directory != DirectoryOf(ctx) {
		return nil, nil, acmeerr.New(acmeerr.NotFound, "no certificate with that identifier was issued here")
	}
	return c, leaf, nil
}

// window is the suggested renewal window of a certificate: in the past when
// it is revoked or an operator asked for early renewal (RFC 9773 §4.2: "a
// window in the past ... indicates that the client should attempt renewal
// immediately"), otherwise from two thirds of its lifetime on.
func (ra *RA) window(c *store.Certificate) (time.Time, time.Time) {
	now := ra.now()
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

// Caching of the upstream CAs' ARI answers.
const (
	// ariCacheFloor and ariCacheCeiling bound how long a CA's answer is kept
	// (its Retry-After, RFC 9773 §4.2, within these bounds).
	ariCacheFloor   = time.Hour
	ariCacheCeiling = 24 * time.Hour
	// ariFailCache is how long an unreachable CA is not asked again (the
	// computed window is served meanwhile).
	ariFailCache = 10 * time.Minute
	// ariTimeout bounds the question to the CA, so the client's GET
	// does not wait long on a slow CA.
	ariTimeout = 5 * time.Second
	// ariCacheSize bounds the entries kept per replica.
	ariCacheSize = 100_000
)

// ariCache keeps the upstream CAs' ARI answers by certificate ID, in
// memory (each replica asks the CA on its own).
type ariCache struct{ m *expiring.Map[ariEntry] }

// ariEntry is a CA's answer, or (ok false) its lack of one.
type ariEntry struct {
	start, end time.Time
	ok         bool
	until      time.Time
}

func (a *ariCache) get(id string, now time.Time) (ariEntry, bool) { return a.m.Get(id, now) }

func (a *ariCache) put(id string, e ariEntry, now time.Time) { a.m.Put(id, e, e.until, now) }

// suggestedWindow is the window served for a certificate and the
// Retry-After to serve with it: the issuing upstream CA's own ARI answer
// (cached) when it offers one, else the computed window. Revocation and
// an operator's early renewal take precedence over the CA's answer.
func (ra *RA) suggestedWindow(ctx context.Context, c *store.Certificate, leaf *x509.Certificate) (time.Time, time.Time, time.Duration) {
	retry := ra.conf().Orders.RenewalRetryAfter.D()
	start, end := ra.window(c)
	if !c.RevokedAt.IsZero() || (!c.RenewBy.IsZero() && c.RenewBy.Before(c.NotAfter)) {
		return start, end, retry
	}
	iss, _ := ra.issuer(c.Upstream)
	ri, ok := iss.(upstream.RenewalInfoer)
	if !ok {
		return start, end, retry
	}
	now := ra.now()
	e, hit := ra.ari.get(c.ID, now)
	if !hit {
		e = ra.askARI(ctx, ri, c, leaf, now)
		ra.ari.put(c.ID, e, now)
	}
	if !e.ok {
		return start, end, retry
	}
	// Clients come back no later than the cached answer expires.
	return e.start, e.end, max(time.Minute, min(retry, e.until.Sub(now)))
}

// askARI asks the upstream CA for a certificate's window.
func (ra *RA) askARI(ctx context.Context, ri upstream.RenewalInfoer, c *store.Certificate, leaf *x509.Certificate, now time.Time) ariEntry {
	// A client hanging up does not make the CA look unreachable.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ariTimeout)
	defer cancel()
	start, end, retryAfter, err := ri.RenewalInfo(ctx, leaf)
	switch {
	case errors.Is(err, upstream.ErrNoRenewalInfo):
		return ariEntry{until: now.Add(ariCacheCeiling)}
	case err != nil:
		ra.log.Warn("renewal-info: upstream CA did not answer; serving the computed window", "cert", c.ID, "upstream", c.Upstream, "err", err)
		return ariEntry{until: now.Add(ariFailCache)}
	case !start.Before(end):
		// RFC 9773 §4.2: such a window is invalid.
		return ariEntry{until: now.Add(ariFailCache)}
	}
	return ariEntry{start: start, end: end, ok: true, until: now.Add(min(ariCacheCeiling, max(ariCacheFloor, retryAfter)))}
}

// checkReplaces validates newOrder's "replaces" (RFC 9773 §5): the
// certificate must have been issued here to this account and share an
// identifier with the new order, and not be replaced already by an order
// that is not invalid ("Servers SHOULD check that the identified
// certificate and the New Order request correspond to the same ACME
// Account, that they share at least one identifier, and that the
// identified certificate has not already been marked as replaced by a
// different Order that is not "invalid"").
func (ra *RA) checkReplaces(ctx context.Context, acct *store.Account, id string, idents []store.Identifier) (*store.Certificate, error) {
	c, _, err := ra.certByARIID(ctx, id)
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
		live, err := ra.replacementLive(ctx, c.ReplacedBy)
		if err != nil {
			return nil, err
		}
		// §5: "If the Server rejects the request because the identified
		// certificate has already been marked as replaced, it MUST return
		// an HTTP 409 (Conflict) with a problem document of type
		// "alreadyReplaced"".
		if live {
			return nil, acmeerr.New(acmeerr.AlreadyReplaced, "the certificate was already replaced by order %s", c.ReplacedBy)
		}
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

// replacementLive reports whether the order that replaces a certificate
// still counts (RFC 9773 §5): any state but invalid, its state brought up
// to date first (an expired order, or one whose authorization was
// deactivated, is invalid). An order that no longer exists does not count.
func (ra *RA) replacementLive(ctx context.Context, orderID string) (bool, error) {
	o, err := ra.store.GetOrder(ctx, orderID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, storeDown(err)
	}
	if o, err = ra.refreshOrder(ctx, o); err != nil {
		return false, err
	}
	return o.Status != store.StatusInvalid, nil
}

// RenewalInfo is the suggested renewal window of the certificate an ARI
// certificate identifier names, and how soon to ask again (RFC 9773 §4.2).
func (ra *RA) RenewalInfo(ctx context.Context, certID string) (start, end time.Time, retry time.Duration, err error) {
	c, leaf, err := ra.certByARIID(ctx, certID)
	if err != nil {
		return time.Time{}, time.Time{}, 0, err
	}
	start, end, retry = ra.suggestedWindow(ctx, c, leaf)
	return start, end, retry, nil
}
