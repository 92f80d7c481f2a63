package ra

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

// TestRegisteredDomains: the registered domain is the public suffix plus
// one label; wildcards, IPs and bare suffixes count as themselves.
func TestRegisteredDomains(t *testing.T) {
	ids := []store.Identifier{{Type: "dns", Value: "a.b.example.co.uk"}, {Type: "dns", Value: "*.example.co.uk"},
		{Type: "dns", Value: "host.corp.internal"}, {Type: "ip", Value: "192.0.2.1"}, {Type: "dns", Value: "com"},
		{Type: "dns", Value: "x.github.io"}}
	require.Equal(t, []string{"example.co.uk", "corp.internal", "192.0.2.1", "com", "x.github.io"}, registeredDomains(ids))
}
