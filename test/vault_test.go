package test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/certcrypto"
	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/challenge/http01"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/upstream/vault/vaulttest"
)

// TestVaultLegoLibrary: lego (library) through acmebridge to a real Vault
// with a token holding only the minimum policy: the chain is Vault's leaf
// and intermediate, leaf first; revocation through ACME shows in Vault and
// its CRL; a name the role forbids comes back as rejectedIdentifier naming
// it, without Vault's words.
func TestVaultLegoLibrary(t *testing.T) {
	vaultQuietLego(t)
	b := startVaultBridge(t, authMinimumToken)
	c := vaultLegoClient(t, b.s, "vault-lego@example.com")
	require.NoError(t, c.Challenge.SetHTTP01Provider(http01.NewProviderServer("127.0.0.1", itoa(b.s.HTTPPort))))
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()

	names := []string{"a." + vaultDomain, "b." + vaultDomain}
	res, err := c.Certificate.Obtain(ctx, certificate.ObtainRequest{Domains: names, KeyType: certcrypto.EC256, Bundle: true})
	require.NoError(t, err)
	leaf := verifyChainPool(t, b.pki.Roots, "Vault's root", res.Certificate, names)
	certs, err := parsePEMCerts(res.Certificate)
	require.NoError(t, err)
	require.Len(t, certs, 2, "leaf and intermediate; the root stays out")
	require.True(t, certs[1].Equal(b.pki.Intermediate))
	require.Equal(t, b.pki.Intermediate.Subject.String(), leaf.Issuer.String())

	require.NoError(t, c.Certificate.Revoke(ctx, res.Certificate))
	b.requireRevokedInVault(t, leaf)
	err = c.Certificate.Revoke(ctx, res.Certificate)
	require.ErrorContains(t, err, "alreadyRevoked")

	_, err = c.Certificate.Obtain(ctx, certificate.ObtainRequest{Domains: []string{"nope.e2e.test"}, KeyType: certcrypto.EC256})
	require.Error(t, err, "the role allows only %s", vaultDomain)
	var pd *acme.ProblemDetails
	require.True(t, errors.As(err, &pd), "%v", err)
	require.Equal(t, "urn:ietf:params:acme:error:rejectedIdentifier", pd.Type, "%v", err)
	require.Contains(t, pd.Detail, "nope.e2e.test")
	require.NotContains(t, err.Error(), "not allowed by this role", "Vault's text is not echoed")
	require.Len(t, pd.SubProblems, 1)
	require.Equal(t, "nope.e2e.test", pd.SubProblems[0].Identifier.Value)
}

// TestVaultCertbot: certbot through acmebridge to Vault, logged in with
// AppRole: certonly, then revoke, which shows in Vault.
func TestVaultCertbot(t *testing.T) {
	certbot := requireTool(t, "certbot")
	b := startVaultBridge(t, authAppRole)
	name := "certbot." + vaultDomain
	dir := t.TempDir()
	env := toolEnv("REQUESTS_CA_BUNDLE=" + b.s.CAFile)
	dirs := []string{"--config-dir", filepath.Join(dir, "config"), "--work-dir", filepath.Join(dir, "work"),
		"--logs-dir", filepath.Join(dir, "logs")}
	logOnFailure(t, filepath.Join(dir, "logs", "letsencrypt.log"))
	live := filepath.Join(dir, "config", "live", name)

	args := []string{"certonly", "--server", b.s.DirectoryURL, "-d", name, "--agree-tos", "-m", "x@example.com",
		"--non-interactive", "--no-eff-email", "--standalone", "--http-01-port", itoa(b.s.HTTPPort), "--http-01-address", "127.0.0.1"}
	runTool(t, env, dir, certbot, append(args, dirs...)...)
	chain, err := os.ReadFile(filepath.Join(live, "fullchain.pem"))
	require.NoError(t, err)
	leaf := verifyChainPool(t, b.pki.Roots, "Vault's root", chain, []string{name})
	require.Equal(t, name, leaf.Subject.CommonName, "certbot's CSR has no CN; acmebridge supplies the first name")

	args = []string{"revoke", "--server", b.s.DirectoryURL, "--cert-path", filepath.Join(live, "cert.pem"),
		"--non-interactive", "--no-delete-after-revoke"}
	runTool(t, env, dir, certbot, append(args, dirs...)...)
	b.requireRevokedInVault(t, leaf)
}

// TestVaultDownMidOrder: Vault dies once the authorization is valid,
// before finalize; the order stays processing while the worker retries
// with backoff; a new Vault (empty storage, so the operator's PKI set-up
// is redone with the same role) comes up on the same port; the order
// completes, and exactly one certificate was issued for it.
func TestVaultDownMidOrder(t *testing.T) {
	vaultQuietLego(t)
	b := startVaultBridge(t, authRootToken)
	c := vaultLegoClient(t, b.s, "vault-down@example.com")
	killed := make(chan struct{})
	require.NoError(t, c.Challenge.SetHTTP01Provider(&vaultAfterCleanUp{
		Provider: http01.NewProviderServer("127.0.0.1", itoa(b.s.HTTPPort)),
		hook:     func() { b.vault.Kill(); close(killed) },
	}))
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	name := "down." + vaultDomain
	type outcome struct {
		chain []byte
		err   error
	}
	done := make(chan outcome, 1)
	start := time.Now()
	go func() {
		res, err := c.Certificate.Obtain(ctx, certificate.ObtainRequest{Domains: []string{name}, KeyType: certcrypto.EC256, Bundle: true})
		if err != nil {
			done <- outcome{err: err}
			return
		}
		done <- outcome{chain: res.Certificate}
	}()
	select {
	case <-killed:
	case o := <-done:
		t.Fatalf("the order ended before Vault was stopped: %v", o.err)
	}
	// finalize queues the job; its first attempt finds Vault down.
	vaultWaitFor(t, 30*time.Second, "a failed attempt while Vault is down", func() bool {
		return vaultCountLines(b.s.Logs(), "worker: upstream failed", "upstream=vault") > 0
	})
	time.Sleep(time.Second)
	b.vault.Restart(t)
	b.pki = setupVaultPKI(t, b.vault.Client(t, ""))
	t.Logf("Vault back %s after the order started", time.Since(start).Round(time.Millisecond))

	var o outcome
	select {
	case o = <-done:
	case <-time.After(toolTimeout):
		t.Fatal("the order did not complete after Vault came back")
	}
	require.NoError(t, o.err, "the order completes once Vault is back")
	t.Logf("order completed %s after it started", time.Since(start).Round(time.Millisecond))

	leaf := verifyChainPool(t, b.pki.Roots, "the new Vault's root", o.chain, []string{name})
	logs := b.s.Logs()
	require.GreaterOrEqual(t, vaultCountLines(logs, "worker: upstream failed", "upstream=vault"), 1, "attempts failed while Vault was down")
	require.Equal(t, 1, vaultCountLines(logs, `msg="certificate issued"`, "upstream=vault"), "one issuance for the order")
	require.Zero(t, vaultCountLines(logs, "order invalid"), "the order never became invalid")
	leaves := b.vaultLeaves(t)
	require.Len(t, leaves, 1, "the new Vault signed exactly one certificate")
	require.True(t, leaves[0].Equal(leaf))
}

// TestVaultLostAnswer: Vault signs but its answer to acmebridge is lost
// (the connection drops after the request was sent). The worker retries;
// the retry finds the certificate Vault signed instead of signing again,
// so the client gets that certificate and Vault holds exactly one for the
// order.
func TestVaultLostAnswer(t *testing.T) {
	vaultQuietLego(t)
	b := startVaultBridgeVia(t, authMinimumToken, true)
	c := vaultLegoClient(t, b.s, "vault-lost@example.com")
	require.NoError(t, c.Challenge.SetHTTP01Provider(http01.NewProviderServer("127.0.0.1", itoa(b.s.HTTPPort))))
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()

	b.proxy.Next(vaulttest.SignThenDrop)
	name := "lost." + vaultDomain
	res, err := c.Certificate.Obtain(ctx, certificate.ObtainRequest{Domains: []string{name}, KeyType: certcrypto.EC256, Bundle: true})
	require.NoError(t, err)
	leaf := verifyChainPool(t, b.pki.Roots, "Vault's root", res.Certificate, []string{name})

	logs := b.s.Logs()
	require.Equal(t, 1, vaultCountLines(logs, "the answer to a signing request was lost"), "the first attempt lost its answer")
	require.Equal(t, 1, vaultCountLines(logs, "found the certificate of an earlier attempt"), "the retry found it")
	require.Equal(t, 1, vaultCountLines(logs, `msg="certificate issued"`, "upstream=vault"))
	leaves := b.vaultLeaves(t)
	require.Len(t, leaves, 1, "Vault signed once")
	require.True(t, leaves[0].Equal(leaf), "the client got the certificate Vault signed the first time")
}

// TestVaultThroughput measures, without asserting on it, raw pki/sign
// against issuance through acmebridge (a full ACME order with lego: new
// order, http-01 validation, finalize, download), sequentially, and the
// same through acmebridge's local CA for comparison.
// ACMEBRIDGE_VAULT_BENCH_N sets the number of certificates (default 10).
func TestVaultThroughput(t *testing.T) {
	vaultQuietLego(t)
	n := 10
	if v := os.Getenv("ACMEBRIDGE_VAULT_BENCH_N"); v != "" {
		_, err := fmt.Sscan(v, &n)
		require.NoError(t, err)
	}
	b := startVaultBridge(t, authMinimumToken)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	csrs := make([]string, n)
	for i := range csrs {
		csrs[i] = vaultCSRPEM(t, fmt.Sprintf("raw%d.%s", i, vaultDomain))
	}
	start := time.Now()
	for i := range csrs {
		_, err := b.root.Logical().WriteWithContext(ctx, b.pki.Mount+"/sign/"+b.pki.Role, map[string]any{"csr": csrs[i], "format": "pem"})
		require.NoError(t, err)
	}
	raw := time.Since(start)

	c := vaultLegoClient(t, b.s, "vault-bench@example.com")
	require.NoError(t, c.Challenge.SetHTTP01Provider(http01.NewProviderServer("127.0.0.1", itoa(b.s.HTTPPort))))
	obtain := func(domain string) time.Duration {
		start := time.Now()
		for i := 0; i < n; i++ {
			_, err := c.Certificate.Obtain(ctx, certificate.ObtainRequest{Domains: []string{fmt.Sprintf("acme%d.%s", i, domain)},
				KeyType: certcrypto.EC256, Bundle: true})
			require.NoError(t, err)
		}
		return time.Since(start)
	}
	viaVault := obtain(vaultDomain)
	viaLocal := obtain("local.e2e.test")
	rate := func(d time.Duration) string {
		return fmt.Sprintf("%6.1f certs/s (%s each)", float64(n)/d.Seconds(), (d / time.Duration(n)).Round(10*time.Microsecond))
	}
	t.Logf("throughput, %d certificates each, sequential:\n  raw Vault pki/sign:            %s\n  ACME via acmebridge -> Vault:  %s\n  ACME via acmebridge -> local:  %s",
		n, rate(raw), rate(viaVault), rate(viaLocal))
	require.Equal(t, n, vaultCountLines(b.s.Logs(), `msg="certificate issued"`, "upstream=vault"))
	require.True(t, strings.Contains(b.s.Logs(), "upstream=dev"))
}

// TestVaultKubernetesLogin: acmebridge logs in to Vault with a pod's
// service account token (the config's vault.kubernetes, here against
// Vault's JWT auth method trusting the cluster issuer's key), and lego's
// order is signed by Vault under the token that login gave.
func TestVaultKubernetesLogin(t *testing.T) {
	vaultQuietLego(t)
	b := startVaultBridge(t, authKubernetes)
	c := vaultLegoClient(t, b.s, "vault-k8s@example.com")
	require.NoError(t, c.Challenge.SetHTTP01Provider(http01.NewProviderServer("127.0.0.1", itoa(b.s.HTTPPort))))
	name := "k8s." + vaultDomain
	res := legoObtain(t, c, name)
	verifyChainPool(t, b.pki.Roots, "Vault's root", res.Certificate, []string{name})
	require.Contains(t, b.s.logs.String(), "method=Kubernetes", "the token came from the service account login")

	// The check an operator runs before going live goes through the same login.
	r := runCLI(t, b.s.Dir, "upstream", "check", "--config", b.s.ConfigPath)
	require.Equal(t, 0, r.Code, r.Stdout+r.Stderr)
	require.Contains(t, r.Stdout, "token valid")
}
