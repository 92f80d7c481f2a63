package proxy

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzUnauthenticatedPOST sends arbitrary bodies to every POST resource: no
// input may panic or produce a 5xx, every refusal is a problem document, and
// a body over the cap is refused with 413 whatever it holds.
func FuzzUnauthenticatedPOST(f *testing.F) {
	e := fuzzEnv(f)
	c := e.newClient()
	f.Add(uint8(0), c.sign(testBase+pathNewAccount, []byte(`{"termsOfServiceAgreed":true}`), true))
	f.Add(uint8(1), []byte(`{"protected":"e30","payload":"","signature":""}`))
	f.Add(uint8(2), []byte(`{"protected":"eyJhbGciOiJub25lIn0","payload":"e30","signature":"AA"}`))
	f.Add(uint8(3), []byte(`{"signatures":[]}`))
	f.Add(uint8(4), []byte(`a.b.c`))
	f.Add(uint8(5), append(bytes.Repeat([]byte(" "), maxBodyBytes), '{', '}'))
	paths := []string{pathNewAccount, pathNewOrder, pathRevoke, pathKeyChange, pathAccount + "x", pathOrder + "x",
		pathOrder + "x/finalize", pathAuthz + "x", pathChallenge + "x/y", pathCert + "x", pathAccount + "x/orders"}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		e.t = t
		rec := e.do(http.MethodPost, paths[int(which)%len(paths)], "application/jose+json", body)
		checkResponse(t, rec)
		if len(body) > maxBodyBytes {
			require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, "a body over the cap was read")
		}
	})
}
