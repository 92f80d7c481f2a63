package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLegoCLI drives acmebridge with the lego CLI (Debian's 4.9.1): run,
// renew (forced with --days 10000) and revoke, once per challenge type.
func TestLegoCLI(t *testing.T) {
	legoBin := requireTool(t, "lego")
	s := startServer(t, "")

	cases := []struct {
		name    string
		domains []string
		flags   []string
		env     []string
	}{
		{
			name:    "http-01",
			domains: []string{"http.cli.e2e.test"},
			flags:   []string{"--http", "--http.port", "127.0.0.1:" + itoa(s.HTTPPort)},
		},
		{
			name:    "tls-alpn-01",
			domains: []string{"tls.cli.e2e.test"},
			flags:   []string{"--tls", "--tls.port", "127.0.0.1:" + itoa(s.TLSALPNPort)},
		},
		{
			name:    "dns-01-wildcard",
			domains: []string{"*.dns.cli.e2e.test", "dns.cli.e2e.test"},
			flags:   []string{"--dns", "httpreq", "--dns.resolvers", s.DNS.Addr, "--dns.disable-cp"},
			env: []string{
				"HTTPREQ_ENDPOINT=" + s.DNS.HTTPURL,
				"HTTPREQ_POLLING_INTERVAL=1",
				"HTTPREQ_PROPAGATION_TIMEOUT=30",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lego")
			env := toolEnv(append([]string{"LEGO_CA_CERTIFICATES=" + s.CAFile}, tc.env...)...)
			args := []string{"--server", s.DirectoryURL, "--path", path, "--email", "lego-cli@example.com", "--accept-tos"}
			for _, d := range tc.domains {
				args = append(args, "--domains", d)
			}
			args = append(args, tc.flags...)
			// lego names the files after the first domain, "*" as "_".
			certFile := filepath.Join(path, "certificates", strings.ReplaceAll(tc.domains[0], "*", "_")+".crt")

			runTool(t, env, s.Dir, legoBin, append(args, "run")...)
			chain, err := os.ReadFile(certFile)
			require.NoError(t, err)
			leaf1 := s.verifyChain(t, chain, tc.domains)

			runTool(t, env, s.Dir, legoBin, append(args, "renew", "--days", "10000", "--no-random-sleep")...)
			chain, err = os.ReadFile(certFile)
			require.NoError(t, err)
			leaf2 := s.verifyChain(t, chain, tc.domains)
			require.NotEqual(t, leaf1.SerialNumber.String(), leaf2.SerialNumber.String(), "renew must issue a new certificate")

			out := runTool(t, env, s.Dir, legoBin, append(args, "revoke", "--keep")...)
			require.Contains(t, out, "revoked", "lego revoke output")

			// Revoking the same certificate again is refused (alreadyRevoked).
			out, err = runToolErr(t, env, s.Dir, legoBin, append(args, "revoke", "--keep")...)
			require.Error(t, err, "a second revoke must fail:\n%s", out)
			require.Contains(t, out, "alreadyRevoked")

			if strings.HasPrefix(tc.name, "dns-01") {
				require.Empty(t, s.DNS.TXT("_acme-challenge.dns.cli.e2e.test."), "lego cleaned up its TXT records")
			}
		})
	}
}
