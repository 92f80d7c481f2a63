package test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// redisProc is a redis-server subprocess on a free loopback port. With
// persistence it keeps an append-only file (fsync on every write unless
// redisOptions.Fsync says otherwise) in Dir, so Kill9 followed by Restart
// loses nothing that was acknowledged.
type redisProc struct {
	// Addr is host:port; Port its port; Dir the working directory (and the
	// AOF directory when persistent).
	Addr       string
	Port       int
	Dir        string
	persistent bool
	opts       redisOptions
	bin        string
	logs       *syncBuffer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// requireRedisServer returns the path of redis-server: skipped on a
// developer machine without it, a failure under CI.
func requireRedisServer(t *testing.T) string {
	t.Helper()
	return requireTool(t, "redis-server")
}

// startRedis starts redis-server with no persistence (persistent=false) or
// with appendonly/appendfsync always (persistent=true), waits until it
// answers PING and stops it when the test ends. Its output is printed if
// the test fails.
func startRedis(t *testing.T, persistent bool) *redisProc {
	t.Helper()
	return startRedisWith(t, redisOptions{Persistent: persistent})
}

// redisOptions vary the redis-server startRedisWith runs.
type redisOptions struct {
	// Persistent keeps an append-only file; Fsync is its appendfsync
	// (default always).
	Persistent bool
	Fsync      string
	// Conf, when set, is written to Dir/redis.conf and given first (a
	// Sentinel needs a file it can rewrite); Args follow the defaults
	// (--replicaof, --cluster-enabled, --sentinel...).
	Conf string
	Args []string
}

// startRedisWith is startRedis with options.
func startRedisWith(t *testing.T, o redisOptions) *redisProc {
	t.Helper()
	bin := requireRedisServer(t)
	r := &redisProc{
		Dir:        t.TempDir(),
		persistent: o.Persistent,
		opts:       o,
		bin:        bin,
		logs:       &syncBuffer{},
	}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("E2E_LOGS") != "" {
			t.Logf("redis-server %s output:\n%s", r.Addr, r.logs.String())
		}
	})
	// A port picked free may be taken before redis binds it; try a few.
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		r.Port = freePorts(t, 1)[0]
		r.Addr = fmt.Sprintf("127.0.0.1:%d", r.Port)
		if err = r.start(); err == nil {
			break
		}
		t.Logf("redis-server on %s: %v; trying another port", r.Addr, err)
	}
	require.NoError(t, err, "redis-server did not start")
	t.Cleanup(r.stop)
	return r
}

func (r *redisProc) args() []string {
	var a []string
	if r.opts.Conf != "" {
		a = append(a, filepath.Join(r.Dir, "redis.conf"))
	}
	a = append(a, "--port", itoa(r.Port), "--bind", "127.0.0.1", "--save", "", "--daemonize", "no",
		"--dir", r.Dir, "--protected-mode", "no")
	if r.persistent {
		fsync := r.opts.Fsync
		if fsync == "" {
			fsync = "always"
		}
		a = append(a, "--appendonly", "yes", "--appendfsync", fsync)
	} else {
		a = append(a, "--appendonly", "no")
	}
	return append(a, r.opts.Args...)
}

// start runs the process and waits for PONG (or its early exit).
func (r *redisProc) start() error {
	if r.opts.Conf != "" {
		// Written at every start: a Sentinel rewrites it for its own port.
		if err := os.WriteFile(filepath.Join(r.Dir, "redis.conf"), []byte(r.opts.Conf), 0o600); err != nil {
			return err
		}
	}
	r.mu.Lock()
	fmt.Fprintf(r.logs, "--- redis-server %s\n", strings.Join(r.args(), " "))
	cmd := exec.Command(r.bin, r.args()...)
	cmd.Dir = r.Dir
	cmd.Stdout = r.logs
	cmd.Stderr = r.logs
	if err := cmd.Start(); err != nil {
		r.mu.Unlock()
		return err
	}
	done := make(chan struct{})
	r.cmd, r.done = cmd, done
	go func() {
		err := cmd.Wait()
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
		close(done)
	}()
	r.mu.Unlock()

	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("redis-server exited: %v", r.exitErr()) //nolint:errorlint // the exit error may be nil here, where %w would print %!w(<nil>)
		default:
		}
		if err := redisPing(r.Addr); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			r.kill()
			return fmt.Errorf("no PONG within %s: %w", readyTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *redisProc) exitErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// redisPing sends an inline PING and expects +PONG.
func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// redisCommand sends one command (RESP array of bulk strings) and returns
// the first line of the reply, for small checks (e.g. DBSIZE).
func redisCommand(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// kill sends SIGKILL and waits for the exit.
func (r *redisProc) kill() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Kill9 kills redis-server with SIGKILL: no shutdown, no final save.
func (r *redisProc) Kill9(t *testing.T) {
	t.Helper()
	r.kill()
	fmt.Fprintf(r.logs, "--- killed with SIGKILL\n")
	// The port is closed at once: a connection is refused.
	require.Error(t, redisPing(r.Addr), "redis-server still answers after SIGKILL")
}

// Restart starts redis-server again on the same port and directory (and
// so, when persistent, from the same append-only file).
func (r *redisProc) Restart(t *testing.T) {
	t.Helper()
	select {
	case <-r.done:
	default:
		t.Fatal("Restart: redis-server is still running")
	}
	require.NoError(t, r.start(), "redis-server did not restart on %s", r.Addr)
}

// Pause stops the process with SIGSTOP: it keeps its connections but
// neither reads nor answers until Resume.
func (r *redisProc) Pause(t *testing.T) {
	t.Helper()
	r.signal(t, syscall.SIGSTOP)
}

// Resume continues a paused process (SIGCONT).
func (r *redisProc) Resume(t *testing.T) {
	t.Helper()
	r.signal(t, syscall.SIGCONT)
}

func (r *redisProc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	r.mu.Lock()
	cmd := r.cmd
	r.mu.Unlock()
	require.NoError(t, cmd.Process.Signal(sig), "redis-server %s: %v", r.Addr, sig)
	fmt.Fprintf(r.logs, "--- %v\n", sig)
}

// stop ends the process at cleanup (SIGKILL: nothing is kept).
func (r *redisProc) stop() {
	r.kill()
}

// AOFFiles lists the append-only files written so far (persistent mode).
func (r *redisProc) AOFFiles() []string {
	var out []string
	_ = filepath.WalkDir(r.Dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(d.Name(), ".aof") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestRedisProcess checks the helper itself: PING, persistence across
// SIGKILL and restart on the same port.
func TestRedisProcess(t *testing.T) {
	r := startRedis(t, true)
	got, err := redisCommand(r.Addr, "SET", "e2e:key", "value")
	require.NoError(t, err)
	require.Equal(t, "+OK", got)
	r.Kill9(t)
	r.Restart(t)
	got, err = redisCommand(r.Addr, "EXISTS", "e2e:key")
	require.NoError(t, err)
	require.Equal(t, ":1", got, "an acknowledged write survives SIGKILL with appendfsync always")
	require.NotEmpty(t, r.AOFFiles())

	v := startRedis(t, false)
	require.NoError(t, redisPing(v.Addr))
	require.NotEqual(t, r.Addr, v.Addr)
}
