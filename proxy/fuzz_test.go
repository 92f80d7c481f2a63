package proxy

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzUnauthenticatedPOST sends arbitrary bodies to every POST resource: no
// input may panic or produce a 5xx, and every refusal is a problem document.
func FuzzUnauthenticatedPOST(f *testing.F) {
	e := newEnv(&testing.T{}, nil)
	c := e.newClient()
	f.Add(uint8(0), c.sign(testBase+pathNewAccount, []byte(`{"termsOfServiceAgreed":true}`), true))
	f.Add(uint8(1), []byte(`{"protected":"e30","payload":"","signature":""}`))
	f.Add(uint8(2), []byte(`{"protected":"eyJhbGciOiJub25lIn0","payload":"e30","signature":"AA"}`))
	f.Add(uint8(3), []byte(`{"signatures":[]}`))
	f.Add(uint8(4), []byte(`a.b.c`))
	paths := []string{pathNewAccount, pathNewOrder, pathRevoke, pathKeyChange, pathAccount + "x", pathOrder + "x",
		pathOrder + "x/finalize", pathAuthz + "x", pathChallenge + "x/y", pathCert + "x", pathAccount + "x/orders"}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		rec := e.do(http.MethodPost, paths[int(which)%len(paths)], "application/jose+json", body)
		require.Less(t, rec.Code, 500, rec.Body.String())
		if rec.Code >= 400 {
			require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
		}
	})
}
