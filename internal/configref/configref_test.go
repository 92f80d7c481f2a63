package configref

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReferenceUpToDate fails when docs/configuration.md differs from what
// the configuration types and their doc comments generate: a key added,
// renamed, documented differently or given another default without
// regenerating the reference.
func TestReferenceUpToDate(t *testing.T) {
	keys, err := Keys("../../configs")
	require.NoError(t, err)
	want := Markdown(keys)
	got, err := os.ReadFile("../../docs/configuration.md")
	require.NoError(t, err)
	require.Equal(t, want, string(got),
		"docs/configuration.md is stale: run go run ./internal/configref/gen -o docs/configuration.md")
}

// TestEveryKeyDocumented fails when a configuration key has no doc comment,
// so the reference never shows a key without its meaning.
func TestEveryKeyDocumented(t *testing.T) {
	keys, err := Keys("../../configs")
	require.NoError(t, err)
	require.Empty(t, Undocumented(keys), "configuration keys without a doc comment in configs/")
}

// TestKnownKeys checks the walk against keys the configuration must have.
func TestKnownKeys(t *testing.T) {
	keys, err := Keys("../../configs")
	require.NoError(t, err)
	byPath := map[string]Key{}
	for _, k := range keys {
		byPath[k.Path] = k
	}
	for path, def := range map[string]string{
		"server.listen":          "127.0.0.1:8555",
		"store.driver":           "bolt",
		"accounts.eab":           "disabled",
		"orders.order_lifetime":  "24h",
		"upstreams":              "[{name: dev, type: local, local: {dir: acmebridge-data/ca/dev, validity: 2160h}}]",
		"upstreams[].vault.mode": "",
		"policy.rules[].name":    "",
	} {
		k, ok := byPath[path]
		require.True(t, ok, "key %s missing", path)
		require.Equal(t, def, k.Default, path)
	}
	require.True(t, strings.HasPrefix(byPath["upstreams[].vault.role"].Doc, "Role is"), byPath["upstreams[].vault.role"].Doc)
}
