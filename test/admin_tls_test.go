package test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/internal/testutil"
)

// TestAdminTLS: with admin.tls the admin listener (API, dashboard,
// metrics) speaks HTTPS only. The CLI reaches it with --ca-file and
// refuses it without (the certificate is not trusted); the report finds
// it from the config alone (admin.tls.ca_file); a plain-HTTP request gets
// nothing; the dashboard's session cookie is Secure; a certificate renewed
// on disk is served without a restart.
func TestAdminTLS(t *testing.T) {
	quietLego(t)
	s := startServerAdminTLS(t, "")
	require.True(t, strings.HasPrefix(s.AdminURL, "https://"))

	// The CLI, trusting the admin CA.
	r := runCLI(t, s.Dir, append([]string{"eab", "create", "--json"}, s.adminArgs()...)...)
	require.Equal(t, 0, r.Code, r.Stderr)
	var k struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.Stdout), &k))
	require.NotEmpty(t, k.ID)

	// Without the CA: a clear certificate error, nothing done.
	r = runCLI(t, s.Dir, "eab", "list", "--server", s.AdminURL, "--token-file", s.TokenFile())
	require.NotEqual(t, 0, r.Code)
	require.Contains(t, r.Stderr, "certificate")

	// Plain HTTP to the TLS port gets no answer from the API.
	plain := strings.Replace(s.AdminURL, "https://", "http://", 1)
	if resp, err := (&http.Client{}).Get(plain + "/healthz"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NotEqual(t, http.StatusOK, resp.StatusCode, "plain HTTP answered: %s", body)
	}

	// Metrics over HTTPS.
	resp, err := s.adminClient.Get(s.AdminURL + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// The report reaches the admin API from the config (https, ca_file).
	c, _ := legoAccount(t, s, "admin-tls@example.com", nil)
	legoObtain(t, c, "tls.admin.test")
	r = runCLI(t, s.Dir, "report", "--config", s.ConfigPath, "--since", "1h", "--json")
	require.Equal(t, 0, r.Code, r.Stderr)
	var rep struct {
		Expiring struct {
			Source string `json:"source"`
		} `json:"expiring"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.Stdout), &rep))
	require.Equal(t, "admin-api", rep.Expiring.Source, r.Stderr)

	// The dashboard's session cookie is Secure over HTTPS.
	token, err := os.ReadFile(s.TokenFile())
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, s.AdminURL+"/dashboard/login",
		strings.NewReader(url.Values{"token": {strings.TrimSpace(string(token))}}.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.AdminURL)
	noRedirect := *s.adminClient
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err = noRedirect.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	var secure bool
	for _, ck := range resp.Cookies() {
		if ck.Value != "" {
			secure = ck.Secure
		}
	}
	require.True(t, secure, "session cookie over HTTPS: %v (status %d)", resp.Header.Values("Set-Cookie"), resp.StatusCode)

	// The admin certificate is renewed on disk (a new CA's, to tell them
	// apart): new connections get it without a restart.
	newCA, newCert, newKey := testutil.TLSFiles(t, t.TempDir(), "renewed", "acmebridge-e2e renewed admin CA", "127.0.0.1")
	require.NoError(t, os.Rename(newKey, filepath.Join(s.Dir, "admin-key.pem")))
	require.NoError(t, os.Rename(newCert, filepath.Join(s.Dir, "admin-cert.pem")))
	pool := x509.NewCertPool()
	pemBytes, err := os.ReadFile(newCA)
	require.NoError(t, err)
	require.True(t, pool.AppendCertsFromPEM(pemBytes))
	renewed := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true}}
	require.Eventually(t, func() bool {
		resp, err := renewed.Get(s.AdminURL + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 100*time.Millisecond, "the renewed certificate is served")
	require.Contains(t, s.logs.String(), "TLS certificate reloaded")
	old := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: s.adminClient.Transport.(*http.Transport).TLSClientConfig.Clone(), DisableKeepAlives: true}}
	resp, err = old.Get(s.AdminURL + "/healthz")
	if err == nil {
		_ = resp.Body.Close()
	}
	require.ErrorContains(t, err, "certificate", "the old certificate is no longer served")
}
