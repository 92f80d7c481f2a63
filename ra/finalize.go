package ra

import (
	"context"
	"crypto"
	"errors"
	"time"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/store"
	"github.com/go-jose/go-jose/v4"
)

// Finalize checks the CSR (DER; nil when it was not base64url) against the
// order and the policy, queues the issuance job, and waits up to
// orders.finalize_wait for a fast upstream (RFC 8555 §7.4). It returns the
// order as it then is: valid, processing or invalid.
func (ra *RA) Finalize(ctx context.Context, owner *store.Account, orderID string, der []byte) (*store.Order, error) {
	o, readyUnstored, err := ra.loadOrderWith(ctx, orderID, owner, false)
	if err != nil {
		return nil, err
	}
	// §7.4: "A request to finalize an order will result in error if the
	// order is not in the "ready" state. In such cases, the server MUST
	// return a 403 (Forbidden) error with a problem document of type
	// "orderNotReady"."
	// loadOrder re-checked every authorization of the order at this moment:
	// one deactivated or expired since made the order invalid (§7.1.6).
	if o.Status != store.StatusReady {
		return nil, acmeerr.New(acmeerr.OrderNotReady, "order is %s, not ready", o.Status)
	}
	// The account with the grants its EAB key gives now (eab.go): a
	// key revoked since newOrder takes them away.
	acct, key, err := ra.eabGrantsKey(ctx, owner)
	if err != nil {
		return nil, ra.refuse(ctx, audit.FinalizeRefused, o.AccountID, o.ID, o.Identifiers, err)
	}
	// What this finalize decides on besides the order: its authorizations
	// as loadOrder found them valid, and that key. The job is stored only
	// while each is as read (store.Unchanged, below).
	authzs, unchanged, err := ra.decidedOn(ctx, o, key)
	if err != nil {
		return nil, err
	}
	if len(der) == 0 {
		return nil, acmeerr.New(acmeerr.BadCSR, "csr is not base64url DER")
	}
	// What the certificate may hold is decided in ra, from the order and
	// the CSR (docs/security.md).
	accountKey, err := accountPublicKey(owner)
	if err != nil {
		return nil, err
	}
	content, err := CheckCSR(der, o.Identifiers, accountKey)
	if err != nil {
		return nil, ra.refuse(ctx, audit.FinalizeRefused, o.AccountID, o.ID, o.Identifiers, err)
	}
	// Policy is checked again at finalize: the configuration may have
	// changed since newOrder (docs/security.md). The route taken at newOrder
	// stays: the order goes to the upstreams it was given.
	dec, err := ra.route(acct, o.Identifiers, o.Profile)
	if err != nil {
		return nil, ra.refuse(ctx, audit.FinalizeRefused, o.AccountID, o.ID, o.Identifiers, err)
	}
	// An order validated by delegation (delegate.go) keeps it only while
	// the account's EAB key and the policy still grant it.
	if err := delegationHolds(o, dec); err != nil {
		return nil, ra.refuse(ctx, audit.FinalizeRefused, o.AccountID, o.ID, o.Identifiers, err)
	}
	if err := KeyAllowed(content.CSR.PublicKey, dec); err != nil {
		return nil, ra.refuse(ctx, audit.FinalizeRefused, o.AccountID, o.ID, o.Identifiers, err)
	}
	if dec.MaxValidity > 0 && (o.MaxValidity == 0 || dec.MaxValidity < o.MaxValidity) {
		o.MaxValidity = dec.MaxValidity
	}
	// An upstream a reload removed since newOrder takes no new work: the
	// route keeps those still configured, held until the job naming them
	// is stored, so a drain sees the hold or the job (reload.go); with
	// none left the order takes the route the policy gives now.
	kept, release := ra.holdUpstreams(o.Upstreams)
	defer release()
	if len(kept) == 0 {
		now, releaseNow := ra.holdUpstreams(dec.Upstreams)
		defer releaseNow()
		if len(now) > 0 {
			ra.log.Info("order rerouted: its upstreams were removed", "order", o.ID, "from", o.Upstreams, "to", now, "rule", dec.Rule)
			kept, o.Rule, o.UpstreamProfile = now, dec.Rule, dec.UpstreamProfile
		} else {
			kept = o.Upstreams // none configured at all: the worker says so
		}
	}
	o.Upstreams = kept
	if err := ra.nameInCNOnlyRoutable(content, o.Upstreams); err != nil {
		return nil, ra.refuse(ctx, audit.FinalizeRefused, o.AccountID, o.ID, o.Identifiers, err)
	}
	// CAA, last, just before issuance (caa.go): the route keeps the
	// upstreams CAA lets issue; none left is a caa (or dns) problem.
	ups, err := ra.caaRoute(ctx, o)
	if err != nil {
		if k := acmeerr.KindOf(err); k == acmeerr.CAA || k == acmeerr.DNS {
			return nil, ra.refuse(ctx, audit.FinalizeRefused, o.AccountID, o.ID, o.Identifiers, err)
		}
		return nil, err
	}
	d, err := ra.accountDir(acct)
	if err != nil {
		return nil, err
	}
	spent, err := d.lim.finalize(ctx, acct, o.Identifiers)
	if err != nil {
		return nil, ra.refuse(ctx, audit.FinalizeRefused, o.AccountID, o.ID, o.Identifiers, err)
	}
	now := ra.now()
	// The CAA lookup takes time. An authorization that expired during it
	// ends the order as it would have before it (§7.1.6); one deactivated,
	// or the EAB key revoked, during it fails EnqueueJob's precondition.
	for _, a := range authzs {
		if AuthzStatus(a, now) != store.StatusValid {
			d.lim.refund(ctx, spent)
			return nil, ra.finalizeMoved(ctx, owner, orderID)
		}
	}
	o.Upstreams, o.CAACheckedAt, o.FinalizedAt = ups, now, now
	o.Status, o.CSR = store.StatusProcessing, der
	wait := ra.subscribe("order:" + o.ID)
	defer ra.unsubscribe("order:"+o.ID, wait)
	job := &store.Job{OrderID: o.ID, NotBefore: now}
	// A free worker of this replica takes the job at once, claimed as it
	// is stored (handoff.go).
	workCtx := ra.workers.tryHandOff()
	if workCtx != nil {
		job.Owner, job.LeaseUntil, job.Attempts = ra.workerID, now.Add(ra.conf().Orders.JobLease.D()), 1
	}
	if err := ra.store.EnqueueJob(ctx, job, o, unchanged...); err != nil {
		if workCtx != nil {
			ra.notHandedOff()
		}
		d.lim.refund(ctx, spent)
		if errors.Is(err, store.ErrConflict) {
			// Another finalize won the race (§7.1.6 allows one), or what
			// this one decided on moved.
			return nil, ra.finalizeMoved(ctx, owner, orderID)
		}
		return nil, storeDown(err)
	}
	ra.log.Info("order finalizing", "order", o.ID, "account", o.AccountID, "rule", o.Rule, "upstreams", o.Upstreams)
	if readyUnstored {
		// Ready and processing in one write (loadOrderWith).
		ra.metrics.Order(o.Directory, store.StatusReady)
	}
	ra.metrics.Order(o.Directory, store.StatusProcessing)
	if workCtx != nil {
		ra.handOff(workCtx, job, o)
	} else {
		ra.KickWorker()
	}
	// ended is the order as this process's worker stored it, when the
	// worker ended it here (val is read only once done is closed).
	var ended *store.Order
	select {
	case <-wait.done:
		ended, _ = wait.val.(*store.Order)
	case <-time.After(ra.conf().Orders.FinalizeWait.D()):
	case <-ctx.Done():
	}
	if ended != nil {
		o = ended
	} else if cur, err := ra.store.GetOrder(ctx, o.ID); err == nil {
		o = cur
	}
	return o, nil
}

// nameInCNOnlyRoutable refuses a CSR that names a DNS identifier only in
// its common name (RFC 8555 §7.4 allows it; CertContent.NameInCNOnly) on a
// route with an upstream whose certificate would name only what the CSR's
// subjectAltName lists (configs.Upstream.SANsFromCSR: an acme upstream,
// Vault's sign-verbatim). The client learns it at finalize, with what to
// change, rather than from a certificate without the name. The local CA
// and Vault's sign mode issue the name in the subjectAltName.
func (ra *RA) nameInCNOnlyRoutable(content *CertContent, upstreams []string) error {
	if !content.NameInCNOnly {
		return nil
	}
	for _, name := range upstreams {
		if u, ok := ra.upstreamConfig(name); ok && u.SANsFromCSR() {
			return acmeerr.New(acmeerr.BadCSR,
				"the CSR names %s only in its common name, and this order goes to upstream %s, whose certificates name what the CSR's subjectAltName lists: list every name in the CSR's subjectAltName",
				content.CommonName, acmeerr.Quote(name))
		}
	}
	return nil
}

// decidedOn returns o's authorizations as o's state was computed from
// them, and the preconditions a finalize stores its job under: each of
// them, and key (nil: none), unchanged.
func (ra *RA) decidedOn(ctx context.Context, o *store.Order, key *store.EABKey) ([]*store.Authorization, []store.Unchanged, error) {
	authzs := make([]*store.Authorization, 0, len(o.AuthzIDs))
	unchanged := make([]store.Unchanged, 0, len(o.AuthzIDs)+1)
	for _, id := range o.AuthzIDs {
		a, err := ra.stateAuthz(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, acmeerr.New(acmeerr.OrderNotReady, "authorization %s no longer exists", id)
		}
		if err != nil {
			return nil, nil, storeDown(err)
		}
		authzs = append(authzs, a)
		unchanged = append(unchanged, store.AuthzUnchanged(a))
	}
	if key != nil {
		unchanged = append(unchanged, store.EABKeyUnchanged(key))
	}
	return authzs, unchanged, nil
}

// finalizeMoved is a finalize's answer when what it decided on moved
// before its job was stored: the order and the account's grants are read
// again and the refusal says what moved. An authorization deactivated or
// expired since has made the order invalid (orderNotReady); a revoked EAB
// key refuses as at the start; an order another finalize took is
// processing.
func (ra *RA) finalizeMoved(ctx context.Context, owner *store.Account, orderID string) error {
	o, _, err := ra.loadOrderWith(ctx, orderID, owner, true)
	if err != nil {
		return err
	}
	if o.Status == store.StatusProcessing || o.Status == store.StatusValid {
		return acmeerr.New(acmeerr.OrderNotReady, "order is already being finalized")
	}
	if o.Status != store.StatusReady {
		return acmeerr.New(acmeerr.OrderNotReady, "order is %s, not ready", o.Status)
	}
	if _, err := ra.eabGrants(ctx, owner); err != nil {
		return ra.refuse(ctx, audit.FinalizeRefused, o.AccountID, o.ID, o.Identifiers, err)
	}
	return acmeerr.New(acmeerr.OrderNotReady, "the order's authorizations or the account's external account key changed while it was being finalized: finalize it again")
}

// accountPublicKey is the account's key, which a certificate must not
// reuse.
func accountPublicKey(acct *store.Account) (crypto.PublicKey, error) {
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(acct.JWK); err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "stored key of account %s is unreadable", acct.ID)
	}
	return k.Key, nil
}
