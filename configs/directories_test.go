package configs

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDirectoriesInherit: a directory keeps the top level's tenant settings
// it leaves out, and its own replace them; a policy it writes replaces the
// top level's whole and denies what no rule matches.
func TestDirectoriesInherit(t *testing.T) {
	c, err := Load(write(t, `
accounts: {eab: optional, require_contact: true}
validation: {allow_private_addresses: true}
orders: {profiles: {tls: "TLS server"}}
rate_limits:
  new_orders_per_account: {count: 50, period: 1h}
directories:
  - name: public
    rate_limits:
      new_orders_per_account: {count: 10, period: 1h}
    validation: {allow_private_addresses: false}
  - name: devices
    accounts: {eab: required}
    profiles: {short: "one day"}
    policy:
      rules:
        - name: printers
          match: {domains: ["*.bücher.example"]}
          upstreams: [dev]
`))
	require.NoError(t, err)
	require.Equal(t, []string{"", "public", "devices"}, c.DirectoryNames())
	pub := c.ForDirectory("public")
	require.Equal(t, "optional", pub.Accounts.EAB)
	require.True(t, pub.Accounts.RequireContact)
	require.False(t, pub.Validation.AllowPrivateAddresses)
	require.Equal(t, int64(10), pub.RateLimits.NewOrdersPerAccount.Count)
	require.Equal(t, c.Policy, pub.Policy, "a directory without policy has the top level's")
	require.Equal(t, map[string]string{"tls": "TLS server"}, pub.Orders.Profiles)
	dev := c.ForDirectory("devices")
	require.Equal(t, "required", dev.Accounts.EAB)
	require.True(t, dev.Accounts.RequireContact, "a key the directory's accounts block leaves out is inherited")
	require.True(t, dev.Validation.AllowPrivateAddresses)
	require.Equal(t, map[string]string{"short": "one day"}, dev.Orders.Profiles, "profiles are replaced, not merged")
	require.Equal(t, "deny", dev.Policy.Default.Action, "a directory's policy without a default denies the rest")
	require.Equal(t, []string{"*.xn--bcher-kva.example"}, dev.Policy.Rules[0].Match.Domains)
	require.Equal(t, int64(50), dev.RateLimits.NewOrdersPerAccount.Count)
	require.Equal(t, c, c.ForDirectory(""))
	require.Nil(t, c.ForDirectory("nope"))
	require.Equal(t, "optional", c.Accounts.EAB, "the top level is not changed by its directories")
}

// TestDirectoriesValidated: names, and each directory's settings, are
// checked as the top level's; unknown keys are refused.
func TestDirectoriesValidated(t *testing.T) {
	for body, want := range map[string]string{
		`directories: [{name: Public}]`:                                               `directories[0].name: "Public"`,
		`directories: [{name: acme}]`:                                                 `directories[0].name: "acme" is one of the server's own paths`,
		`directories: [{name: a}, {name: a}]`:                                         `directories[1].name: "a" is used twice`,
		`directories: [{name: a, accounts: {eab: maybe}}]`:                            `directories[0].accounts.eab`,
		`directories: [{name: a, colour: blue}]`:                                      `field colour not found`,
		`directories: [{name: a, caa_identities: ["-x"]}]`:                            `directories[0].caa_identities[0]`,
		`directories: [{name: a, rate_limits: {new_orders_per_account: {count: 1}}}]`: `directories[0].rate_limits.new_orders_per_account.period`,
		`directories: [{name: a, policy: {default: {upstreams: [nope]}}}]`:            `directories[0].policy.default`,
	} {
		_, err := Load(write(t, body))
		require.ErrorContains(t, err, want, body)
	}
}

// TestDirectoryTokensValidated: a scoped admin token names a configured
// directory (or "/", the top level) and a token file of its own.
func TestDirectoryTokensValidated(t *testing.T) {
	c, err := Load(write(t, `
data_dir: /tmp/ab
directories: [{name: devices}]
admin:
  directory_tokens:
    - {directory: devices, token_file: /run/secrets/devices.token}
    - {directory: /, token_file: /run/secrets/top.token}
`))
	require.NoError(t, err)
	require.Equal(t, "devices", c.Admin.DirectoryTokens[0].ScopedDirectory())
	require.Equal(t, "", c.Admin.DirectoryTokens[1].ScopedDirectory())
	for body, want := range map[string]string{
		`admin: {directory_tokens: [{directory: nope, token_file: /x}]}`:                                                          `admin.directory_tokens[0].directory: "nope" is not a configured directory`,
		`admin: {directory_tokens: [{token_file: /x}]}`:                                                                           `admin.directory_tokens[0].directory: "" is not a configured directory`,
		`{directories: [{name: d}], admin: {directory_tokens: [{directory: d}]}}`:                                                 `admin.directory_tokens[0].token_file: is required`,
		`{directories: [{name: d}], admin: {token_file: /t, directory_tokens: [{directory: d, token_file: /t}]}}`:                 `admin.directory_tokens[0].token_file: "/t" is also admin.token_file`,
		`{directories: [{name: d}], admin: {directory_tokens: [{directory: d, token_file: /a}, {directory: /, token_file: /a}]}}`: `admin.directory_tokens[1].token_file: "/a" is also admin.directory_tokens[0]`,
		`admin: {directory_tokens: [{directory: d, token: x}]}`:                                                                   `field token not found`,
	} {
		_, err := Load(write(t, body))
		require.ErrorContains(t, err, want, body)
	}
}
