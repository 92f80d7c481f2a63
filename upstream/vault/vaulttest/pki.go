package vaulttest

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"
)

// PKIOptions describes the PKI set-up: a root CA on RootMount signs an
// intermediate on Mount, and Role on Mount signs leaves.
type PKIOptions struct {
	// RootMount and Mount default to pki_root and pki.
	RootMount, Mount string
	// Role defaults to acme.
	Role string
	// AllowedDomains are the role's allowed_domains (bare domains and
	// their subdomains, wildcards included).
	AllowedDomains []string
	// AllowIPSANs lets the role sign IP addresses.
	AllowIPSANs bool
	// MaxTTL is the role's max_ttl (default 720h).
	MaxTTL string
	// NoStore sets the role's no_store.
	NoStore bool
}

// PKI is what SetupPKI made.
type PKI struct {
	Mount, RootMount, Role string
	// Root and Intermediate are the CA certificates; Roots trusts Root.
	Root, Intermediate *x509.Certificate
	Roots              *x509.CertPool
	// IntermediateIssuer is the intermediate's issuer id on Mount.
	IntermediateIssuer string
}

// SetupPKI sets PKI up through Vault's API, as an operator following
// Vault's PKI guide would: mount a root engine and generate an EC P-256
// root, mount the intermediate engine, generate its CSR, sign it with the
// root, import the signed intermediate (with the root, so ca_chain is
// complete), make it the default issuer, set the CRL URL and write the
// role.
func SetupPKI(t testing.TB, c *api.Client, o PKIOptions) *PKI {
	t.Helper()
	if o.RootMount == "" {
		o.RootMount = "pki_root"
	}
	if o.Mount == "" {
		o.Mount = "pki"
	}
	if o.Role == "" {
		o.Role = "acme"
	}
	if o.MaxTTL == "" {
		o.MaxTTL = "720h"
	}
	l := c.Logical()
	for _, m := range []string{o.RootMount, o.Mount} {
		require.NoError(t, c.Sys().Mount(m, &api.MountInput{Type: "pki", Config: api.MountConfigInput{MaxLeaseTTL: "87600h"}}), "mount %s", m)
	}

	s, err := l.Write(o.RootMount+"/root/generate/internal", map[string]any{
		"common_name": "acmebridge test root", "issuer_name": "root",
		"key_type": "ec", "key_bits": 256, "ttl": "87600h",
	})
	require.NoError(t, err, "generate the root")
	rootPEM := s.Data["certificate"].(string)

	s, err = l.Write(o.Mount+"/intermediate/generate/internal", map[string]any{
		"common_name": "acmebridge test intermediate", "key_type": "ec", "key_bits": 256,
	})
	require.NoError(t, err, "generate the intermediate's CSR")
	csr := s.Data["csr"].(string)

	s, err = l.Write(o.RootMount+"/root/sign-intermediate", map[string]any{
		"csr": csr, "format": "pem", "ttl": "43800h", "common_name": "acmebridge test intermediate",
	})
	require.NoError(t, err, "sign the intermediate with the root")
	interPEM := s.Data["certificate"].(string)

	s, err = l.Write(o.Mount+"/intermediate/set-signed", map[string]any{"certificate": interPEM + "\n" + rootPEM})
	require.NoError(t, err, "import the signed intermediate")
	// mapping: issuer id -> key id; the intermediate is the one with a key.
	var interID string
	if m, ok := s.Data["mapping"].(map[string]any); ok {
		for id, key := range m {
			if k, _ := key.(string); k != "" {
				interID = id
			}
		}
	}
	require.NotEmpty(t, interID, "set-signed named no issuer with a key: %v", s.Data)
	_, err = l.Write(o.Mount+"/config/issuers", map[string]any{"default": interID})
	require.NoError(t, err, "make the intermediate the default issuer")
	_, err = l.Write(o.Mount+"/config/urls", map[string]any{
		"issuing_certificates":    []string{c.Address() + "/v1/" + o.Mount + "/ca"},
		"crl_distribution_points": []string{c.Address() + "/v1/" + o.Mount + "/crl"},
	})
	require.NoError(t, err, "set the AIA and CRL URLs")

	role := map[string]any{
		"allowed_domains":             o.AllowedDomains,
		"allow_subdomains":            true,
		"allow_bare_domains":          true,
		"allow_wildcard_certificates": true,
		"allow_ip_sans":               o.AllowIPSANs,
		"key_type":                    "any",
		"max_ttl":                     o.MaxTTL,
		"ttl":                         "72h",
		"require_cn":                  false,
		"server_flag":                 true,
		"client_flag":                 true,
		"no_store":                    o.NoStore,
	}
	_, err = l.Write(o.Mount+"/roles/"+o.Role, role)
	require.NoError(t, err, "write the role")

	p := &PKI{Mount: o.Mount, RootMount: o.RootMount, Role: o.Role, IntermediateIssuer: interID, Roots: x509.NewCertPool()}
	p.Root = parsePEM(t, rootPEM)
	p.Intermediate = parsePEM(t, interPEM)
	p.Roots.AddCert(p.Root)
	return p
}

// MinimumPolicy is the least a token needs for acmebridge with the role
// mount/role in mode sign: sign, revoke, `upstream check`, and the look-ups
// that settle a signing request whose answer was lost. docs/upstreams.md
// shows this policy; the tests run acmebridge with a token holding only it.
func MinimumPolicy(mount, role string) string {
	return fmt.Sprintf(`# Sign CSRs with the role (mode sign-verbatim: %[1]s/sign-verbatim/%[2]s;
# with issuer_ref: %[1]s/issuer/+/sign/%[2]s).
path "%[1]s/sign/%[2]s" {
  capabilities = ["update"]
}
# Revoke certificates (ACME revokeCert).
path "%[1]s/revoke" {
  capabilities = ["update"]
}
# upstream check; after a lost answer, whether the role stores certificates.
path "%[1]s/roles/%[2]s" {
  capabilities = ["read"]
}
# After a lost answer: find the certificate Vault signed, and its issuers.
path "%[1]s/certs/" {
  capabilities = ["list"]
}
path "%[1]s/cert/*" {
  capabilities = ["read"]
}
path "%[1]s/issuers/" {
  capabilities = ["list"]
}
path "%[1]s/issuer/+/json" {
  capabilities = ["read"]
}
# The token's own upkeep, and upstream check's question "may I sign?"
# (all three are also in Vault's default policy).
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}
path "sys/capabilities-self" {
  capabilities = ["update"]
}
`, mount, role)
}

// PutPolicy writes an ACL policy.
func PutPolicy(t testing.TB, c *api.Client, name, hcl string) {
	t.Helper()
	require.NoError(t, c.Sys().PutPolicy(name, hcl))
}

// TokenOptions describes a token CreateToken makes.
type TokenOptions struct {
	Policies []string
	// TTL and ExplicitMaxTTL as Vault durations ("10s"); empty: defaults.
	TTL, ExplicitMaxTTL string
	// NoDefaultPolicy leaves Vault's default policy off.
	NoDefaultPolicy bool
	// NotRenewable makes a token that cannot be renewed.
	NotRenewable bool
}

// CreateToken makes an orphan service token.
func CreateToken(t testing.TB, c *api.Client, o TokenOptions) string {
	t.Helper()
	renewable := !o.NotRenewable
	s, err := c.Auth().Token().CreateOrphan(&api.TokenCreateRequest{
		Policies: o.Policies, TTL: o.TTL, ExplicitMaxTTL: o.ExplicitMaxTTL,
		NoDefaultPolicy: o.NoDefaultPolicy, Renewable: &renewable,
	})
	require.NoError(t, err)
	return s.Auth.ClientToken
}

// AppRole enables the AppRole auth method at mount (once), writes role
// name with the policies and token TTLs, and returns a role ID and a new
// secret ID.
func AppRole(t testing.TB, c *api.Client, mount, name string, policies []string, tokenTTL, tokenMaxTTL string) (roleID, secretID string) {
	t.Helper()
	auths, err := c.Sys().ListAuth()
	require.NoError(t, err)
	if _, ok := auths[strings.Trim(mount, "/")+"/"]; !ok {
		require.NoError(t, c.Sys().EnableAuthWithOptions(mount, &api.EnableAuthOptions{Type: "approle"}))
	}
	l := c.Logical()
	_, err = l.Write("auth/"+mount+"/role/"+name, map[string]any{
		"token_policies": policies, "token_ttl": tokenTTL, "token_max_ttl": tokenMaxTTL,
	})
	require.NoError(t, err)
	s, err := l.Read("auth/" + mount + "/role/" + name + "/role-id")
	require.NoError(t, err)
	roleID = s.Data["role_id"].(string)
	s, err = l.Write("auth/"+mount+"/role/"+name+"/secret-id", nil)
	require.NoError(t, err)
	return roleID, s.Data["secret_id"].(string)
}

func parsePEM(t testing.TB, s string) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode([]byte(s))
	require.NotNil(t, b, "no PEM block in %q", s)
	c, err := x509.ParseCertificate(b.Bytes)
	require.NoError(t, err)
	return c
}
