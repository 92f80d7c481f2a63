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
	acct, _, err := ra.eabGrantsKey(ctx, acct)
	return acct, err
}

// eabGrantsKey is eabGrants, and the EAB key whose grants the account
// keeps (nil when it keeps none), as read: a finalize stores its job only
// while the key is still as read (store.Unchanged).
func (ra *RA) eabGrantsKey(ctx context.Context, acct *store.Account) (*store.Account, *store.EABKey, error) {
	if acct.EABKeyID == "" {
		return acct, nil, nil
	}
	k, err := ra.store.GetEABKey(ctx, acct.EABKeyID)
	var why string
	switch {
	case errors.Is(err, store.ErrNotFound):
		why = "no longer exists"
	case err != nil:
		return nil, nil, storeDown(err)
	case !k.RevokedAt.IsZero():
		why = "was revoked"
	case !k.ExpiresAt.IsZero() && ra.now().After(k.ExpiresAt):
		why = "has expired"
	default:
		return acct, k, nil
	}
	if ra.dirNamed(acct.Directory).Config.Accounts.EAB == "required" {
		return nil, nil, acmeerr.New(acmeerr.Unauthorized,
			"the external account key %s this account was bound with %s, and this server requires external account binding: register a new account with a valid key",
			acmeerr.Quote(acct.EABKeyID), why)
	}
	open := *acct
	open.EABKeyID, open.Group = "", ""
	return &open, nil, nil
}

// EABBinding is the external account binding of a newAccount (RFC 8555
// §7.3.4) as the transport read it: the key ID it names, and Verify, which
// checks its MAC and that its payload is the account key, given the key's
// secret.
type EABBinding struct {
	KID    string
	Verify func(hmacKey []byte) error
}

// BindableKey decides on a newAccount's binding under accounts.eab and
// returns the key to bind (nil for none): the key must exist, its MAC
// verify, and it must be neither revoked, expired nor bound already.
// NewAccount calls it; the key binds with the account's creation.
func (ra *RA) BindableKey(ctx context.Context, b *EABBinding) (*store.EABKey, error) {
	d, err := ra.dir(ctx)
	if err != nil {
		return nil, err
	}
	mode := d.Config.Accounts.EAB
	if b == nil {
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
	key, err := ra.store.GetEABKey(ctx, b.KID)
	if err == nil && key.Directory != d.Name {
		// A key made for another directory binds only there: here it
		// is as unknown as a key never made.
		err = store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, acmeerr.New(acmeerr.Unauthorized, "unknown external account key %s", acmeerr.Quote(b.KID))
	}
	if err != nil {
		return nil, storeDown(err)
	}
	// The MAC first: a key's state is told only to whoever holds it.
	if err := b.Verify(key.HMACKey); err != nil {
		return nil, err
	}
	switch {
	case !key.RevokedAt.IsZero():
		return nil, acmeerr.New(acmeerr.Unauthorized, "external account key %s is revoked", acmeerr.Quote(key.ID))
	case !key.ExpiresAt.IsZero() && ra.now().After(key.ExpiresAt):
		return nil, acmeerr.New(acmeerr.Unauthorized, "external account key %s has expired", acmeerr.Quote(key.ID))
	case key.AccountID != "":
		return nil, acmeerr.New(acmeerr.Unauthorized, "external account key %s is already bound to an account", acmeerr.Quote(key.ID))
	}
	return key, nil
}
