package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/upstream"
)

// altIssuer stands in for a CA that offers a second chain (an in-process
// wrapper for this unit test; the real case is tested against Pebble in
// upstream/acme).
type altIssuer struct{ upstream.Issuer }

func (a altIssuer) Issue(ctx context.Context, req *upstream.Request, setRef func(string) error) (*upstream.Result, error) {
	res, err := a.Issuer.Issue(ctx, req, setRef)
	if err == nil {
		res.Alternates = [][]byte{append(append([]byte{}, res.ChainPEM...), []byte("# alternate\n")...)}
	}
	return res, err
}

func TestAlternateChains(t *testing.T) {
	wrapIssuer = func(i upstream.Issuer) upstream.Issuer { return altIssuer{i} }
	defer func() { wrapIssuer = nil }()
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	_, o := c.readyOrder(dnsIDs("alt.example.com")...)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	o = decode[orderJSON](t, c.post(o.Finalize, map[string]string{"csr": b64(makeCSR(t, key, "", []string{"alt.example.com"}, nil))}))
	require.Equal(t, "valid", o.Status)

	rec := c.post(o.Certificate, nil)
	require.Equal(t, http.StatusOK, rec.Code)
	links := strings.Join(rec.Header().Values("Link"), ",")
	require.Contains(t, links, "<"+o.Certificate+`/1>;rel="alternate"`)
	def := rec.Body.String()

	rec = c.post(o.Certificate+"/1", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "application/pem-certificate-chain", rec.Header().Get("Content-Type"))
	require.Equal(t, def+"# alternate\n", rec.Body.String())
	require.Contains(t, strings.Join(rec.Header().Values("Link"), ","), "<"+o.Certificate+`>;rel="alternate"`)
	requireProblem(t, c.post(o.Certificate+"/2", nil), 404, "malformed")
	requireProblem(t, c.post(o.Certificate+"/0", nil), 404, "malformed")
}
