package test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/lego"
	legolog "github.com/go-acme/lego/v5/log"
	"github.com/go-acme/lego/v5/registration"
	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/upstream/vault/vaulttest"
)

// vaultDomain is what the Vault role allows (with its subdomains); the
// policy routes all of *.e2e.test to Vault, so other names reach Vault and
// are refused by the role.
const vaultDomain = "vault.e2e.test"

// vaultBridge is acmebridge routing *.e2e.test to a real Vault dev server
// (and *.local.e2e.test to a local CA, for comparison).
type vaultBridge struct {
	s     *server
	vault *vaulttest.Server
	pki   *vaulttest.PKI
	root  *api.Client
	// proxy, when the bridge was started through one, stands between
	// acmebridge and Vault.
	proxy *vaulttest.Proxy
}

// vaultAuthKind selects how acmebridge logs in to Vault.
type vaultAuthKind int

const (
	// authMinimumToken: a token holding only docs/upstreams.md's minimum policy.
	authMinimumToken vaultAuthKind = iota
	// authAppRole: AppRole with the minimum policy.
	authAppRole
	// authRootToken: the dev server's root token, which survives a
	// restart of the dev server (a created token would not).
	authRootToken
	// authKubernetes: a pod's service account token, through Vault's JWT
	// auth method trusting the cluster issuer's key (mount jwt).
	authKubernetes
)

// startVaultBridge starts Vault, sets PKI up as an operator would, and
// starts acmebridge with a vault upstream.
func startVaultBridge(t *testing.T, auth vaultAuthKind) *vaultBridge {
	t.Helper()
	return startVaultBridgeVia(t, auth, false)
}

// startVaultBridgeVia is startVaultBridge, with acmebridge talking to Vault
// through a vaulttest.Proxy when proxied.
func startVaultBridgeVia(t *testing.T, auth vaultAuthKind, proxied bool) *vaultBridge {
	t.Helper()
	return startVaultBridgeMode(t, auth, proxied, "")
}

// startVaultBridgeMode is startVaultBridgeVia with the vault upstream's
// mode (sign or sign-verbatim; "" for the default).
func startVaultBridgeMode(t *testing.T, auth vaultAuthKind, proxied bool, mode string) *vaultBridge {
	t.Helper()
	modeYAML := ""
	if mode != "" {
		modeYAML = "mode: " + mode
	}
	v := vaulttest.Start(t, vaulttest.Options{})
	root := v.Client(t, "")
	p := setupVaultPKI(t, root)
	address := v.URL
	var proxy *vaulttest.Proxy
	if proxied {
		proxy = vaulttest.StartProxy(t, v.URL)
		address = proxy.URL
	}
	dir := t.TempDir()
	write := func(name, content string) string {
		f := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(f, []byte(content+"\n"), 0o600))
		return f
	}
	var authYAML string
	switch auth {
	case authMinimumToken:
		tok := vaulttest.CreateToken(t, root, vaulttest.TokenOptions{Policies: []string{"acmebridge"}, NoDefaultPolicy: true})
		authYAML = fmt.Sprintf("token_file: %q", write("token", tok))
	case authAppRole:
		roleID, secretID := vaulttest.AppRole(t, root, "approle", "acmebridge", []string{"acmebridge"}, "1h", "24h")
		authYAML = fmt.Sprintf("approle: {role_id_file: %q, secret_id_file: %q}", write("role-id", roleID), write("secret-id", secretID))
	case authRootToken:
		authYAML = fmt.Sprintf("token_file: %q", write("token", v.Token))
	case authKubernetes:
		sa := vaulttest.ServiceAccount{Namespace: "pki", Name: "acmebridge"}
		cluster := vaulttest.KubernetesJWTAuth(t, root, "jwt", "acmebridge", sa, []string{"acmebridge"}, "1h", "24h")
		authYAML = fmt.Sprintf("kubernetes: {role: acmebridge, mount: jwt, token_file: %q}", write("sa-token", cluster.Token(t, sa, time.Hour)))
	}
	s := startServer(t, fmt.Sprintf(`upstreams:
  - name: vault
    type: vault
    vault:
      address: %q
      mount: %s
      role: %s
      ttl: 24h
      %s
      %s
  - name: dev
    type: local
policy:
  rules:
    - name: local
      match: {domains: ["*.local.e2e.test"]}
      upstreams: [dev]
    - name: vault
      match: {domains: ["*.e2e.test"]}
      upstreams: [vault]
  default: {action: deny}
`, address, p.Mount, p.Role, authYAML, modeYAML))
	return &vaultBridge{s: s, vault: v, pki: p, root: root, proxy: proxy}
}

// setupVaultPKI is the operator's set-up: PKI root and intermediate, the
// role, and the minimum policy.
func setupVaultPKI(t *testing.T, root *api.Client) *vaulttest.PKI {
	t.Helper()
	p := vaulttest.SetupPKI(t, root, vaulttest.PKIOptions{AllowedDomains: []string{vaultDomain}})
	vaulttest.PutPolicy(t, root, "acmebridge", vaulttest.MinimumPolicy(p.Mount, p.Role))
	return p
}

// requireRevokedInVault checks Vault's own record and its CRL.
func (b *vaultBridge) requireRevokedInVault(t *testing.T, leaf *x509.Certificate) {
	t.Helper()
	s, err := b.root.Logical().Read(b.pki.Mount + "/cert/" + vaultSerial(leaf))
	require.NoError(t, err)
	require.NotNil(t, s, "Vault does not know serial %s", vaultSerial(leaf))
	rt, _ := s.Data["revocation_time"].(interface{ String() string })
	require.NotNil(t, rt)
	require.NotEqual(t, "0", rt.String(), "pki/cert/<serial> shows no revocation_time")

	resp, err := b.vault.HTTPClient().Get(b.vault.URL + "/v1/" + b.pki.Mount + "/crl")
	require.NoError(t, err)
	der, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	crl, err := x509.ParseRevocationList(der)
	require.NoError(t, err)
	require.NoError(t, crl.CheckSignatureFrom(b.pki.Intermediate), "the CRL is signed by the intermediate")
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
			return
		}
	}
	t.Fatalf("serial %s is not on Vault's CRL", vaultSerial(leaf))
}

// vaultLeaves returns the leaf certificates Vault holds.
func (b *vaultBridge) vaultLeaves(t *testing.T) []*x509.Certificate {
	t.Helper()
	s, err := b.root.Logical().List(b.pki.Mount + "/certs")
	require.NoError(t, err)
	var out []*x509.Certificate
	if s == nil {
		return out
	}
	for _, k := range s.Data["keys"].([]any) {
		c, err := b.root.Logical().Read(b.pki.Mount + "/cert/" + k.(string))
		require.NoError(t, err)
		certs, err := parsePEMCerts([]byte(c.Data["certificate"].(string)))
		require.NoError(t, err)
		if len(certs) == 1 && !certs[0].IsCA {
			out = append(out, certs[0])
		}
	}
	return out
}

// vaultSerial is Vault's name for a certificate: hex bytes with colons.
func vaultSerial(c *x509.Certificate) string {
	b := c.SerialNumber.Bytes()
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts, ":")
}

// vaultQuietLego sends lego's log to a buffer printed if the test fails.
func vaultQuietLego(t *testing.T) {
	t.Helper()
	logs := &syncBuffer{}
	prev := legolog.Default()
	legolog.SetDefault(slog.New(slog.NewTextHandler(logs, nil)))
	t.Cleanup(func() {
		legolog.SetDefault(prev)
		if t.Failed() {
			t.Logf("lego log:\n%s", logs.String())
		}
	})
}

// vaultLegoClient returns a lego client with a registered account.
func vaultLegoClient(t *testing.T, s *server, email string) *lego.Client {
	t.Helper()
	user := &legoUser{email: email, key: newECKey(t)}
	c := newLegoClient(t, s, user)
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	reg, err := c.Registration.Register(ctx, registration.RegisterOptions{TermsOfServiceAgreed: true})
	require.NoError(t, err)
	user.reg = reg
	return c
}

// vaultAfterCleanUp wraps a challenge provider and calls hook once, after the
// first CleanUp: lego cleans up once the authorization is valid, just
// before it finalizes the order.
type vaultAfterCleanUp struct {
	challenge.Provider
	once sync.Once
	hook func()
}

// CleanUp implements challenge.Provider.
func (p *vaultAfterCleanUp) CleanUp(ctx context.Context, domain, token, keyAuth string) error {
	err := p.Provider.CleanUp(ctx, domain, token, keyAuth)
	p.once.Do(p.hook)
	return err
}

// vaultCSRPEM makes a PEM CSR for name with a fresh EC P-256 key.
func vaultCSRPEM(t *testing.T, name string) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: name}, DNSNames: []string{name}}, newECKey(t))
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// vaultCountLines counts the lines of text holding every one of parts.
func vaultCountLines(text string, parts ...string) int {
	n := 0
	for _, l := range strings.Split(text, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			n++
		}
	}
	return n
}

// vaultWaitFor polls cond every 50ms until it holds or d passes.
func vaultWaitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
