// Package vaulttest runs the real Vault dev server built from test/vaultdev
// for tests, and sets up PKI in it through Vault's HTTP API, exactly as an
// operator would. It is imported only by tests.
//
// The binary comes from $ACMEBRIDGE_VAULT_BIN (what `make vault-dev`
// exports), else from the build cache
// ($XDG_CACHE_HOME or ~/.cache)/acmebridge/vault-dev-HASH, else it is built
// there on demand (6 to 9 minutes cold on 2 cores). A test is skipped only
// when CI is unset and no binary can be had.
package vaulttest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/internal/testutil"
)

// Environment and defaults.
const (
	// EnvBin names a prebuilt dev server binary.
	EnvBin = "ACMEBRIDGE_VAULT_BIN"
	// EnvBuild set to 0 forbids building the binary on demand.
	EnvBuild = "ACMEBRIDGE_VAULT_BUILD"
	// RootToken is the dev server's fixed root token.
	RootToken = "acmebridge-dev-root"
	// readyTimeout bounds the wait for a started server.
	readyTimeout = 20 * time.Second
	// buildTimeout bounds an on-demand build.
	buildTimeout = 20 * time.Minute
)

// SourceFiles are the files of test/vaultdev whose content names the
// cached binary.
var SourceFiles = []string{"go.mod", "go.sum", "main.go"}

// Server is one running dev server. Its storage is in memory: a restart
// begins empty (the root token is the same).
type Server struct {
	// URL is http(s)://127.0.0.1:PORT; Addr its host:port.
	URL, Addr string
	// Token is the root token.
	Token string
	// CAFile is the PEM CA of the server's TLS certificate (TLS only).
	CAFile string

	bin      string
	tlsFiles []string // -tls-cert, -tls-key
	logs     *syncBuffer
	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
}

// Options configures Start.
type Options struct {
	// TLS serves HTTPS with a certificate for 127.0.0.1 from a fresh CA
	// (Server.CAFile).
	TLS bool
}

// Start starts a dev server on a free loopback port and stops it when the
// test ends, printing its log if the test failed.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{bin: Binary(t), Token: RootToken, logs: &syncBuffer{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s.Addr = l.Addr().String()
	require.NoError(t, l.Close())
	s.URL = "http://" + s.Addr
	if opts.TLS {
		s.URL = "https://" + s.Addr
		s.CAFile, s.tlsFiles = writeTLSFiles(t)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() || os.Getenv("E2E_LOGS") != "" {
			t.Logf("vault dev server log:\n%s", s.logs.String())
		}
	})
	s.start(t)
	return s
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	args := []string{"-addr", s.Addr, "-root-token", s.Token}
	if len(s.tlsFiles) == 2 {
		args = append(args, "-tls-cert", s.tlsFiles[0], "-tls-key", s.tlsFiles[1])
	}
	// A port just freed by Kill may take a moment to be bindable again.
	deadline := time.Now().Add(readyTimeout)
	for {
		cmd := exec.Command(s.bin, args...)
		cmd.Stdout, cmd.Stderr = s.logs, s.logs
		require.NoError(t, cmd.Start())
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		s.mu.Lock()
		s.cmd, s.done = cmd, done
		s.mu.Unlock()
		err := s.waitReady(done, deadline)
		if err == nil {
			return
		}
		if !errors.Is(err, errExited) || time.Now().After(deadline) {
			t.Fatalf("vault dev server at %s: %v\n%s", s.Addr, err, s.logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

var errExited = errors.New("exited before it was ready")

// waitReady polls sys/health until Vault reports itself unsealed.
func (s *Server) waitReady(done <-chan struct{}, deadline time.Time) error {
	c := s.HTTPClient()
	c.Timeout = time.Second
	for {
		select {
		case <-done:
			return errExited
		default:
		}
		resp, err := c.Get(s.URL + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %s (last: %v)", readyTimeout, err) //nolint:errorlint // err may be nil here, where %w would print %!w(<nil>)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Kill stops the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts a new server on the same address after Kill. Its storage
// is empty: set PKI up again.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Kill()
	s.start(t)
}

// Stop ends the server. Its storage is in memory, so there is nothing to
// flush: it is killed like Kill.
func (s *Server) Stop() { s.Kill() }

// Logs returns the server's output so far.
func (s *Server) Logs() string { return s.logs.String() }

// HTTPClient returns a plain HTTP client trusting the server.
func (s *Server) HTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if s.CAFile != "" {
		tr.TLSClientConfig = tlsConfigFor(s.CAFile)
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// Client returns a vault/api client with token (the root token when empty).
func (s *Server) Client(t testing.TB, token string) *api.Client {
	t.Helper()
	if token == "" {
		token = s.Token
	}
	c, err := api.NewClient(&api.Config{Address: s.URL, HttpClient: s.HTTPClient(), MaxRetries: 0, Timeout: 30 * time.Second})
	require.NoError(t, err)
	c.SetToken(token)
	c.ClearNamespace()
	return c
}

// Binary returns the dev server binary: $ACMEBRIDGE_VAULT_BIN, else the
// cached build, else a build made now (under a lock, so parallel test
// binaries build it once). Without it the test is skipped, or fails under
// CI.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvBin); p != "" {
		_, err := os.Stat(p)
		require.NoError(t, err, "%s names a missing binary", EnvBin)
		return p
	}
	src, err := sourceDir()
	if err != nil {
		unavailable(t, "cannot find test/vaultdev: %v", err)
	}
	bin, err := CachedPath(src)
	if err != nil {
		unavailable(t, "%v", err)
	}
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if os.Getenv(EnvBuild) == "0" {
		unavailable(t, "%s is not built and %s=0 forbids building it (run `make vault-dev`)", bin, EnvBuild)
	}
	t.Logf("building the Vault dev server into %s (6 to 9 minutes the first time; `make vault-dev` does it ahead)", bin)
	start := time.Now()
	if err := build(src, bin); err != nil {
		unavailable(t, "building the Vault dev server: %v", err)
	}
	t.Logf("built the Vault dev server in %s", time.Since(start).Round(time.Second))
	return bin
}

// unavailable skips the test, or fails it under CI.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "" {
		t.Skipf("no Vault dev server: "+format+" (set CI=true to make this a failure)", args...)
	}
	t.Fatalf("no Vault dev server, and CI is set: "+format, args...)
}

// CachedPath is where the binary for the sources in src is cached: named
// by a hash of SourceFiles, so an edit builds a new one.
func CachedPath(src string) (string, error) {
	h := sha256.New()
	for _, f := range SourceFiles {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "acmebridge", "vault-dev-"+hex.EncodeToString(h.Sum(nil))[:12]), nil
}

// sourceDir finds test/vaultdev above the working directory.
func sourceDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "test", "vaultdev")
		if _, err := os.Stat(filepath.Join(p, "main.go")); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no test/vaultdev/main.go in any parent directory")
		}
		dir = parent
	}
}

// build compiles the dev server into bin, under an exclusive lock.
func build(src, bin string) error {
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(bin+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing the file releases the lock anyway
	if _, err := os.Stat(bin); err == nil {
		return nil // built by another process while we waited
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	tmp := bin + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", tmp, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w\n%s", err, lastLines(out, 30))
	}
	return os.Rename(tmp, bin)
}

// lastLines returns the last n lines of b.
func lastLines(b []byte, n int) string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// syncBuffer is a log buffer safe for the writers exec starts.
type syncBuffer = testutil.SyncBuffer
