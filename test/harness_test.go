// Package test holds the end-to-end tests: the built acmebridge binary,
// started as a subprocess on free loopback ports, driven by real ACME
// clients (lego as a library, the lego CLI, certbot).
package test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/internal/testutil"
	"github.com/acmebridge/acmebridge/upstream"
)

const (
	// toolTimeout bounds every client subprocess.
	toolTimeout = 2 * time.Minute
	// readyTimeout bounds the wait for /readyz.
	readyTimeout = 30 * time.Second
	// stopTimeout bounds the graceful shutdown after SIGTERM.
	stopTimeout = 20 * time.Second
)

// binPath is the acmebridge binary TestMain builds.
var binPath string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	path, cleanup, err := testutil.BuildBinary("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer cleanup()
	binPath = path
	return m.Run()
}

// server is one running acmebridge process.
type server struct {
	// Dir is the test's temporary directory (config, data, client state).
	Dir        string
	DataDir    string
	ConfigPath string
	// BaseURL is the external URL; DirectoryURL the ACME directory.
	BaseURL      string
	DirectoryURL string
	AdminURL     string
	// HTTPPort and TLSALPNPort are where the validator connects for
	// http-01 and tls-alpn-01; clients listen there.
	HTTPPort    int
	TLSALPNPort int
	// CAFile is data_dir/ca.pem; Roots holds its certificates.
	CAFile string
	Roots  *x509.CertPool
	// DNS is the test DNS server acmebridge resolves through.
	DNS *dnsServer
	// Directory is the ACME directory DirectoryURL names ("" the top
	// level); createEAB makes its keys for it.
	Directory string

	// AdminCAFile is the CA of the admin listener's certificate when it
	// serves HTTPS (startServerAdminTLS); adminClient trusts it.
	AdminCAFile string
	adminClient *http.Client

	logs *syncBuffer
	cmd  *exec.Cmd
	done chan struct{}
	err  error // the process's exit, valid after done
}

// startServer writes a config (extraYAML is appended: top-level sections
// the base config does not set), starts acmebridge with it and a test DNS
// server, waits for /readyz and stops the process with SIGTERM when the
// test ends, requiring a clean exit. Its output is printed if the test
// fails (or always, with E2E_LOGS=1).
func startServer(t *testing.T, extraYAML string) *server {
	t.Helper()
	return startServerWith(t, extraYAML, serverOpts{})
}

// startServerAdminTLS is startServer with the admin listener on HTTPS
// (admin.tls with a certificate for 127.0.0.1 from a test CA, AdminCAFile,
// which is also the config's admin.tls.ca_file).
func startServerAdminTLS(t *testing.T, extraYAML string) *server {
	t.Helper()
	return startServerWith(t, extraYAML, serverOpts{adminTLS: true})
}

// serverOpts vary the config startServerWith writes.
type serverOpts struct {
	// adminTLS serves the admin listener over HTTPS (startServerAdminTLS).
	adminTLS bool
	// privateDenied leaves validation.allow_private_addresses out of the
	// file, so validations refuse loopback (the clients' listeners here).
	privateDenied bool
	// adminYAML is more of the admin section (keys at two spaces).
	adminYAML string
	// env is added to the process's environment (KEY=value, later wins).
	env []string
	// whileStarting runs from the process's start until it is ready (or
	// has exited); it must return once stop is closed.
	whileStarting func(s *server, stop <-chan struct{})
}

func startServerWith(t *testing.T, extraYAML string, opts serverOpts) *server {
	t.Helper()
	dns := startDNSServer(t)
	dir := t.TempDir()
	ports := freePorts(t, 4)
	s := &server{
		Dir:         dir,
		DataDir:     filepath.Join(dir, "data"),
		ConfigPath:  filepath.Join(dir, "acmebridge.yaml"),
		BaseURL:     fmt.Sprintf("https://127.0.0.1:%d", ports[0]),
		AdminURL:    fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		HTTPPort:    ports[2],
		TLSALPNPort: ports[3],
		DNS:         dns,
		logs:        &syncBuffer{},
		done:        make(chan struct{}),
	}
	s.DirectoryURL = s.BaseURL + "/directory"
	s.CAFile = filepath.Join(s.DataDir, "ca.pem")
	s.adminClient = &http.Client{Timeout: 2 * time.Second}
	adminTLSYAML := ""
	if opts.adminTLS {
		ca, cert, key := testutil.TLSFiles(t, dir, "admin", "acmebridge-e2e admin CA", "127.0.0.1")
		s.AdminURL = strings.Replace(s.AdminURL, "http://", "https://", 1)
		s.AdminCAFile = ca
		pool := x509.NewCertPool()
		pemBytes, err := os.ReadFile(ca)
		require.NoError(t, err)
		require.True(t, pool.AppendCertsFromPEM(pemBytes))
		s.adminClient.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
		adminTLSYAML = fmt.Sprintf("  tls: {cert_file: %q, key_file: %q, ca_file: %q}\n", cert, key, ca)
	}
	adminTLSYAML += opts.adminYAML
	// The clients of these tests listen on loopback: a config file must
	// allow private addresses for them to be validated.
	privateYAML := "  allow_private_addresses: true\n"
	if opts.privateDenied {
		privateYAML = ""
	}
	cfg := fmt.Sprintf(`data_dir: %q
server:
  listen: "127.0.0.1:%d"
  external_url: %q
admin:
  listen: "127.0.0.1:%d"
%svalidation:
  http_port: %d
  tls_alpn_port: %d
  dns_resolvers: [%q]
%slog:
  level: debug
`, s.DataDir, ports[0], s.BaseURL, ports[1], adminTLSYAML, s.HTTPPort, s.TLSALPNPort, dns.Addr, privateYAML)
	cfg += extraYAML
	require.NoError(t, os.WriteFile(s.ConfigPath, []byte(cfg), 0o600))

	// Registered first, so it runs last: after the process stopped and
	// its log is complete.
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("E2E_LOGS") != "" {
			t.Logf("acmebridge config:\n%s\nacmebridge output:\n%s", cfg, s.logs.String())
		}
	})

	s.cmd = exec.Command(binPath, "serve", "--config", s.ConfigPath)
	s.cmd.Dir = dir
	if opts.env != nil {
		s.cmd.Env = append(os.Environ(), opts.env...)
	}
	s.cmd.Stdout = s.logs
	s.cmd.Stderr = s.logs
	require.NoError(t, s.cmd.Start())
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() { s.stop(t) })

	if opts.whileStarting != nil {
		stop, stopped := make(chan struct{}), make(chan struct{})
		go func() { defer close(stopped); opts.whileStarting(s, stop) }()
		defer func() { close(stop); <-stopped }()
	}
	s.waitReady(t)
	pemBytes, err := os.ReadFile(s.CAFile)
	require.NoError(t, err, "acmebridge did not write %s", s.CAFile)
	s.Roots = x509.NewCertPool()
	require.True(t, s.Roots.AppendCertsFromPEM(pemBytes), "%s holds no certificate", s.CAFile)

	// The directory answers over HTTPS with a certificate chaining to ca.pem.
	resp, err := s.HTTPClient().Get(s.DirectoryURL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return s
}

// in is s as the clients of its directory called dir see it: DirectoryURL
// is /{dir}/directory, and EAB keys are made for dir. The process is s's.
func (s *server) in(dir string) *server {
	c := *s
	c.Directory, c.DirectoryURL = dir, s.BaseURL+"/"+dir+"/directory"
	return &c
}

func (s *server) waitReady(t *testing.T) {
	t.Helper()
	c := s.adminClient
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-s.done:
			t.Fatalf("acmebridge exited before it was ready: %v", s.err)
		default:
		}
		resp, err := c.Get(s.AdminURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("acmebridge not ready within %s (last: %v)", readyTimeout, errOrStatus(resp, err))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func errOrStatus(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return resp.Status
}

// stop sends SIGTERM and requires the process to exit 0 within stopTimeout.
func (s *server) stop(t *testing.T) {
	select {
	case <-s.done:
		t.Errorf("acmebridge exited before the test ended: %v", s.err)
		return
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM acmebridge: %v", err)
	}
	select {
	case <-s.done:
		if s.err != nil {
			t.Errorf("acmebridge did not exit cleanly after SIGTERM: %v", s.err)
		}
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.done
		t.Errorf("acmebridge did not exit within %s of SIGTERM", stopTimeout)
	}
}

// Logs returns the server's output so far.
func (s *server) Logs() string { return s.logs.String() }

// HTTPClient returns a client trusting only the server's ca.pem.
func (s *server) HTTPClient() *http.Client {
	return &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: s.Roots, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: 10 * time.Second,
			Proxy:               nil,
		},
	}
}

// verifyChain parses a PEM chain (leaf first), verifies it against the
// server's ca.pem for every name (a wildcard is checked with a name it
// covers) and requires the leaf's names to be exactly names. It returns the
// leaf.
func (s *server) verifyChain(t *testing.T, chainPEM []byte, names []string) *x509.Certificate {
	t.Helper()
	return verifyChainPool(t, s.Roots, s.CAFile, chainPEM, names)
}

// verifyChainPool is verifyChain against any roots (rootsName names them in
// failures).
func verifyChainPool(t *testing.T, roots *x509.CertPool, rootsName string, chainPEM []byte, names []string) *x509.Certificate {
	t.Helper()
	certs, err := parsePEMCerts(chainPEM)
	require.NoError(t, err)
	require.NotEmpty(t, certs, "no certificate in the chain:\n%s", chainPEM)
	leaf := certs[0]
	require.False(t, leaf.IsCA, "the chain starts with a CA certificate")
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	for _, n := range names {
		host := n
		if strings.HasPrefix(n, "*.") {
			host = "x" + n[1:]
		}
		_, err := leaf.Verify(x509.VerifyOptions{
			DNSName:       host,
			Roots:         roots,
			Intermediates: inter,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		require.NoError(t, err, "chain does not verify for %s against %s", n, rootsName)
	}
	var got []string
	got = append(got, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		got = append(got, ip.String())
	}
	want := slices.Clone(names)
	slices.Sort(want)
	slices.Sort(got)
	require.Equal(t, want, got, "the certificate's names")
	return leaf
}

// requireTool returns the path of a client binary. A missing tool skips the
// test on a developer machine; under CI it is a failure (the CI image must
// install it).
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s is not installed (set CI=true to make this a failure)", name)
		}
		t.Fatalf("%s is not installed, and CI is set: %v", name, err)
	}
	return p
}

// toolEnv is the environment of client subprocesses: ours plus extra, with
// loopback kept off any configured proxy.
func toolEnv(extra ...string) []string {
	env := os.Environ()
	env = append(env, "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
	return append(env, extra...)
}

// runTool runs a client with a timeout and returns its combined output,
// failing the test (with the output) if it fails.
//
// A client that could not bind its challenge port is run again, a few
// times, a second apart: the port the server validates at is picked free
// when the server starts, but nobody holds it between steps, and any
// process on the machine (another test package's listener on port 0, an
// outgoing connection's ephemeral port) may have it for a moment.
func runTool(t *testing.T, env []string, dir, name string, args ...string) string {
	t.Helper()
	out, err := runToolErr(t, env, dir, name, args...)
	for i := 0; i < 5 && err != nil && portTaken(out); i++ {
		t.Logf("%s could not bind its port; again in 1s:\n%s", name, out)
		time.Sleep(time.Second)
		out, err = runToolErr(t, env, dir, name, args...)
	}
	require.NoError(t, err, "%s %s failed:\n%s", name, strings.Join(args, " "), out)
	return out
}

// portTaken reports whether a client's output says its listening port was
// in use (certbot's and Go's wording).
func portTaken(out string) bool {
	return strings.Contains(out, "Could not bind TCP port") || strings.Contains(out, "address already in use")
}

// runToolErr is runTool that returns the error instead of failing.
func runToolErr(t *testing.T, env []string, dir, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	var out syncBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		err = errors.Join(err, fmt.Errorf("timed out after %s", toolTimeout))
	}
	t.Logf("%s %s: %v in %s", filepath.Base(name), strings.Join(args, " "), exitText(err), time.Since(start).Round(time.Millisecond))
	return out.String(), err
}

func exitText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// itoa is strconv.Itoa, for building command lines.
func itoa(i int) string { return strconv.Itoa(i) }

// parsePEMCerts parses every CERTIFICATE block of a PEM bundle, in order.
func parsePEMCerts(b []byte) ([]*x509.Certificate, error) {
	return upstream.ParsePEMCertificates(b)
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(t testing.TB, n int) []int { return testutil.FreePorts(t, n) }

// syncBuffer is a log buffer safe for the writers exec starts.
type syncBuffer = testutil.SyncBuffer
