package configs

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPolicyPatternsAsALabels: Unicode domain patterns are converted to
// A-labels at load (docs/policy.md), so they match the identifiers clients
// send; a pattern that does not convert is refused with its key and line.
func TestPolicyPatternsAsALabels(t *testing.T) {
	c, err := Load(write(t, `
policy:
  rules:
    - name: books
      match: {domains: ["bücher.example.com", "*.Bücher.example.org", "shop-*.bücher.example.net", "www.example.com", "xn--bcher-kva.example.de"]}
      action: deny
  default: {upstreams: [dev]}
`))
	require.NoError(t, err)
	require.Equal(t, []string{"xn--bcher-kva.example.com", "*.xn--bcher-kva.example.org", "shop-*.xn--bcher-kva.example.net", "www.example.com", "xn--bcher-kva.example.de"},
		c.Policy.Rules[0].Match.Domains)

	for _, tc := range []struct{ pattern, want string }{
		{"bu\u0308cher.example.com", "line 6: policy.rules[1].match.domains[1]: \"bu\u0308cher.example.com\" is not a valid internationalized name"},
		{"bü*.example.com", "line 6: policy.rules[1].match.domains[1]: \"bü*.example.com\": a glob label must be ASCII"},
		{"xn--a.example.com", "line 6: policy.rules[1].match.domains[1]: \"xn--a.example.com\" is not a valid internationalized name"},
		{"a\u3002example.com", "line 6: policy.rules[1].match.domains[1]"},
	} {
		_, err := Load(write(t, `
policy:
  rules:
    - {name: ok, match: {domains: [a.example.com]}, upstreams: [dev]}
    - name: bad
      match: {domains: [b.example.com, "`+tc.pattern+`"]}
      upstreams: [dev]
`))
		require.ErrorContains(t, err, tc.want, tc.pattern)
	}

	// A policy built in code is checked by Validate, by key.
	c = Default()
	c.Policy.Rules = []Rule{{Name: "r", Match: Match{Domains: []string{"xn--a.example"}}, Upstreams: []string{"dev"}}}
	require.ErrorContains(t, c.Validate(), "policy.rules[0].match.domains[0]")
}

func TestALabels(t *testing.T) {
	for in, want := range map[string]string{
		"bücher.example.com":     "xn--bcher-kva.example.com",
		"*.BÜCHER.example.com":   "*.xn--bcher-kva.example.com",
		"printer-*.corp.münchen": "printer-*.corp.xn--mnchen-3ya",
		"Example.COM":            "example.com",
		"faß.de":                 "xn--fa-hia.de",
	} {
		got, err := ALabels(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
}

// TestDelegatedValidationNarrow: delegated validation is accepted only on a
// rule that matches accounts by EAB group or key and names the domains or
// IPs it grants; config check refuses it on the default rule, on a rule an
// open sign-up account could match, and on one that grants every name.
func TestDelegatedValidationNarrow(t *testing.T) {
	c, err := Load(write(t, `
accounts: {eab: required}
policy:
  rules:
    - name: site-a
      match: {groups: [site-a], domains: ["*.site-a.example.com"], ips: ["10.1.0.0/16"]}
      upstreams: [dev]
      delegated_validation: true
    - name: key-1
      match: {eab_keys: [kid-1], domains: ["k1.example.com"]}
      upstreams: [dev]
      delegated_validation: true
  default: {action: deny}
`))
	require.NoError(t, err)
	require.True(t, c.Policy.Rules[0].DelegatedValidation)

	for body, want := range map[string]string{
		// The default rule matches every account.
		"  default: {upstreams: [dev], delegated_validation: true}\n": "policy.default.delegated_validation: the default rule matches every account",
		// No account condition: open sign-up accounts would match.
		"  rules:\n    - {name: r, match: {domains: [a.example.com]}, upstreams: [dev], delegated_validation: true}\n": "policy.rules[0].delegated_validation: the rule must match groups or eab_keys",
		// A profile is no account condition either.
		"  rules:\n    - {name: r, match: {profiles: [p], domains: [a.example.com]}, upstreams: [dev], delegated_validation: true}\n": "policy.rules[0].delegated_validation: the rule must match groups or eab_keys",
		// An empty group matches accounts without one.
		"  rules:\n    - {name: r, match: {groups: [\"\"], domains: [a.example.com]}, upstreams: [dev], delegated_validation: true}\n": "an empty group or EAB key ID matches accounts without one",
		// Every name of the group: the grant must be explicit.
		"  rules:\n    - {name: r, match: {groups: [g]}, upstreams: [dev], delegated_validation: true}\n":                       "policy.rules[0].delegated_validation: the rule must name the domains or ips it grants",
		"  rules:\n    - {name: r, match: {groups: [g], domains: [a.example.com]}, action: deny, delegated_validation: true}\n": "a deny rule issues nothing to delegate",
	} {
		_, err := Load(write(t, "policy:\n"+body))
		require.ErrorContains(t, err, want, body)
	}
}

// TestApprovalOption: a rule's approval is required, new-names or absent;
// a deny rule takes none; orders.approval_ttl defaults to 7 days and must
// be positive.
func TestApprovalOption(t *testing.T) {
	c, err := Load(write(t, `
policy:
  rules:
    - {name: printers, match: {domains: ["*.corp.example.com"]}, upstreams: [dev], approval: new-names}
  default: {upstreams: [dev], approval: required}
`))
	require.NoError(t, err)
	require.Equal(t, ApprovalNewNames, c.Policy.Rules[0].Approval)
	require.Equal(t, ApprovalRequired, c.Policy.Default.Approval)
	require.Equal(t, 7*24*time.Hour, c.Orders.ApprovalTTL.D())

	for body, want := range map[string]string{
		"policy:\n  default: {upstreams: [dev], approval: yes}\n":                                                   `policy.default.approval: "yes" must be required or new-names`,
		"policy:\n  rules:\n    - {name: r, match: {domains: [a.example.com]}, action: deny, approval: required}\n": "policy.rules[0].approval: a deny rule issues nothing to approve",
		"orders: {approval_ttl: 0s}\n": "orders.approval_ttl: must be positive",
	} {
		_, err := Load(write(t, body))
		require.ErrorContains(t, err, want, body)
	}
}
