package vault

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/acmebridge/acmebridge/acmeerr"
)

// Check reports whether Vault is reachable and acmebridge authorised: it
// looks the token up (auth/token/lookup-self, after an AppRole login when
// configured), reads the role, and asks Vault (sys/capabilities-self)
// whether the token may sign with it and revoke. On success it returns a
// one-line summary. A role with no_store is refused: Vault can neither
// revoke its certificates nor tell after a lost answer whether it signed.
func (u *Upstream) Check(ctx context.Context) (string, error) {
	var s *api.Secret
	err := u.call(ctx, func(ctx context.Context) error {
		var err error
		s, err = u.client.Auth().Token().LookupSelfWithContext(ctx)
		return err
	})
	if err != nil {
		return "", u.callError("token lookup", err)
	}
	if s == nil {
		return "", acmeerr.New(acmeerr.Internal, "vault: token lookup returned nothing")
	}
	ttl, _ := s.TokenTTL()
	renewable, _ := s.TokenIsRenewable()
	policies, _ := s.TokenPolicies()
	role, err := u.readRole(ctx)
	if err != nil {
		return "", err
	}
	if role.NoStore {
		return "", acmeerr.New(acmeerr.Internal,
			"vault: role %s has no_store set: Vault could not revoke its certificates nor recover a lost answer", u.role)
	}
	for _, p := range []string{u.signPath(), u.path("revoke")} {
		var caps []string
		err := u.call(ctx, func(ctx context.Context) error {
			var err error
			caps, err = u.client.Sys().CapabilitiesSelfWithContext(ctx, p)
			return err
		})
		if err != nil {
			return "", u.callError("capabilities lookup", err)
		}
		if !slices.Contains(caps, "update") && !slices.Contains(caps, "root") {
			return "", acmeerr.New(acmeerr.Unauthorized, "vault: the token may not write %s (capabilities: %s); see the minimum policy in docs/upstreams.md",
				p, strings.Join(caps, ","))
		}
	}
	life := "no expiry"
	if ttl > 0 {
		life = "ttl " + ttl.Round(time.Second).String()
		if renewable {
			life += ", renewable"
		}
	}
	roleTTL := "mount default"
	if role.MaxTTL > 0 {
		roleTTL = role.MaxTTL.String()
	}
	return fmt.Sprintf("reachable at %s; token valid (%s; policies %s); role %s/%s readable (max_ttl %s); may sign (mode %s) and revoke",
		u.address, life, strings.Join(policies, ","), u.mount, u.role, roleTTL, u.mode), nil
}
