package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsage(t *testing.T) {
	code, _, stderr := runCmd()
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "Usage:")
	code, _, stderr = runCmd("frobnicate")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, `unknown command "frobnicate"`)
	code, out, _ := runCmd("version")
	require.Equal(t, 0, code)
	require.Contains(t, out, "acmebridge")
	code, _, _ = runCmd("config")
	require.Equal(t, 2, code)
	code, _, stderr = runCmd("config", "check")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "--config FILE is required")
}

func TestConfigCheck(t *testing.T) {
	code, out, _ := runCmd("config", "check", "--config", "../../configs/quickstart.yaml")
	require.Equal(t, 0, code)
	require.Contains(t, out, "ok")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("server:\n  listn: x\n"), 0o600))
	code, _, stderr := runCmd("config", "check", "--config", bad)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "line 2: field listn not found")

	code, out, _ = runCmd("config", "check", "--config", "../../configs/directories.yaml")
	require.Equal(t, 0, code)
	require.Contains(t, out, "directory /public/: eab disabled, 1 policy rules and a default, private addresses refused")
	require.Contains(t, out, "directory /devices/: eab required, 2 policy rules and a default, private addresses allowed")
}

func TestPolicyExplain(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "p.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`
upstreams:
  - {name: dev, type: local}
  - {name: other, type: local}
policy:
  rules:
    - {name: corp, match: {domains: ["*.corp.example.com"]}, upstreams: [other, dev]}
    - {name: no-test, match: {domains: ["*.test.example.com"]}, action: deny, reason: "no tests"}
  default: {action: deny}
`), 0o600))
	code, out, _ := runCmd("policy", "explain", "--config", cfg, "a.corp.example.com", "x.test.example.com", "www.example.org")
	require.Equal(t, 0, code)
	require.Contains(t, out, "a.corp.example.com: rule corp, allow via other then dev")
	require.Contains(t, out, "x.test.example.com: rule no-test, deny (no tests)")
	require.Contains(t, out, "skipped corp: x.test.example.com matches none of [*.corp.example.com]")
	require.Contains(t, out, "www.example.org: rule default, deny")

	code, out, _ = runCmd("policy", "explain", "--config", cfg, "--json", "a.corp.example.com")
	require.Equal(t, 0, code)
	var got []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	require.Equal(t, "corp", got[0]["rule"])

	code, _, stderr := runCmd("policy", "explain", "--config", cfg)
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "name at least one")
}

// TestTierExamples: the tiered bridge's example configs pass `config check`,
// and `policy explain` tells which names of a site's group the SaaS side
// delegates (README "On-prem and SaaS").
func TestTierExamples(t *testing.T) {
	for _, f := range []string{"../../configs/tier-onprem.yaml", "../../configs/tier-saas.yaml"} {
		code, out, stderr := runCmd("config", "check", "--config", f)
		require.Equal(t, 0, code, "%s: %s", f, stderr)
		require.Contains(t, out, "ok")
	}
	code, out, _ := runCmd("policy", "explain", "--config", "../../configs/tier-saas.yaml", "--group", "site-a",
		"printer-1.site-a.corp.example.com", "printer-1.site-b.corp.example.com", "*.site-a.corp.example.com")
	require.Equal(t, 0, code)
	require.Contains(t, out, "printer-1.site-a.corp.example.com: rule site-a, allow via vault, delegated validation (no challenge)")
	require.Contains(t, out, "printer-1.site-b.corp.example.com: rule sites-elsewhere, deny (a site's bridge gets certificates only for its own names)")
	require.Contains(t, out, "*.site-a.corp.example.com: rule site-a, deny (rule site-a: wildcard names are not issued)")
	code, out, _ = runCmd("policy", "explain", "--config", "../../configs/tier-saas.yaml", "printer-1.site-a.corp.example.com")
	require.Equal(t, 0, code)
	require.Contains(t, out, "printer-1.site-a.corp.example.com: rule default, deny", "an account of no group gets nothing")

	// config check refuses delegation on a rule an open sign-up account could match.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte(`upstreams: [{name: dev, type: local}]
policy:
  rules:
    - {name: open, match: {domains: ["*.example.com"]}, upstreams: [dev], delegated_validation: true}
  default: {action: deny}
`), 0o600))
	code, _, stderr := runCmd("config", "check", "--config", bad)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "policy.rules[0].delegated_validation: the rule must match groups or eab_keys")
}
