// Package acmetest runs real Pebble (Let's Encrypt's test ACME CA) and
// pebble-challtestsrv processes for tests, on free loopback ports, and
// stops them when the test ends. It is imported only by tests.
//
// The binaries come from $ACMEBRIDGE_PEBBLE_DIR (a directory holding both,
// what `make deps` fills), else from the cache
// ($XDG_CACHE_HOME or ~/.cache)/acmebridge/pebble-VERSION, else they are
// installed there with `go install` (about 45 s on a fresh machine) under a
// lock, so parallel test binaries install them once. A test is skipped only
// when CI is unset and no binary can be had.
package acmetest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Version is the Pebble release the tests run.
const Version = "v2.10.3"

// Environment.
const (
	// EnvDir names a directory holding pebble and pebble-challtestsrv.
	EnvDir = "ACMEBRIDGE_PEBBLE_DIR"
	// installTimeout bounds an on-demand install.
	installTimeout = 10 * time.Minute
)

// Packages are the two commands, as `go install` takes them.
var Packages = []string{
	"github.com/letsencrypt/pebble/v2/cmd/pebble@" + Version,
	"github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@" + Version,
}

// Dir returns the directory the binaries are (or will be) installed in.
func Dir() (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		return d, nil
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "acmebridge", "pebble-"+Version), nil
}

var installMu sync.Mutex

// Binaries returns the paths of pebble and pebble-challtestsrv, installing
// them first if they are missing.
func Binaries(t testing.TB) (pebble, challtestsrv string) {
	t.Helper()
	dir, err := Dir()
	if err != nil {
		unavailable(t, "%v", err)
	}
	pebble, challtestsrv = filepath.Join(dir, "pebble"), filepath.Join(dir, "pebble-challtestsrv")
	if exists(pebble) && exists(challtestsrv) {
		return pebble, challtestsrv
	}
	installMu.Lock()
	defer installMu.Unlock()
	t.Logf("installing Pebble %s into %s (about 45 s the first time; `make deps` does it ahead)", Version, dir)
	start := time.Now()
	if err := install(dir, pebble, challtestsrv); err != nil {
		unavailable(t, "installing Pebble: %v", err)
	}
	t.Logf("installed Pebble in %s", time.Since(start).Round(time.Second))
	return pebble, challtestsrv
}

func exists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// install runs `go install` with GOBIN=dir, under an exclusive file lock.
func install(dir string, bins ...string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing the file releases the lock anyway
	done := true
	for _, b := range bins {
		done = done && exists(b)
	}
	if done {
		return nil // installed by another process while we waited
	}
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"install"}, Packages...)...)
	// Outside any module, so the main module's go.mod plays no part.
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOWORK=off", "GOFLAGS=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w\n%s", err, bytes.TrimSpace(out))
	}
	return nil
}

// unavailable skips the test, or fails it under CI.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "" {
		t.Skipf("no Pebble: "+format+" (set CI=true to make this a failure)", args...)
	}
	t.Fatalf("no Pebble, and CI is set: "+format, args...)
}
