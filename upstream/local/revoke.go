package local

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/acmebridge/acmebridge/acmeerr"
)

// crlValidity is the gap between a CRL's ThisUpdate and NextUpdate.
const crlValidity = 24 * time.Hour

// revocation is one entry of revoked.json, keyed by the serial in hex.
type revocation struct {
	Reason    int       `json:"reason"`
	RevokedAt time.Time `json:"revoked_at"`
}

// Revoke records the revocation of a certificate this CA issued, with an
// RFC 5280 reason code, in revoked.json; CRL lists it from then on. A
// certificate not signed by this CA's intermediate is refused with
// Unauthorized, one already revoked with AlreadyRevoked.
func (ca *CA) Revoke(ctx context.Context, cert *x509.Certificate, reason int) error {
	if err := ctx.Err(); err != nil {
		return acmeerr.Wrap(acmeerr.Unavailable, err, "local: revocation abandoned")
	}
	if cert == nil {
		return acmeerr.New(acmeerr.Malformed, "local: no certificate to revoke")
	}
	if !validReason(reason) {
		return acmeerr.New(acmeerr.BadRevocationReason, "local: revocation reason %d is not supported", reason)
	}
	if !bytes.Equal(cert.RawIssuer, ca.inter.RawSubject) || cert.SerialNumber == nil {
		return acmeerr.New(acmeerr.Unauthorized, "local: certificate was not issued by this CA")
	}
	if err := cert.CheckSignatureFrom(ca.inter); err != nil {
		return acmeerr.Wrap(acmeerr.Unauthorized, err, "local: certificate was not issued by this CA")
	}
	serial := serialKey(cert.SerialNumber)

	ca.mu.Lock()
	defer ca.mu.Unlock()
	if _, ok := ca.revoked[serial]; ok {
		return acmeerr.New(acmeerr.AlreadyRevoked, "local: certificate %s is already revoked", serial)
	}
	next := make(map[string]revocation, len(ca.revoked)+1)
	for k, v := range ca.revoked {
		next[k] = v
	}
	next[serial] = revocation{Reason: reason, RevokedAt: ca.clock().UTC().Truncate(time.Second)}
	b, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return acmeerr.Wrap(acmeerr.Internal, err, "local: encoding %s", revokedFile)
	}
	if err := writeAtomic(ca.dir, revokedFile, append(b, '\n')); err != nil {
		return err
	}
	ca.revoked = next
	ca.log.Info("local certificate revoked", "serial", serial, "reason", reason)
	return nil
}

// validReason reports whether r is an RFC 5280 §5.3.1 reason code (7 is
// unused).
func validReason(r int) bool {
	return r >= 0 && r <= 10 && r != 7
}

// CRL returns a DER certificate revocation list, signed by the intermediate,
// of every certificate revoked so far. It is valid for a day.
func (ca *CA) CRL(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, acmeerr.Wrap(acmeerr.Unavailable, err, "local: CRL abandoned")
	}
	ca.mu.Lock()
	entries := make([]x509.RevocationListEntry, 0, len(ca.revoked))
	for k, v := range ca.revoked {
		n, ok := new(big.Int).SetString(k, 16)
		if !ok {
			ca.mu.Unlock()
			return nil, acmeerr.New(acmeerr.Internal, "local: serial %q in %s is not hexadecimal", k, revokedFile)
		}
		entries = append(entries, x509.RevocationListEntry{
			SerialNumber:   n,
			RevocationTime: v.RevokedAt,
			ReasonCode:     v.Reason,
		})
	}
	ca.mu.Unlock()
	sort.Slice(entries, func(i, j int) bool {
		return entries[i].SerialNumber.Cmp(entries[j].SerialNumber) < 0
	})

	now := ca.clock().UTC().Truncate(time.Second)
	tmpl := &x509.RevocationList{
		RevokedCertificateEntries: entries,
		// The number only has to grow from one CRL to the next (RFC 5280
		// §5.2.3); the time in nanoseconds does, across restarts too.
		Number:     big.NewInt(ca.clock().UnixNano()),
		ThisUpdate: now,
		NextUpdate: now.Add(crlValidity),
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.inter, ca.interKey)
	if err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: signing CRL")
	}
	return der, nil
}

// loadRevoked reads revoked.json from dir; a missing file means none.
func loadRevoked(dir string) (map[string]revocation, error) {
	b, err := os.ReadFile(filepath.Join(dir, revokedFile))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]revocation{}, nil
	}
	if err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: reading %s in %s", revokedFile, dir)
	}
	m := map[string]revocation{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: parsing %s in %s", revokedFile, dir)
	}
	for k := range m {
		if _, ok := new(big.Int).SetString(k, 16); !ok {
			return nil, acmeerr.New(acmeerr.Internal, "local: serial %q in %s in %s is not hexadecimal", k, revokedFile, dir)
		}
	}
	return m, nil
}
