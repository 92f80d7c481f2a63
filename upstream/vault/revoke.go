package vault

import (
	"bytes"
	"context"
	"crypto/x509"

	"github.com/acmebridge/acmebridge/acmeerr"
)

// Revoke revokes a certificate this Vault mount issued, by serial
// (POST MOUNT/revoke). The certificate must be the one Vault holds under
// that serial, so a serial that merely collides with another CA's is
// refused. Vault's revoke takes no reason code: the reason is logged, and
// Vault's CRL lists the certificate without one.
func (u *Upstream) Revoke(ctx context.Context, cert *x509.Certificate, reason int) error {
	if cert == nil || cert.SerialNumber == nil {
		return acmeerr.New(acmeerr.Malformed, "vault: no certificate to revoke")
	}
	// RFC 5280 §5.3.1 reason codes; 7 is unused.
	if reason < 0 || reason > 10 || reason == 7 {
		return acmeerr.New(acmeerr.BadRevocationReason, "vault: revocation reason %d is not supported", reason)
	}
	serial := vaultSerial(cert.SerialNumber)
	s, err := u.readCertSecret(ctx, serial)
	if err != nil {
		return err
	}
	if s == nil {
		return acmeerr.New(acmeerr.NotFound, "vault: Vault holds no certificate with serial %s", serial)
	}
	held, err := parseOneCert(stringOf(s.Data["certificate"]))
	if err != nil {
		return acmeerr.Wrap(acmeerr.Internal, err, "vault: certificate %s cannot be parsed", serial)
	}
	if !bytes.Equal(held.Raw, cert.Raw) {
		return acmeerr.New(acmeerr.Unauthorized, "vault: certificate was not issued by this Vault mount")
	}
	if jsonInt(s.Data["revocation_time"]) != 0 {
		return acmeerr.New(acmeerr.AlreadyRevoked, "vault: certificate %s is already revoked", serial)
	}
	err = u.call(ctx, func(ctx context.Context) error {
		_, err := u.client.Logical().WriteWithContext(ctx, u.path("revoke"), map[string]any{"serial_number": serial})
		return err
	})
	if err != nil {
		return u.callError("revoking", err)
	}
	u.log.Info("vault certificate revoked", "serial", serial, "reason", reason)
	return nil
}
