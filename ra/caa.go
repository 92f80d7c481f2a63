package ra

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/store"
)

// CAAChecker checks CAA for one name (implemented by proxy/va): nil when
// issuance may go ahead, an error of kind CAA when the records forbid it,
// of kind DNS when they could not be looked up.
type CAAChecker interface {
	CheckCAA(ctx context.Context, name string, wildcard bool, identities []string, accountURL, method string) error
}

// caaParallel bounds the CAA checks of one finalize running at once.
const caaParallel = 8

// caaRoute checks CAA for an order being finalized, for each upstream of its
// route that acmebridge checks CAA for (configs.Upstream.ChecksCAA: local
// and vault by default; an acme upstream's CA checks CAA itself), and returns
// the route without the upstreams CAA forbids. When it forbids them all, the
// error says why for each identifier, as subproblems.
//
// CAA is checked here, at finalize, rather than when a challenge is
// validated: it governs the act of issuance (RFC 8659 §3: "Before issuing a
// certificate, a compliant CA MUST check for publication of a Relevant
// RRset"), an authorization may be reused long after its validation, and
// only the order knows its upstreams. RFC 8657 §5.6 (authorization
// freshness) names this countermeasure: "revalidating the CAA policy for a
// domain at certificate issuance time". The CA/Browser Forum Baseline
// Requirements (§3.2.2.8) let a CA rely on a CAA check made within 8 hours
// before issuance.
//
// The worker checks again before issuing when that check is older than
// orders.caa_max_age (caaFresh), since a retried issuance (backoff, an
// upstream's Retry-After) may run long after finalize.
//
// RFC 8657 needs the account and the validation method: the account URL is
// the order's account, the method is the challenge that validated each
// identifier's authorization.
func (ra *RA) caaRoute(ctx context.Context, o *store.Order) ([]string, error) {
	type group struct {
		identities []string
		upstreams  []string
		failures   []*acmeerr.Error
	}
	var groups []*group
	byKey := map[string]*group{}
	checked := map[string]*group{}
	for _, name := range o.Upstreams {
		u, ok := ra.upstreamConfig(name)
		if !ok || !u.ChecksCAA() {
			continue
		}
		ids := u.CAAIdentities
		if len(ids) == 0 {
			ids = ra.dirNamed(o.Directory).Config.Server.CAAIdentities
		}
		norm := make([]string, 0, len(ids))
		for _, id := range ids {
			norm = append(norm, strings.ToLower(strings.TrimSuffix(id, ".")))
		}
		slices.Sort(norm)
		norm = slices.Compact(norm)
		key := strings.Join(norm, ",")
		g := byKey[key]
		if g == nil {
			g = &group{identities: norm}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.upstreams = append(g.upstreams, name)
		checked[name] = g
	}
	if len(groups) == 0 {
		return o.Upstreams, nil
	}
	methods, err := ra.validationMethods(ctx, o)
	if err != nil {
		return nil, err
	}
	acct := ra.accountURL(o.Directory, o.AccountID)
	for _, g := range groups {
		g.failures = ra.checkCAANames(ctx, o.Identifiers, g.identities, acct, methods)
	}

	var allowed []string
	for _, name := range o.Upstreams {
		if g := checked[name]; g == nil || len(g.failures) == 0 {
			allowed = append(allowed, name)
		}
	}
	if len(allowed) > 0 {
		if len(allowed) < len(o.Upstreams) {
			ra.log.Info("CAA forbids some upstreams of the order", "order", o.ID, "upstreams", o.Upstreams, "allowed", allowed)
		}
		return allowed, nil
	}
	// Every upstream is forbidden: the first one's reasons are the order'ra.
	first := checked[o.Upstreams[0]]
	ra.log.Info("CAA forbids the order", "order", o.ID, "account", o.AccountID, "upstreams", o.Upstreams, "failures", len(first.failures))
	return nil, caaProblem(first.failures)
}

// caaFresh makes sure the order's CAA check is recent enough to issue on
// (orders.caa_max_age; the CA/Browser Forum Baseline Requirements §3.2.2.8
// allow 8 hours): an older one, or none recorded, is made again and the
// route narrowed to what CAA allows now. It reports whether the job may go
// on: CAA now forbidding every upstream makes the order invalid; a failed
// lookup or store write puts the job back for a later attempt.
func (ra *RA) caaFresh(ctx context.Context, o *store.Order, job *store.Job) bool {
	if !o.CAACheckedAt.IsZero() && ra.now().Sub(o.CAACheckedAt) <= ra.conf().Orders.CAAMaxAge.D() {
		return true
	}
	ups, err := ra.caaRoute(ctx, o)
	if err == nil {
		o.Upstreams, o.CAACheckedAt = ups, ra.now()
		err = ra.store.UpdateOrder(ctx, o)
	}
	switch {
	case err == nil:
		ra.log.Info("worker: CAA checked again before issuing", "order", o.ID, "upstreams", ups)
		return true
	case acmeerr.KindOf(err) == acmeerr.CAA, job.Attempts >= maxJobAttempts || ra.now().After(o.Expires):
		ra.failOrder(ctx, o, "", err)
	default:
		ra.log.Warn("worker: CAA check before issuing", "order", o.ID, "err", err)
		job.NotBefore = ra.now().Add(jobBackoff(job.Attempts))
		ra.releaseJob(ctx, job)
	}
	return false
}

// caaProblem is the finalize problem for per-identifier CAA failures
// (RFC 8555 §6.7.1: subproblems name their identifier). It is of type caa
// (403) when CAA forbids any name, else dns (a lookup failed).
func caaProblem(failures []*acmeerr.Error) *acmeerr.Error {
	kind := acmeerr.DNS
	for _, f := range failures {
		if f.Kind == acmeerr.CAA {
			kind = acmeerr.CAA
		}
	}
	if len(failures) == 1 {
		return &acmeerr.Error{Kind: kind, Detail: failures[0].Detail, Sub: failures, Err: failures[0].Err}
	}
	var names []string
	for _, f := range failures {
		names = append(names, f.Identifier.Value)
	}
	return &acmeerr.Error{Kind: kind, Sub: failures, Detail: "CAA forbids issuance, or could not be checked, for " + strings.Join(names, ", ")}
}

// checkCAANames checks every DNS identifier of ids (IP addresses have no
// CAA), a few at a time, and returns the failures in identifier order, each
// carrying its identifier.
func (ra *RA) checkCAANames(ctx context.Context, ids []store.Identifier, identities []string, acct string, methods map[string]string) []*acmeerr.Error {
	errs := make([]*acmeerr.Error, len(ids))
	sem := make(chan struct{}, caaParallel)
	var wg sync.WaitGroup
	for i, id := range ids {
		if id.Type != "dns" {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			// RFC 8555 §7.1.3: a wildcard identifier's value is "*." and
			// the base name; CheckCAA then applies issuewild (RFC 8659 §4.3).
			err := ra.caaChecker().CheckCAA(ctx, id.Value, false, identities, acct, methods[id.Value])
			if err == nil {
				return
			}
			var ae *acmeerr.Error
			if !errors.As(err, &ae) {
				ae = acmeerr.Wrap(acmeerr.DNS, err, "CAA for %s could not be checked", id.Value)
			}
			// A copy, so the checker's error is not changed.
			e := &acmeerr.Error{Kind: ae.Kind, Detail: ae.Detail, Err: ae.Err}
			errs[i] = e.For(id.Type, id.Value)
		}()
	}
	wg.Wait()
	var out []*acmeerr.Error
	for _, e := range errs {
		if e != nil {
			out = append(out, e)
		}
	}
	return out
}

// validationMethods maps each identifier of the order (wildcards with their
// "*.") to the type of the challenge that validated its authorization, for
// RFC 8657 validationmethods; an authorization with no valid challenge maps
// to "", which no validationmethods list matches.
func (ra *RA) validationMethods(ctx context.Context, o *store.Order) (map[string]string, error) {
	out := map[string]string{}
	for _, id := range o.AuthzIDs {
		a, err := ra.stateAuthz(ctx, id)
		if err != nil {
			return nil, storeDown(err)
		}
		name := a.Identifier.Value
		if a.Wildcard {
			name = "*." + name
		}
		for _, c := range a.Challenges {
			if c.Status == store.StatusValid {
				out[name] = c.Type
				break
			}
		}
	}
	return out, nil
}

// upstreamConfig returns the configuration of the named upstream.
func (ra *RA) upstreamConfig(name string) (configs.Upstream, bool) {
	for _, u := range ra.conf().Upstreams {
		if u.Name == name {
			return u, true
		}
	}
	return configs.Upstream{}, false
}
