package configs

import (
	"testing"

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
