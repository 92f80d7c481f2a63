package ra

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/publicsuffix"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/store"
)

// limiter applies the configured rate limits (configs.RateLimits) through
// the store's GCRA buckets, so every replica sharing the store shares the
// limits. Each request's spends go to the store as one batch: a request
// refused by one limit spends nothing from the others.
type limiter struct {
	cfg configs.RateLimits
	// ns starts every bucket key: "" for the top-level directory, the
	// directory's name and "/" for another, so a tenant's limits are its
	// own.
	ns             string
	st             rateSpender
	now            func() time.Time
	exemptAccounts map[string]bool
	exemptGroups   map[string]bool
	exemptNets     []netip.Prefix
}

// rateSpender is the part of the store the limiter uses.
type rateSpender interface {
	SpendRates(ctx context.Context, spends []store.RateSpend, now time.Time) ([]store.RateDecision, error)
}

// The bucket key prefixes, one per limit.
const (
	rlAccountsPerIP = "newacct:"
	rlOrders        = "orders:"
	rlFailed        = "failed:"
	rlCerts         = "certs:"
	rlPendingAuthz  = "authz:"
	rlUnknownKey    = "unknownkey:"
)

// limitSpend is one spend with what the client is told when it is refused.
type limitSpend struct {
	store.RateSpend
	what string
}

func newLimiter(cfg configs.RateLimits, st rateSpender, now func() time.Time, directory string) *limiter {
	l := &limiter{cfg: cfg, st: st, now: now, ns: directory, exemptAccounts: map[string]bool{}, exemptGroups: map[string]bool{}}
	for _, a := range cfg.Exempt.Accounts {
		l.exemptAccounts[a] = true
	}
	for _, g := range cfg.Exempt.EABGroups {
		l.exemptGroups[g] = true
	}
	for _, p := range cfg.Exempt.IPs {
		if pfx, err := netip.ParsePrefix(p); err == nil { // validated by configs
			l.exemptNets = append(l.exemptNets, pfx)
		}
	}
	return l
}

func storeLimit(l configs.RateLimit) store.Limit {
	return store.Limit{Count: l.Count, Period: l.Period.D(), Burst: l.Burst}
}

// exempt reports whether no limit applies to the account.
func (l *limiter) exempt(acct *store.Account) bool {
	return acct != nil && (l.exemptAccounts[acct.ID] || (acct.Group != "" && l.exemptGroups[acct.Group]))
}

// add appends a spend of cost on key under lim when the limit is on.
func add(spends []limitSpend, lim configs.RateLimit, key string, cost int64, check bool, what string) []limitSpend {
	if !lim.On() || cost == 0 {
		return spends
	}
	return append(spends, limitSpend{RateSpend: store.RateSpend{Key: key, Cost: cost, Limit: storeLimit(lim), CheckOnly: check}, what: what})
}

// spend decides the batch. A refusal is a rateLimited error (RFC 8555
// §6.6: "the server MAY use the "Retry-After" header field to tell the
// client how long to wait") naming the limit and when to retry; a store
// failure is a 503, never a silent pass.
func (l *limiter) spend(ctx context.Context, spends []limitSpend) error {
	if len(spends) == 0 {
		return nil
	}
	batch := make([]store.RateSpend, len(spends))
	for i, sp := range spends {
		batch[i] = l.keyed(sp.RateSpend)
	}
	ds, err := l.st.SpendRates(ctx, batch, l.now())
	if err != nil {
		return storeDown(err)
	}
	var refused []string
	var retry time.Duration
	for i, d := range ds {
		if d.Allowed {
			continue
		}
		lim := spends[i].Limit
		refused = append(refused, fmt.Sprintf("%s (%d per %s)", spends[i].what, lim.Count, lim.Period))
		retry = max(retry, d.RetryIn)
	}
	if len(refused) == 0 {
		return nil
	}
	retry = max(retry.Round(time.Second), time.Second)
	return &acmeerr.Error{Kind: acmeerr.RateLimited, RetryAfter: retry,
		Detail: fmt.Sprintf("rate limit: %s; retry after %s", strings.Join(slices.Compact(refused), "; "), retry)}
}

// refund gives back spends made for a request that then failed (best
// effort: a lost refund refills with time).
func (l *limiter) refund(ctx context.Context, spends []limitSpend) {
	var batch []store.RateSpend
	for _, sp := range spends {
		if !sp.CheckOnly && sp.Cost > 0 {
			r := l.keyed(sp.RateSpend)
			r.Cost = -r.Cost
			batch = append(batch, r)
		}
	}
	if len(batch) > 0 {
		_, _ = l.st.SpendRates(ctx, batch, l.now())
	}
}

// keyed puts the directory's namespace before a spend's bucket key.
func (l *limiter) keyed(sp store.RateSpend) store.RateSpend {
	if l.ns != "" {
		sp.Key = l.ns + "/" + sp.Key
	}
	return sp
}

// ipKey is the bucket key of a client address (IPv6 per /64, as Boulder's
// NewRegistrationsPerIPv6Range), and whether the address is exempt.
func (l *limiter) ipKey(ip string) (key string, exempt bool) {
	key = ip
	if a, err := netip.ParseAddr(ip); err == nil {
		a = a.Unmap()
		for _, n := range l.exemptNets {
			if n.Contains(a) {
				return "", true
			}
		}
		if a.Is6() {
			key = netip.PrefixFrom(a, 64).Masked().String()
		}
	}
	return key, false
}

// newAccount spends one account creation for the client address unless
// the address or the EAB group is exempt.
func (l *limiter) newAccount(ctx context.Context, ip, group string) ([]limitSpend, error) {
	if group != "" && l.exemptGroups[group] {
		return nil, nil
	}
	key, exempt := l.ipKey(ip)
	if exempt {
		return nil, nil
	}
	spends := add(nil, l.cfg.NewAccountsPerIP, rlAccountsPerIP+key, 1, false, "too many new accounts from "+key)
	return spends, l.spend(ctx, spends)
}

// unknownKey spends one request signed by a key without an account for the
// client address, unless it is exempt.
func (l *limiter) unknownKey(ctx context.Context, ip string) error {
	key, exempt := l.ipKey(ip)
	if exempt {
		return nil
	}
	return l.spend(ctx, add(nil, l.cfg.UnknownKeyRequestsPerIP, rlUnknownKey+key, 1, false,
		"too many requests signed by keys without an account from "+key))
}

// LimitUnknownKey applies unknown_key_requests_per_ip to a request whose
// JWS carries a "jwk" (newAccount, revokeCert by a certificate's key) with
// the RFC 7638 thumbprint tp, from the client address ip: unless the key
// has an account, it spends from the address's bucket. The transport calls
// it after the signature and before the nonce, so a refused request
// records no nonce: any throwaway key can sign such a request, and each
// would otherwise take room in the record of used nonces
// (store.Store.UseNonce).
func (ra *RA) LimitUnknownKey(ctx context.Context, tp, ip string) error {
	d, err := ra.dir(ctx)
	if err != nil {
		return err
	}
	if !d.lim.cfg.UnknownKeyRequestsPerIP.On() {
		return nil
	}
	_, err = ra.store.GetAccountByKey(ctx, tp)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, store.ErrNotFound):
		return storeDown(err)
	}
	return d.lim.unknownKey(ctx, ip)
}

// newOrder spends one order and newAuthzs pending authorizations for the
// account, and checks (without spending) the certificates per registered
// domain and the failed validations per identifier, so a client learns at
// newOrder rather than at finalize that it would be refused.
func (l *limiter) newOrder(ctx context.Context, acct *store.Account, ids []store.Identifier, newAuthzs int) ([]limitSpend, error) {
	if l.exempt(acct) {
		return nil, nil
	}
	spends := add(nil, l.cfg.NewOrdersPerAccount, rlOrders+acct.ID, 1, false, "too many new orders for this account")
	spends = add(spends, l.cfg.PendingAuthorizationsPerAccount, rlPendingAuthz+acct.ID, int64(newAuthzs), false, "too many pending authorizations for this account")
	spends = l.failedChecks(spends, acct, ids)
	for _, d := range registeredDomains(ids) {
		spends = add(spends, l.cfg.CertificatesPerDomain, rlCerts+d, 1, true, "too many certificates for "+d)
	}
	return spends, l.spend(ctx, spends)
}

// newAuthz spends one pending authorization (pre-authorization, §7.4.1).
func (l *limiter) newAuthz(ctx context.Context, acct *store.Account, id store.Identifier) ([]limitSpend, error) {
	if l.exempt(acct) {
		return nil, nil
	}
	spends := add(nil, l.cfg.PendingAuthorizationsPerAccount, rlPendingAuthz+acct.ID, 1, false, "too many pending authorizations for this account")
	spends = l.failedChecks(spends, acct, []store.Identifier{id})
	return spends, l.spend(ctx, spends)
}

// failedChecks adds a check of the failed-validation bucket of each
// identifier.
func (l *limiter) failedChecks(spends []limitSpend, acct *store.Account, ids []store.Identifier) []limitSpend {
	for _, id := range ids {
		spends = add(spends, l.cfg.FailedValidationsPerName, failedKey(acct.ID, id), 1, true, "too many failed validations of "+id.Value)
	}
	return spends
}

func failedKey(account string, id store.Identifier) string {
	return rlFailed + account + ":" + id.Type + ":" + strings.TrimPrefix(id.Value, "*.")
}

// finalize spends one certificate per registered domain of the order.
func (l *limiter) finalize(ctx context.Context, acct *store.Account, ids []store.Identifier) ([]limitSpend, error) {
	if l.exempt(acct) {
		return nil, nil
	}
	var spends []limitSpend
	for _, d := range registeredDomains(ids) {
		spends = add(spends, l.cfg.CertificatesPerDomain, rlCerts+d, 1, false, "too many certificates for "+d)
	}
	return spends, l.spend(ctx, spends)
}

// notIssued gives back the certificates finalize spent for an order that
// ended without one.
func (l *limiter) notIssued(ctx context.Context, acct *store.Account, ids []store.Identifier) {
	if l.exempt(acct) {
		return
	}
	var spends []limitSpend
	for _, d := range registeredDomains(ids) {
		spends = add(spends, l.cfg.CertificatesPerDomain, rlCerts+d, 1, false, "")
	}
	l.refund(ctx, spends)
}

// validated records the end of a validation: a failure spends one failed
// validation for the identifier, and either way the authorization is no
// longer pending. The account's exemption is not looked up here (a
// validation has no account record at hand): exempt accounts never have
// their failures checked, so spending them is harmless.
func (l *limiter) validated(ctx context.Context, account string, id store.Identifier, failed bool) {
	var spends []limitSpend
	if failed {
		spends = add(spends, l.cfg.FailedValidationsPerName, failedKey(account, id), 1, false, "")
	}
	spends = add(spends, l.cfg.PendingAuthorizationsPerAccount, rlPendingAuthz+account, -1, false, "")
	// Separate batches: a failure bucket already spent must not keep the
	// pending authorization from being given back.
	for _, sp := range spends {
		_, _ = l.st.SpendRates(ctx, []store.RateSpend{l.keyed(sp.RateSpend)}, l.now())
	}
}

// deactivated gives back a pending authorization the client deactivated.
func (l *limiter) deactivated(ctx context.Context, account string) {
	l.refund(ctx, add(nil, l.cfg.PendingAuthorizationsPerAccount, rlPendingAuthz+account, 1, false, ""))
}

// registeredDomains are the distinct registered domains of the
// identifiers: the public suffix plus one label (golang.org/x/net's copy
// of the Public Suffix List); a name that is itself a public suffix, and
// an IP address, count as themselves.
func registeredDomains(ids []store.Identifier) []string {
	var out []string
	for _, id := range ids {
		d := strings.TrimPrefix(id.Value, "*.")
		if id.Type == "dns" {
			if rd, err := publicsuffix.EffectiveTLDPlusOne(d); err == nil {
				d = rd
			}
		}
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}
