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
