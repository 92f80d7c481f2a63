package configs

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUpstreamCAA(t *testing.T) {
	c, err := Load(write(t, `
server:
  caa_identities: [bridge.example.com]
upstreams:
  - name: dev
    type: local
  - name: dev-unchecked
    type: local
    caa: {check: false}
  - name: vault-internal
    type: vault
    vault: {address: "https://vault:8200", token_file: /run/token, role: server}
    caa_identities: [pki.corp.example.com, PKI.Example.NET]
  - name: public
    type: acme
    acme: {directory: "https://acme.example.net/directory", solver: {type: http-01, listen: ":80"}}
  - name: public-checked
    type: acme
    acme: {directory: "https://acme.example.net/directory", solver: {type: http-01, listen: ":80"}}
    caa_identities: [acme.example.net]
    caa: {check: true}
policy:
  default: {upstreams: [dev]}
`))
	require.NoError(t, err)
	checks := map[string]bool{}
	for _, u := range c.Upstreams {
		checks[u.Name] = u.ChecksCAA()
	}
	require.Equal(t, map[string]bool{"dev": true, "dev-unchecked": false, "vault-internal": true, "public": false, "public-checked": true}, checks)
	require.Equal(t, []string{"pki.corp.example.com", "PKI.Example.NET"}, c.Upstreams[2].CAAIdentities)

	// The quickstart checks CAA for its local CA.
	def, err := Load("")
	require.NoError(t, err)
	require.True(t, def.Upstreams[0].ChecksCAA())

	for _, tc := range []struct{ body, want string }{
		{"upstreams:\n  - {name: dev, type: local, caa_identities: [\"ca.example.com.\"]}\n", `upstreams[0].caa_identities[0]: "ca.example.com." is not a domain name`},
		{"upstreams:\n  - {name: dev, type: local, caa_identities: [\"-ca.example.com\"]}\n", "upstreams[0].caa_identities[0]"},
		{"upstreams:\n  - {name: dev, type: local, caa_identities: [\"ca example\"]}\n", "upstreams[0].caa_identities[0]"},
		{"upstreams:\n  - {name: dev, type: local, caa: {check: yes-please}}\n", "cannot unmarshal"},
		{"upstreams:\n  - {name: dev, type: local, caa: {chek: true}}\n", "field chek not found"},
		{"server:\n  caa_identities: [\"ca..example\"]\n", "server.caa_identities[0]"},
		{`upstreams:
  - name: public
    type: acme
    acme: {directory: "https://acme.example.net/directory", solver: {type: http-01, listen: ":80"}}
    caa_identities: [acme.example.net]
policy:
  default: {upstreams: [public]}
`, "upstreams[0].caa_identities: has no effect while caa.check is false"},
	} {
		_, err := Load(write(t, tc.body))
		require.ErrorContains(t, err, tc.want, tc.body)
	}
}
