package redis

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The tests run against real redis-server processes on free loopback
// ports, without persistence: one plain server started by TestMain, and a
// three-master Cluster and a Sentinel started by the first test that needs
// them. All are killed when the tests end.

var (
	// skipReason is set when redis-server is missing outside CI.
	skipReason string
	// redisBin and tmpDir are where the binary and the servers' files are.
	redisBin, tmpDir string
	// single is the plain server.
	single *server

	procsMu sync.Mutex
	procs   []*server

	clusterOnce  sync.Once
	clusterAddrs []string
	clusterErr   error

	sentinelOnce sync.Once
	sentinelAddr string
	sentinelErr  error
)

// sentinelMaster is the name the test Sentinel monitors the plain server
// under.
const sentinelMaster = "acmebridge-test"

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	// go-redis logs dial failures and Sentinel events through a global
	// logger; the tests provoke both on purpose.
	redis.SetLogger(quietLogger{})
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, "store/redis: redis-server is not on PATH and CI is set; install it (apt-get install -y redis-server)")
			return 1
		}
		skipReason = "redis-server is not on PATH: install it (apt-get install -y redis-server) to run the Redis store tests"
		return m.Run()
	}
	redisBin = bin
	if tmpDir, err = os.MkdirTemp("", "acmebridge-redis-test-"); err != nil {
		fmt.Fprintln(os.Stderr, "store/redis:", err)
		return 1
	}
	defer os.RemoveAll(tmpDir)
	defer stopAll()
	if single, err = startServer(nil); err != nil {
		fmt.Fprintln(os.Stderr, "store/redis: start redis-server:", err)
		return 1
	}
	return m.Run()
}

// requireRedis skips t when redis-server is missing (outside CI) and
// returns the plain server's address.
func requireRedis(t testing.TB) string {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	return single.addr
}

// requireCluster returns the addresses of the three Cluster masters,
// starting them on first use.
func requireCluster(t testing.TB) []string {
	t.Helper()
	requireRedis(t)
	clusterOnce.Do(func() { clusterAddrs, clusterErr = startCluster() })
	if clusterErr != nil {
		t.Fatalf("start Redis Cluster: %v", clusterErr)
	}
	return clusterAddrs
}

// requireSentinel returns the address of a Sentinel monitoring the plain
// server as sentinelMaster, starting it on first use.
func requireSentinel(t testing.TB) string {
	t.Helper()
	requireRedis(t)
	sentinelOnce.Do(func() { sentinelAddr, sentinelErr = startSentinel() })
	if sentinelErr != nil {
		t.Fatalf("start Redis Sentinel: %v", sentinelErr)
	}
	return sentinelAddr
}

// quietLogger discards go-redis's log lines.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// server is one redis-server process.
type server struct {
	addr string
	port int
	args []string
	cmd  *exec.Cmd
	done chan struct{}
	logs *syncBuffer
}

// syncBuffer is a bytes.Buffer safe for the process's output writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startServer starts redis-server on a free port and waits until it answers
// PING. extra, if set, returns a configuration file (or "") and arguments
// for the port. A port taken between the pick and the bind is retried with
// another.
func startServer(extra func(port int) (conf string, args []string, err error)) (*server, error) {
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		var args []string
		var more []string
		if extra != nil {
			conf, a, err := extra(port)
			if err != nil {
				return nil, err
			}
			if conf != "" {
				args = append(args, conf)
			}
			more = a
		}
		args = append(args, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
			"--appendonly", "no", "--daemonize", "no", "--dir", tmpDir)
		args = append(args, more...)
		srv := &server{addr: fmt.Sprintf("127.0.0.1:%d", port), port: port, args: args}
		if lastErr = srv.start(); lastErr == nil {
			return srv, nil
		}
	}
	return nil, lastErr
}

// start runs the process and waits for PING.
func (srv *server) start() error {
	srv.logs = &syncBuffer{}
	srv.cmd = exec.Command(redisBin, srv.args...)
	srv.cmd.Stdout, srv.cmd.Stderr = srv.logs, srv.logs
	srv.cmd.SysProcAttr = sysProcAttr()
	if err := srv.cmd.Start(); err != nil {
		return err
	}
	srv.done = make(chan struct{})
	go func() {
		_ = srv.cmd.Wait()
		close(srv.done)
	}()
	procsMu.Lock()
	procs = append(procs, srv)
	procsMu.Unlock()
	if err := waitPing(srv.addr, srv.done, 10*time.Second); err != nil {
		srv.stop()
		return fmt.Errorf("%s: %w\n%s", srv.addr, err, srv.logs.String())
	}
	return nil
}

// stop kills the process and waits for it.
func (srv *server) stop() {
	if srv.cmd == nil || srv.cmd.Process == nil {
		return
	}
	_ = srv.cmd.Process.Kill()
	<-srv.done
}

// stopAll kills every process the tests started.
func stopAll() {
	procsMu.Lock()
	defer procsMu.Unlock()
	for _, srv := range procs {
		srv.stop()
	}
	procs = nil
}

// waitPing waits until addr answers PING, the process ends, or timeout.
func waitPing(addr string, done <-chan struct{}, timeout time.Duration) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return errors.New("redis-server exited")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no PONG within %v: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startCluster starts three Cluster-enabled servers, joins them with
// redis-cli --cluster create, and waits until each says cluster_state:ok.
func startCluster() ([]string, error) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, fmt.Errorf("redis-cli (package redis-tools) is not on PATH: %w", err)
	}
	var addrs []string
	for range 3 {
		srv, err := startServer(func(port int) (string, []string, error) {
			bus, err := freePort()
			if err != nil {
				return "", nil, err
			}
			return "", []string{"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus),
				"--cluster-config-file", filepath.Join(tmpDir, fmt.Sprintf("nodes-%d.conf", port)),
				"--cluster-node-timeout", "5000"}, nil
		})
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, srv.addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("redis-cli %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	for _, addr := range addrs {
		if err := waitClusterOK(addr, 30*time.Second); err != nil {
			return nil, err
		}
	}
	return addrs, nil
}

// waitClusterOK waits until the node at addr reports cluster_state:ok.
func waitClusterOK(addr string, timeout time.Duration) error {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	deadline := time.Now().Add(timeout)
	for {
		info, err := c.ClusterInfo(context.Background()).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: cluster not ok after %v: %v %s", addr, timeout, err, info) //nolint:errorlint // err may be nil here, where %w would print %!w(<nil>)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startSentinel starts a Sentinel monitoring the plain server and waits
// until it names it as the master.
func startSentinel() (string, error) {
	srv, err := startServer(func(port int) (string, []string, error) {
		// Sentinel rewrites its configuration file, so it needs one.
		conf := filepath.Join(tmpDir, fmt.Sprintf("sentinel-%d.conf", port))
		host, p, _ := net.SplitHostPort(single.addr)
		text := fmt.Sprintf("sentinel monitor %s %s %s 1\nsentinel down-after-milliseconds %s 5000\n",
			sentinelMaster, host, p, sentinelMaster)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			return "", nil, err
		}
		return conf, []string{"--sentinel"}, nil
	})
	if err != nil {
		return "", err
	}
	c := redis.NewSentinelClient(&redis.Options{Addr: srv.addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := c.GetMasterAddrByName(context.Background(), sentinelMaster).Result()
		if err == nil && len(got) == 2 && net.JoinHostPort(got[0], got[1]) == single.addr {
			return srv.addr, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("sentinel %s does not name the master: %v %v\n%s", srv.addr, got, err, srv.logs.String()) //nolint:errorlint // err may be nil here, where %w would print %!w(<nil>)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freshPrefix returns a key prefix no other test uses, so every store a
// test opens starts empty.
func freshPrefix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "t" + hex.EncodeToString(b) + ":"
}
