package testutil

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// Ports for tests are taken below the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range), where no outgoing connection and
// no listener on port 0 ever lands: a port picked by listening on port 0 and
// closing again, as FreePorts once did, could be taken by another test
// package's connection in the moment before the test's server bound it.
// Between test binaries running at once, a port is claimed with an exclusive
// flock on a file named after it, held until the test that took it ends (or
// its process exits), so two packages never hand out the same port.
const (
	portSpan      = 16384
	portFloor     = 1024
	defaultTopEph = 32768
)

var (
	portMu   sync.Mutex
	portDir  string
	portHeld = map[int]bool{}
)

// FreePorts returns n distinct TCP ports on 127.0.0.1 that nothing listens
// on (for TCP and UDP, on any address), reserved for t until it ends.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for len(ports) < n {
		ports = append(ports, reservePort(t))
	}
	return ports
}

func reservePort(t testing.TB) int {
	t.Helper()
	lo, hi := portRange()
	span := hi - lo
	start := rand.IntN(span)
	for i := 0; i < span; i++ {
		port := lo + (start+i)%span
		if release, ok := claimPort(t, port); ok {
			if bindable(port) {
				t.Cleanup(release)
				return port
			}
			release()
		}
	}
	t.Fatalf("no free port in [%d, %d)", lo, hi)
	return 0
}

// portRange is the span of portSpan ports just below the ephemeral range.
func portRange() (lo, hi int) {
	hi = defaultTopEph
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil && v > portFloor+1024 {
				hi = v
			}
		}
	}
	lo = max(hi-portSpan, portFloor)
	return lo, hi
}

// claimPort takes port for this process and, through a lock file, from
// every other test process; release gives it back.
func claimPort(t testing.TB, port int) (release func(), ok bool) {
	portMu.Lock()
	defer portMu.Unlock()
	if portHeld[port] {
		return nil, false
	}
	if portDir == "" {
		portDir = filepath.Join(os.TempDir(), "acmebridge-test-ports")
		require.NoError(t, os.MkdirAll(portDir, 0o755))
	}
	f, err := os.OpenFile(filepath.Join(portDir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	portHeld[port] = true
	return func() {
		portMu.Lock()
		defer portMu.Unlock()
		delete(portHeld, port)
		f.Close() // releases the lock
	}, true
}

// bindable reports whether port can be bound now for TCP and UDP on every
// address (a bind on 0.0.0.0 fails if anything holds the port on any).
func bindable(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		return false
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", fmt.Sprintf(":%d", port))
	if err != nil {
		return false
	}
	u.Close()
	return true
}
