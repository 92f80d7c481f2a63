package test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/acme"
)

// readyByDNS01 places an order for name with c and answers its dns-01
// challenges on the test DNS server, up to the order being ready.
func readyByDNS01(ctx context.Context, t *testing.T, c *acme.Client, dns *dnsServer, name string) *acme.Order {
	t.Helper()
	o, err := c.AuthorizeOrder(ctx, acme.DomainIDs(name))
	require.NoError(t, err, "newOrder %s", name)
	for _, u := range o.AuthzURLs {
		z, err := c.GetAuthorization(ctx, u)
		require.NoError(t, err)
		for _, ch := range z.Challenges {
			if ch.Type != "dns-01" {
				continue
			}
			v, err := c.DNS01ChallengeRecord(ch.Token)
			require.NoError(t, err)
			dns.SetTXT("_acme-challenge."+name+".", v)
			_, err = c.Accept(ctx, ch)
			require.NoError(t, err)
		}
		_, err = c.WaitAuthorization(ctx, u)
		require.NoError(t, err)
	}
	o, err = c.WaitOrder(ctx, o.URI)
	require.NoError(t, err)
	require.Equal(t, acme.StatusReady, o.Status)
	return o
}
