package configs

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func acmeUp(block string) string {
	return "upstreams:\n  - name: le\n    type: acme\n    acme: {" + block + "}\npolicy:\n  default: {upstreams: [le]}\n"
}

// TestACMEBlockValidated: the acme block's mistakes are named by field.
func TestACMEBlockValidated(t *testing.T) {
	const dns = "directory: 'https://ca/dir', solver: {type: dns-01, provider: httpreq}"
	for _, tc := range []struct{ body, want string }{
		{acmeUp("solver: {type: dns-01, provider: httpreq}"), "upstreams[0].acme.directory: must not be empty"},
		{acmeUp("directory: 'http://ca/dir', solver: {type: dns-01, provider: httpreq}"), "upstreams[0].acme.directory: \"http://ca/dir\" must be an https URL"},
		{acmeUp(dns + ", email: 'not an address'"), "upstreams[0].acme.email"},
		{acmeUp(dns + ", eab: {kid: k}"), "upstreams[0].acme.eab: give exactly one of hmac_file and hmac_env"},
		{acmeUp(dns + ", eab: {hmac_file: f}"), "upstreams[0].acme.eab.kid"},
		{acmeUp(dns + ", eab: {kid: k, hmac_env: '1X'}"), "upstreams[0].acme.eab.hmac_env"},
		{acmeUp(dns + ", key_type: DSA"), "upstreams[0].acme.key_type"},
		{acmeUp(dns + ", timeout: -1s"), "upstreams[0].acme.timeout"},
		{acmeUp("directory: 'https://ca/dir', solver: {provider: exec}"), "upstreams[0].acme.solver.type: must be dns-01 or http-01 (or leave the solver out"},
		{acmeUp("directory: 'https://ca/dir', solver: {listen: ':80'}"), "upstreams[0].acme.solver.type: must be dns-01 or http-01"},
		{acmeUp("directory: 'https://ca/dir', solver: {type: tls-alpn-01}"), "upstreams[0].acme.solver.type"},
		{acmeUp("directory: 'https://ca/dir', solver: {type: dns-01}"), "upstreams[0].acme.solver.provider: must name a DNS provider"},
		{acmeUp("directory: 'https://ca/dir', solver: {type: dns-01, provider: godaddy}"), "\"godaddy\" is not one acmebridge is built with"},
		{acmeUp("directory: 'https://ca/dir', solver: {type: dns-01, provider: exec, env: {'A-B': x}}"), "upstreams[0].acme.solver.env"},
		{acmeUp("directory: 'https://ca/dir', solver: {type: dns-01, provider: exec, resolvers: [1.1.1.1]}"), "upstreams[0].acme.solver.resolvers[0]"},
		{acmeUp("directory: 'https://ca/dir', solver: {type: dns-01, provider: exec, propagation: {disable_check: true}}"), "disable_check needs a wait"},
		{acmeUp("directory: 'https://ca/dir', solver: {type: dns-01, provider: exec, listen: ':80'}"), "only the http-01 solver listens"},
		{acmeUp("directory: 'https://ca/dir', solver: {type: http-01}"), "upstreams[0].acme.solver.listen"},
		{acmeUp("directory: 'https://ca/dir', solver: {type: http-01, listen: ':80', provider: exec}"), "are for dns-01"},
		{"upstreams:\n  - name: dev\n    type: local\n    acme: {directory: 'https://ca/dir'}\n", "upstreams[0].acme: only an upstream of type acme takes an acme block"},
		{"upstreams:\n  - name: le\n    type: acme\n    local: {delay: 1s}\n    acme: {" + dns + "}\npolicy:\n  default: {upstreams: [le]}\n", "upstreams[0].local: only an upstream of type local"},
		{"upstreams:\n  - name: le\n    type: acme\n    acme: {" + dns + ", directry: x}\n", "field directry not found"},
	} {
		_, err := Load(write(t, tc.body))
		require.Error(t, err, tc.body)
		require.Contains(t, err.Error(), tc.want, tc.body)
	}
}

// TestACMEBlockLoads: a complete block loads as written.
func TestACMEBlockLoads(t *testing.T) {
	c, err := Load(write(t, acmeUp(`directory: 'https://acme-v02.api.letsencrypt.org/directory', email: ops@example.com,
      ca_file: /etc/ca.pem, eab: {kid: k, hmac_file: /run/hmac}, key_type: ec384, preferred_chain: 'ISRG Root X1',
      profile: shortlived, timeout: 20s,
      solver: {type: dns-01, provider: rfc2136, env: {RFC2136_NAMESERVER: 'ns1:53'}, resolvers: ['1.1.1.1:53'],
               propagation: {timeout: 2m, interval: 5s, wait: 1s, disable_authoritative_check: true}}`)))
	require.NoError(t, err)
	a := c.Upstreams[0].ACME
	require.Equal(t, "acme", c.Upstreams[0].Type)
	require.Equal(t, "ops@example.com", a.Email)
	require.Equal(t, ACMEEAB{KID: "k", HMACFile: "/run/hmac"}, a.EAB)
	require.Equal(t, "ns1:53", a.Solver.Env["RFC2136_NAMESERVER"])
	require.Equal(t, "2m0s", a.Solver.Propagation.Timeout.D().String())
	require.True(t, a.Solver.Propagation.DisableAuthoritativeCheck)
	_, err = Load(write(t, acmeUp("directory: 'https://ca/dir', solver: {type: http-01, listen: ':80'}")))
	require.NoError(t, err)
}

// TestACMEWithoutSolver: an acme upstream may leave its solver out (a CA
// that hands back valid authorizations, such as a tiered SaaS
// acmebridge that delegates validation).
func TestACMEWithoutSolver(t *testing.T) {
	c, err := Load(write(t, acmeUp("directory: 'https://ca/dir'")))
	require.NoError(t, err)
	require.Empty(t, c.Upstreams[0].ACME.Solver.Type)
}
