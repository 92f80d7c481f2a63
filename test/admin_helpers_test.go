package test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/certcrypto"
	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/challenge/http01"
	"github.com/go-acme/lego/v5/lego"
	legolog "github.com/go-acme/lego/v5/log"
	"github.com/go-acme/lego/v5/registration"
	"github.com/stretchr/testify/require"
)

// This file holds the helpers of the policy, EAB, admin CLI, audit and
// metrics end-to-end tests (policy_e2e_test.go).

// cliResult is one run of the acmebridge binary as a command-line tool.
type cliResult struct {
	Stdout, Stderr string
	Code           int
}

// runCLI runs the acmebridge binary with args (stdout and stderr kept
// apart, so --json output can be decoded) and returns its exit code.
func runCLI(t *testing.T, dir string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Dir = dir
	cmd.Env = toolEnv()
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.Code = ee.ExitCode()
	default:
		t.Fatalf("acmebridge %s: %v", strings.Join(args, " "), err)
	}
	t.Logf("acmebridge %s: exit %d", strings.Join(args, " "), res.Code)
	return res
}

// adminArgs are the flags that point an admin command at s.
func (s *server) adminArgs() []string {
	args := []string{"--server", s.AdminURL, "--token-file", s.TokenFile()}
	if s.AdminCAFile != "" {
		args = append(args, "--ca-file", s.AdminCAFile)
	}
	return args
}

// TokenFile is the admin bearer token file (data_dir/admin.token).
func (s *server) TokenFile() string { return filepath.Join(s.DataDir, "admin.token") }

// AuditFile is the audit log (data_dir/audit.log, the default).
func (s *server) AuditFile() string { return filepath.Join(s.DataDir, "audit.log") }

// admin runs `acmebridge GROUP VERB [flags] [args]` against s's admin API
// (the --server and --token-file flags are added after the verb) and
// requires exit 0. It returns stdout.
func (s *server) admin(t *testing.T, group, verb string, args ...string) string {
	t.Helper()
	r := s.adminRun(t, group, verb, args...)
	require.Equal(t, 0, r.Code, "acmebridge %s %s %v failed:\nstdout:\n%s\nstderr:\n%s", group, verb, args, r.Stdout, r.Stderr)
	return r.Stdout
}

// adminRun is admin without the exit code check.
func (s *server) adminRun(t *testing.T, group, verb string, args ...string) cliResult {
	t.Helper()
	full := append([]string{group, verb}, s.adminArgs()...)
	full = append(full, args...)
	return runCLI(t, s.Dir, full...)
}

// adminJSON runs an admin command with --json and decodes its output.
func (s *server) adminJSON(t *testing.T, out any, group, verb string, args ...string) {
	t.Helper()
	stdout := s.admin(t, group, verb, append([]string{"--json"}, args...)...)
	require.NoError(t, json.Unmarshal([]byte(stdout), out), "acmebridge %s %s --json printed:\n%s", group, verb, stdout)
}

// eabKey is what `acmebridge eab create --json` prints (and, without
// hmac_key, what `eab list --json` lists).
type eabKey struct {
	ID        string   `json:"id"`
	HMACKey   string   `json:"hmac_key"`
	Group     string   `json:"group"`
	Allow     []string `json:"allow"`
	Note      string   `json:"note"`
	Status    string   `json:"status"`
	AccountID string   `json:"account_id"`
	ExpiresAt string   `json:"expires_at"`
	RevokedAt string   `json:"revoked_at"`
}

// createEAB makes an EAB key with the CLI (`acmebridge eab create --json`).
func (s *server) createEAB(t *testing.T, flags ...string) eabKey {
	t.Helper()
	var k eabKey
	if s.Directory != "" {
		flags = append([]string{"--directory", s.Directory}, flags...)
	}
	s.adminJSON(t, &k, "eab", "create", flags...)
	require.NotEmpty(t, k.ID, "eab create printed no id")
	require.NotEmpty(t, k.HMACKey, "eab create printed no hmac_key")
	require.Equal(t, "unused", k.Status)
	return k
}

// listing is the admin API's page of records.
type listing[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next"`
}

// accountRec, orderRec and certRec are the admin API's views.
type accountRec struct {
	ID      string   `json:"id"`
	Status  string   `json:"status"`
	Contact []string `json:"contact"`
	EABKey  string   `json:"eab_key"`
	Group   string   `json:"group"`
	Allow   []string `json:"allow"`
}

type orderRec struct {
	ID          string `json:"id"`
	Account     string `json:"account"`
	Status      string `json:"status"`
	Identifiers []struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	} `json:"identifiers"`
	Rule        string   `json:"rule"`
	Upstreams   []string `json:"upstreams"`
	Upstream    string   `json:"upstream"`
	Certificate string   `json:"certificate"`
}

type certRec struct {
	ID        string    `json:"id"`
	Serial    string    `json:"serial"`
	Account   string    `json:"account"`
	Order     string    `json:"order"`
	Names     []string  `json:"names"`
	Upstream  string    `json:"upstream"`
	NotAfter  time.Time `json:"not_after"`
	RevokedAt string    `json:"revoked_at"`
	ChainPEM  string    `json:"chain_pem"`
}

// accountID is the last path segment of an account URL.
func accountID(location string) string {
	return location[strings.LastIndex(location, "/")+1:]
}

// quietLego sends lego's log lines to a buffer printed if the test fails.
func quietLego(t *testing.T) {
	t.Helper()
	logs := &syncBuffer{}
	prev := legolog.Default()
	legolog.SetDefault(slog.New(slog.NewTextHandler(logs, nil)))
	t.Cleanup(func() {
		legolog.SetDefault(prev)
		if t.Failed() {
			t.Logf("lego log:\n%s", logs.String())
		}
	})
}

// legoAccount registers a new account with lego v5 (with an EAB key when
// eab is not nil) and returns a client for it with an http-01 solver on the
// validator's port.
func legoAccount(t *testing.T, s *server, email string, eab *eabKey) (*lego.Client, *legoUser) {
	t.Helper()
	u := &legoUser{email: email, key: newECKey(t)}
	c := newLegoClient(t, s, u)
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	var reg *acme.ExtendedAccount
	var err error
	if eab != nil {
		reg, err = c.Registration.RegisterWithExternalAccountBinding(ctx, registration.RegisterEABOptions{
			TermsOfServiceAgreed: true, Kid: eab.ID, HmacEncoded: eab.HMACKey})
	} else {
		reg, err = c.Registration.Register(ctx, registration.RegisterOptions{TermsOfServiceAgreed: true})
	}
	require.NoError(t, err, "register %s", email)
	require.NotEmpty(t, reg.Location)
	u.reg = reg
	c = newLegoClient(t, s, u)
	require.NoError(t, c.Challenge.SetHTTP01Provider(http01.NewProviderServer("127.0.0.1", itoa(s.HTTPPort))))
	return c, u
}

// legoObtain gets a certificate for names (http-01) and returns it.
func legoObtain(t *testing.T, c *lego.Client, names ...string) *certificate.Resource {
	t.Helper()
	res, err := legoObtainErr(c, names...)
	require.NoError(t, err, "obtain %v", names)
	return res
}

func legoObtainErr(c *lego.Client, names ...string) (*certificate.Resource, error) {
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	return c.Certificate.Obtain(ctx, certificate.ObtainRequest{Domains: names, KeyType: certcrypto.EC256, Bundle: true})
}

// requireProblem requires err to carry an ACME problem of type typ
// (without the urn:ietf:params:acme:error: prefix) and returns it.
func requireProblem(t *testing.T, err error, typ string) *acme.ProblemDetails {
	t.Helper()
	require.Error(t, err, "expected a %s problem", typ)
	var pd *acme.ProblemDetails
	require.True(t, errors.As(err, &pd), "not an ACME problem: %v", err)
	require.Equal(t, "urn:ietf:params:acme:error:"+typ, pd.Type, "problem: %v", err)
	return pd
}

// rootPool reads a local CA's root.pem (data_dir/ca/NAME/root.pem).
func rootPool(t *testing.T, s *server, upstream string) (*x509.CertPool, string) {
	t.Helper()
	p := filepath.Join(s.DataDir, "ca", upstream, "root.pem")
	b, err := os.ReadFile(p)
	require.NoError(t, err, "the local CA %s has no root.pem", upstream)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(b), "%s holds no certificate", p)
	return pool, p
}

// requireNotChainsTo requires the chain not to verify against roots.
func requireNotChainsTo(t *testing.T, roots *x509.CertPool, rootsName string, chainPEM []byte) {
	t.Helper()
	certs, err := parsePEMCerts(chainPEM)
	require.NoError(t, err)
	require.NotEmpty(t, certs)
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err = certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	require.Error(t, err, "the chain must not verify against %s", rootsName)
}

// auditLine is one line of the audit log, raw and decoded.
type auditLine struct {
	Raw string
	E   auditEvent
}

// auditEvent mirrors audit.Event (the log's JSON contract).
type auditEvent struct {
	Time      time.Time `json:"time"`
	Event     string    `json:"event"`
	RequestID string    `json:"request_id"`
	Account   string    `json:"account"`
	EABKey    string    `json:"eab_key"`
	Group     string    `json:"group"`
	Order     string    `json:"order"`
	Names     []string  `json:"names"`
	Rule      string    `json:"rule"`
	Upstream  string    `json:"upstream"`
	Upstreams []string  `json:"upstreams"`
	Challenge string    `json:"challenge"`
	Serial    string    `json:"serial"`
	NotAfter  time.Time `json:"not_after"`
	Problem   string    `json:"problem"`
	Detail    string    `json:"detail"`
	Reason    string    `json:"reason"`
	Actor     string    `json:"actor"`
}

func (e auditEvent) hasName(n string) bool {
	for _, x := range e.Names {
		if strings.EqualFold(x, n) {
			return true
		}
	}
	return false
}

func (e auditEvent) String() string {
	b, _ := json.Marshal(e)
	return string(b)
}

// readAudit reads every line of the audit log; each must be a JSON event.
func readAudit(t *testing.T, path string) []auditLine {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err, "the audit log")
	var out []auditLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var e auditEvent
		require.NoError(t, json.Unmarshal([]byte(line), &e), "audit line is not JSON: %s", line)
		require.NotEmpty(t, e.Event, "audit line without an event: %s", line)
		require.False(t, e.Time.IsZero(), "audit line without a time: %s", line)
		out = append(out, auditLine{Raw: line, E: e})
	}
	require.NoError(t, sc.Err())
	return out
}

// findAudit returns the index of the first line at or after from that
// matches, or -1.
func findAudit(lines []auditLine, from int, match func(auditEvent) bool) int {
	for i := max(from, 0); i < len(lines); i++ {
		if match(lines[i].E) {
			return i
		}
	}
	return -1
}

func dumpAudit(lines []auditLine) string {
	var b strings.Builder
	for i, l := range lines {
		fmt.Fprintf(&b, "%3d %s\n", i, l.Raw)
	}
	return b.String()
}

// httpGet fetches a URL with a plain client and returns status and body.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, buf.String()
}

// postAsGet sends an RFC 8555 POST-as-GET for url signed by u's account
// key, over HTTPS trusting ca.pem, and returns the status and body.
func (s *server) postAsGet(t *testing.T, u *legoUser, url string) (int, []byte) {
	t.Helper()
	hc := s.HTTPClient()
	resp, err := hc.Head(s.BaseURL + "/acme/new-nonce")
	require.NoError(t, err)
	resp.Body.Close()
	nonce := resp.Header.Get("Replay-Nonce")
	require.NotEmpty(t, nonce)
	body := signPostAsGet(t, u.key, u.reg.Location, nonce, url)
	resp, err = hc.Post(url, "application/jose+json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, buf.Bytes()
}
