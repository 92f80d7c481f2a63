package policy

import (
	"testing"

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
		{"example.com", "www.example.com", false},
		{"*.example.com", "www.example.com", true},
		{"*.example.com", "a.b.example.com", true},
		{"*.example.com", "*.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "badexample.com", false},
		{"*.Example.COM", "www.example.com", true},
	} {
		require.Equal(t, tc.want, MatchDomain(tc.pattern, tc.name), "%s ~ %s", tc.pattern, tc.name)
	}
}

func engine() *Engine {
	return New(configs.Policy{
		Rules: []configs.Rule{
			{Name: "internal", Match: configs.Match{Domains: []string{"*.corp.example.com", "corp.example.com"}}, Upstreams: []string{"vault"}},
			{Name: "no-test", Match: configs.Match{Domains: []string{"*.test.example.com"}}, Action: "deny", Reason: "test names are not issued here"},
			{Name: "public", Match: configs.Match{Domains: []string{"*.example.com"}}, Upstreams: []string{"le", "dev"}},
		},
		Default: configs.Rule{Action: "deny"},
	})
}

func TestRoute(t *testing.T) {
	e := engine()
	d, err := e.Route([]Identifier{{"dns", "a.corp.example.com"}, {"dns", "CORP.example.com."}})
	require.NoError(t, err)
	require.Equal(t, "internal", d.Rule)
	require.Equal(t, []string{"vault"}, d.Upstreams)

	d, err = e.Route([]Identifier{{"dns", "www.example.com"}})
	require.NoError(t, err)
	require.Equal(t, []string{"le", "dev"}, d.Upstreams)

	_, err = e.Route([]Identifier{{"dns", "x.test.example.com"}, {"dns", "www.example.com"}})
	require.True(t, acmeerr.Is(err, acmeerr.RejectedIdentifier))
	var ae *acmeerr.Error
	require.ErrorAs(t, err, &ae)
	require.Len(t, ae.Sub, 1)
	require.Contains(t, ae.Sub[0].Detail, "test names are not issued here")

	_, err = e.Route([]Identifier{{"dns", "a.corp.example.com"}, {"dns", "www.example.com"}})
	require.ErrorAs(t, err, &ae)
	require.Len(t, ae.Sub, 2)

	// Default deny; IPs match no domain rule.
	_, err = e.Route([]Identifier{{"ip", "192.0.2.1"}})
	require.True(t, acmeerr.Is(err, acmeerr.RejectedIdentifier))
}

func TestExplain(t *testing.T) {
	e := engine()
	x := e.Explain("www.example.com")
	require.Equal(t, "public", x.Rule)
	require.Equal(t, "allow", x.Action)
	require.Len(t, x.Skipped, 2)
	x = e.Explain("a.test.example.com")
	require.Equal(t, "deny", x.Action)
	require.Equal(t, "test names are not issued here", x.Reason)
	x = e.Explain("10.0.0.1")
	require.Equal(t, "default", x.Rule)
}
