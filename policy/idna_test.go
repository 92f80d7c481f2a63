package policy

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/configs"
)

// TestUnicodePatterns: patterns written in Unicode match the A-label
// identifiers clients send (docs/policy.md: patterns are compared as
// A-labels), as exact names, suffixes and globs; explain takes either.
func TestUnicodePatterns(t *testing.T) {
	e := New(configs.Policy{Rules: []configs.Rule{
		deny("books", domains("bücher.example.com")),
		allow("shop", domains("*.BÜCHER.example.org"), "vault"),
		allow("glob", domains("shop-*.bücher.example.net"), "vault"),
		public,
	}, Default: configs.Rule{Action: "deny"}})
	_, err := e.Route(req("xn--bcher-kva.example.com"))
	require.Equal(t, "books", RefusingRule(err))
	d, err := e.Route(req("a.xn--bcher-kva.example.org"))
	require.NoError(t, err)
	require.Equal(t, "shop", d.Rule)
	d, err = e.Route(req("shop-1.xn--bcher-kva.example.net"))
	require.NoError(t, err)
	require.Equal(t, "glob", d.Rule)
	// A Unicode exact rule covered by a wildcard.
	_, err = e.Route(req("*.example.com"))
	require.Equal(t, "books", RefusingRule(err))
	require.ErrorContains(t, err, "denies xn--bcher-kva.example.com")

	x := e.Explain("Bücher.example.com", Request{})
	require.Equal(t, "books", x.Rule)
	require.Equal(t, "xn--bcher-kva.example.com", x.ALabel)
	x = e.Explain("xn--bcher-kva.example.com", Request{})
	require.Equal(t, "books", x.Rule)
	require.Empty(t, x.ALabel)
	x = e.Explain("*.bücher.example.org", Request{})
	require.Equal(t, "shop", x.Rule)
	x = e.Explain("bu\u0308cher.example.com", Request{}) // not NFC
	require.Equal(t, "invalid", x.Action)
	require.Empty(t, x.Rule)
}
