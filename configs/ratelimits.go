package configs

import (
	"fmt"
	"net/netip"
	"time"
)

// RateLimits are the server's abuse limits (GCRA buckets in the store, as
// in Boulder's ratelimits): each a Count of events per Period with bursts of
// up to Burst (default Count). A limit left out (count 0) is off; every
// limit but unknown_key_requests_per_ip is off by default, since a private
// PKI's clients are known, and configs/public.yaml shows values for a
// server reachable from the internet. A limit a file writes replaces the
// default whole, so {count: 0} turns one off. A refusal is a 429
// rateLimited problem with Retry-After.
type RateLimits struct {
	// NewAccountsPerIP counts accounts created per client address (per /64
	// for IPv6).
	NewAccountsPerIP RateLimit `yaml:"new_accounts_per_ip"`
	// NewOrdersPerAccount counts new orders per account.
	NewOrdersPerAccount RateLimit `yaml:"new_orders_per_account"`
	// FailedValidationsPerName counts failed validations per account and
	// identifier; new orders and authorizations for the identifier are
	// refused while it is spent.
	FailedValidationsPerName RateLimit `yaml:"failed_validations_per_name"`
	// CertificatesPerDomain counts certificates per registered domain (the
	// public suffix plus one label; an IP address counts as itself), checked
	// at new order and spent at finalize.
	CertificatesPerDomain RateLimit `yaml:"certificates_per_domain"`
	// PendingAuthorizationsPerAccount counts authorizations created per
	// account, given back when one is validated or deactivated.
	PendingAuthorizationsPerAccount RateLimit `yaml:"pending_authorizations_per_account"`
	// UnknownKeyRequestsPerIP counts, per client address (per /64 for
	// IPv6), the signed requests whose "jwk" has no account: newAccount
	// (successful or not), its onlyReturnExisting lookups, revokeCert
	// signed by a certificate's key. Any throwaway key can sign one, and
	// each takes room in the record of used nonces, so it is on by default
	// (DefaultUnknownKeyRequestsPerIP); it is spent before the nonce is
	// used. Requests by an existing account's key are not counted.
	UnknownKeyRequestsPerIP RateLimit `yaml:"unknown_key_requests_per_ip"`
	// Exempt lists who no limit applies to.
	Exempt RateExempt `yaml:"exempt"`
}

// RateLimit is one limit: Count events per Period, bursts of Burst.
type RateLimit struct {
	// Count events are allowed per Period (0: the limit is off).
	Count  int64    `yaml:"count"`
	Period Duration `yaml:"period"`
	// Burst is how many may come at once (default Count).
	Burst int64 `yaml:"burst"`
}

// RateExempt names accounts, EAB groups and client networks no rate limit
// applies to.
type RateExempt struct {
	// Accounts are account IDs, EABGroups groups of EAB keys, exempt from
	// every limit.
	Accounts  []string `yaml:"accounts"`
	EABGroups []string `yaml:"eab_groups"`
	// IPs are CIDRs exempt from new_accounts_per_ip and
	// unknown_key_requests_per_ip.
	IPs []string `yaml:"ips"`
}

// DefaultUnknownKeyRequestsPerIP is unknown_key_requests_per_ip unless a
// file sets it: generous for a fleet behind one NAT address registering at
// once, yet the record of used nonces needs a thousand addresses an hour to
// fill.
var DefaultUnknownKeyRequestsPerIP = RateLimit{Count: 1000, Period: Duration(time.Hour)}

// UnmarshalYAML makes a limit written in a file replace the default whole:
// keys it leaves out are zero, so {count: 0} turns off a limit that is on
// by default. (The yaml package's older Unmarshaler form: its unmarshal
// keeps the decoder's strictness about unknown keys.)
func (l *RateLimit) UnmarshalYAML(unmarshal func(any) error) error {
	type plain RateLimit
	var p plain
	if err := unmarshal(&p); err != nil {
		return err
	}
	*l = RateLimit(p)
	return nil
}

// On reports whether the limit is configured.
func (l RateLimit) On() bool { return l.Count > 0 }

// validateRateLimits checks the rate_limits section.
func validateRateLimits(r RateLimits, bad func(field, format string, args ...any)) {
	for _, nl := range []struct {
		name string
		l    RateLimit
	}{
		{"new_accounts_per_ip", r.NewAccountsPerIP},
		{"new_orders_per_account", r.NewOrdersPerAccount},
		{"failed_validations_per_name", r.FailedValidationsPerName},
		{"certificates_per_domain", r.CertificatesPerDomain},
		{"pending_authorizations_per_account", r.PendingAuthorizationsPerAccount},
		{"unknown_key_requests_per_ip", r.UnknownKeyRequestsPerIP},
	} {
		f, l := "rate_limits."+nl.name, nl.l
		switch {
		case l.Count < 0 || l.Burst < 0:
			bad(f, "count and burst must not be negative")
		case l.Count == 0 && (l.Period != 0 || l.Burst != 0):
			bad(f, "set count (events per period) or leave the limit out")
		case l.Count > 0 && l.Period.D() <= 0:
			bad(f+".period", "must be a positive duration")
		case l.Count > 0 && l.Period.D().Microseconds()/l.Count < 1:
			bad(f, "count %d per %s is more than one event per microsecond", l.Count, l.Period.D())
		}
	}
	for i, p := range r.Exempt.IPs {
		if _, err := netip.ParsePrefix(p); err != nil {
			bad(fmt.Sprintf("rate_limits.exempt.ips[%d]", i), "%q is not a CIDR", p)
		}
	}
}
