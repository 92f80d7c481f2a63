package ra

import (
	"context"
	"errors"
	"time"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/core"
	"github.com/acmebridge/acmebridge/policy"
	"github.com/acmebridge/acmebridge/store"
)

// Delegated validation (configs.Rule.DelegatedValidation): a rule that
// matches accounts by EAB key or group and names the domains or IPs it
// grants may make its orders' authorizations valid without a challenge,
// as commercial ACME CAs do for the pre-validated domains of an EAB
// account. The typical user is an on-prem acmebridge that validated its
// clients on the LAN and relays here with its EAB key.
//
// RFC 8555 §7.1.6 says authorizations are created "pending" and become
// "valid" when a challenge does; a delegated one is created as if that
// validation had happened elsewhere, which §7.1.3 allows an order to list
// ("including unexpired authorizations that the client has completed in
// the past for identifiers specified in the order"). Its challenges array
// is empty: §7.1.4 lists, for a valid authorization, "the challenge that
// was validated", and none was here. Clients skip valid authorizations
// (lego's resolver, certbot's auth handler).
//
// The grant is checked where the EAB grants are: at newOrder (the policy
// decides, with the key's rights as they are now, eab.go), again at
// finalize and again by the worker before it asks an upstream, so a key
// revoked or expired since, or a policy that no longer delegates, ends it.

// delegatedAuthz is a valid authorization for id without a challenge,
// granted by rule.
func (ra *RA) delegatedAuthz(accountID string, id store.Identifier, rule string, now time.Time) *store.Authorization {
	a := &store.Authorization{ID: core.RandomID(), AccountID: accountID, Status: store.StatusValid,
		Identifier: id, Expires: now.Add(ra.conf().Orders.AuthzLifetime.D()), Challenges: []store.Challenge{},
		Delegated: true, DelegatedRule: rule}
	if base, wildcard := trimWildcard(id); wildcard {
		a.Identifier, a.Wildcard = base, true
	}
	return a
}

// auditDelegated records each delegated authorization of a new order
// (authorization.delegated: the account's EAB key and group, the name, the
// rule), and logs it.
func (ra *RA) auditDelegated(ctx context.Context, acct *store.Account, o *store.Order, authzs []*store.Authorization) {
	for _, a := range authzs {
		name := a.Identifier.Value
		if a.Wildcard {
			name = "*." + name
		}
		ra.record(ctx, audit.Event{Event: audit.AuthzDelegated, Account: o.AccountID, EABKey: acct.EABKeyID, Group: acct.Group,
			Order: o.ID, Names: []string{name}, Rule: a.DelegatedRule})
		ra.log.Info("authorization delegated", "order", o.ID, "account", o.AccountID, "authz", a.ID, "identifier", name,
			"rule", a.DelegatedRule, "eab_key", acct.EABKeyID, "group", acct.Group)
	}
}

// delegationHolds checks, for an order whose authorizations were
// delegated, that the policy's decision now (dec, taken with the EAB
// grants as they are now) still delegates: a key revoked or expired since
// newOrder (with accounts.eab optional the account is then an open sign-up
// one) or a rule that no longer delegates leaves the order unvalidated.
func delegationHolds(o *store.Order, dec *policy.Decision) error {
	if !o.Delegated || dec.Delegated {
		return nil
	}
	return acmeerr.New(acmeerr.Unauthorized,
		"the order's authorizations were granted without a challenge by rule %s, which no longer grants them to this account (its external account key was revoked or expired, or the policy changed): order the names again and validate them",
		o.Rule)
}

// delegationNow is delegationHolds for the worker, which holds only the
// order: the account, its EAB grants and the policy's decision are read
// now. A store failure is returned as it is (the job is retried); a grant
// that ended is Unauthorized.
func (ra *RA) delegationNow(ctx context.Context, o *store.Order) error {
	if !o.Delegated {
		return nil
	}
	owner, err := ra.store.GetAccount(ctx, o.AccountID)
	if errors.Is(err, store.ErrNotFound) {
		return acmeerr.New(acmeerr.Unauthorized, "the order's account no longer exists")
	}
	if err != nil {
		return storeDown(err)
	}
	acct, err := ra.eabGrants(ctx, owner)
	if err != nil {
		return err
	}
	dec, err := ra.route(acct, o.Identifiers, o.Profile)
	if err != nil {
		return err
	}
	return delegationHolds(o, dec)
}
