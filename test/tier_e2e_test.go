package test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/acme"

	"github.com/acmebridge/acmebridge/upstream/vault/vaulttest"
)

// This file runs a tiered bridge with real processes: clients validate
// their names to an on-prem acmebridge (http-01 on loopback, which only it
// may reach), which relays to a SaaS acmebridge (a `type: acme` upstream
// with an EAB key of group site-a), which grants site-a's names by
// delegated validation and issues from a Vault dev server. The SaaS side
// denies private addresses: it could not validate the clients itself.

// tierSite is what the SaaS side delegates to group site-a.
const tierSite = "site-a." + vaultDomain

// tier is the three processes of a tiered bridge.
type tier struct {
	vault  *vaultBridge // Vault and its PKI (vault.s is unused)
	saas   *server
	onprem *server
	// kid is the on-prem's EAB key at the SaaS side.
	kid string
}

// tierSaaSYAML is the SaaS side: EAB required; group site-a gets its names
// by delegated validation and nothing else; everything else is refused.
func tierSaaSYAML(v *vaulttest.Server, p *vaulttest.PKI, tokenFile string) string {
	return fmt.Sprintf(`accounts:
  eab: required
upstreams:
  - name: vault
    type: vault
    vault:
      address: %q
      mount: %s
      role: %s
      ttl: 24h
      token_file: %q
policy:
  rules:
    - name: site-a
      match: {groups: [site-a], domains: ["*.%s"]}
      upstreams: [vault]
      allow_wildcards: false
      delegated_validation: true
    - name: site-a-elsewhere
      match: {groups: [site-a]}
      action: deny
      reason: "site-a's certificates are for *.%s only"
  default: {action: deny, reason: "this service issues to on-prem bridges only"}
`, v.URL, p.Mount, p.Role, tokenFile, tierSite, tierSite)
}

// startTier starts Vault, the SaaS acmebridge (private addresses denied),
// an EAB key of group site-a on it, and the on-prem acmebridge relaying
// everything to the SaaS side with that key.
func startTier(t *testing.T) *tier {
	t.Helper()
	v := vaulttest.Start(t, vaulttest.Options{})
	root := v.Client(t, "")
	p := setupVaultPKI(t, root)
	dir := t.TempDir()
	token := filepath.Join(dir, "vault-token")
	require.NoError(t, os.WriteFile(token, []byte(v.Token+"\n"), 0o600))
	saas := startServerWith(t, tierSaaSYAML(v, p, token), serverOpts{privateDenied: true})

	k := saas.createEAB(t, "--group", "site-a", "--note", "on-prem bridge of site A")
	hmac := filepath.Join(dir, "saas-eab-hmac")
	require.NoError(t, os.WriteFile(hmac, []byte(k.HMACKey+"\n"), 0o600))
	onprem := startServer(t, fmt.Sprintf(`upstreams:
  - name: saas
    type: acme
    acme:
      directory: %q
      ca_file: %q
      email: site-a@example.com
      eab: {kid: %q, hmac_file: %q}
      # No solver: the SaaS side delegates validation to this key.
policy:
  default: {upstreams: [saas]}
`, saas.DirectoryURL, saas.CAFile, k.ID, hmac))
	return &tier{vault: &vaultBridge{vault: v, pki: p, root: root}, saas: saas, onprem: onprem, kid: k.ID}
}

// requireDelegated requires the SaaS audit log to show name's authorization
// delegated to the on-prem's key, and no validation at the SaaS side; and
// the on-prem audit log the client's http-01 validation of name.
func (tr *tier) requireDelegated(t *testing.T, name string) {
	t.Helper()
	saas := readAudit(t, tr.saas.AuditFile())
	i := findAudit(saas, 0, func(e auditEvent) bool { return e.Event == "authorization.delegated" && e.hasName(name) })
	require.NotEqual(t, -1, i, "no authorization.delegated for %s at the SaaS side:\n%s", name, dumpAudit(saas))
	require.Equal(t, tr.kid, saas[i].E.EABKey)
	require.Equal(t, "site-a", saas[i].E.Group)
	require.Equal(t, "site-a", saas[i].E.Rule)
	require.Equal(t, -1, findAudit(saas, 0, func(e auditEvent) bool { return strings.HasPrefix(e.Event, "challenge.") }),
		"the SaaS side validated nothing:\n%s", dumpAudit(saas))
	onprem := readAudit(t, tr.onprem.AuditFile())
	j := findAudit(onprem, 0, func(e auditEvent) bool { return e.Event == "challenge.valid" && e.hasName(name) })
	require.NotEqual(t, -1, j, "no challenge.valid for %s at the on-prem side:\n%s", name, dumpAudit(onprem))
	require.Equal(t, "http-01", onprem[j].E.Challenge)
}

// TestTierLego: the lego CLI orders from the on-prem bridge, validating
// http-01 on loopback; the certificate comes from Vault through the SaaS
// bridge, which delegated the validation; a name outside site-a's
// allow-list is refused at the SaaS side and reaches lego as
// rejectedIdentifier naming the SaaS rule; lego's revocation reaches Vault
// through both tiers. lego ordering from the SaaS side directly with its
// own site-a key gets valid authorizations with no challenge and is issued
// without answering any.
func TestTierLego(t *testing.T) {
	legoBin := requireTool(t, "lego")
	tr := startTier(t)
	name := "printer-1." + tierSite

	path := filepath.Join(t.TempDir(), "lego")
	env := toolEnv("LEGO_CA_CERTIFICATES=" + tr.onprem.CAFile)
	args := []string{"--server", tr.onprem.DirectoryURL, "--path", path, "--email", "lego-tier@example.com", "--accept-tos",
		"--http", "--http.port", "127.0.0.1:" + itoa(tr.onprem.HTTPPort)}
	runTool(t, env, tr.onprem.Dir, legoBin, append(args, "--domains", name, "run")...)
	chain, err := os.ReadFile(filepath.Join(path, "certificates", name+".crt"))
	require.NoError(t, err)
	leaf := verifyChainPool(t, tr.vault.pki.Roots, "Vault's root", chain, []string{name})
	requireNotChainsTo(t, tr.onprem.Roots, "the on-prem CA", chain)
	requireNotChainsTo(t, tr.saas.Roots, "the SaaS CA", chain)
	tr.requireDelegated(t, name)
	var orders listing[orderRec]
	tr.saas.adminJSON(t, &orders, "order", "list", "--identifier", name)
	require.Len(t, orders.Items, 1)
	require.Equal(t, "site-a", orders.Items[0].Rule)
	var shown struct {
		Delegated      bool `json:"delegated"`
		Authorizations []struct {
			Delegated     bool   `json:"delegated"`
			DelegatedRule string `json:"delegated_rule"`
			ValidatedBy   string `json:"validated_by"`
		} `json:"authorizations"`
	}
	tr.saas.adminJSON(t, &shown, "order", "show", orders.Items[0].ID)
	require.True(t, shown.Delegated, "the admin API shows the order delegated")
	require.Len(t, shown.Authorizations, 1)
	require.True(t, shown.Authorizations[0].Delegated)
	require.Equal(t, "site-a", shown.Authorizations[0].DelegatedRule)
	require.Empty(t, shown.Authorizations[0].ValidatedBy)

	// A name the SaaS side does not delegate to site-a: validated on-prem,
	// refused upstream, told to lego as rejectedIdentifier with the rule.
	other := "printer-1.site-b." + vaultDomain
	out, err := runToolErr(t, env, tr.onprem.Dir, legoBin, append(args, "--domains", other, "run")...)
	require.Error(t, err, "the SaaS side must refuse %s:\n%s", other, out)
	t.Logf("lego, refused:\n%s", out)
	require.Contains(t, out, "urn:ietf:params:acme:error:rejectedIdentifier")
	require.Contains(t, out, "site-a-elsewhere")
	saasAudit := readAudit(t, tr.saas.AuditFile())
	require.NotEqual(t, -1, findAudit(saasAudit, 0, func(e auditEvent) bool {
		return e.Event == "order.refused" && e.hasName(other) && e.Rule == "site-a-elsewhere"
	}), "the SaaS side refused by rule site-a-elsewhere:\n%s", dumpAudit(saasAudit))
	onpremAudit := readAudit(t, tr.onprem.AuditFile())
	require.NotEqual(t, -1, findAudit(onpremAudit, 0, func(e auditEvent) bool {
		return e.Event == "order.invalid" && e.hasName(other) && e.Problem == "rejectedIdentifier" && e.Upstream == "saas"
	}), "the on-prem order ended invalid:\n%s", dumpAudit(onpremAudit))
	require.Len(t, tr.vault.vaultLeaves(t), 1, "Vault issued once")

	// Revocation from the client reaches Vault through both tiers.
	out = runTool(t, env, tr.onprem.Dir, legoBin, append(args, "--domains", name, "revoke", "--keep")...)
	require.Contains(t, out, "revoked")
	tr.vault.requireRevokedInVault(t, leaf)

	t.Run("direct to the SaaS side", func(t *testing.T) {
		k := tr.saas.createEAB(t, "--group", "site-a")
		direct := "direct." + tierSite
		path := filepath.Join(t.TempDir(), "lego")
		env := toolEnv("LEGO_CA_CERTIFICATES=" + tr.saas.CAFile)
		// No responder listens on this port: nothing may be asked.
		args := []string{"--server", tr.saas.DirectoryURL, "--path", path, "--email", "lego-direct@example.com", "--accept-tos",
			"--eab", "--kid", k.ID, "--hmac", k.HMACKey, "--http", "--http.port", "127.0.0.1:" + itoa(freePorts(t, 1)[0]),
			"--domains", direct}
		out := runTool(t, env, tr.saas.Dir, legoBin, append(args, "run")...)
		require.Contains(t, out, "already valid", "lego skips a valid authorization")
		chain, err := os.ReadFile(filepath.Join(path, "certificates", direct+".crt"))
		require.NoError(t, err)
		verifyChainPool(t, tr.vault.pki.Roots, "Vault's root", chain, []string{direct})
	})
}

// TestTierCertbot: certbot (standalone http-01) through the on-prem and
// SaaS bridges to Vault, and its revocation back; certbot ordering from the
// SaaS side directly with a site-a key is issued without a challenge.
func TestTierCertbot(t *testing.T) {
	certbot := requireTool(t, "certbot")
	tr := startTier(t)
	name := "certbot." + tierSite
	dir := t.TempDir()
	env := toolEnv("REQUESTS_CA_BUNDLE=" + tr.onprem.CAFile)
	dirs := []string{"--config-dir", filepath.Join(dir, "config"), "--work-dir", filepath.Join(dir, "work"),
		"--logs-dir", filepath.Join(dir, "logs")}
	logOnFailure(t, filepath.Join(dir, "logs", "letsencrypt.log"))
	args := []string{"certonly", "--server", tr.onprem.DirectoryURL, "-d", name, "--agree-tos", "-m", "x@example.com",
		"--non-interactive", "--no-eff-email", "--standalone", "--http-01-port", itoa(tr.onprem.HTTPPort), "--http-01-address", "127.0.0.1"}
	runTool(t, env, dir, certbot, append(args, dirs...)...)
	live := filepath.Join(dir, "config", "live", name)
	chain, err := os.ReadFile(filepath.Join(live, "fullchain.pem"))
	require.NoError(t, err)
	leaf := verifyChainPool(t, tr.vault.pki.Roots, "Vault's root", chain, []string{name})
	tr.requireDelegated(t, name)

	args = []string{"revoke", "--server", tr.onprem.DirectoryURL, "--cert-path", filepath.Join(live, "cert.pem"),
		"--reason", "superseded", "--non-interactive", "--no-delete-after-revoke"}
	runTool(t, env, dir, certbot, append(args, dirs...)...)
	tr.vault.requireRevokedInVault(t, leaf)

	t.Run("direct to the SaaS side", func(t *testing.T) {
		k := tr.saas.createEAB(t, "--group", "site-a")
		direct := "certbot-direct." + tierSite
		dir := t.TempDir()
		env := toolEnv("REQUESTS_CA_BUNDLE=" + tr.saas.CAFile)
		dirs := []string{"--config-dir", filepath.Join(dir, "config"), "--work-dir", filepath.Join(dir, "work"),
			"--logs-dir", filepath.Join(dir, "logs")}
		logOnFailure(t, filepath.Join(dir, "logs", "letsencrypt.log"))
		args := []string{"certonly", "--server", tr.saas.DirectoryURL, "-d", direct, "--agree-tos", "-m", "x@example.com",
			"--eab-kid", k.ID, "--eab-hmac-key", k.HMACKey, "--non-interactive", "--no-eff-email",
			"--standalone", "--http-01-port", itoa(freePorts(t, 1)[0]), "--http-01-address", "127.0.0.1"}
		runTool(t, env, dir, certbot, append(args, dirs...)...)
		chain, err := os.ReadFile(filepath.Join(dir, "config", "live", direct, "fullchain.pem"))
		require.NoError(t, err)
		verifyChainPool(t, tr.vault.pki.Roots, "Vault's root", chain, []string{direct})
	})
}

// TestTierSaaSDown: an order validated on-prem is finalized while the SaaS
// bridge is stopped: it stays processing (the on-prem worker retries)
// and completes once the SaaS bridge is back, with exactly one issuance at
// Vault and one certificate at the SaaS side.
func TestTierSaaSDown(t *testing.T) {
	tr := startTier(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	name := "outage." + tierSite
	set := serveHTTP01(t, tr.onprem.HTTPPort)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	c := &acme.Client{Key: key, DirectoryURL: tr.onprem.DirectoryURL, HTTPClient: tr.onprem.HTTPClient(), UserAgent: "acmebridge-tier"}
	_, err = c.Register(ctx, &acme.Account{}, acme.AcceptTOS)
	require.NoError(t, err)
	o, err := c.AuthorizeOrder(ctx, acme.DomainIDs(name))
	require.NoError(t, err)
	for _, u := range o.AuthzURLs {
		z, err := c.GetAuthorization(ctx, u)
		require.NoError(t, err)
		for _, ch := range z.Challenges {
			if ch.Type != "http-01" {
				continue
			}
			body, err := c.HTTP01ChallengeResponse(ch.Token)
			require.NoError(t, err)
			set(c.HTTP01ChallengePath(ch.Token), body)
			_, err = c.Accept(ctx, ch)
			require.NoError(t, err)
		}
		_, err = c.WaitAuthorization(ctx, u)
		require.NoError(t, err)
	}
	o, err = c.WaitOrder(ctx, o.URI)
	require.NoError(t, err)
	require.Equal(t, acme.StatusReady, o.Status)

	tr.saas.halt(t)
	fctx, fcancel := context.WithTimeout(ctx, 5*time.Second)
	_, _, err = c.CreateOrderCert(fctx, o.FinalizeURL, matrixCSR(t, name), true)
	fcancel()
	require.Error(t, err, "no certificate while the SaaS side is down")
	require.True(t, waitFor(30*time.Second, func() bool {
		return countLines(tr.onprem.Logs(), `msg="worker: upstream failed".* upstream=saas `) >= 2
	}), "the on-prem worker did not retry the SaaS side")
	cur, err := c.GetOrder(ctx, o.URI)
	require.NoError(t, err)
	require.Equal(t, acme.StatusProcessing, cur.Status, "the order waits for the SaaS side")
	require.Empty(t, tr.vault.vaultLeaves(t))

	tr.saas.resume(t)
	cur, err = c.WaitOrder(ctx, o.URI)
	require.NoError(t, err, "the order completes once the SaaS side is back")
	require.Equal(t, acme.StatusValid, cur.Status)
	der, err := c.FetchCert(ctx, cur.CertURL, true)
	require.NoError(t, err)
	var chain []byte
	for _, d := range der {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	verifyChainPool(t, tr.vault.pki.Roots, "Vault's root", chain, []string{name})
	tr.requireDelegated(t, name)
	require.Len(t, tr.vault.vaultLeaves(t), 1, "exactly one issuance at Vault")
	var certs listing[certRec]
	tr.saas.adminJSON(t, &certs, "cert", "list")
	require.Len(t, certs.Items, 1, "exactly one certificate at the SaaS side")
}

// halt stops the server (SIGTERM) for resume to start again on the same
// ports, config and data.
func (s *server) halt(t *testing.T) {
	t.Helper()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-s.done:
		require.NoError(t, s.err, "acmebridge did not exit cleanly")
	case <-time.After(stopTimeout):
		t.Fatalf("acmebridge did not exit within %s of SIGTERM", stopTimeout)
	}
}

// resume starts a halted server again and waits for it to be ready.
func (s *server) resume(t *testing.T) {
	t.Helper()
	s.done = make(chan struct{})
	s.err = nil
	s.cmd = exec.Command(binPath, "serve", "--config", s.ConfigPath)
	s.cmd.Dir = s.Dir
	s.cmd.Stdout = s.logs
	s.cmd.Stderr = s.logs
	require.NoError(t, s.cmd.Start())
	cmd, done := s.cmd, s.done
	go func() {
		s.err = cmd.Wait()
		close(done)
	}()
	s.waitReady(t)
}
