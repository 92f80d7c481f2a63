package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/acme"
)

// directoriesYAML is the server: /public/ open sign-up with a rate
// limit and no private addresses; /devices/ EAB required, validated on the
// LAN (here: loopback), issuing from its own CA for corp names only. The
// top level keeps its settings (the harness allows private addresses).
const directoriesYAML = `upstreams:
  - {name: web, type: local}
  - {name: lan, type: local}
policy:
  default: {upstreams: [web]}
directories:
  - name: public
    rate_limits:
      new_orders_per_account: {count: 20, period: 1h}
    validation: {allow_private_addresses: false}
  - name: devices
    accounts: {eab: required}
    validation: {allow_private_addresses: true}
    policy:
      rules:
        - name: corp
          match: {domains: ["*.corp.e2e.test"]}
          upstreams: [lan]
      default: {action: deny, reason: "devices get corp names only"}
`

// TestDirectoriesE2E: two directories on one binary, with real clients.
// Each directory's clients issue through its own sign-up, validation and
// policy; the other directory's rules never apply; cross-tenant use of an
// account key, an account URL or an EAB key is refused.
func TestDirectoriesE2E(t *testing.T) {
	legoBin := requireTool(t, "lego")
	devToken := filepath.Join(t.TempDir(), "devices.token")
	s := startServerWith(t, directoriesYAML, serverOpts{adminYAML: fmt.Sprintf("  directory_tokens: [{directory: devices, token_file: %q}]\n", devToken)})
	pub, dev := s.in("public"), s.in("devices")
	webRoots, webName := rootPool(t, s, "web")
	lanRoots, lanName := rootPool(t, s, "lan")

	legoRun := func(t *testing.T, srv *server, path string, extra []string, env []string, verb string, names ...string) (string, error) {
		args := []string{"--server", srv.DirectoryURL, "--path", path, "--email", "dir-e2e@example.com", "--accept-tos"}
		for _, n := range names {
			args = append(args, "--domains", n)
		}
		args = append(append(args, extra...), verb)
		return runToolErr(t, toolEnv(append([]string{"LEGO_CA_CERTIFICATES=" + s.CAFile}, env...)...), s.Dir, legoBin, args...)
	}
	http01 := []string{"--http", "--http.port", "127.0.0.1:" + itoa(s.HTTPPort)}
	dns01 := []string{"--dns", "httpreq", "--dns.resolvers", s.DNS.Addr, "--dns.disable-cp"}
	dnsEnv := []string{"HTTPREQ_ENDPOINT=" + s.DNS.HTTPURL, "HTTPREQ_POLLING_INTERVAL=1", "HTTPREQ_PROPAGATION_TIMEOUT=30"}
	certOf := func(path, name string) []byte {
		b, err := os.ReadFile(filepath.Join(path, "certificates", name+".crt"))
		require.NoError(t, err)
		return b
	}

	t.Run("public", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "lego")
		// Open sign-up, dns-01: issued by the top-level policy's upstream.
		out, err := legoRun(t, pub, path, dns01, dnsEnv, "run", "www.public.e2e.test")
		require.NoError(t, err, out)
		verifyChainPool(t, webRoots, webName, certOf(path, "www.public.e2e.test"), []string{"www.public.e2e.test"})
		// http-01 to a loopback responder: this directory may not reach
		// private addresses, whatever the top level allows.
		out, err = legoRun(t, pub, path, http01, nil, "run", "lo.public.e2e.test")
		require.Error(t, err, out)
		require.Contains(t, out, "urn:ietf:params:acme:error:")
		require.Contains(t, out, "has no publicly routable address", out)
	})

	t.Run("devices", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "lego")
		// No binding: refused, as the directory requires one.
		out, err := legoRun(t, dev, path, http01, nil, "run", "p1.corp.e2e.test")
		require.Error(t, err, out)
		require.Contains(t, out, "Server requires External Account Binding", out) // lego reads meta.externalAccountRequired
		// A key made for the top level does not bind here.
		top := s.createEAB(t)
		eab := func(k eabKey) []string { return []string{"--eab", "--kid", k.ID, "--hmac", k.HMACKey} }
		out, err = legoRun(t, dev, path, append(eab(top), http01...), nil, "run", "p1.corp.e2e.test")
		require.Error(t, err, out)
		require.Contains(t, out, "unknown external account key", out)
		// The devices key binds, and loopback validates here.
		k := dev.createEAB(t)
		out, err = legoRun(t, dev, path, append(eab(k), http01...), nil, "run", "p1.corp.e2e.test")
		require.NoError(t, err, out)
		leaf := verifyChainPool(t, lanRoots, lanName, certOf(path, "p1.corp.e2e.test"), []string{"p1.corp.e2e.test"})
		requireNotChainsTo(t, webRoots, webName, certOf(path, "p1.corp.e2e.test"))
		// The directory's own policy: no corp name, no certificate.
		out, err = legoRun(t, dev, path, append(eab(k), http01...), nil, "run", "www.public.e2e.test")
		require.Error(t, err, out)
		require.Contains(t, out, "devices get corp names only", out)
		// Revocation goes through the directory's URLs.
		out, err = legoRun(t, dev, path, append(eab(k), http01...), nil, "revoke", "p1.corp.e2e.test")
		require.NoError(t, err, out)
		var certs listing[certRec]
		s.adminJSON(t, &certs, "cert", "list")
		revoked := false
		for _, c := range certs.Items {
			// The store's serial is whole bytes of hex ("061b…"), so compare numbers.
			if sn, ok := new(big.Int).SetString(c.Serial, 16); ok && sn.Cmp(leaf.SerialNumber) == 0 {
				revoked = c.RevokedAt != ""
			}
		}
		require.True(t, revoked, "the devices certificate is revoked: %+v", certs.Items)
	})

	t.Run("scoped-token", func(t *testing.T) {
		// The devices operator's token (created at start) sees and acts
		// on devices only; the global token sees both.
		scoped := func(group, verb string, args ...string) cliResult {
			return runCLI(t, s.Dir, append([]string{group, verb, "--server", s.AdminURL, "--token-file", devToken, "--json"}, args...)...)
		}
		var all, mine listing[certRec]
		s.adminJSON(t, &all, "cert", "list")
		res := scoped("cert", "list")
		require.Equal(t, 0, res.Code, res.Stderr)
		require.NoError(t, json.Unmarshal([]byte(res.Stdout), &mine))
		require.NotEmpty(t, mine.Items)
		require.Greater(t, len(all.Items), len(mine.Items))
		var publicCert string
		for _, c := range all.Items {
			if slices.Contains(c.Names, "www.public.e2e.test") {
				publicCert = c.ID
			}
		}
		require.NotEmpty(t, publicCert)
		for _, c := range mine.Items {
			require.NotEqual(t, publicCert, c.ID)
			require.Contains(t, c.Names[0], ".corp.e2e.test")
		}
		res = scoped("cert", "show", publicCert)
		require.NotEqual(t, 0, res.Code)
		require.Contains(t, res.Stderr, "404")
		res = scoped("cert", "revoke", publicCert)
		require.NotEqual(t, 0, res.Code)
		res = scoped("eab", "create", "--directory", "public")
		require.NotEqual(t, 0, res.Code)
		require.Contains(t, res.Stderr, "403")
		res = scoped("eab", "create", "--directory", "devices")
		require.Equal(t, 0, res.Code, res.Stderr)
		var c certRec
		s.adminJSON(t, &c, "cert", "show", publicCert)
		require.Empty(t, c.RevokedAt, "the scoped token revoked another tenant's certificate")
	})

	t.Run("cross-tenant", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		key := newECKey(t)
		a := &acme.Client{Key: key, DirectoryURL: pub.DirectoryURL, HTTPClient: s.HTTPClient(), UserAgent: "acmebridge-dir-e2e"}
		acct, err := a.Register(ctx, &acme.Account{}, acme.AcceptTOS)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(acct.URI, s.BaseURL+"/public/acme/account/"), acct.URI)

		// The same key at devices: no account there, and none can be
		// made with it.
		b := &acme.Client{Key: key, DirectoryURL: dev.DirectoryURL, HTTPClient: s.HTTPClient(), UserAgent: "acmebridge-dir-e2e"}
		_, err = b.GetReg(ctx, "")
		require.ErrorIs(t, err, acme.ErrNoAccount)
		_, err = b.Register(ctx, &acme.Account{}, acme.AcceptTOS)
		var ae *acme.Error
		require.True(t, errors.As(err, &ae), "%v", err)
		require.Equal(t, "urn:ietf:params:acme:error:unauthorized", ae.ProblemType)
		require.Contains(t, ae.Detail, "another directory")
		// The public account's URL used as kid at devices.
		b = &acme.Client{Key: key, KID: acme.KeyID(acct.URI), DirectoryURL: dev.DirectoryURL, HTTPClient: s.HTTPClient(), UserAgent: "acmebridge-dir-e2e"}
		_, err = b.AuthorizeOrder(ctx, acme.DomainIDs("x.corp.e2e.test"))
		require.True(t, errors.As(err, &ae), "%v", err)
		require.Equal(t, "urn:ietf:params:acme:error:accountDoesNotExist", ae.ProblemType)
		b.KID = acme.KeyID(strings.Replace(acct.URI, "/public/", "/devices/", 1))
		_, err = b.AuthorizeOrder(ctx, acme.DomainIDs("x.corp.e2e.test"))
		require.True(t, errors.As(err, &ae), "%v", err)
		require.Equal(t, "urn:ietf:params:acme:error:accountDoesNotExist", ae.ProblemType)

		// A public order's authorization is not served through devices.
		o, err := a.AuthorizeOrder(ctx, acme.DomainIDs("y.public.e2e.test"))
		require.NoError(t, err)
		code, _ := httpGetTLS(t, s, strings.Replace(o.AuthzURLs[0], "/public/", "/devices/", 1))
		require.Equal(t, http.StatusNotFound, code)
		code, _ = httpGetTLS(t, s, o.AuthzURLs[0])
		require.Equal(t, http.StatusOK, code)
		// A directory that is not configured does not exist.
		code, _ = httpGetTLS(t, s, s.BaseURL+"/nope/directory")
		require.Equal(t, http.StatusNotFound, code)
	})
}

// httpGetTLS GETs url over HTTPS trusting the server's CA.
func httpGetTLS(t *testing.T, s *server, url string) (int, string) {
	t.Helper()
	resp, err := s.HTTPClient().Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}
