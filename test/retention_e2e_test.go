package test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/acme"
)

// TestRetentionSweepsInServe: the sweeper of a running server removes an
// ended order retention.orders after it ended and a certificate
// retention.certificates after its NotAfter, on its own (every
// retention.sweep_interval), and counts them in
// acmebridge_retention_removed_total; the certificate is still served
// after its order is gone.
func TestRetentionSweepsInServe(t *testing.T) {
	dir := t.TempDir()
	// The order expires 5 s after it is made, the certificate (80 s from
	// a minute before its finalization) some 20 s after: the order goes
	// first.
	s := startServer(t, fmt.Sprintf(`upstreams:
  - name: short
    type: local
    local: {dir: %q, validity: 80s}
policy:
  default: {upstreams: [short]}
orders:
  order_lifetime: 5s
retention:
  orders: 1s
  certificates: 1s
  sweep_interval: 1s
`, filepath.Join(dir, "ca")))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	c := &acme.Client{Key: key, DirectoryURL: s.DirectoryURL, HTTPClient: s.HTTPClient(), UserAgent: "acmebridge-retention"}
	_, err = c.Register(ctx, &acme.Account{}, acme.AcceptTOS)
	require.NoError(t, err)

	const name = "swept.retention.e2e.test"
	o := readyByDNS01(ctx, t, c, s.DNS, name)
	ders, certURL, err := c.CreateOrderCert(ctx, o.FinalizeURL, matrixCSR(t, name), true)
	require.NoError(t, err)
	require.NotEmpty(t, ders)
	issuedAt := time.Now()

	status := func(err error) int {
		if err == nil {
			return http.StatusOK
		}
		var ae *acme.Error
		if errors.As(err, &ae) {
			return ae.StatusCode
		}
		t.Fatalf("not an ACME answer: %v", err)
		return 0
	}
	orderStatus := func() int {
		_, err := c.GetOrder(ctx, o.URI)
		return status(err)
	}
	certStatus := func() int {
		_, err := c.FetchCert(ctx, certURL, false)
		return status(err)
	}
	require.Equal(t, http.StatusOK, orderStatus(), "kept while it lives")

	require.True(t, waitFor(40*time.Second, func() bool { return orderStatus() == http.StatusNotFound }),
		"the order was not swept within 40 s")
	t.Logf("order swept %s after issuance", time.Since(issuedAt).Round(100*time.Millisecond))
	require.Equal(t, http.StatusOK, certStatus(), "the certificate outlives its order")

	require.True(t, waitFor(60*time.Second, func() bool { return certStatus() == http.StatusNotFound }),
		"the certificate was not swept within 60 s")
	t.Logf("certificate swept %s after issuance", time.Since(issuedAt).Round(100*time.Millisecond))

	code, body := httpGet(t, s.AdminURL+"/metrics")
	require.Equal(t, http.StatusOK, code)
	for _, kind := range []string{"order", "certificate"} {
		m := regexp.MustCompile(`acmebridge_retention_removed_total\{kind="` + kind + `"\} (\d+)`).FindStringSubmatch(body)
		require.NotNil(t, m, "no %s count in /metrics", kind)
		n, err := strconv.Atoi(m[1])
		require.NoError(t, err)
		require.GreaterOrEqual(t, n, 1, kind)
	}
}
