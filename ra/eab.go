package ra

import (
	"context"
	"errors"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/store"
)

// eabGrants is the account as newOrder, newAuthz and finalize must see it at
// this moment. The rights an EAB key gave its account (the key ID and group
// that policy rules and rate-limit exemptions match on) last only while the
// key is neither revoked nor expired (docs/security.md). The key is read from
// the store at every call, with no cache, so `acmebridge eab revoke` takes
// effect at once on every replica.
//
// When the key is revoked, expired or gone:
//   - with accounts.eab required the key was the account's only credential,
//     so the account is refused (unauthorized) until it registers anew with
//     a valid key;
//   - otherwise the account keeps the rights of open sign-up only: no key,
//     no group. The key's allow-list still limits it: revoking a key never
//     widens what its account may order.
func (ra *RA) eabGrants(ctx context.Context, acct *store.Account) (*store.Account, error) {
	if acct.EABKeyID == "" {
		return acct, nil
	}
	k, err := ra.store.GetEABKey(ctx, acct.EABKeyID)
	var why string
	switch {
	case errors.Is(err, store.ErrNotFound):
		why = "no longer exists"
	case err != nil:
		return nil, storeDown(err)
	case !k.RevokedAt.IsZero():
		why = "was revoked"
	case !k.ExpiresAt.IsZero() && ra.now().After(k.ExpiresAt):
		why = "has expired"
	default:
		return acct, nil
	}
	if ra.cfg.Accounts.EAB == "required" {
		return nil, acmeerr.New(acmeerr.Unauthorized,
			"the external account key %s this account was bound with %s, and this server requires external account binding: register a new account with a valid key",
			acmeerr.Quote(acct.EABKeyID), why)
	}
	open := *acct
	open.EABKeyID, open.Group = "", ""
	return &open, nil
}
