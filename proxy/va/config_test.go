package va

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/configs"
)

// loadValidator writes a config file with the validation section body
// (indented keys), loads it as serve does and returns its Validator.
func loadValidator(t *testing.T, body string) *Validator {
	t.Helper()
	p := filepath.Join(t.TempDir(), "acmebridge.yaml")
	require.NoError(t, os.WriteFile(p, []byte("server:\n  listen: 0.0.0.0:8555\nvalidation:\n"+body), 0o600))
	cfg, err := configs.Load(p)
	require.NoError(t, err)
	v, err := FromConfig(cfg.Validation, nil)
	require.NoError(t, err)
	return v
}

// TestConfigFileDeniesPrivateAddresses (issue 14, hole 3): a config file
// that does not set validation.allow_private_addresses gives a Validator
// that connects to no loopback or link-local (cloud metadata) address,
// whether the identifier is the address, a name resolving to it, or a
// redirect leads there; the same file saying true reaches loopback.
func TestConfigFileDeniesPrivateAddresses(t *testing.T) {
	var hits atomic.Int64
	var redirectTo atomic.Value
	redirectTo.Store("")
	_, port := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if loc := redirectTo.Load().(string); loc != "" {
			http.Redirect(w, r, loc, http.StatusFound)
			return
		}
		_, _ = fmt.Fprint(w, testKeyAuth)
	})
	z := newTestDNS(t)
	z.add(t, "loop.test. 60 IN A 127.0.0.1", "metadata.test. 60 IN A 169.254.169.254", "loop2.test. 60 IN A 127.0.0.2")
	section := fmt.Sprintf("  http_port: %d\n  dns_resolvers: [%q]\n  timeout: 2s\n", port, z.addr)

	v := loadValidator(t, section)
	for _, id := range []struct{ typ, value, detail string }{
		{IdentIP, "127.0.0.1", "address 127.0.0.1 is not publicly routable"},
		{IdentIP, "169.254.169.254", "address 169.254.169.254 is not publicly routable"},
		{IdentDNS, "loop.test", "loop.test has no publicly routable address"},
		{IdentDNS, "metadata.test", "metadata.test has no publicly routable address"},
	} {
		err := v.Validate(ctxT(t), id.typ, id.value, TypeHTTP01, testToken, testKeyAuth)
		requireKind(t, err, acmeerr.Connection, id.detail)
		err = v.Validate(ctxT(t), id.typ, id.value, TypeTLSALPN01, testToken, testKeyAuth)
		requireKind(t, err, acmeerr.Connection, id.detail)
	}
	require.Zero(t, hits.Load(), "a private address was dialled")

	// Redirects: only the first hop (127.0.0.1) is let through, as if it
	// were the client's public server.
	v.allowed = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	trap, err := net.Listen("tcp", net.JoinHostPort("127.0.0.2", strconv.Itoa(port)))
	if err == nil {
		t.Cleanup(func() { _ = trap.Close() })
	}
	for _, loc := range []string{
		"http://169.254.169.254/latest/meta-data/iam/security-credentials/",
		"http://metadata.test/latest/meta-data/",
		"http://127.0.0.2:" + strconv.Itoa(port) + "/admin",
		"http://loop2.test:" + strconv.Itoa(port) + "/admin",
	} {
		redirectTo.Store(loc)
		err := v.Validate(ctxT(t), IdentIP, "127.0.0.1", TypeHTTP01, testToken, testKeyAuth)
		ae := requireKind(t, err, acmeerr.Connection, "a redirect was refused: its host has no publicly routable address")
		require.NotContains(t, ae.Detail, "169.254", loc)
		require.NotContains(t, ae.Detail, "127.0.0.2", loc)
	}
	require.EqualValues(t, 4, hits.Load(), "only the first hop was fetched")

	redirectTo.Store("")
	v = loadValidator(t, section+"  allow_private_addresses: true\n")
	require.NoError(t, v.Validate(ctxT(t), IdentDNS, "loop.test", TypeHTTP01, testToken, testKeyAuth),
		"a file that says so reaches loopback")
}
