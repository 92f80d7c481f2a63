package vaulttest

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"

	"github.com/acmebridge/acmebridge/internal/testutil"
)

// tlsConfigFor trusts the PEM roots in caFile.
func tlsConfigFor(caFile string) *tls.Config {
	pool := x509.NewCertPool()
	if b, err := os.ReadFile(caFile); err == nil {
		pool.AppendCertsFromPEM(b)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// writeTLSFiles makes a CA and a server certificate for 127.0.0.1 in a
// temporary directory; it returns the CA file and the server's
// certificate and key files.
func writeTLSFiles(t testing.TB) (string, []string) {
	t.Helper()
	ca, cert, key := testutil.TLSFiles(t, t.TempDir(), "vault", "vaulttest TLS CA")
	return ca, []string{cert, key}
}
