package acmetest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// DefaultNonceReject is the share of good nonces Pebble rejects with
// badNonce (PEBBLE_WFE_NONCEREJECT), so clients' retries are exercised.
const DefaultNonceReject = 10

// Options configures a Pebble.
type Options struct {
	// ChallSrv is the DNS server Pebble's VA resolves through; nil starts
	// a new one.
	ChallSrv *ChallSrv
	// HTTPPort is where the VA connects for http-01 (every name resolves
	// to 127.0.0.1); 0 picks a free port.
	HTTPPort int
	// EAB maps key IDs to base64url HMAC keys; non-empty makes Pebble
	// require an external account binding.
	EAB map[string]string
	// NonceReject is PEBBLE_WFE_NONCEREJECT: 0 means DefaultNonceReject,
	// a negative value turns rejection off.
	NonceReject int
	// AuthzReuse is PEBBLE_AUTHZREUSE (percent); 0 leaves Pebble's default
	// (50), a negative value means 0.
	AuthzReuse int
	// Blocklist are names Pebble refuses (rejectedIdentifier).
	Blocklist []string
	// AlternateRoots is PEBBLE_ALTERNATE_ROOTS: alternate chains offered
	// with each certificate.
	AlternateRoots int
	// OrderRetryAfter is the Retry-After (s) of processing orders.
	OrderRetryAfter int
}

// Pebble is one running Pebble.
type Pebble struct {
	// DirectoryURL is the ACME directory; ManagementURL the management API.
	DirectoryURL, ManagementURL string
	// CAFile is the PEM CA of Pebble's TLS certificate.
	CAFile string
	// HTTPPort is where the VA connects for http-01.
	HTTPPort int
	// ChallSrv is the DNS server the VA resolves through.
	ChallSrv *ChallSrv

	bin  string
	args []string
	env  []string
	addr string
	logs *syncBuffer
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts Pebble on free loopback ports (and a challtestsrv if opts
// names none), with PEBBLE_VA_NOSLEEP=1 and badNonce rejection on, and
// stops it when the test ends, printing its log if the test failed.
func Start(t testing.TB, opts Options) *Pebble {
	t.Helper()
	bin, _ := Binaries(t)
	if opts.ChallSrv == nil {
		opts.ChallSrv = StartChallSrv(t)
	}
	dir := t.TempDir()
	caFile, certFile, keyFile := writeTLSFiles(t, dir)
	ports := freePorts(t, 3)
	if opts.HTTPPort == 0 {
		opts.HTTPPort = freePorts(t, 1)[0]
	}
	p := &Pebble{
		CAFile: caFile, HTTPPort: opts.HTTPPort, ChallSrv: opts.ChallSrv, bin: bin, logs: &syncBuffer{},
		addr: fmt.Sprintf("127.0.0.1:%d", ports[0]),
	}
	p.DirectoryURL = "https://" + p.addr + "/dir"
	p.ManagementURL = fmt.Sprintf("https://127.0.0.1:%d", ports[1])
	retry := opts.OrderRetryAfter
	if retry == 0 {
		retry = 1
	}
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  p.addr,
		"managementListenAddress":        strings.TrimPrefix(p.ManagementURL, "https://"),
		"certificate":                    certFile,
		"privateKey":                     keyFile,
		"httpPort":                       opts.HTTPPort,
		"tlsPort":                        ports[2],
		"externalAccountBindingRequired": len(opts.EAB) > 0,
		"externalAccountMACKeys":         opts.EAB,
		"domainBlocklist":                opts.Blocklist,
		"retryAfter":                     map[string]int{"authz": 1, "order": retry},
		"keyAlgorithm":                   "ecdsa",
		"profiles": map[string]any{
			"default":    map[string]any{"description": "The default profile", "validityPeriod": 7776000},
			"shortlived": map[string]any{"description": "A short-lived profile", "validityPeriod": 518400},
		},
	}}
	b, err := json.MarshalIndent(cfg, "", "  ")
	require.NoError(t, err)
	cfgFile := filepath.Join(dir, "pebble-config.json")
	require.NoError(t, os.WriteFile(cfgFile, b, 0o600))
	p.args = []string{"-config", cfgFile, "-dnsserver", opts.ChallSrv.DNSAddr}
	nonce := opts.NonceReject
	if nonce == 0 {
		nonce = DefaultNonceReject
	} else if nonce < 0 {
		nonce = 0
	}
	p.env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT="+strconv.Itoa(nonce))
	if opts.AuthzReuse != 0 {
		p.env = append(p.env, "PEBBLE_AUTHZREUSE="+strconv.Itoa(max(opts.AuthzReuse, 0)))
	}
	if opts.AlternateRoots > 0 {
		p.env = append(p.env, "PEBBLE_ALTERNATE_ROOTS="+strconv.Itoa(opts.AlternateRoots))
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() || os.Getenv("E2E_LOGS") != "" {
			t.Logf("pebble log (%s):\n%s", p.DirectoryURL, tail(p.logs.String(), 300))
		}
	})
	p.start(t)
	return p
}

// start runs the process and waits for the directory to answer.
func (p *Pebble) start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	c := p.HTTPClient()
	c.Timeout = time.Second
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("pebble exited before it was ready:\n%s", p.logs.String())
		default:
		}
		resp, err := c.Get(p.DirectoryURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble not ready within 20s (last: %v)\n%s", err, p.logs.String())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Stop kills Pebble (its state is in memory; there is nothing to flush).
func (p *Pebble) Stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts a stopped Pebble again on the same ports. Its state is
// gone: accounts, orders and the issuing hierarchy are new.
func (p *Pebble) Restart(t testing.TB) {
	t.Helper()
	p.Stop()
	p.start(t)
}

// Logs returns Pebble's output so far.
func (p *Pebble) Logs() string { return p.logs.String() }

var (
	addedOrder  = regexp.MustCompile(`Added order "([^"]+)" to the db`)
	accountsNow = regexp.MustCompile(`There are now (\d+) accounts in memory`)
)

// Orders counts the orders Pebble created (its log's "Added order").
func (p *Pebble) Orders() int { return len(addedOrder.FindAllString(p.logs.String(), -1)) }

// Accounts is how many accounts Pebble holds.
func (p *Pebble) Accounts() int {
	m := accountsNow.FindAllStringSubmatch(p.logs.String(), -1)
	if len(m) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

// HTTPClient trusts Pebble's TLS certificate (WFE and management API).
func (p *Pebble) HTTPClient() *http.Client {
	pool := x509.NewCertPool()
	if b, err := os.ReadFile(p.CAFile); err == nil {
		pool.AppendCertsFromPEM(b)
	}
	tr := &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// RootPEM returns root i of the issuing hierarchy (0 is the default
// chain's, 1.. the alternates'); it changes at each start.
func (p *Pebble) RootPEM(t testing.TB, i int) []byte {
	t.Helper()
	resp, err := p.HTTPClient().Get(fmt.Sprintf("%s/roots/%d", p.ManagementURL, i))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET /roots/%d: %s", i, b)
	return b
}

// Roots is a pool of root 0.
func (p *Pebble) Roots(t testing.TB) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(p.RootPEM(t, 0)))
	return pool
}

// CertStatus is Pebble's view of a certificate.
type CertStatus struct {
	// Status is "Valid" or "Revoked".
	Status string
	Reason *int
}

// CertStatus looks a certificate up by serial (lower-case hex).
func (p *Pebble) CertStatus(t testing.TB, serialHex string) CertStatus {
	t.Helper()
	resp, err := p.HTTPClient().Get(p.ManagementURL + "/cert-status-by-serial/" + serialHex)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "Pebble does not know serial %s", serialHex)
	var st CertStatus
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return st
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) <= n {
		return s
	}
	return strings.Join(lines[len(lines)-n:], "\n")
}
