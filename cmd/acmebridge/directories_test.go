package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/proxy/admin"
	"github.com/acmebridge/acmebridge/ra"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/store/bolt"
)

// directoriesConfig serves the top level and /devices/ with a policy of
// its own.
const directoriesConfig = `
upstreams:
  - {name: dev, type: local}
policy:
  rules:
    - {name: top, match: {domains: ["*.example.com"]}, upstreams: [dev]}
  default: {action: deny}
directories:
  - name: devices
    accounts: {eab: required}
    policy:
      rules:
        - {name: lan, match: {domains: ["*.corp.example.com"]}, upstreams: [dev]}
`

// TestPolicyExplainDirectory: policy explain --directory explains with
// that directory's policy; "/" is the top level; a directory the file
// does not configure is an error.
func TestPolicyExplainDirectory(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(directoriesConfig), 0o600))
	code, out, stderr := runCmd("policy", "explain", "--config", cfg, "--directory", "devices", "p.corp.example.com", "www.example.com")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "p.corp.example.com: rule lan, allow via dev")
	require.Contains(t, out, "www.example.com: rule default, deny")
	for _, top := range [][]string{{}, {"--directory", "/"}} {
		args := append(append([]string{"policy", "explain", "--config", cfg}, top...), "p.corp.example.com")
		code, out, stderr = runCmd(args...)
		require.Equal(t, 0, code, stderr)
		require.Contains(t, out, "p.corp.example.com: rule top, allow via dev")
	}
	code, _, stderr = runCmd("policy", "explain", "--config", cfg, "--directory", "nope", "a.example.com")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `no directory "nope"`)
}

// TestReportAndAuditDirectory: report --directory and audit --directory
// keep one directory's events ("/" the top level), and report's expiring
// certificates come from the admin API filtered the same way; a directory
// not configured is a usage error.
func TestReportAndAuditDirectory(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC()
	var b bytes.Buffer
	l := audit.New(&b)
	for _, e := range []audit.Event{
		{Time: now.Add(-3 * time.Hour), Event: audit.CertIssued, Account: "a-dev", Upstream: "dev", Serial: "01", Names: []string{"p.corp.example.com"}, Directory: "devices"},
		{Time: now.Add(-2 * time.Hour), Event: audit.CertIssued, Account: "a-top", Upstream: "dev", Serial: "02", Names: []string{"www.example.com"}},
		{Time: now.Add(-2 * time.Hour), Event: audit.CertIssued, Account: "a-top", Upstream: "dev", Serial: "03", Names: []string{"api.example.com"}},
	} {
		require.NoError(t, l.Record(e))
	}
	logFile := filepath.Join(dir, "audit.log")
	require.NoError(t, os.WriteFile(logFile, b.Bytes(), 0o600))

	// The admin API of a running server: one certificate in each.
	st, err := bolt.Open(bolt.Options{Path: filepath.Join(dir, "db")})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	for i, d := range []string{"devices", ""} {
		o := &store.Order{ID: fmt.Sprintf("o%d", i), AccountID: "a", Status: store.StatusPending, Directory: d,
			Identifiers: []store.Identifier{{Type: "dns", Value: fmt.Sprintf("h%d.example.com", i)}}, Expires: now.Add(time.Hour), CreatedAt: now}
		require.NoError(t, st.CreateOrder(t.Context(), o, nil))
		c := &store.Certificate{ID: fmt.Sprintf("c%d", i), AccountID: "a", OrderID: o.ID, Serial: fmt.Sprintf("0%d", i+1), Directory: d,
			Names: []string{o.Identifiers[0].Value}, Upstream: "dev", NotBefore: now, NotAfter: now.Add(5 * 24 * time.Hour), IssuedAt: now,
			ChainPEM: []byte("-"), KeyThumbprint: fmt.Sprint(i)}
		next := *o
		next.Status, next.CertificateID = store.StatusValid, c.ID
		require.NoError(t, st.PutCertificate(t.Context(), c, &next))
	}
	tokenFile := filepath.Join(dir, "admin.token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("global-token\n"), 0o600))
	cfgObj, err := configs.Load(writeFile(t, dir, "c.yaml", directoriesConfig))
	require.NoError(t, err)
	core, err := ra.New(ra.Options{Config: cfgObj, Store: st})
	require.NoError(t, err)
	srv := httptest.NewServer(admin.New(admin.Options{Store: st, API: &admin.APIOptions{Token: "global-token", Store: st, Directories: core}}))
	t.Cleanup(srv.Close)
	cfg := writeFile(t, dir, "acmebridge.yaml", directoriesConfig+fmt.Sprintf("data_dir: %q\naudit: {file: %q}\nadmin: {token_file: %q}\n", dir, logFile, tokenFile))

	report := func(args ...string) map[string]any {
		var out, errb bytes.Buffer
		code := runReport(append([]string{"--config", cfg, "--server", srv.URL, "--json"}, args...), &out, &errb, now)
		require.Equal(t, 0, code, errb.String())
		var doc map[string]any
		require.NoError(t, json.Unmarshal(out.Bytes(), &doc))
		return doc
	}
	issued := func(doc map[string]any) float64 { return doc["issued"].(map[string]any)["total"].(float64) }
	expiring := func(doc map[string]any) []string {
		var serials []string
		for _, c := range doc["expiring"].(map[string]any)["certificates"].([]any) {
			serials = append(serials, c.(map[string]any)["serial"].(string))
		}
		return serials
	}
	all := report()
	require.Equal(t, 3.0, issued(all))
	require.ElementsMatch(t, []string{"01", "02"}, expiring(all))
	dev := report("--directory", "devices")
	require.Equal(t, "devices", dev["directory"])
	require.Equal(t, 1.0, issued(dev))
	require.Equal(t, []string{"01"}, expiring(dev))
	top := report("--directory", "/")
	require.Equal(t, 2.0, issued(top))
	require.Equal(t, []string{"02"}, expiring(top))

	var out, errb bytes.Buffer
	require.Equal(t, 2, runReport([]string{"--config", cfg, "--directory", "nope", "--expiring", "0"}, &out, &errb, now))
	require.Contains(t, errb.String(), `no directory "nope" is configured`)

	code, text, stderr := runCmd("audit", "--file", logFile, "--directory", "devices")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, text, "p.corp.example.com")
	require.NotContains(t, text, "www.example.com")
	code, text, _ = runCmd("audit", "--file", logFile, "--directory", "/", "--json")
	require.Equal(t, 0, code)
	require.Contains(t, text, "www.example.com")
	require.NotContains(t, text, "p.corp.example.com")
}

// TestAdminCommandsScopedToken: with a token scoped to /devices/, eab
// create makes keys there and is refused another directory; lists show
// its directory only and name it; the upstreams' renew-now is refused.
func TestAdminCommandsScopedToken(t *testing.T) {
	dir := t.TempDir()
	st, err := bolt.Open(bolt.Options{Path: filepath.Join(dir, "db")})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	sealed, err := store.Sealed(st, bytes.Repeat([]byte{1}, 32))
	require.NoError(t, err)
	cfgObj, err := configs.Load(writeFile(t, dir, "c.yaml", directoriesConfig))
	require.NoError(t, err)
	core, err := ra.New(ra.Options{Config: cfgObj, Store: sealed})
	require.NoError(t, err)
	const devTok = "devices-token-0123456789abcdef0123456789"
	srv := httptest.NewServer(admin.New(admin.Options{Store: sealed, API: &admin.APIOptions{Token: "global-token", Store: sealed, Directories: core,
		Scoped: admin.NewScopedTokens([]admin.DirectoryToken{{Directory: "devices", Token: devTok}})}}))
	t.Cleanup(srv.Close)
	devFile := writeFile(t, dir, "devices.token", devTok+"\n")
	globalFile := writeFile(t, dir, "admin.token", "global-token\n")
	as := func(tokenFile string, args ...string) (int, string, string) {
		return runCmd(append(args[:2:2], append([]string{"--server", srv.URL, "--token-file", tokenFile}, args[2:]...)...)...)
	}

	code, _, stderr := as(devFile, "eab", "create", "--directory", "/", "--group", "g")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "this token is scoped to directory devices (HTTP 403)")
	code, out, stderr := as(devFile, "eab", "create", "--group", "printers", "--json")
	require.Equal(t, 0, code, stderr)
	var created map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &created))
	require.Equal(t, "devices", created["directory"])
	code, _, stderr = as(globalFile, "eab", "create", "--directory", "nope")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "no directory nope is configured (HTTP 400)")
	code, _, stderr = as(globalFile, "eab", "create", "--directory", "/", "--note", "top")
	require.Equal(t, 0, code, stderr)

	code, out, stderr = as(devFile, "eab", "list")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "DIRECTORY")
	require.Contains(t, out, "devices")
	require.NotContains(t, out, "top", "the top level's key is not listed")
	code, out, _ = as(globalFile, "eab", "list", "--directory", "/")
	require.Equal(t, 0, code)
	require.Contains(t, out, "top")
	require.NotContains(t, out, "printers")
	code, _, stderr = as(devFile, "cert", "list", "--directory", "/")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "HTTP 403")
	code, _, stderr = as(devFile, "cert", "renew-now", "--upstream", "dev")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "server-wide")
}

// writeFile writes content to dir/name and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}
