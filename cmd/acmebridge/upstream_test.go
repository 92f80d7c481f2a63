package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/upstream/local"
	"github.com/acmebridge/acmebridge/upstream/vault/vaulttest"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func TestUpstreamCheckUsage(t *testing.T) {
	code, _, stderr := runCmd("upstream")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "upstream check")
	code, _, _ = runCmd("upstream", "check", "extra")
	require.Equal(t, 2, code)
	code, out, _ := runCmd("help")
	require.Equal(t, 0, code)
	require.Contains(t, out, "acmebridge upstream check")
	code, _, stderr = runCmd("upstream", "check", "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "no such file")
}

// TestUpstreamCheckLocal: a local CA not yet created is fine (serve
// creates it) and the check creates nothing; one that loads is reported;
// an incomplete one fails.
func TestUpstreamCheckLocal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	cfg := writeConfig(t, fmt.Sprintf("upstreams:\n  - {name: dev, type: local, local: {dir: %q}}\n", dir))
	code, out, _ := runCmd("upstream", "check", "--config", cfg)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "dev (local): ok: no CA in")
	_, err := os.Stat(dir)
	require.ErrorIs(t, err, os.ErrNotExist, "a check creates no CA")

	_, err = local.New(local.Options{Name: "dev", Dir: dir})
	require.NoError(t, err)
	code, out, _ = runCmd("upstream", "check", "--config", cfg)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "dev (local): ok: CA loaded from")

	require.NoError(t, os.Remove(filepath.Join(dir, "intermediate.key")))
	code, out, _ = runCmd("upstream", "check", "--config", cfg)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "dev (local): FAILED: local: CA directory")
	require.Contains(t, out, "1 of 1 upstreams failed")
}

// TestUpstreamCheckVault runs the check against a real Vault dev server:
// a token with docs/upstreams.md's minimum policy passes; a refused token, a
// missing role and an unreachable Vault fail with exit 1.
func TestUpstreamCheckVault(t *testing.T) {
	srv := vaulttest.Start(t, vaulttest.Options{})
	root := srv.Client(t, "")
	p := vaulttest.SetupPKI(t, root, vaulttest.PKIOptions{AllowedDomains: []string{"example.test"}})
	vaulttest.PutPolicy(t, root, "acmebridge", vaulttest.MinimumPolicy(p.Mount, p.Role))
	tok := vaulttest.CreateToken(t, root, vaulttest.TokenOptions{Policies: []string{"acmebridge"}, NoDefaultPolicy: true})
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(tok), 0o600))
	config := func(address, role string) string {
		return writeConfig(t, fmt.Sprintf(`data_dir: %q
upstreams:
  - name: corp
    type: vault
    vault: {address: %q, mount: %s, role: %s, token_file: %q}
  - name: dev
    type: local
`, dir, address, p.Mount, role, tokenFile))
	}

	code, out, stderr := runCmd("upstream", "check", "--config", config(srv.URL, p.Role))
	require.Equal(t, 0, code, out+stderr)
	require.Contains(t, out, "corp (vault): ok: reachable at "+srv.URL)
	require.Contains(t, out, "policies acmebridge")
	require.Contains(t, out, "role pki/acme readable")
	require.Contains(t, out, "dev (local): ok")

	code, out, _ = runCmd("upstream", "check", "--config", config(srv.URL, "other"))
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "corp (vault): FAILED: vault: Vault refused acmebridge's credentials", "the policy covers only its role")
	require.Contains(t, out, "dev (local): ok", "every upstream is checked")

	require.NoError(t, os.WriteFile(tokenFile, []byte("wrong"), 0o600))
	code, out, _ = runCmd("upstream", "check", "--config", config(srv.URL, p.Role))
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "corp (vault): FAILED")

	srv.Kill()
	code, out, _ = runCmd("upstream", "check", "--timeout", "5s", "--config", config(srv.URL, p.Role))
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "corp (vault): FAILED: vault: Vault cannot be reached")
}
