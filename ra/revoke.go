package ra

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"time"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/core"
	"github.com/acmebridge/acmebridge/store"
)

// Requester kinds: who asks for a revocation.
const (
	// ByAccount is an ACME account, signing with its key (kid).
	ByAccount = "account"
	// ByCertificateKey is the holder of the certificate's private key,
	// signing with it (jwk).
	ByCertificateKey = "certificate key"
	// ByAdmin is an operator through the admin API or CLI.
	ByAdmin = "admin"
)

// RevokeRequest is one revocation, from any of the three requesters. The
// ACME path names the certificate by its DER (RFC 8555 §7.6); the admin
// path by its serial.
type RevokeRequest struct {
	// By is ByAccount, ByCertificateKey or ByAdmin.
	By string
	// Account is the requesting account (ByAccount).
	Account *store.Account
	// KeySPKI is the DER SubjectPublicKeyInfo of the key that signed the
	// request (ByCertificateKey).
	KeySPKI []byte
	// CertificateDER is the certificate as the ACME client sent it; Serial
	// names it instead (admin).
	CertificateDER []byte
	Serial         string
	// Reason is an RFC 5280 §5.3.1 reason code.
	Reason int
	// Client is who sent the request, for the audit log.
	Client Client
}

// Revoke revokes a certificate this server issued: the one path for ACME
// clients and operators. It checks the reason, that the certificate is
// ours, that the requester may revoke it, and that it is not revoked yet;
// then the upstream that issued it revokes it, and the store and the audit
// log record it. It returns the updated record.
func (ra *RA) Revoke(ctx context.Context, req RevokeRequest) (*store.Certificate, error) {
	if err := core.CheckRevocationReason(req.Reason); err != nil {
		return nil, acmeerr.New(acmeerr.BadRevocationReason, "reason %d is not allowed (0-6, 9, 10)", req.Reason)
	}
	var rec *store.Certificate
	var leaf *x509.Certificate
	var err error
	if req.CertificateDER != nil {
		leaf, err = x509.ParseCertificate(req.CertificateDER)
		if err != nil {
			return nil, acmeerr.New(acmeerr.Malformed, "certificate could not be parsed")
		}
		rec, err = ra.store.GetCertificateBySerial(ctx, core.SerialHex(leaf))
	} else {
		rec, err = ra.store.GetCertificateBySerial(ctx, req.Serial)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, acmeerr.New(acmeerr.NotFound, "certificate was not issued by this server")
	}
	if err != nil {
		return nil, storeDown(err)
	}
	stored, err := core.LeafFromPEM(rec.ChainPEM)
	if err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "stored certificate %s is unreadable", rec.Serial)
	}
	// The serial alone does not make it ours: the bytes must be those we
	// issued.
	if leaf != nil && !bytes.Equal(stored.Raw, leaf.Raw) {
		return nil, acmeerr.New(acmeerr.NotFound, "certificate was not issued by this server")
	}
	// A directory's certificates are revoked through its own URLs only
	// (the admin path, for the whole server, excepted).
	if req.By != ByAdmin && rec.Directory != DirectoryOf(ctx) {
		return nil, acmeerr.New(acmeerr.NotFound, "certificate was not issued by this server")
	}
	switch req.By {
	case ByAccount:
		// §7.6: "The server MUST consider at least the following accounts
		// authorized to revoke a given certificate: the account that
		// issued the certificate [and] an account that holds
		// authorizations for all of the identifiers in the certificate."
		if req.Account == nil {
			return nil, acmeerr.New(acmeerr.Unauthorized, "no account")
		}
		if rec.AccountID != req.Account.ID && !ra.holdsAuthorizations(ctx, req.Account.ID, rec.Names) {
			return nil, acmeerr.New(acmeerr.Unauthorized, "the certificate belongs to another account, and this account holds no valid authorizations for all its names")
		}
	case ByCertificateKey:
		// §7.6: "The server MUST also consider a revocation request valid
		// if it is signed with the private key corresponding to the public
		// key in the certificate."
		if !bytes.Equal(req.KeySPKI, stored.RawSubjectPublicKeyInfo) {
			return nil, acmeerr.New(acmeerr.Unauthorized, "the JWS key is not the certificate's key")
		}
	case ByAdmin:
	default:
		return nil, acmeerr.New(acmeerr.Internal, "revocation by %q", req.By)
	}
	// §7.6: "If the certificate is already revoked ... alreadyRevoked".
	if !rec.RevokedAt.IsZero() {
		return nil, acmeerr.New(acmeerr.AlreadyRevoked, "certificate is already revoked")
	}
	iss, ok := ra.issuer(rec.Upstream)
	if !ok {
		return nil, acmeerr.New(acmeerr.Internal, "upstream %s that issued the certificate is not configured", rec.Upstream)
	}
	// An upstream that already revoked it (a retry after a lost answer)
	// is a success: the record below catches up.
	if err := iss.Revoke(ctx, stored, req.Reason); err != nil && !acmeerr.Is(err, acmeerr.AlreadyRevoked) {
		return nil, &UpstreamError{Upstream: rec.Upstream, Err: err}
	}
	rec.RevokedAt, rec.RevocationReason = ra.now(), req.Reason
	if err := ra.store.UpdateCertificate(ctx, rec); err != nil {
		return nil, storeErr(err, "certificate")
	}
	ra.record(WithClient(ctx, req.Client), audit.Event{Event: audit.CertRevoked, Account: rec.AccountID, Order: rec.OrderID, Names: rec.Names,
		Upstream: rec.Upstream, Serial: rec.Serial, RevocationReason: audit.ReasonCode(req.Reason), Actor: req.By,
		Directory: rec.Directory})
	ra.log.Info("certificate revoked", "serial", rec.Serial, "account", rec.AccountID, "upstream", rec.Upstream,
		"reason", req.Reason, "by", req.By)
	return rec, nil
}

// maxOrdersScanned bounds the search for authorizations in holdsAuthorizations.
const maxOrdersScanned = 1000

// ordersPage is how many order IDs one listing reads.
const ordersPage = 50

// holdsAuthorizations reports whether the account holds valid, unexpired
// authorizations for every name (§7.6). It looks through the account's
// most recent orders.
func (ra *RA) holdsAuthorizations(ctx context.Context, accountID string, names []string) bool {
	have := map[string]bool{}
	now := ra.now()
	cursor := ""
	for scanned := 0; scanned < maxOrdersScanned; {
		page, err := ra.store.ListOrders(ctx, accountID, cursor, ordersPage)
		if err != nil {
			return false
		}
		for _, id := range page.IDs {
			scanned++
			o, err := ra.store.GetOrder(ctx, id)
			if err != nil {
				continue
			}
			for _, aid := range o.AuthzIDs {
				a, err := ra.store.GetAuthz(ctx, aid)
				if err != nil || AuthzStatus(a, now) != store.StatusValid {
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

// AuthzStatus is an authorization's status at now: a pending or valid one
// past its expiry is expired (RFC 8555 §7.1.6).
func AuthzStatus(a *store.Authorization, now time.Time) string {
	if (a.Status == store.StatusPending || a.Status == store.StatusValid) && now.After(a.Expires) {
		return store.StatusExpired
	}
	return a.Status
}
