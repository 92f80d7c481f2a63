package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/internal/testutil"
	"github.com/acmebridge/acmebridge/upstream/local"
)

// rotate writes a new pair (of a new CA) over certFile and keyFile, each
// by an atomic rename as certbot and Kubernetes do, and returns the new
// leaf's DER. Only the key is replaced when keyOnly is set.
func rotate(t *testing.T, certFile, keyFile string, keyOnly bool) []byte {
	t.Helper()
	dir := t.TempDir()
	_, c, k := testutil.TLSFiles(t, dir, "new", "rotated CA")
	pair, err := tls.LoadX509KeyPair(c, k)
	require.NoError(t, err)
	require.NoError(t, os.Rename(k, keyFile))
	if !keyOnly {
		require.NoError(t, os.Rename(c, certFile))
	}
	return pair.Certificate[0]
}

func served(t *testing.T, k *keyPair) []byte {
	t.Helper()
	c, err := k.getCertificate(&tls.ClientHelloInfo{})
	require.NoError(t, err)
	return c.Certificate[0]
}

// TestKeyPairReload: a pair rotated on disk is served after the next
// look; a half-done rotation (new key, old certificate), a missing file
// and garbage keep the previous pair in service and are picked up once
// whole.
func TestKeyPairReload(t *testing.T) {
	dir := t.TempDir()
	_, certFile, keyFile := testutil.TLSFiles(t, dir, "srv", "first CA")
	logs := &testutil.SyncBuffer{}
	kp, err := loadKeyPair("server.tls", certFile, keyFile, slog.New(slog.NewTextHandler(logs, nil)))
	require.NoError(t, err)
	now := time.Now()
	kp.now = func() time.Time { return now }
	first := served(t, kp)

	// A whole rotation: served from the first look after it.
	second := rotate(t, certFile, keyFile, false)
	require.Equal(t, first, served(t, kp), "within keyPairCheckEvery the files are not looked at")
	now = now.Add(keyPairCheckEvery)
	require.Equal(t, second, served(t, kp))
	require.Contains(t, logs.String(), "TLS certificate reloaded")

	// The key is replaced first: the pair does not match, the previous
	// one stays, and the next look tries again.
	rotate(t, certFile, keyFile, true)
	now = now.Add(keyPairCheckEvery)
	require.Equal(t, second, served(t, kp))
	require.Contains(t, logs.String(), "cannot be loaded; still serving the previous certificate")

	// A missing certificate file, then garbage in it: still the previous pair.
	require.NoError(t, os.Remove(certFile))
	now = now.Add(keyPairCheckEvery)
	require.Equal(t, second, served(t, kp))
	require.NoError(t, os.WriteFile(certFile, []byte("not a certificate"), 0o644))
	now = now.Add(keyPairCheckEvery)
	require.Equal(t, second, served(t, kp))

	// The rotation completes.
	third := rotate(t, certFile, keyFile, false)
	now = now.Add(keyPairCheckEvery)
	require.Equal(t, third, served(t, kp))
}

// TestServerTLSReloads: server.tls.cert_file is served through a
// reloading pair; a pair that cannot be read stops the start with the
// config section named.
func TestServerTLSReloads(t *testing.T) {
	dir := t.TempDir()
	_, certFile, keyFile := testutil.TLSFiles(t, dir, "srv", "first CA")
	cfg := configs.Default()
	cfg.DataDir = dir
	cfg.Server.TLS.CertFile, cfg.Server.TLS.KeyFile = certFile, keyFile
	tc, _, err := serverTLS(cfg, nil, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.NotNil(t, tc.GetCertificate)
	c, err := tc.GetCertificate(&tls.ClientHelloInfo{})
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", leaf.Subject.CommonName)

	cfg.Server.TLS.KeyFile = filepath.Join(dir, "missing.pem")
	_, _, err = serverTLS(cfg, nil, slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, "server.tls")
}

// failingIssuer fails every issuance after the first (an error path of
// selfIssued; the real local CA is used for the rest).
type failingIssuer struct {
	serverCertIssuer
	fail bool
}

func (f *failingIssuer) ServerCertificate(hosts []string) (*tls.Certificate, error) {
	if f.fail {
		return nil, errors.New("disk full")
	}
	return f.serverCertIssuer.ServerCertificate(hosts)
}

// TestSelfIssuedRenews: the listener's local-CA certificate is issued
// again once two thirds of its validity have passed, and not before; a
// failed renewal keeps the current one and is tried again a minute later.
func TestSelfIssuedRenews(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	ca, err := local.New(local.Options{Name: "tls", Dir: t.TempDir(), Clock: clock})
	require.NoError(t, err)
	fi := &failingIssuer{serverCertIssuer: ca}
	si, err := newSelfIssued(fi, []string{"127.0.0.1", "acme.example.test"}, slog.New(slog.DiscardHandler), clock)
	require.NoError(t, err)
	leafOf := func() *x509.Certificate {
		c, err := si.getCertificate(&tls.ClientHelloInfo{})
		require.NoError(t, err)
		l, err := x509.ParseCertificate(c.Certificate[0])
		require.NoError(t, err)
		return l
	}
	first := leafOf()
	require.Equal(t, []string{"acme.example.test"}, first.DNSNames)
	life := first.NotAfter.Sub(first.NotBefore)

	now = first.NotBefore.Add(life*2/3 - time.Minute)
	require.Equal(t, first.SerialNumber, leafOf().SerialNumber, "not yet due")

	now = first.NotBefore.Add(life * 2 / 3)
	fi.fail = true
	require.Equal(t, first.SerialNumber, leafOf().SerialNumber, "a failed renewal keeps the current certificate")
	fi.fail = false
	now = now.Add(30 * time.Second)
	require.Equal(t, first.SerialNumber, leafOf().SerialNumber, "retried only after a minute")
	now = now.Add(30 * time.Second)
	second := leafOf()
	require.NotEqual(t, first.SerialNumber, second.SerialNumber)
	require.True(t, second.NotAfter.After(first.NotAfter))
	require.Equal(t, second.SerialNumber, leafOf().SerialNumber, "renewed once")
}
