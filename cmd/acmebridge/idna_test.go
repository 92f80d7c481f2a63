package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPolicyExplainUnicode: Unicode patterns and a Unicode name are
// matched as A-labels; the name may be given either way.
func TestPolicyExplainUnicode(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "p.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`
upstreams:
  - {name: dev, type: local}
  - {name: vault, type: local}
policy:
  rules:
    - {name: books, match: {domains: ["bücher.example.org", "*.bücher.example.org"]}, upstreams: [vault]}
    - {name: public, match: {domains: ["*.example.com", "*.example.org"]}, upstreams: [dev]}
  default: {action: deny}
`), 0o600))
	code, out, stderr := runCmd("policy", "explain", "--config", cfg, "bücher.example.org", "xn--bcher-kva.example.org", "*.bücher.example.org", "bu\u0308cher.example.org")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "bücher.example.org (xn--bcher-kva.example.org): rule books, allow via vault\n")
	require.Contains(t, out, "xn--bcher-kva.example.org: rule books, allow via vault\n")
	require.Contains(t, out, "*.bücher.example.org (*.xn--bcher-kva.example.org): rule books, allow via vault\n")
	require.Contains(t, out, "bu\u0308cher.example.org: invalid (")
}

// TestConfigCheckUnicodePattern: a pattern that is no IDNA name is refused
// with its key and line.
func TestConfigCheckUnicodePattern(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "p.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`
upstreams:
  - {name: dev, type: local}
policy:
  rules:
    - {name: books, match: {domains: ["bü*.example.org"]}, upstreams: [dev]}
`), 0o600))
	code, _, stderr := runCmd("config", "check", "--config", cfg)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `line 6: policy.rules[0].match.domains[0]: "bü*.example.org": a glob label must be ASCII`)
}
