package local

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
)

func TestRevokeAndCRL(t *testing.T) {
	now := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	dir := filepath.Join(t.TempDir(), "ca")
	ca := newCA(t, Options{Dir: dir, Clock: func() time.Time { return now }})
	ctx := context.Background()

	// An empty CRL before any revocation.
	der, err := ca.CRL(ctx)
	require.NoError(t, err)
	crl, err := x509.ParseRevocationList(der)
	require.NoError(t, err)
	require.Empty(t, crl.RevokedCertificateEntries)
	_, err = os.Stat(filepath.Join(dir, "revoked.json"))
	require.ErrorIs(t, err, os.ErrNotExist)

	kept, err := ca.Issue(ctx, request(t, []string{"kept.example"}, nil), noRef(t))
	require.NoError(t, err)
	gone, err := ca.Issue(ctx, request(t, []string{"gone.example"}, nil), noRef(t))
	require.NoError(t, err)
	require.NoError(t, ca.Revoke(ctx, gone.Leaf, 1))

	check := func(t *testing.T, ca *CA) {
		t.Helper()
		der, err := ca.CRL(ctx)
		require.NoError(t, err)
		crl, err := x509.ParseRevocationList(der)
		require.NoError(t, err)
		require.NoError(t, crl.CheckSignatureFrom(ca.Intermediate()))
		require.Equal(t, ca.Intermediate().RawSubject, crl.RawIssuer)
		require.Equal(t, now, crl.ThisUpdate)
		require.True(t, crl.NextUpdate.After(crl.ThisUpdate))
		require.Len(t, crl.RevokedCertificateEntries, 1)
		e := crl.RevokedCertificateEntries[0]
		require.Equal(t, 0, gone.Leaf.SerialNumber.Cmp(e.SerialNumber))
		require.NotEqual(t, 0, kept.Leaf.SerialNumber.Cmp(e.SerialNumber))
		require.Equal(t, 1, e.ReasonCode)
		require.Equal(t, now, e.RevocationTime)
	}
	check(t, ca)

	// The record is on disk, keyed by serial.
	b, err := os.ReadFile(filepath.Join(dir, "revoked.json"))
	require.NoError(t, err)
	var onDisk map[string]struct {
		Reason    int       `json:"reason"`
		RevokedAt time.Time `json:"revoked_at"`
	}
	require.NoError(t, json.Unmarshal(b, &onDisk))
	require.Len(t, onDisk, 1)
	require.Equal(t, 1, onDisk[gone.Leaf.SerialNumber.Text(16)].Reason)

	// It survives a restart.
	reloaded := newCA(t, Options{Dir: dir, Clock: func() time.Time { return now }})
	check(t, reloaded)

	// Twice is refused.
	err = reloaded.Revoke(ctx, gone.Leaf, 1)
	require.Equal(t, acmeerr.AlreadyRevoked, acmeerr.KindOf(err))
	require.ErrorContains(t, err, "local: ")
}

func TestRevokeForeignCertificate(t *testing.T) {
	ca := newCA(t, Options{})
	other := newCA(t, Options{})
	ctx := context.Background()
	res, err := other.Issue(ctx, request(t, []string{"a.example"}, nil), noRef(t))
	require.NoError(t, err)

	err = ca.Revoke(ctx, res.Leaf, 0)
	require.Error(t, err)
	require.Equal(t, acmeerr.Unauthorized, acmeerr.KindOf(err))
	require.ErrorContains(t, err, "local: certificate was not issued by this CA")

	// Same issuer name, different key: the signature decides.
	forged := *res.Leaf
	forged.RawIssuer = ca.Intermediate().RawSubject
	err = ca.Revoke(ctx, &forged, 0)
	require.Equal(t, acmeerr.Unauthorized, acmeerr.KindOf(err))

	// The CA's own intermediate is not a certificate it issued either.
	err = ca.Revoke(ctx, ca.Intermediate(), 0)
	require.Equal(t, acmeerr.Unauthorized, acmeerr.KindOf(err))

	_, err = os.Stat(filepath.Join(ca.Dir(), "revoked.json"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestRevokeBadInput(t *testing.T) {
	ca := newCA(t, Options{})
	ctx := context.Background()
	res, err := ca.Issue(ctx, request(t, []string{"a.example"}, nil), noRef(t))
	require.NoError(t, err)

	for _, r := range []int{-1, 7, 11} {
		err := ca.Revoke(ctx, res.Leaf, r)
		require.Equal(t, acmeerr.BadRevocationReason, acmeerr.KindOf(err), r)
	}
	require.Equal(t, acmeerr.Malformed, acmeerr.KindOf(ca.Revoke(ctx, nil, 0)))

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, ca.Revoke(cancelled, res.Leaf, 0), context.Canceled)
	_, err = ca.CRL(cancelled)
	require.ErrorIs(t, err, context.Canceled)

	// Nothing was recorded by the refused attempts.
	require.NoError(t, ca.Revoke(ctx, res.Leaf, 0))
}

func TestCorruptRevocationsRefused(t *testing.T) {
	ca := newCA(t, Options{})
	require.NoError(t, os.WriteFile(filepath.Join(ca.Dir(), "revoked.json"), []byte("{not json"), 0o600))
	_, err := New(Options{Dir: ca.Dir()})
	require.ErrorContains(t, err, "local: parsing revoked.json")
}
