package testutil

import (
	"net"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// Link is a TCP relay on a loopback port to a target address, for tests
// that need a network link they can slow down or cut: between a Redis
// master and its replica (a replica that lags, and loses what was in
// flight when the master died), or between a client and the server it
// uses (a failover moves the target).
//
// Freeze stops forwarding in both directions; what is sent meanwhile waits
// in the relay. Cut closes every connection and drops what the relay held,
// as a crashed host or a broken network does; new connections are then
// relayed again (to the current target). Unfreeze resumes forwarding.
type Link struct {
	// Addr is the relay's host:port.
	Addr string

	ln     net.Listener
	mu     sync.Mutex
	target string
	frozen bool
	thaw   *sync.Cond
	conns  map[net.Conn]struct{}
	closed bool
}

// StartLink starts a relay to target, closed when t ends.
func StartLink(t testing.TB, target string) *Link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l := &Link{Addr: ln.Addr().String(), ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	l.thaw = sync.NewCond(&l.mu)
	go l.accept()
	t.Cleanup(l.Close)
	return l
}

// SetTarget makes new connections go to target; existing ones stay.
func (l *Link) SetTarget(target string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.target = target
}

// Freeze stops forwarding bytes, both ways, until Unfreeze or Cut.
func (l *Link) Freeze() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.frozen = true
}

// Unfreeze resumes forwarding.
func (l *Link) Unfreeze() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.frozen = false
	l.thaw.Broadcast()
}

// Cut closes every relayed connection, dropping what was held, and
// unfreezes the link for new connections.
func (l *Link) Cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		_ = c.Close()
	}
	l.conns = map[net.Conn]struct{}{}
	l.frozen = false
	l.thaw.Broadcast()
}

// Close stops the relay and closes its connections.
func (l *Link) Close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	_ = l.ln.Close()
	l.Cut()
}

func (l *Link) accept() {
	for {
		in, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		target := l.target
		l.mu.Unlock()
		out, err := net.Dial("tcp", target)
		if err != nil {
			_ = in.Close()
			continue
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			_ = in.Close()
			_ = out.Close()
			return
		}
		l.conns[in], l.conns[out] = struct{}{}, struct{}{}
		l.mu.Unlock()
		go l.pipe(in, out)
		go l.pipe(out, in)
	}
}

// pipe copies src to dst, one read at a time, holding each read while the
// link is frozen; a Cut while it is held drops it.
func (l *Link) pipe(src, dst net.Conn) {
	defer func() { _ = src.Close(); _ = dst.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			l.mu.Lock()
			for l.frozen && l.live(src) {
				l.thaw.Wait()
			}
			live := l.live(src)
			l.mu.Unlock()
			if !live {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// live reports whether c is still relayed (not cut). l.mu must be held.
func (l *Link) live(c net.Conn) bool {
	_, ok := l.conns[c]
	return ok
}
