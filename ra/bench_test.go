package ra

import (
	"crypto/x509"
	"testing"

	"github.com/acmebridge/acmebridge/ra/ratest"
)

// BenchmarkDecideContent: what deciding a lego-like ECDSA CSR costs
// (parse, signature, raw reading).
func BenchmarkDecideContent(b *testing.B) {
	k := ecKeyTB(b)
	der := ratest.CSR(b, k, &x509.CertificateRequest{DNSNames: []string{"a.example", "b.example"}})
	order := ids("a.example", "b.example")
	b.Run("finalize", func(b *testing.B) {
		for b.Loop() {
			if _, err := DecideContent(der, order); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("worker", func(b *testing.B) {
		for b.Loop() {
			if _, err := StoredContent(der, order); err != nil {
				b.Fatal(err)
			}
		}
	})
}
