package policy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/configs"
)

func TestMatchDomain(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"example.com", "example.com", true},
		{"example.com", "EXAMPLE.com.", true},
		{"example.com", "www.example.com", false},
		{"*.example.com", "www.example.com", true},
		{"*.example.com", "a.b.example.com", true},
		{"*.example.com", "*.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "badexample.com", false},
		{"*.example.com", "example.com.evil.test", false},
		{"*.Example.COM", "www.example.com", true},
		{"printer-*.corp.example.com", "printer-12.corp.example.com", true},
		{"printer-*.corp.example.com", "printer-.corp.example.com", true},
		{"printer-*.corp.example.com", "printer-1.a.corp.example.com", false},
		{"printer-*.corp.example.com", "scanner-1.corp.example.com", false},
		{"printer-*.corp.example.com", "*.corp.example.com", false},
		{"*-dev.example.com", "api-dev.example.com", true},
		{"*-dev.example.com", "api-prod.example.com", false},
		{"xn--bcher-kva.example", "xn--bcher-kva.example", true},
	} {
		require.Equal(t, tc.want, MatchDomain(tc.pattern, tc.name), "%s ~ %s", tc.pattern, tc.name)
	}
}

func no() *bool { f := false; return &f }

func engine() *Engine {
	return New(configs.Policy{
		Rules: []configs.Rule{
			{Name: "printers", Match: configs.Match{Groups: []string{"printers"}, Domains: []string{"printer-*.corp.example.com"}},
				Upstreams: []string{"vault"}, Challenges: []string{"http-01"}, KeyTypes: []string{"rsa"}, MinRSABits: 3072,
				MaxValidity: configs.Duration(720 * time.Hour)},
			{Name: "internal", Match: configs.Match{Domains: []string{"*.corp.example.com", "corp.example.com"}}, Upstreams: []string{"vault"}, AllowWildcards: no()},
			{Name: "lan", Match: configs.Match{IPs: []string{"10.0.0.0/8", "fd00::/8"}}, Upstreams: []string{"dev"}},
			{Name: "no-test", Match: configs.Match{Domains: []string{"*.test.example.com"}}, Action: "deny", Reason: "test names are not issued here"},
			{Name: "short", Match: configs.Match{Profiles: []string{"shortlived"}, Domains: []string{"*.example.com"}}, Upstreams: []string{"le"}, UpstreamProfile: "shortlived"},
			{Name: "partner", Match: configs.Match{EABKeys: []string{"kid-partner"}}, Upstreams: []string{"dev"}},
			{Name: "public", Match: configs.Match{Domains: []string{"*.example.com"}}, Upstreams: []string{"le", "dev"}, AllowIPs: no()},
		},
		Default: configs.Rule{Action: "deny"},
	})
}

func ids(vals ...string) []Identifier {
	var out []Identifier
	for _, v := range vals {
		typ := "dns"
		if v[0] >= '0' && v[0] <= '9' || v[0] == 'f' && v[1] == 'd' {
			typ = "ip"
		}
		out = append(out, Identifier{Type: typ, Value: v})
	}
	return out
}

func TestRoute(t *testing.T) {
	e := engine()
	d, err := e.Route(Request{Identifiers: ids("a.corp.example.com", "CORP.example.com.")})
	require.NoError(t, err)
	require.Equal(t, "internal", d.Rule)
	require.Equal(t, []string{"vault"}, d.Upstreams)
	require.Equal(t, []string{"http-01", "dns-01", "tls-alpn-01"}, d.Challenges)
	require.Equal(t, []string{"rsa", "ecdsa"}, d.KeyTypes)
	require.Equal(t, 2048, d.MinRSABits)

	// Group + glob: the printers rule, with its constraints.
	d, err = e.Route(Request{Identifiers: ids("printer-7.corp.example.com"), Group: "printers"})
	require.NoError(t, err)
	require.Equal(t, "printers", d.Rule)
	require.Equal(t, []string{"http-01"}, d.Challenges)
	require.Equal(t, 3072, d.MinRSABits)
	require.Equal(t, 720*time.Hour, d.MaxValidity)
	// The same name without the group falls to the next rule.
	d, err = e.Route(Request{Identifiers: ids("printer-7.corp.example.com")})
	require.NoError(t, err)
	require.Equal(t, "internal", d.Rule)

	d, err = e.Route(Request{Identifiers: ids("www.example.com")})
	require.NoError(t, err)
	require.Equal(t, []string{"le", "dev"}, d.Upstreams)
	d, err = e.Route(Request{Identifiers: ids("www.example.com"), Profile: "shortlived"})
	require.NoError(t, err)
	require.Equal(t, "short", d.Rule)
	require.Equal(t, "shortlived", d.UpstreamProfile)
	d, err = e.Route(Request{Identifiers: ids("anything.org"), EABKey: "kid-partner"})
	require.NoError(t, err)
	require.Equal(t, "partner", d.Rule)

	// IP identifiers by CIDR.
	d, err = e.Route(Request{Identifiers: ids("10.1.2.3", "fd00::1")})
	require.NoError(t, err)
	require.Equal(t, "lan", d.Rule)

	var ae *acmeerr.Error
	// Deny with the operator's reason, as a subproblem.
	_, err = e.Route(Request{Identifiers: ids("x.test.example.com", "www.example.com")})
	require.True(t, acmeerr.Is(err, acmeerr.RejectedIdentifier))
	require.ErrorAs(t, err, &ae)
	require.Len(t, ae.Sub, 1)
	require.Contains(t, ae.Sub[0].Detail, "test names are not issued here")
	require.Equal(t, "x.test.example.com", ae.Sub[0].Identifier.Value)
	// Split order: one subproblem per identifier naming its rule.
	_, err = e.Route(Request{Identifiers: ids("a.corp.example.com", "www.example.com")})
	require.ErrorAs(t, err, &ae)
	require.Len(t, ae.Sub, 2)
	require.Contains(t, ae.Sub[0].Detail, "internal")
	require.Contains(t, ae.Sub[1].Detail, "public")
	// Wildcards refused where the rule says so.
	_, err = e.Route(Request{Identifiers: ids("*.corp.example.com")})
	require.ErrorAs(t, err, &ae)
	require.Contains(t, ae.Sub[0].Detail, "wildcard")
	// Default deny; an IP outside every range.
	_, err = e.Route(Request{Identifiers: ids("192.0.2.1")})
	require.True(t, acmeerr.Is(err, acmeerr.RejectedIdentifier))
	_, err = e.Route(Request{})
	require.True(t, acmeerr.Is(err, acmeerr.Malformed))
}

func TestExplain(t *testing.T) {
	e := engine()
	x := e.Explain("www.example.com", Request{})
	require.Equal(t, "public", x.Rule)
	require.Equal(t, "allow", x.Action)
	require.Len(t, x.Skipped, 6)
	require.Contains(t, x.Skipped[2], "matches IP addresses")
	require.Contains(t, x.Skipped[0], "group")
	x = e.Explain("a.test.example.com", Request{})
	require.Equal(t, "deny", x.Action)
	require.Equal(t, "test names are not issued here", x.Reason)
	x = e.Explain("10.0.0.1", Request{})
	require.Equal(t, "lan", x.Rule)
	x = e.Explain("*.corp.example.com", Request{})
	require.Equal(t, "deny", x.Action)
	require.Contains(t, x.Reason, "wildcard")
	x = e.Explain("192.0.2.9", Request{})
	require.Equal(t, "default", x.Rule)
}
