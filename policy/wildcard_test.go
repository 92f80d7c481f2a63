package policy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/configs"
)

func domains(d ...string) configs.Match { return configs.Match{Domains: d} }

func allow(name string, m configs.Match, upstreams ...string) configs.Rule {
	return configs.Rule{Name: name, Match: m, Upstreams: upstreams}
}

func deny(name string, m configs.Match) configs.Rule {
	return configs.Rule{Name: name, Match: m, Action: "deny"}
}

// with returns r changed by f.
func with(r configs.Rule, f func(*configs.Rule)) configs.Rule { f(&r); return r }

var public = allow("public", domains("*.example.com"), "dev")

// TestWildcardCoversOtherRules: a wildcard "*.base" is refused, naming the
// rule, when an earlier rule whose conditions hold decides otherwise for a
// name one label below base (docs/policy.md, "Wildcards"); against every kind of pattern
// and decision.
func TestWildcardCoversOtherRules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules []configs.Rule
		def   configs.Rule // zero: deny
		req   Request
		// rule is the rule that decides when the order is issued; refusedBy
		// the rule named by the refusal, detail a part of its text.
		rule, refusedBy, detail string
	}{
		// Exact patterns.
		{name: "earlier exact deny", rules: []configs.Rule{deny("secret-names", domains("secret.example.com")), public},
			req: req("*.example.com"), refusedBy: "secret-names", detail: "rule secret-names denies secret.example.com, which *.example.com would cover"},
		{name: "exact deny with a reason", rules: []configs.Rule{with(deny("secret-names", domains("secret.example.com")), func(r *configs.Rule) { r.Reason = "ask security" }), public},
			req: req("*.example.com"), refusedBy: "secret-names", detail: "denies secret.example.com (ask security), which"},
		{name: "exact deny two labels below", rules: []configs.Rule{deny("deep", domains("a.secret.example.com")), public},
			req: req("*.example.com"), rule: "public"},
		{name: "exact deny on the base itself", rules: []configs.Rule{deny("apex", domains("example.com")), public},
			req: req("*.example.com"), rule: "public"},
		{name: "exact deny elsewhere", rules: []configs.Rule{deny("other", domains("secret.example.org")), public},
			req: req("*.example.com"), rule: "public"},
		{name: "exact deny among other patterns", rules: []configs.Rule{deny("mixed", domains("a.example.org", "secret.example.com")), public},
			req: req("*.example.com"), refusedBy: "mixed", detail: "denies secret.example.com"},
		{name: "exact route elsewhere", rules: []configs.Rule{allow("vault-names", domains("www.example.com"), "vault"), public},
			req: req("*.example.com"), refusedBy: "vault-names", detail: "routes www.example.com to [vault], not [dev] as rule public does"},
		{name: "exact failover order differs", rules: []configs.Rule{allow("order", domains("www.example.com"), "vault", "dev"), allow("public", domains("*.example.com"), "dev", "vault")},
			req: req("*.example.com"), refusedBy: "order", detail: "routes www.example.com to [vault dev]"},
		{name: "exact same route and constraints", rules: []configs.Rule{allow("same", domains("www.example.com"), "dev"), public},
			req: req("*.example.com"), rule: "public"},
		// Delegated validation: a delegated wildcard may not cover a name
		// an earlier rule validates by challenge; a delegated earlier rule
		// under a wildcard validated by challenge is no conflict.
		{name: "delegated wildcard over a challenged name", rules: []configs.Rule{
			allow("challenged", configs.Match{Groups: []string{"g"}, Domains: []string{"secret.example.com"}}, "dev"),
			with(allow("site", configs.Match{Groups: []string{"g"}, Domains: []string{"*.example.com"}}, "dev"), func(r *configs.Rule) { r.DelegatedValidation = true })},
			req: withReq(req("*.example.com"), func(r *Request) { r.Group = "g" }), refusedBy: "challenged",
			detail: "rule challenged requires a challenge for secret.example.com, which rule site's delegated validation would skip"},
		{name: "delegated wildcard over a delegated name", rules: []configs.Rule{
			with(allow("also", configs.Match{Groups: []string{"g"}, Domains: []string{"secret.example.com"}}, "dev"), func(r *configs.Rule) {
				r.DelegatedValidation, r.Challenges = true, []string{"http-01"}
			}),
			with(allow("site", configs.Match{Groups: []string{"g"}, Domains: []string{"*.example.com"}}, "dev"), func(r *configs.Rule) { r.DelegatedValidation = true })},
			req: withReq(req("*.example.com"), func(r *Request) { r.Group = "g" }), rule: "site"},
		{name: "challenged wildcard over a delegated name", rules: []configs.Rule{
			with(allow("delegated", configs.Match{Groups: []string{"g"}, Domains: []string{"secret.example.com"}}, "dev"), func(r *configs.Rule) { r.DelegatedValidation = true }),
			public},
			req: withReq(req("*.example.com"), func(r *Request) { r.Group = "g" }), rule: "public"},

		// Globs in the first label.
		{name: "glob deny one label below", rules: []configs.Rule{deny("printers", domains("printer-*.corp.example.com")), allow("corp", domains("*.corp.example.com"), "dev")},
			req: req("*.corp.example.com"), refusedBy: "printers", detail: "rule printers denies printer-*.corp.example.com, which *.corp.example.com would cover"},
		{name: "glob deny two labels below", rules: []configs.Rule{deny("printers", domains("printer-*.corp.example.com")), public},
			req: req("*.example.com"), rule: "public"},
		{name: "glob suffix deny", rules: []configs.Rule{deny("dev-names", domains("*-dev.example.com")), public},
			req: req("*.example.com"), refusedBy: "dev-names", detail: "denies *-dev.example.com"},
		{name: "glob route elsewhere", rules: []configs.Rule{allow("printers", domains("printer-*.corp.example.com"), "vault"), allow("corp", domains("*.corp.example.com"), "dev")},
			req: req("*.corp.example.com"), refusedBy: "printers", detail: "routes printer-*.corp.example.com to [vault]"},

		// "*.suffix" patterns at several depths.
		{name: "suffix deny below a covered name", rules: []configs.Rule{deny("corp", domains("*.corp.example.com")), public},
			req: req("*.example.com"), rule: "public"},
		{name: "suffix deny equal to the wildcard", rules: []configs.Rule{deny("corp", domains("*.corp.example.com")), public},
			req: req("*.corp.example.com"), refusedBy: "corp", detail: "rule corp: policy forbids"},
		{name: "suffix deny above the wildcard", rules: []configs.Rule{deny("corp", domains("*.corp.example.com")), public},
			req: req("*.a.corp.example.com"), refusedBy: "corp"},
		{name: "suffix rule of another route above", rules: []configs.Rule{allow("corp", domains("*.corp.example.com"), "vault"), public},
			req: req("*.a.corp.example.com"), rule: "corp"},
		{name: "suffix allow sends below to the wildcard's rule", rules: []configs.Rule{allow("corp", domains("*.corp.example.com"), "vault"), public},
			req: req("*.example.com"), rule: "public"},

		// Rules after the wildcard's rule decide for no covered name: the
		// plain name is decided by the wildcard's rule too (see below).
		{name: "later exact deny is shadowed", rules: []configs.Rule{public, deny("secret-names", domains("secret.example.com"))},
			req: req("*.example.com"), rule: "public"},
		{name: "later route elsewhere is shadowed", rules: []configs.Rule{public, allow("vault-names", domains("www.example.com"), "vault")},
			req: req("*.example.com"), rule: "public"},

		// IP rules never cover names.
		{name: "IP deny", rules: []configs.Rule{deny("lan", configs.Match{IPs: []string{"10.0.0.0/8"}}), public},
			req: req("*.example.com"), rule: "public"},
		{name: "IP and name deny", rules: []configs.Rule{deny("lan", configs.Match{IPs: []string{"10.0.0.0/8"}, Domains: []string{"nas.example.com"}}), public},
			req: req("*.example.com"), refusedBy: "lan", detail: "denies nas.example.com"},

		// Conditions: a rule whose eab_keys, groups or profiles do not hold
		// for the request decides for none of its names.
		{name: "group rule, other group", rules: []configs.Rule{allow("ops", configs.Match{Groups: []string{"ops"}, Domains: []string{"www.example.com"}}, "vault"), public},
			req: req("*.example.com"), rule: "public"},
		{name: "group rule, its group", rules: []configs.Rule{allow("ops", configs.Match{Groups: []string{"ops"}, Domains: []string{"www.example.com"}}, "vault"), public},
			req: withReq(req("*.example.com"), func(r *Request) { r.Group = "ops" }), refusedBy: "ops", detail: "routes www.example.com to [vault]"},
		{name: "EAB key rule, other key", rules: []configs.Rule{deny("kid", configs.Match{EABKeys: []string{"kid-1"}, Domains: []string{"www.example.com"}}), public},
			req: withReq(req("*.example.com"), func(r *Request) { r.EABKey = "kid-2" }), rule: "public"},
		{name: "EAB key rule, its key", rules: []configs.Rule{deny("kid", configs.Match{EABKeys: []string{"kid-1"}, Domains: []string{"www.example.com"}}), public},
			req: withReq(req("*.example.com"), func(r *Request) { r.EABKey = "kid-1" }), refusedBy: "kid"},
		{name: "profile rule, other profile", rules: []configs.Rule{deny("short", configs.Match{Profiles: []string{"shortlived"}, Domains: []string{"www.example.com"}}), public},
			req: req("*.example.com"), rule: "public"},
		{name: "profile rule, its profile", rules: []configs.Rule{deny("short", configs.Match{Profiles: []string{"shortlived"}, Domains: []string{"www.example.com"}}), public},
			req: withReq(req("*.example.com"), func(r *Request) { r.Profile = "shortlived" }), refusedBy: "short"},
		{name: "condition-only rule that holds is the wildcard's rule", rules: []configs.Rule{allow("partner", configs.Match{EABKeys: []string{"kid-p"}}, "vault"), deny("secret-names", domains("secret.example.com")), public},
			req: withReq(req("*.example.com"), func(r *Request) { r.EABKey = "kid-p" }), rule: "partner"},

		// Constraints: weaker on the wildcard's rule is a conflict, as
		// strict or stricter is not.
		{name: "allow_wildcards false on the covered names", rules: []configs.Rule{with(allow("www", domains("www.example.com"), "dev"), func(r *configs.Rule) { r.AllowWildcards = no() }), public},
			req: req("*.example.com"), refusedBy: "www", detail: "issues no wildcard certificate for www.example.com"},
		{name: "upstream profile differs", rules: []configs.Rule{with(allow("www", domains("www.example.com"), "dev"), func(r *configs.Rule) { r.UpstreamProfile = "tlsserver" }), public},
			req: req("*.example.com"), refusedBy: "www", detail: `asks upstream profile "tlsserver"`},
		{name: "covered names without dns-01", rules: []configs.Rule{with(allow("www", domains("www.example.com"), "dev"), func(r *configs.Rule) { r.Challenges = []string{"http-01"} }), public},
			req: req("*.example.com"), refusedBy: "www", detail: "only by [http-01]"},
		{name: "covered names with dns-01", rules: []configs.Rule{with(allow("www", domains("www.example.com"), "dev"), func(r *configs.Rule) { r.Challenges = []string{"http-01", "dns-01"} }), public},
			req: req("*.example.com"), rule: "public"},
		{name: "key types narrower", rules: []configs.Rule{with(allow("www", domains("www.example.com"), "dev"), func(r *configs.Rule) { r.KeyTypes = []string{"ecdsa"} }), public},
			req: req("*.example.com"), refusedBy: "www", detail: "allows key types [ecdsa]"},
		{name: "key types as narrow", rules: []configs.Rule{with(allow("www", domains("www.example.com"), "dev"), func(r *configs.Rule) { r.KeyTypes = []string{"ecdsa"} }),
			with(public, func(r *configs.Rule) { r.KeyTypes = []string{"ecdsa"} })},
			req: req("*.example.com"), rule: "public"},
		{name: "RSA minimum higher", rules: []configs.Rule{with(allow("www", domains("www.example.com"), "dev"), func(r *configs.Rule) { r.MinRSABits = 3072 }), public},
			req: req("*.example.com"), refusedBy: "www", detail: "requires RSA keys of 3072 bits"},
		{name: "validity cap, none on the wildcard", rules: []configs.Rule{with(allow("www", domains("www.example.com"), "dev"), func(r *configs.Rule) { r.MaxValidity = configs.Duration(720 * time.Hour) }), public},
			req: req("*.example.com"), refusedBy: "www", detail: "caps certificates for www.example.com at 720h0m0s, not the upstream's lifetime"},
		{name: "validity cap, a longer one on the wildcard", rules: []configs.Rule{with(allow("www", domains("www.example.com"), "dev"), func(r *configs.Rule) { r.MaxValidity = configs.Duration(720 * time.Hour) }),
			with(public, func(r *configs.Rule) { r.MaxValidity = configs.Duration(2160 * time.Hour) })},
			req: req("*.example.com"), refusedBy: "www", detail: "not 2160h0m0s"},
		{name: "validity cap, a shorter one on the wildcard", rules: []configs.Rule{with(allow("www", domains("www.example.com"), "dev"), func(r *configs.Rule) { r.MaxValidity = configs.Duration(720 * time.Hour) }),
			with(public, func(r *configs.Rule) { r.MaxValidity = configs.Duration(24 * time.Hour) })},
			req: req("*.example.com"), rule: "public"},

		// The default: it decides for a covered name only when it is the
		// wildcard's rule, and then every rule is earlier.
		{name: "default allow, exact deny", rules: []configs.Rule{deny("secret-names", domains("secret.example.com"))}, def: allow("default", configs.Match{}, "dev"),
			req: req("*.example.com"), refusedBy: "secret-names", detail: "denies secret.example.com"},
		{name: "default allow, route elsewhere", rules: []configs.Rule{allow("www", domains("www.example.com"), "vault")}, def: allow("default", configs.Match{}, "dev"),
			req: req("*.example.com"), refusedBy: "www", detail: "not [dev] as rule default does"},
		{name: "default allow, unrelated rule", rules: []configs.Rule{deny("secret-names", domains("secret.example.org"))}, def: allow("default", configs.Match{}, "dev"),
			req: req("*.example.com"), rule: "default"},
		{name: "default deny", rules: []configs.Rule{allow("www", domains("www.example.com"), "vault")},
			req: req("*.example.com"), refusedBy: "default", detail: "rule default"},

		// Not a wildcard: nothing changes.
		{name: "plain name", rules: []configs.Rule{deny("secret-names", domains("secret.example.com")), public},
			req: req("www.example.com"), rule: "public"},
		{name: "wildcard and base in one order", rules: []configs.Rule{deny("secret-names", domains("secret.example.com")), public},
			req: req("example.org", "*.example.com"), refusedBy: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			def := tc.def
			if def.Name == "" {
				def = configs.Rule{Name: "default", Action: "deny"}
			}
			e := New(configs.Policy{Rules: tc.rules, Default: def})
			d, err := e.Route(tc.req)
			if tc.rule != "" {
				require.NoError(t, err)
				require.Equal(t, tc.rule, d.Rule)
				return
			}
			require.Error(t, err)
			require.True(t, acmeerr.Is(err, acmeerr.RejectedIdentifier), "%v", err)
			require.Equal(t, tc.refusedBy, RefusingRule(err), "the refusal names the rule")
			var ae *acmeerr.Error
			require.ErrorAs(t, err, &ae)
			require.NotEmpty(t, ae.Sub)
			require.Contains(t, ae.Sub[len(ae.Sub)-1].Detail, tc.detail)
			require.Contains(t, ae.Detail, tc.detail, "the top-level detail carries the reason")
		})
	}
}

func req(names ...string) Request { return Request{Identifiers: ids(names...)} }

func withReq(r Request, f func(*Request)) Request { f(&r); return r }

// TestWildcardShadowedRuleIsConsistent: a rule after the wildcard's rule
// is shadowed for the plain name too, so the wildcard gets nothing the
// plain name does not.
func TestWildcardShadowedRuleIsConsistent(t *testing.T) {
	e := New(configs.Policy{Rules: []configs.Rule{public, deny("secret-names", domains("secret.example.com"))}, Default: configs.Rule{Action: "deny"}})
	for _, n := range []string{"secret.example.com", "*.example.com"} {
		d, err := e.Route(req(n))
		require.NoError(t, err, n)
		require.Equal(t, "public", d.Rule, n)
	}
}

// TestWildcardRefusalNamesEachIdentifier: an order with two wildcards
// refused by different rules names no single rule; each subproblem names
// its own; the base name of the order is not refused.
func TestWildcardRefusalNamesEachIdentifier(t *testing.T) {
	e := New(configs.Policy{Rules: []configs.Rule{
		deny("secret-names", domains("secret.example.com")),
		deny("printers", domains("printer-*.corp.example.com")),
		allow("all", domains("*.example.com", "example.com"), "dev"),
	}, Default: configs.Rule{Action: "deny"}})
	_, err := e.Route(req("example.com", "*.example.com", "*.corp.example.com", "*.other.example.com"))
	var ae *acmeerr.Error
	require.ErrorAs(t, err, &ae)
	require.Len(t, ae.Sub, 2)
	require.Equal(t, "*.example.com", ae.Sub[0].Identifier.Value)
	require.Contains(t, ae.Sub[0].Detail, "secret-names")
	require.Equal(t, "*.corp.example.com", ae.Sub[1].Identifier.Value)
	require.Contains(t, ae.Sub[1].Detail, "printers")
	require.Contains(t, ae.Detail, "and 1 more")
	require.Empty(t, RefusingRule(err))
}

func TestExplainWildcardConflict(t *testing.T) {
	e := New(configs.Policy{Rules: []configs.Rule{deny("secret-names", domains("secret.example.com")), public}, Default: configs.Rule{Action: "deny"}})
	x := e.Explain("*.example.com", Request{})
	require.Equal(t, "public", x.Rule)
	require.Equal(t, "deny", x.Action)
	require.Equal(t, "rule secret-names denies secret.example.com, which *.example.com would cover", x.Reason)
	require.Equal(t, "secret-names", x.ConflictingRule)
	require.Equal(t, "secret.example.com", x.ConflictingPattern)
	require.Empty(t, x.Upstreams)
	x = e.Explain("*.other.example.com", Request{})
	require.Equal(t, "allow", x.Action)
	require.Empty(t, x.ConflictingRule)
	x = e.Explain("www.example.com", Request{})
	require.Equal(t, "allow", x.Action)
}
