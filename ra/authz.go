package ra

import (
	"context"
	"errors"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/store"
)

// getAuthz loads an authorization; when acct is set it must own it.
func (ra *RA) getAuthz(ctx context.Context, id string, acct *store.Account) (*store.Authorization, error) {
	a, err := ra.readAuthz(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, acmeerr.New(acmeerr.NotFound, "no such authorization")
	}
	if err != nil {
		return nil, storeDown(err)
	}
	if acct != nil && a.AccountID != acct.ID {
		return nil, acmeerr.New(acmeerr.Unauthorized, "the authorization belongs to another account")
	}
	// Another directory's authorization is not there for this one, even
	// to an unauthenticated GET.
	if a.Directory != DirectoryOf(ctx) {
		return nil, acmeerr.New(acmeerr.NotFound, "no such authorization")
	}
	return a, nil
}

// Authz reads an authorization; acct, when set, must own it (RFC 8555
// §7.5: authorizations are also served to an unauthenticated GET, their
// URLs carrying 128 random bits).
func (ra *RA) Authz(ctx context.Context, acct *store.Account, id string) (*store.Authorization, error) {
	return ra.getAuthz(ctx, id, acct)
}

// DeactivateAuthz deactivates an authorization the account owns (RFC 8555
// §7.5.2: "If a client wishes to relinquish its authorization ... the
// client ... send a POST request to the authorization URL with the status
// field "deactivated""); status is the payload's, and only a pending or
// valid authorization may be deactivated (§7.1.6).
func (ra *RA) DeactivateAuthz(ctx context.Context, a *store.Authorization, status string) (*store.Authorization, error) {
	if status != store.StatusDeactivated {
		return nil, acmeerr.New(acmeerr.Malformed, "an authorization may only be deactivated")
	}
	st := AuthzStatus(a, ra.now())
	if st != store.StatusPending && st != store.StatusValid {
		return nil, acmeerr.New(acmeerr.Malformed, "an authorization that is %s cannot be deactivated", st)
	}
	a.Status = store.StatusDeactivated
	if err := ra.store.UpdateAuthz(ctx, a); err != nil {
		return nil, storeErr(err, "authorization")
	}
	if st == store.StatusPending {
		ra.dirNamed(a.Directory).lim.deactivated(ctx, a.AccountID)
	}
	return a, nil
}
