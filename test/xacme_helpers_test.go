package test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

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

// serveHTTP01 answers http-01 requests on 127.0.0.1:port until the test
// ends, with the bodies set through the function it returns (path, body).
func serveHTTP01(t *testing.T, port int) func(path, body string) {
	t.Helper()
	var mu sync.Mutex
	responses := map[string]string{}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	require.NoError(t, err)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, q *http.Request) {
		mu.Lock()
		body, ok := responses[q.URL.Path]
		mu.Unlock()
		if !ok {
			http.NotFound(w, q)
			return
		}
		_, _ = w.Write([]byte(body))
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return func(path, body string) {
		mu.Lock()
		defer mu.Unlock()
		responses[path] = body
	}
}
