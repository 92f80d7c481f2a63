package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// policyWildcardConfig denies one name and a glob, routes one name
// elsewhere, and allows the rest of example.com and example.org by a
// wildcard rule.
const policyWildcardConfig = `
upstreams:
  - {name: dev, type: local}
  - {name: vault, type: local}
policy:
  rules:
    - {name: secret-names, match: {domains: [secret.example.com]}, action: deny}
    - {name: printers, match: {domains: ["printer-*.corp.example.com"]}, action: deny}
    - {name: shop, match: {domains: ["shop.example.org"]}, upstreams: [vault]}
    - {name: public, match: {domains: ["*.example.com", "*.example.org"]}, upstreams: [dev]}
  default: {action: deny}
`

// TestPolicyExplainWildcard: explain refuses a wildcard covering a name an
// earlier rule denies or routes elsewhere, naming that rule, in text and
// JSON.
func TestPolicyExplainWildcard(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "p.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(policyWildcardConfig), 0o600))

	code, out, stderr := runCmd("policy", "explain", "--config", cfg, "*.example.com", "*.corp.example.com", "*.other.example.com")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "*.example.com: rule public, deny (rule secret-names denies secret.example.com, which *.example.com would cover)\n  refused by rule secret-names (secret.example.com)\n")
	require.Contains(t, out, "*.corp.example.com: rule public, deny (rule printers denies printer-*.corp.example.com, which *.corp.example.com would cover)\n  refused by rule printers (printer-*.corp.example.com)\n")
	require.Contains(t, out, "*.other.example.com: rule public, allow via dev\n")

	code, out, stderr = runCmd("policy", "explain", "--config", cfg, "--json", "*.example.com", "*.example.org")
	require.Equal(t, 0, code, stderr)
	var got []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	require.Equal(t, "public", got[0]["rule"])
	require.Equal(t, "deny", got[0]["action"])
	require.Equal(t, "secret-names", got[0]["conflicting_rule"])
	require.Equal(t, "secret.example.com", got[0]["conflicting_pattern"])
	require.Equal(t, "rule secret-names denies secret.example.com, which *.example.com would cover", got[0]["reason"])
	require.Nil(t, got[0]["upstreams"])
	require.Equal(t, "shop", got[1]["conflicting_rule"])
	require.Contains(t, got[1]["reason"], "rule shop routes shop.example.org to [vault], not [dev] as rule public does, which *.example.org would cover")
}
