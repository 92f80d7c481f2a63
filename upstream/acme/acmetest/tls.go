package acmetest

import (
	"testing"

	"github.com/acmebridge/acmebridge/internal/testutil"
)

// writeTLSFiles makes Pebble's TLS files (a CA and a certificate for
// 127.0.0.1, localhost and pebble) in dir; it returns the CA file, the
// certificate file and the key file.
func writeTLSFiles(t testing.TB, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	return testutil.TLSFiles(t, dir, "pebble-tls", "acmetest Pebble TLS CA", "pebble")
}
