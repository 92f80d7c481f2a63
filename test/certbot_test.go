package test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCertbot drives acmebridge with certbot (Debian's 2.1) in standalone
// http-01 mode: certonly, renew --force-renewal, revoke.
func TestCertbot(t *testing.T) {
	certbot := requireTool(t, "certbot")
	s := startServer(t, "")
	const name = "certbot.e2e.test"

	dir := t.TempDir()
	env := toolEnv("REQUESTS_CA_BUNDLE=" + s.CAFile)
	dirs := []string{
		"--config-dir", filepath.Join(dir, "config"),
		"--work-dir", filepath.Join(dir, "work"),
		"--logs-dir", filepath.Join(dir, "logs"),
	}
	standalone := []string{"--standalone", "--http-01-port", itoa(s.HTTPPort), "--http-01-address", "127.0.0.1"}
	live := filepath.Join(dir, "config", "live", name)
	logOnFailure(t, filepath.Join(dir, "logs", "letsencrypt.log"))

	args := append([]string{"certonly", "--server", s.DirectoryURL, "-d", name,
		"--agree-tos", "-m", "x@example.com", "--non-interactive", "--no-eff-email"}, standalone...)
	runTool(t, env, dir, certbot, append(args, dirs...)...)
	chain, err := os.ReadFile(filepath.Join(live, "fullchain.pem"))
	require.NoError(t, err)
	leaf1 := s.verifyChain(t, chain, []string{name})

	args = append([]string{"renew", "--force-renewal", "--non-interactive", "--no-random-sleep-on-renew"}, standalone...)
	runTool(t, env, dir, certbot, append(args, dirs...)...)
	chain, err = os.ReadFile(filepath.Join(live, "fullchain.pem"))
	require.NoError(t, err)
	leaf2 := s.verifyChain(t, chain, []string{name})
	require.NotEqual(t, leaf1.SerialNumber.String(), leaf2.SerialNumber.String(), "renew must issue a new certificate")

	args = []string{"revoke", "--server", s.DirectoryURL, "--cert-path", filepath.Join(live, "cert.pem"),
		"--non-interactive", "--no-delete-after-revoke"}
	runTool(t, env, dir, certbot, append(args, dirs...)...)

	// A second revocation is refused with alreadyRevoked. certbot 2.1 on
	// Python 3.11 hides the problem behind "AttributeError: can't set
	// attribute" (josepy's immutable exception meets contextlib), so the
	// problem document is looked for in its debug log too.
	out, err := runToolErr(t, env, dir, certbot, append(args, dirs...)...)
	require.Error(t, err, "a second revoke must fail:\n%s", out)
	logText, _ := os.ReadFile(filepath.Join(dir, "logs", "letsencrypt.log"))
	require.Contains(t, out+string(logText), "urn:ietf:params:acme:error:alreadyRevoked")
}

// logOnFailure prints a client's log file if the test fails.
func logOnFailure(t *testing.T, path string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		if b, err := os.ReadFile(path); err == nil {
			t.Logf("%s:\n%s", path, b)
		}
	})
}
