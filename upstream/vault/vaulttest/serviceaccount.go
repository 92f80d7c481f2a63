package vaulttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"
)

// ClusterIssuer is the test's stand-in for a Kubernetes cluster's service
// account token issuer: it signs projected service account tokens (ES256
// JWTs with the claims the kube-apiserver puts in them) under a key whose
// public half Vault's JWT auth method is given, as Vault's documentation
// describes for using JWT auth with Kubernetes (jwt_validation_pubkeys).
type ClusterIssuer struct {
	// Issuer is the tokens' "iss".
	Issuer string
	signer jose.Signer
}

// ServiceAccount is a namespace and name.
type ServiceAccount struct{ Namespace, Name string }

// Subject is the token's "sub": system:serviceaccount:NAMESPACE:NAME.
func (sa ServiceAccount) Subject() string {
	return "system:serviceaccount:" + sa.Namespace + ":" + sa.Name
}

// KubernetesJWTAuth enables Vault's JWT auth method at mount (once),
// configures it to trust a new cluster issuer's key, and writes role name
// for the service account (bound subject and audience "vault") with the
// policies and token TTLs. It returns the issuer, to mint the pod's tokens.
func KubernetesJWTAuth(t testing.TB, c *api.Client, mount, name string, sa ServiceAccount, policies []string, tokenTTL, tokenMaxTTL string) *ClusterIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	ci := &ClusterIssuer{Issuer: "https://kubernetes.default.svc.cluster.local"}
	ci.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	require.NoError(t, err)

	auths, err := c.Sys().ListAuth()
	require.NoError(t, err)
	if _, ok := auths[strings.Trim(mount, "/")+"/"]; !ok {
		require.NoError(t, c.Sys().EnableAuthWithOptions(mount, &api.EnableAuthOptions{Type: "jwt"}))
	}
	l := c.Logical()
	_, err = l.Write("auth/"+mount+"/config", map[string]any{
		"jwt_validation_pubkeys": []string{string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}))},
		"bound_issuer":           ci.Issuer,
	})
	require.NoError(t, err)
	_, err = l.Write("auth/"+mount+"/role/"+name, map[string]any{
		"role_type": "jwt", "user_claim": "sub", "bound_subject": sa.Subject(), "bound_audiences": []string{"vault"},
		"token_policies": policies, "token_ttl": tokenTTL, "token_max_ttl": tokenMaxTTL,
	})
	require.NoError(t, err)
	return ci
}

// Token mints the service account's token, valid for ttl from now.
func (ci *ClusterIssuer) Token(t testing.TB, sa ServiceAccount, ttl time.Duration) string {
	t.Helper()
	now := time.Now()
	claims := jwt.Claims{
		Issuer: ci.Issuer, Subject: sa.Subject(), Audience: jwt.Audience{"vault"},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(ttl)),
	}
	k8s := map[string]any{"kubernetes.io": map[string]any{
		"namespace":      sa.Namespace,
		"serviceaccount": map[string]any{"name": sa.Name, "uid": "00000000-0000-4000-8000-000000000001"},
	}}
	tok, err := jwt.Signed(ci.signer).Claims(claims).Claims(k8s).Serialize()
	require.NoError(t, err)
	return tok
}
