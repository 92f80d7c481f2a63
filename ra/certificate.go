package ra

import (
	"context"
	"errors"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/store"
)

// Certificate reads a certificate the account was issued (RFC 8555
// §7.4.2).
func (ra *RA) Certificate(ctx context.Context, acct *store.Account, id string) (*store.Certificate, error) {
	c, err := ra.readCertificate(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, acmeerr.New(acmeerr.NotFound, "no such certificate")
	}
	if err != nil {
		return nil, storeDown(err)
	}
	if c.AccountID != acct.ID {
		return nil, acmeerr.New(acmeerr.Unauthorized, "the certificate belongs to another account")
	}
	return c, nil
}
