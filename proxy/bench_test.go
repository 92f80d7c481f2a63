package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/configs"
)

// BenchmarkIssuance is one full issuance in-process on bolt and the local
// CA: newOrder, authorization, challenge, finalize, download (validation is
// the in-process fake, so the figure is the server's own cost). Each signed
// request fetches its nonce with a HEAD, as a client without a cached nonce
// would.
func BenchmarkIssuance(b *testing.B) {
	t, _, c := benchAccount(b, func(c *configs.Config) {})
	csr := benchCSR(b, t)
	b.ReportAllocs()
	for b.Loop() {
		_, o := c.readyOrder(dnsIDs("bench.example.com")...)
		rec := c.post(o.Finalize, map[string]string{"csr": csr})
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Body.String())
		}
		if c.post(decode[orderJSON](t, rec).Certificate, nil).Code != http.StatusOK {
			b.Fatal("download")
		}
	}
}

// BenchmarkVerifyPOST is the JWS check of one POST-as-GET.
func BenchmarkVerifyPOST(b *testing.B) {
	_, e, c := benchAccount(b, nil)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		body := c.sign(c.kid, []byte{}, false)
		req := newPOST(c.kid, body)
		b.StartTimer()
		if _, err := e.srv.verifyPOST(req, byKID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseJWS is the parse of one signed request's body (a finalize
// with its CSR), before any signature is checked.
func BenchmarkParseJWS(b *testing.B) {
	t, _, c := benchAccount(b, nil)
	body := c.sign(testBase+"/finalize/x", []byte(`{"csr":"`+benchCSR(b, t)+`"}`), false)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := parseJWS(body); err != nil {
			b.Fatal(err)
		}
	}
}

// benchAccount is a server (newEnv with configure) and a registered client
// for a benchmark; t stands in for the testing.T the helpers take.
func benchAccount(b *testing.B, configure func(*configs.Config)) (*testing.T, *env, *client) {
	b.Helper()
	t := &testing.T{}
	e := newEnv(t, configure)
	c := e.newClient()
	c.e.t = t
	c.register()
	return t, e, c
}

// benchCSR is a CSR for bench.example.com with a fresh P-256 key, base64url.
func benchCSR(b *testing.B, t *testing.T) string {
	b.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(b, err)
	return b64(makeCSR(t, key, "", []string{"bench.example.com"}, nil))
}
