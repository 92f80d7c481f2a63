package vault

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/acmebridge/acmebridge/acmeerr"
)

// Login methods' defaults.
const (
	// DefaultAppRoleMount is the AppRole auth method's usual path.
	DefaultAppRoleMount = "approle"
	// DefaultKubernetesMount is the Kubernetes auth method's usual path.
	DefaultKubernetesMount = "kubernetes"
	// DefaultServiceAccountTokenFile is where Kubernetes mounts a pod's
	// service account token (a projected token, rotated by the kubelet).
	DefaultServiceAccountTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token" //nolint:gosec // G101: a path, not a credential
)

// AppRole configures a login through Vault's AppRole auth method.
type AppRole struct {
	// RoleIDFile and SecretIDFile hold the role ID and secret ID; both
	// are read again at every login.
	RoleIDFile   string
	SecretIDFile string
	// Mount is the auth method's path; empty means DefaultAppRoleMount.
	Mount string
}

// Kubernetes configures a login with the pod's service account token:
// Vault's Kubernetes auth method (which asks the cluster's TokenReview API
// about the token), or its JWT auth method (which checks the token's
// signature against the cluster's issuer keys), both of which take the
// same login: a role and the token as "jwt".
type Kubernetes struct {
	// Role is the auth method's role to log in as.
	Role string
	// TokenFile holds the service account token, read again at every
	// login (the kubelet rotates it); empty means
	// DefaultServiceAccountTokenFile.
	TokenFile string
	// Mount is the auth method's path; empty means
	// DefaultKubernetesMount ("jwt" for the JWT auth method).
	Mount string
}

// loginMethod is how the authenticator gets a token when none is given:
// the auth method's mount and the credentials of one login, read afresh
// each time so rotated ones are picked up.
type loginMethod struct {
	kind  string // "AppRole" or "Kubernetes", for logs and errors
	mount string
	creds func() (map[string]any, error)
}

// appRoleLogin is the login of an AppRole (POST auth/MOUNT/login with
// role_id and secret_id).
func appRoleLogin(name string, a AppRole) *loginMethod {
	if a.Mount == "" {
		a.Mount = DefaultAppRoleMount
	}
	return &loginMethod{kind: "AppRole", mount: a.Mount, creds: func() (map[string]any, error) {
		roleID, err := readCredential(name, "AppRole role ID", a.RoleIDFile)
		if err != nil {
			return nil, err
		}
		secretID, err := readCredential(name, "AppRole secret ID", a.SecretIDFile)
		if err != nil {
			return nil, err
		}
		return map[string]any{"role_id": roleID, "secret_id": secretID}, nil
	}}
}

// kubernetesLogin is the login of a service account (POST auth/MOUNT/login
// with role and jwt: Vault's Kubernetes and JWT auth methods alike).
func kubernetesLogin(name string, k Kubernetes) *loginMethod {
	if k.Mount == "" {
		k.Mount = DefaultKubernetesMount
	}
	if k.TokenFile == "" {
		k.TokenFile = DefaultServiceAccountTokenFile
	}
	return &loginMethod{kind: "Kubernetes", mount: k.Mount, creds: func() (map[string]any, error) {
		jwt, err := readCredential(name, "service account token", k.TokenFile)
		if err != nil {
			return nil, err
		}
		return map[string]any{"role": k.Role, "jwt": jwt}, nil
	}}
}

// readCredential reads one credential file, trimmed; the error names the
// file, never its content.
func readCredential(name, what, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", acmeerr.Wrap(acmeerr.Internal, err, "vault %s: reading the %s", name, what)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", acmeerr.New(acmeerr.Internal, "vault %s: %s file %s is empty", name, what, path)
	}
	return s, nil
}

// loginLocked logs in with the method (POST auth/MOUNT/login) and installs
// the token it returns.
func (a *authenticator) loginLocked(ctx context.Context) error {
	m := a.method
	data, err := m.creds()
	if err != nil {
		return err
	}
	path := "auth/" + strings.Trim(m.mount, "/") + "/login"
	s, err := a.u.login.Logical().WriteWithContext(ctx, path, data)
	if err != nil {
		return a.u.callError(m.kind+" login", err)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return acmeerr.New(acmeerr.Unavailable, "vault %s: %s login returned no token", a.u.name, m.kind)
	}
	ttl := time.Duration(s.Auth.LeaseDuration) * time.Second
	a.setTokenLocked(s.Auth.ClientToken, true, ttl, s.Auth.Renewable)
	a.u.log.Info("vault login", "method", m.kind, "mount", m.mount, "ttl", ttl, "renewable", s.Auth.Renewable)
	return nil
}
