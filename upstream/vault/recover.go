package vault

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"slices"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/upstream"
)

// clockSkew widens the window in which a certificate found in Vault is
// taken for the lost answer of an earlier attempt: acmebridge's and
// Vault's clocks may differ by this much.
const clockSkew = 5 * time.Minute

// roleInfo is what recovery and `upstream check` read from the role.
type roleInfo struct {
	// NoStore: Vault's role field no_store: "If set, certificates
	// issued/signed against this role will not be stored in the storage
	// backend. ... certificates issued in this way cannot be enumerated or
	// revoked".
	NoStore bool
	// NotBeforeDuration: "The duration in seconds before now which the
	// certificate needs to be backdated by."
	NotBeforeDuration time.Duration
	// MaxTTL is the role's max_ttl (0: the mount's).
	MaxTTL time.Duration
}

// readRole reads MOUNT/roles/ROLE.
func (u *Upstream) readRole(ctx context.Context) (*roleInfo, error) {
	var s *api.Secret
	err := u.call(ctx, func(ctx context.Context) error {
		var err error
		s, err = u.client.Logical().ReadWithContext(ctx, u.path("roles/"+escape(u.role)))
		return err
	})
	if err != nil {
		return nil, u.callError("reading the role", err)
	}
	if s == nil || s.Data == nil {
		return nil, acmeerr.New(acmeerr.Internal, "vault: role %s does not exist on mount %s", u.role, u.mount)
	}
	ri := &roleInfo{}
	ri.NoStore, _ = s.Data["no_store"].(bool)
	ri.NotBeforeDuration = time.Duration(jsonInt(s.Data["not_before_duration"])) * time.Second
	ri.MaxTTL = time.Duration(jsonInt(s.Data["max_ttl"])) * time.Second
	return ri, nil
}

// recover settles an earlier attempt whose answer was lost, begun at
// since. It returns the certificate Vault signed then, if it finds one; an
// error while the outcome is still unknown; or nil, nil when Vault
// certainly did not sign, so Issue may.
//
// Vault keeps every certificate a role without no_store signs, under
// MOUNT/certs, before it answers; the certificate for this order is the one
// certifying the CSR's key for exactly the order's names, made no earlier
// than the attempt (less the role's backdating and clock skew).
func (u *Upstream) recover(ctx context.Context, req *upstream.Request, csr *x509.CertificateRequest, since time.Time) (*upstream.Result, error) {
	role, err := u.readRole(ctx)
	if err != nil {
		return nil, err
	}
	if role.NoStore {
		// Nothing to search: retried (Internal) until the order gives
		// up, never signed a second time.
		return nil, acmeerr.New(acmeerr.Internal,
			"vault: an earlier signing request for this order got no answer, and role %s keeps no certificates (no_store) to tell whether Vault signed it; not signing again", u.role)
	}
	var list *api.Secret
	err = u.call(ctx, func(ctx context.Context) error {
		var err error
		list, err = u.client.Logical().ListWithContext(ctx, u.path("certs"))
		return err
	})
	if err != nil {
		return nil, u.callError("listing certificates", err)
	}
	var serials []string
	if list != nil {
		serials = stringList(list.Data["keys"])
	}
	earliest := since.Add(-role.NotBeforeDuration - clockSkew)
	var found *x509.Certificate
	for _, serial := range serials {
		c, err := u.readCert(ctx, serial)
		if err != nil {
			return nil, err
		}
		if c == nil || c.IsCA || !bytes.Equal(c.RawSubjectPublicKeyInfo, csr.RawSubjectPublicKeyInfo) ||
			c.NotBefore.Before(earliest) || !sameNames(c, req) {
			continue
		}
		if found == nil || c.NotBefore.After(found.NotBefore) {
			found = c
		}
	}
	if found != nil {
		u.log.Warn("vault: found the certificate of an earlier attempt whose answer was lost; serving it",
			"order", req.OrderID, "serial", vaultSerial(found.SerialNumber))
		chain, err := u.chainFor(ctx, found)
		if err != nil {
			return nil, err
		}
		return newResult(found, chain), nil
	}
	if wait := since.Add(u.grace).Sub(u.clock()); wait > 0 {
		// Vault may still be working on that request: come back when
		// the grace period is over.
		e := acmeerr.New(acmeerr.Unavailable,
			"vault: waiting up to %s for the outcome of an earlier signing request before signing again", wait.Round(time.Second))
		e.RetryAfter = wait
		return nil, e
	}
	u.log.Info("vault: an earlier signing request left no certificate; signing now", "order", req.OrderID,
		"searched", len(serials))
	return nil, nil
}

// sameNames reports whether c names exactly the request's identifiers.
func sameNames(c *x509.Certificate, req *upstream.Request) bool {
	want := slices.Clone(req.DNSNames)
	for _, ip := range req.IPAddresses {
		want = append(want, ip.String())
	}
	got := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		got = append(got, ip.String())
	}
	slices.Sort(want)
	slices.Sort(got)
	return slices.Equal(slices.Compact(want), slices.Compact(got))
}

// readCert reads MOUNT/cert/SERIAL; nil when Vault has no such certificate.
func (u *Upstream) readCert(ctx context.Context, serial string) (*x509.Certificate, error) {
	s, err := u.readCertSecret(ctx, serial)
	if err != nil || s == nil {
		return nil, err
	}
	c, err := parseOneCert(stringOf(s.Data["certificate"]))
	if err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "vault: certificate %s cannot be parsed", serial)
	}
	return c, nil
}

// readCertSecret reads MOUNT/cert/SERIAL as Vault answers it.
func (u *Upstream) readCertSecret(ctx context.Context, serial string) (*api.Secret, error) {
	var s *api.Secret
	err := u.call(ctx, func(ctx context.Context) error {
		var err error
		s, err = u.client.Logical().ReadWithContext(ctx, u.path("cert/"+escape(serial)))
		return err
	})
	if err != nil {
		return nil, u.callError("reading a certificate", err)
	}
	if s == nil || stringOf(s.Data["certificate"]) == "" {
		return nil, nil
	}
	return s, nil
}

// fetchIssued returns the certificate Vault signed for this order in an
// earlier attempt, recorded by its serial.
func (u *Upstream) fetchIssued(ctx context.Context, serial string, csr *x509.CertificateRequest, req *upstream.Request) (*upstream.Result, error) {
	c, err := u.readCert(ctx, serial)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, acmeerr.New(acmeerr.Internal,
			"vault: certificate %s, signed for this order earlier, is no longer in Vault; not signing again", serial)
	}
	if !bytes.Equal(c.RawSubjectPublicKeyInfo, csr.RawSubjectPublicKeyInfo) {
		return nil, acmeerr.New(acmeerr.Internal, "vault: certificate %s recorded for this order certifies another key", serial)
	}
	chain, err := u.chainFor(ctx, c)
	if err != nil {
		return nil, err
	}
	u.log.Info("vault certificate served again", "order", req.OrderID, "serial", serial)
	return newResult(c, chain), nil
}

// chainFor finds leaf's issuers among the mount's issuers (or the
// configured one) and orders them.
func (u *Upstream) chainFor(ctx context.Context, leaf *x509.Certificate) ([]*x509.Certificate, error) {
	refs := []string{u.issuerRef}
	if u.issuerRef == "" {
		var list *api.Secret
		err := u.call(ctx, func(ctx context.Context) error {
			var err error
			list, err = u.client.Logical().ListWithContext(ctx, u.path("issuers"))
			return err
		})
		if err != nil {
			return nil, u.callError("listing issuers", err)
		}
		refs = nil
		if list != nil {
			refs = stringList(list.Data["keys"])
		}
	}
	var pool []*x509.Certificate
	for _, r := range refs {
		var s *api.Secret
		err := u.call(ctx, func(ctx context.Context) error {
			var err error
			s, err = u.client.Logical().ReadWithContext(ctx, u.path("issuer/"+escape(r)+"/json"))
			return err
		})
		if err != nil {
			return nil, u.callError("reading an issuer", err)
		}
		if s == nil {
			continue
		}
		for _, p := range append(stringList(s.Data["ca_chain"]), stringOf(s.Data["certificate"])) {
			certs, err := upstream.ParsePEMCertificates([]byte(p))
			if err != nil {
				return nil, acmeerr.Wrap(acmeerr.Internal, err, "vault: issuer %s cannot be parsed", r)
			}
			pool = append(pool, certs...)
		}
	}
	chain := orderChain(leaf, pool)
	if len(chain) == 0 && !issuedByRoot(leaf, pool) {
		return nil, acmeerr.New(acmeerr.Internal, "vault: no issuer of mount %s signed certificate %s", u.mount, vaultSerial(leaf.SerialNumber))
	}
	return chain, nil
}

// jsonInt reads a JSON number (vault/api decodes numbers as json.Number).
func jsonInt(v any) int64 {
	switch n := v.(type) {
	case json.Number:
		i, _ := n.Int64()
		return i
	case float64:
		return int64(n)
	case int64:
		return n
	case int:
		return int64(n)
	}
	return 0
}
