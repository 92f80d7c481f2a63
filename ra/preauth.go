package ra

import (
	"context"
	"errors"
	"slices"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/store"
)

// reusableAuthz returns the ID of the account's valid authorization for
// the identifier, when reuse is configured, it was validated within
// orders.valid_authz_reuse by a challenge type the rule still allows, and
// it outlives the reuse check ("" otherwise). RFC 8555 §7.1.3 lets an
// order list authorizations the account already holds.
func (ra *RA) reusableAuthz(ctx context.Context, accountID string, id store.Identifier, allowed []string) string {
	window := ra.conf().Orders.ValidAuthzReuse.D()
	if window <= 0 {
		return ""
	}
	base, wildcard := trimWildcard(id)
	now := ra.now()
	a, err := ra.store.FindValidAuthz(ctx, accountID, base, wildcard, now)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			ra.log.Warn("authorization reuse: lookup", "err", err)
		}
		return ""
	}
	if a.Delegated {
		// A delegated authorization belongs to its order (delegate.go).
		return ""
	}
	for _, c := range a.Challenges {
		if c.Status == store.StatusValid && now.Sub(c.Validated) <= window && slices.Contains(allowed, c.Type) {
			return a.ID
		}
	}
	return ""
}

// NewAuthz creates an authorization ahead of an order (RFC 8555 §7.4.1,
// offered when orders.pre_authorization is set), under the same policy,
// EAB grants and limits as an order for the identifier.
func (ra *RA) NewAuthz(ctx context.Context, owner *store.Account, ident store.Identifier) (*store.Authorization, error) {
	ids, err := NormalizeIdentifiers([]store.Identifier{ident}, 1)
	if err != nil {
		return nil, err
	}
	id := ids[0]
	// §7.4.1: "pre-authorization cannot be used to authorize issuance of
	// certificates containing wildcard domain names".
	if _, wildcard := trimWildcard(id); wildcard {
		return nil, acmeerr.New(acmeerr.RejectedIdentifier, "a wildcard cannot be pre-authorized; order it").For(id.Type, id.Value)
	}
	// The account with the grants its EAB key gives now (eab.go).
	acct, err := ra.eabGrants(ctx, owner)
	if err != nil {
		return nil, ra.refuse(ctx, audit.OrderRefused, owner.ID, "", ids, err)
	}
	if err := accountAllows(acct, ids); err != nil {
		return nil, ra.refuse(ctx, audit.OrderRefused, owner.ID, "", ids, err)
	}
	dec, err := ra.route(acct, ids, "")
	if err != nil {
		return nil, ra.refuse(ctx, audit.OrderRefused, owner.ID, "", ids, err)
	}
	a := ra.newAuthz(owner.ID, id, dec.Challenges, ra.now())
	a.Directory = owner.Directory
	d, err := ra.accountDir(owner)
	if err != nil {
		return nil, err
	}
	if len(a.Challenges) == 0 {
		return nil, acmeerr.New(acmeerr.RejectedIdentifier, "rule %s allows no challenge type that can validate %s", dec.Rule, id.Value).For(id.Type, id.Value)
	}
	spent, err := d.lim.newAuthz(ctx, acct, id)
	if err != nil {
		return nil, ra.refuse(ctx, audit.OrderRefused, owner.ID, "", ids, err)
	}
	if err := ra.store.CreateAuthz(ctx, a); err != nil {
		d.lim.refund(ctx, spent)
		return nil, storeErr(err, "authorization")
	}
	return a, nil
}
