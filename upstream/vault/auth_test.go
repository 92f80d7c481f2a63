package vault

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/upstream/vault/vaulttest"
)

// TestTokenRenewed: a renewable token with a 3s TTL outlives it, renewed
// in the background.
func TestTokenRenewed(t *testing.T) {
	e := newEnv(t, vaulttest.PKIOptions{})
	tok := vaulttest.CreateToken(t, e.root, vaulttest.TokenOptions{Policies: []string{"acmebridge"}, NoDefaultPolicy: true,
		TTL: "3s", ExplicitMaxTTL: "5m"})
	e.writeToken(t, tok)
	u := e.upstream(t, nil)
	ctx := ctxT(t)
	time.Sleep(6 * time.Second)
	_, err := u.Issue(ctx, newRequest(t, csrOptions{}, "renewed.example.test"), nil)
	require.NoError(t, err, "the token was renewed past its first TTL")
	s, err := e.root.Auth().Token().Lookup(tok)
	require.NoError(t, err)
	ttl, err := s.TokenTTL()
	require.NoError(t, err)
	require.Positive(t, ttl)
}

// TestTokenFileRotation: a token Vault refuses is read again from its
// file; the same refused token is reported as refused credentials.
func TestTokenFileRotation(t *testing.T) {
	e := newEnv(t, vaulttest.PKIOptions{})
	u := e.upstream(t, nil)
	ctx := ctxT(t)
	_, err := u.Issue(ctx, newRequest(t, csrOptions{}, "one.example.test"), nil)
	require.NoError(t, err)

	old, err := os.ReadFile(e.tokenFile)
	require.NoError(t, err)
	require.NoError(t, e.root.Auth().Token().RevokeOrphan(string(old[:len(old)-1])))
	e.writeToken(t, vaulttest.CreateToken(t, e.root, vaulttest.TokenOptions{Policies: []string{"acmebridge"}, NoDefaultPolicy: true}))
	_, err = u.Issue(ctx, newRequest(t, csrOptions{}, "two.example.test"), nil)
	require.NoError(t, err, "the rotated token is picked up after a 403")

	e.writeToken(t, "revoked-or-wrong")
	require.NoError(t, e.root.Auth().Token().RevokeOrphan(u.client.Token()))
	var refs refLog
	_, err = u.Issue(ctx, newRequest(t, csrOptions{}, "three.example.test"), refs.set)
	require.Equal(t, acmeerr.Unavailable, acmeerr.KindOf(err), "%v", err)
	require.Equal(t, "", refs.last(), "a 403 means Vault signed nothing")
}

// TestAppRole: login from role and secret ID files, renewal to the
// token's maximum TTL and a new login after it, and a new login after the
// token is revoked.
func TestAppRole(t *testing.T) {
	e := newEnv(t, vaulttest.PKIOptions{})
	roleID, secretID := vaulttest.AppRole(t, e.root, "approle-acme", "acmebridge", []string{"acmebridge"}, "3s", "5s")
	dir := t.TempDir()
	roleFile, secretFile := filepath.Join(dir, "role-id"), filepath.Join(dir, "secret-id")
	require.NoError(t, os.WriteFile(roleFile, []byte(roleID+"\n"), 0o600))
	require.NoError(t, os.WriteFile(secretFile, []byte(secretID+"\n"), 0o600))
	u := e.upstream(t, func(o *Options) {
		o.TokenFile = ""
		o.AppRole = &AppRole{RoleIDFile: roleFile, SecretIDFile: secretFile, Mount: "approle-acme"}
	})
	ctx := ctxT(t)
	_, err := u.Issue(ctx, newRequest(t, csrOptions{}, "approle.example.test"), nil)
	require.NoError(t, err)
	first := u.client.Token()
	require.NotEmpty(t, first)

	time.Sleep(8 * time.Second) // past the 5s maximum TTL
	_, err = u.Issue(ctx, newRequest(t, csrOptions{}, "approle2.example.test"), nil)
	require.NoError(t, err, "a new login replaced the token at its maximum TTL")
	require.NotEqual(t, first, u.client.Token())

	require.NoError(t, e.root.Auth().Token().RevokeOrphan(u.client.Token()))
	_, err = u.Issue(ctx, newRequest(t, csrOptions{}, "approle3.example.test"), nil)
	require.NoError(t, err, "a revoked token is replaced by a new login on the 403")

	require.NoError(t, os.WriteFile(secretFile, []byte("wrong\n"), 0o600))
	require.NoError(t, e.root.Auth().Token().RevokeOrphan(u.client.Token()))
	_, err = u.Issue(ctx, newRequest(t, csrOptions{}, "approle4.example.test"), nil)
	require.Equal(t, acmeerr.Unavailable, acmeerr.KindOf(err), "%v", err)
}

// TestKubernetesLogin: a pod's service account token logs in (Vault's JWT
// auth method trusting the cluster issuer's key takes the same login as
// its Kubernetes auth method: role and jwt); the token file is read again
// at every login, so the kubelet's rotation is picked up, and a token Vault
// does not accept is refused credentials, never a signature.
func TestKubernetesLogin(t *testing.T) {
	e := newEnv(t, vaulttest.PKIOptions{})
	sa := vaulttest.ServiceAccount{Namespace: "pki", Name: "acmebridge"}
	cluster := vaulttest.KubernetesJWTAuth(t, e.root, "jwt", "acmebridge", sa, []string{"acmebridge"}, "1h", "2h")
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(cluster.Token(t, sa, time.Hour)), 0o600))
	u := e.upstream(t, func(o *Options) {
		o.TokenFile = ""
		o.Kubernetes = &Kubernetes{Role: "acmebridge", TokenFile: tokenFile, Mount: "jwt"}
	})
	ctx := ctxT(t)
	_, err := u.Issue(ctx, newRequest(t, csrOptions{}, "k8s.example.test"), nil)
	require.NoError(t, err)
	first := u.client.Token()
	require.NotEmpty(t, first)
	s, err := e.root.Auth().Token().Lookup(first)
	require.NoError(t, err)
	require.Equal(t, "auth/jwt/login", s.Data["path"], "the token came from the service account login")

	// The kubelet rotates the token; the Vault token is revoked: the 403
	// is answered by a new login with the new file.
	require.NoError(t, os.WriteFile(tokenFile, []byte(cluster.Token(t, sa, time.Hour)), 0o600))
	require.NoError(t, e.root.Auth().Token().RevokeOrphan(first))
	_, err = u.Issue(ctx, newRequest(t, csrOptions{}, "k8s2.example.test"), nil)
	require.NoError(t, err, "a new login replaced the revoked token")
	require.NotEqual(t, first, u.client.Token())

	// Another service account's token: Vault refuses the login.
	other := vaulttest.ServiceAccount{Namespace: "pki", Name: "intruder"}
	require.NoError(t, os.WriteFile(tokenFile, []byte(cluster.Token(t, other, time.Hour)), 0o600))
	require.NoError(t, e.root.Auth().Token().RevokeOrphan(u.client.Token()))
	var refs refLog
	_, err = u.Issue(ctx, newRequest(t, csrOptions{}, "k8s3.example.test"), refs.set)
	require.Equal(t, acmeerr.Unavailable, acmeerr.KindOf(err), "%v", err)
	require.Equal(t, "", refs.last(), "nothing was signed")
	require.NotContains(t, err.Error(), "eyJ", "the token never appears in an error")

	// No token file (the pod has no service account token mounted): a
	// clear error at the first login.
	missing := e.upstream(t, func(o *Options) {
		o.TokenFile = ""
		o.Kubernetes = &Kubernetes{Role: "acmebridge", TokenFile: filepath.Join(t.TempDir(), "none"), Mount: "jwt"}
	})
	_, err = missing.Issue(ctx, newRequest(t, csrOptions{}, "k8s4.example.test"), nil)
	require.ErrorContains(t, err, "reading the service account token")
}
