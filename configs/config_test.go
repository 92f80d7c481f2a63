package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestQuickstartFileEqualsDefault: configs/quickstart.yaml is what serve does
// with no flags.
func TestQuickstartFileEqualsDefault(t *testing.T) {
	fromFile, err := Load("quickstart.yaml")
	require.NoError(t, err)
	def, err := Load("")
	require.NoError(t, err)
	require.Equal(t, def, fromFile)
	require.Equal(t, filepath.Join("acmebridge-data", "acmebridge.db"), def.Store.Bolt.Path)
	require.Equal(t, 90*24*time.Hour, def.Upstreams[0].Local.Validity.D())
}

// TestExampleFilesLoad: every example in configs/ loads (alerts.yaml is
// Prometheus rules, checked by alerts_test.go).
func TestExampleFilesLoad(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		if f == "alerts.yaml" {
			continue
		}
		_, err := Load(f)
		require.NoError(t, err, f)
	}
}

func write(t *testing.T, body string) string {
	p := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func TestPartialFileKeepsDefaults(t *testing.T) {
	c, err := Load(write(t, "server:\n  listen: 127.0.0.1:9000\n  external_url: https://acme.example.com\n"))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9000", c.Server.Listen)
	require.Equal(t, "127.0.0.1:8556", c.Admin.Listen)
	require.Equal(t, "bolt", c.Store.Driver)
	require.Len(t, c.Upstreams, 1)
}

func TestStrictAndValidated(t *testing.T) {
	for _, tc := range []struct {
		body, want string
	}{
		{"servre:\n  listen: x\n", "line 1: field servre not found"},
		{"server:\n  lisen: x\n", "line 2: field lisen not found"},
		{"server:\n  listen: nope\n", "server.listen"},
		{"server:\n  external_url: ftp://x\n", "server.external_url"},
		{"server:\n  external_url: https://x/acme\n", "server.external_url"},
		{"server:\n  tls: {cert_file: a}\n", "server.tls"},
		{"server:\n  trusted_proxies: [nope]\n", "server.trusted_proxies[0]"},
		{"store:\n  driver: etcd\n", "store.driver"},
		{"accounts:\n  eab: maybe\n", "accounts.eab"},
		{"orders:\n  order_lifetime: soon\n", "not a duration"},
		{"orders:\n  max_identifiers: 0\n", "orders.max_identifiers"},
		{"validation:\n  http_port: 70000\n", "validation.http_port"},
		{"validation:\n  dns_resolvers: [1.1.1.1]\n", "validation.dns_resolvers[0]"},
		{"upstreams:\n  - {name: a, type: vaultish}\n", "upstreams[0].type"},
		{"upstreams:\n  - {name: a, type: local}\n  - {name: a, type: local}\n", "upstreams[1].name"},
		{"policy:\n  default: {upstreams: [nowhere]}\n", "unknown upstream \"nowhere\""},
		{"policy:\n  rules:\n    - {name: r, match: {domains: ['*.*.x']}, upstreams: [dev]}\n", "policy.rules[0].match.domains[0]"},
		{"policy:\n  rules:\n    - {name: r, match: {domains: [a.x]}, action: deny, upstreams: [dev]}\n", "a deny rule names no upstream"},
		{"policy:\n  rules:\n    - {match: {domains: [a.x]}, upstreams: [dev]}\n", "policy.rules[0].name"},
		{"log:\n  level: loud\n", "log.level"},
		{"policy:\n  rules:\n    - {name: r, match: {domains: [a.x]}, upstreams: [dev], max_validity: 40s}\n", "policy.rules[0].max_validity"},
		{vaultUp("role: r, token_file: t"), "upstreams[0].vault.address: must not be empty"},
		{vaultUp("address: 'vault:8200', role: r, token_file: t"), "upstreams[0].vault.address"},
		{vaultUp("address: 'https://v/v1', role: r, token_file: t"), "upstreams[0].vault.address"},
		{vaultUp("address: 'https://v', token_file: t"), "upstreams[0].vault.role: must name"},
		{vaultUp("address: 'https://v', role: 'a/b', token_file: t"), "upstreams[0].vault.role"},
		{vaultUp("address: 'https://v', role: r, mount: '/pki/', token_file: t"), "upstreams[0].vault.mount"},
		{vaultUp("address: 'https://v', role: r, issuer_ref: 'x y', token_file: t"), "upstreams[0].vault.issuer_ref"},
		{vaultUp("address: 'https://v', role: r, mode: issue, token_file: t"), "upstreams[0].vault.mode"},
		{vaultUp("address: 'https://v', role: r, ttl: -1h, token_file: t"), "upstreams[0].vault.ttl"},
		{vaultUp("address: 'https://v', role: r"), "give exactly one of token_file, token_env, approle and kubernetes"},
		{vaultUp("address: 'https://v', role: r, token_file: t, kubernetes: {role: acme}"), "give exactly one of"},
		{vaultUp("address: 'https://v', role: r, kubernetes: {mount: jwt}"), "upstreams[0].vault.kubernetes.role"},
		{vaultUp("address: 'https://v', role: r, kubernetes: {role: 'a/b'}"), "upstreams[0].vault.kubernetes.role"},
		{vaultUp("address: 'https://v', role: r, kubernetes: {role: acme, mount: '/jwt'}"), "upstreams[0].vault.kubernetes.mount"},
		{vaultUp("address: 'https://v', role: r, token_file: t, token_env: T"), "give exactly one of"},
		{vaultUp("address: 'https://v', role: r, token_env: '1X'"), "upstreams[0].vault.token_env"},
		{vaultUp("address: 'https://v', role: r, approle: {role_id_file: a}"), "upstreams[0].vault.approle.secret_id_file"},
		{vaultUp("address: 'https://v', role: r, approle: {secret_id_file: a}"), "upstreams[0].vault.approle.role_id_file"},
		{vaultUp("address: 'https://v', role: r, approle: {role_id_file: a, secret_id_file: b, mount: '/x'}"), "upstreams[0].vault.approle.mount"},
		{vaultUp("address: 'https://v', role: r, token_file: t, client_cert_file: c"), "client_cert_file and client_key_file go together"},
		{vaultUp("address: 'https://v', role: r, token_file: t, namespace: 'a b'"), "upstreams[0].vault.namespace"},
		{vaultUp("address: 'https://v', role: r, token_file: t, tokn: x"), "field tokn not found"},
		{"upstreams:\n  - {name: dev, type: local, vault: {role: r}}\n", "upstreams[0].vault: only an upstream of type vault"},
		{"upstreams:\n  - {name: dev, type: vault, local: {delay: 1s}, vault: {address: 'https://v', role: r, token_env: T}}\n", "upstreams[0].local: only an upstream of type local"},
		{"log: {level: info}\n---\nlog: {level: info}\n", "more than one YAML document"},
	} {
		_, err := Load(write(t, tc.body))
		require.Error(t, err, tc.body)
		require.Contains(t, err.Error(), tc.want, tc.body)
	}
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	require.ErrorContains(t, err, "no such file")
}

// vaultUp is a config with one vault upstream named dev (so the
// quickstart's default route stays valid) and the given vault block keys.
func vaultUp(keys string) string {
	return "upstreams:\n  - {name: dev, type: vault, vault: {" + keys + "}}\n"
}

// TestVaultBlock: a vault upstream loads with its defaults filled in.
func TestVaultBlock(t *testing.T) {
	c, err := Load(write(t, vaultUp("address: 'https://vault:8200/', role: server, token_file: /run/t, ttl: 24h")))
	require.NoError(t, err)
	v := c.Upstreams[0].Vault
	require.Equal(t, "https://vault:8200", v.Address, "a trailing slash is dropped")
	require.Equal(t, "pki", v.Mount)
	require.Equal(t, "sign", v.Mode)
	require.Equal(t, 24*time.Hour, v.TTL.D())
	require.Equal(t, "", v.AppRole.Mount, "no approle, no approle mount")

	c, err = Load(write(t, vaultUp("address: 'http://127.0.0.1:8200', role: r, mount: pki/int, mode: sign-verbatim, "+
		"issuer_ref: root-2026, namespace: team-a/, approle: {role_id_file: a, secret_id_file: b}")))
	require.NoError(t, err)
	v = c.Upstreams[0].Vault
	require.Equal(t, "approle", v.AppRole.Mount)
	require.Equal(t, "sign-verbatim", v.Mode)
	require.Equal(t, "pki/int", v.Mount)
	require.NoError(t, c.Validate(), "a filled config validates again")

	c, err = Load(write(t, vaultUp("address: 'https://vault:8200', role: r, kubernetes: {role: acme}")))
	require.NoError(t, err)
	k := c.Upstreams[0].Vault.Kubernetes
	require.Equal(t, "kubernetes", k.Mount)
	require.Equal(t, "/var/run/secrets/kubernetes.io/serviceaccount/token", k.TokenFile, "the pod's default token")
	require.NoError(t, c.Validate(), "a filled config validates again")

	c, err = Load("vault.yaml")
	require.NoError(t, err)
	require.Equal(t, "vault", c.Upstreams[0].Type)
	require.Equal(t, "pki_int", c.Upstreams[0].Vault.Mount)
	require.Equal(t, 720*time.Hour, c.Upstreams[0].Vault.TTL.D())
}

func TestEmptyFileIsQuickstart(t *testing.T) {
	c, err := Load(write(t, ""))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(c.Server.ExternalURL, "https://127.0.0.1:8555"))
}

// FuzzLoad: config loading (strict YAML, defaults, validation) of any file
// content never panics, and a file Load accepts is valid.
func FuzzLoad(f *testing.F) {
	// Seeds: every example configuration shipped (the files users copy).
	examples, _ := filepath.Glob("*.yaml")
	for _, name := range examples {
		b, _ := os.ReadFile(name)
		f.Add(string(b))
	}
	f.Add("server: {listen: ':1'}\n")
	f.Add("upstreams: [{name: x}]\n")
	f.Fuzz(func(t *testing.T, body string) {
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Skip()
		}
		c, err := Load(p)
		if err == nil {
			require.NoError(t, c.Validate())
		}
	})
}

func TestPolicyReplacesDefaults(t *testing.T) {
	c, err := Load(write(t, "policy:\n  rules:\n    - {name: r, match: {domains: [a.example]}, upstreams: [dev]}\n"))
	require.NoError(t, err)
	require.Equal(t, "deny", c.Policy.Default.Action, "rules without a default deny the rest")
	c, err = Load(write(t, "upstreams:\n  - {name: a, type: local}\npolicy:\n  default: {upstreams: [a]}\n"))
	require.NoError(t, err)
	require.Len(t, c.Upstreams, 1, "an upstreams list replaces the quickstart's")
	require.Equal(t, []string{"a"}, c.Policy.Default.Upstreams)
	require.Equal(t, "default", c.Policy.Default.Name)
	_, err = Load(write(t, "upstreams:\n  - {name: a, type: local}\n"))
	require.ErrorContains(t, err, `unknown upstream "dev"`, "the quickstart's default route needs its dev upstream")
}

// TestRateLimitsValidated: a rate limit needs a count with a positive
// period; exemptions must be CIDRs.
func TestRateLimitsValidated(t *testing.T) {
	cfg := Default()
	cfg.RateLimits.NewOrdersPerAccount = RateLimit{Count: 10}
	cfg.RateLimits.CertificatesPerDomain = RateLimit{Period: Duration(time.Hour)}
	cfg.RateLimits.NewAccountsPerIP = RateLimit{Count: 1e9, Period: Duration(time.Second)}
	cfg.RateLimits.Exempt.IPs = []string{"10.0.0.1"}
	err := cfg.Validate()
	require.Error(t, err)
	for _, want := range []string{
		"rate_limits.new_orders_per_account.period: must be a positive duration",
		"rate_limits.certificates_per_domain: set count",
		"rate_limits.new_accounts_per_ip: count 1000000000 per 1s is more than one event per microsecond",
		`rate_limits.exempt.ips[0]: "10.0.0.1" is not a CIDR`,
	} {
		require.Contains(t, err.Error(), want)
	}
	cfg = Default()
	cfg.RateLimits.FailedValidationsPerName = RateLimit{Count: 5, Period: Duration(time.Hour), Burst: 2}
	require.NoError(t, cfg.Validate())
}

// TestCAAMaxAgeValidated: orders.caa_max_age is positive and at most the
// 8 hours the Baseline Requirements allow.
func TestCAAMaxAgeValidated(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second, 9 * time.Hour} {
		cfg := Default()
		cfg.Orders.CAAMaxAge = Duration(d)
		err := cfg.Validate()
		require.Error(t, err, d)
		require.Contains(t, err.Error(), "orders.caa_max_age: must be more than 0 and at most 8h")
	}
	cfg := Default()
	require.Equal(t, Duration(8*time.Hour), cfg.Orders.CAAMaxAge)
	cfg.Orders.CAAMaxAge = Duration(time.Hour)
	require.NoError(t, cfg.Validate())
}

// TestPrivateAddressesOnlyWhenSaid: the quickstart (no file) lets
// validations reach private addresses; a config file that does not set
// validation.allow_private_addresses denies them (issue 14, hole 3: every
// file inherited true, the shipped public, Redis and Docker examples too).
func TestPrivateAddressesOnlyWhenSaid(t *testing.T) {
	def, err := Load("")
	require.NoError(t, err)
	require.True(t, def.Validation.AllowPrivateAddresses, "the quickstart serves a LAN")

	for _, body := range []string{
		"",
		"server:\n  listen: 0.0.0.0:8555\n",
		"validation:\n  http_port: 8080\n",
		"validation:\n  allow_private_addresses: false\n",
	} {
		c, err := Load(write(t, body))
		require.NoError(t, err, body)
		require.False(t, c.Validation.AllowPrivateAddresses, "a file that does not say so denies them: %q", body)
		require.Equal(t, def.Validation.Timeout, c.Validation.Timeout, "the other quickstart defaults stay")
	}
	c, err := Load(write(t, "validation:\n  allow_private_addresses: true\n"))
	require.NoError(t, err)
	require.True(t, c.Validation.AllowPrivateAddresses)

	for file, want := range map[string]bool{
		"quickstart.yaml": true, "hybrid.yaml": true,
		"public.yaml": false, "redis.yaml": false, "vault.yaml": false,
		"../deploy/docker/config.yaml": false, "../deploy/systemd/config.yaml": false,
	} {
		c, err := Load(file)
		require.NoError(t, err, file)
		require.Equal(t, want, c.Validation.AllowPrivateAddresses, file)
	}
}

// TestUnknownKeyLimitOnByDefault: rate_limits.unknown_key_requests_per_ip
// is on in the quickstart and in every file that does not turn it off,
// also when the file sets other limits; a limit written in a file replaces
// the default whole, strictly decoded.
func TestUnknownKeyLimitOnByDefault(t *testing.T) {
	def, err := Load("")
	require.NoError(t, err)
	require.True(t, def.RateLimits.UnknownKeyRequestsPerIP.On())
	require.Equal(t, DefaultUnknownKeyRequestsPerIP, def.RateLimits.UnknownKeyRequestsPerIP)
	for _, f := range []string{"public.yaml", "redis.yaml", write(t, "rate_limits:\n  new_accounts_per_ip: {count: 5, period: 1h}\n")} {
		c, err := Load(f)
		require.NoError(t, err, f)
		require.Equal(t, DefaultUnknownKeyRequestsPerIP, c.RateLimits.UnknownKeyRequestsPerIP, f)
	}
	c, err := Load(write(t, "rate_limits:\n  unknown_key_requests_per_ip: {count: 0}\n"))
	require.NoError(t, err)
	require.False(t, c.RateLimits.UnknownKeyRequestsPerIP.On(), "count 0 turns it off")
	c, err = Load(write(t, "rate_limits:\n  unknown_key_requests_per_ip: {count: 20, period: 10m}\n"))
	require.NoError(t, err)
	require.Equal(t, RateLimit{Count: 20, Period: Duration(10 * time.Minute)}, c.RateLimits.UnknownKeyRequestsPerIP)
	_, err = Load(write(t, "rate_limits:\n  unknown_key_requests_per_ip: {count: 20}\n"))
	require.ErrorContains(t, err, "rate_limits.unknown_key_requests_per_ip.period: must be a positive duration")
	_, err = Load(write(t, "rate_limits:\n  unknown_key_requests_per_ip: {count: 20, period: 1h, brust: 3}\n"))
	require.ErrorContains(t, err, "line 2: field brust not found")
}

// TestRedisDurabilityValidated: a file that omits store.redis.durability
// waits for no replica (the behaviour of a single Redis); one that sets
// replicas gets a timeout of 1s, which must stay below the read timeout.
func TestRedisDurabilityValidated(t *testing.T) {
	base := "store:\n  driver: redis\n  redis:\n    addrs: [\"127.0.0.1:6379\"]\n"
	cfg, err := Load(write(t, base))
	require.NoError(t, err)
	require.Zero(t, cfg.Store.Redis.Durability.Replicas)

	cfg, err = Load(write(t, base+"    durability: {replicas: 1}\n"))
	require.NoError(t, err)
	require.Equal(t, 1, cfg.Store.Redis.Durability.Replicas)
	require.Equal(t, Duration(time.Second), cfg.Store.Redis.Durability.Timeout)

	for body, want := range map[string]string{
		"    durability: {replicas: -1}\n":                         "store.redis.durability.replicas",
		"    durability: {replicas: 17}\n":                         "store.redis.durability.replicas",
		"    durability: {replicas: 1, timeout: 0s}\n":             "store.redis.durability.timeout",
		"    durability: {replicas: 1, timeout: 2s}\n":             "shorter than store.redis.read_timeout (2s)",
		"    read_timeout: 500ms\n    durability: {replicas: 1}\n": "store.redis.durability.timeout",
		"    durability: {replicas: 1, timout: 1s}\n":              "field timout not found",
	} {
		_, err := Load(write(t, base+body))
		require.ErrorContains(t, err, want, body)
	}
}
