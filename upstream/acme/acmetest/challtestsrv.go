package acmetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/internal/testutil"
)

// ChallSrv is a running pebble-challtestsrv: a DNS server answering A
// 127.0.0.1 for every name (and no AAAA) and the TXT records set through
// its management API. Pebble's VA resolves through it.
//
// It also serves lego's httpreq DNS provider protocol (POST /present and
// /cleanup with {"fqdn", "value"}) at HTTPReqURL, turned into set-txt and
// clear-txt: the shim acmebridge's dns-01 solver talks to in tests.
type ChallSrv struct {
	// DNSAddr is the DNS server (UDP and TCP); MgmtURL its management API.
	DNSAddr, MgmtURL string
	// HTTPReqURL is the httpreq shim (HTTPREQ_ENDPOINT).
	HTTPReqURL string

	presents    atomic.Int64
	hookMu      sync.Mutex
	hook        func(fqdn string)
	cleanupHook func(fqdn string)
	logs        *syncBuffer
}

// StartChallSrv starts pebble-challtestsrv and the httpreq shim.
func StartChallSrv(t testing.TB) *ChallSrv {
	t.Helper()
	_, bin := Binaries(t)
	c := &ChallSrv{logs: &syncBuffer{}}
	var cmd *exec.Cmd
	var done chan struct{}
	for attempt := 0; ; attempt++ {
		dnsPort, mgmtPort := freeUDPAndTCPPort(t), freePorts(t, 1)[0]
		c.DNSAddr = fmt.Sprintf("127.0.0.1:%d", dnsPort)
		c.MgmtURL = fmt.Sprintf("http://127.0.0.1:%d", mgmtPort)
		proc := exec.Command(bin, "-dnsserver", c.DNSAddr, "-management", fmt.Sprintf("127.0.0.1:%d", mgmtPort),
			"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")
		proc.Stdout, proc.Stderr = c.logs, c.logs
		require.NoError(t, proc.Start())
		exited := make(chan struct{})
		go func() { _ = proc.Wait(); close(exited) }()
		cmd, done = proc, exited
		err := waitTCP(fmt.Sprintf("127.0.0.1:%d", mgmtPort), exited, 10*time.Second)
		if err == nil {
			break
		}
		_ = proc.Process.Kill()
		<-exited
		if attempt >= 3 {
			t.Fatalf("pebble-challtestsrv did not start: %v\n%s", err, c.logs.String())
		}
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() && os.Getenv("E2E_LOGS") != "" {
			t.Logf("pebble-challtestsrv log:\n%s", c.logs.String())
		}
	})
	shim := httptest.NewServer(http.HandlerFunc(c.serveHTTPReq))
	t.Cleanup(shim.Close)
	c.HTTPReqURL = shim.URL
	return c
}

// SetTXT adds a TXT value at host (a FQDN).
func (c *ChallSrv) SetTXT(host, value string) error {
	return c.post("/set-txt", map[string]string{"host": host, "value": value})
}

// ClearTXT removes every TXT value at host.
func (c *ChallSrv) ClearTXT(host string) error {
	return c.post("/clear-txt", map[string]string{"host": host})
}

// SetCNAME makes host (a FQDN) an alias of target.
func (c *ChallSrv) SetCNAME(host, target string) error {
	return c.post("/set-cname", map[string]string{"host": host, "target": target})
}

// Presents counts the records the httpreq shim was asked to set.
func (c *ChallSrv) Presents() int { return int(c.presents.Load()) }

// OnPresent installs a function the shim calls (and waits for) before it
// sets a record: tests use it to hold an issuance mid-way. nil removes it.
func (c *ChallSrv) OnPresent(f func(fqdn string)) {
	c.hookMu.Lock()
	c.hook = f
	c.hookMu.Unlock()
}

// OnCleanup is OnPresent for the removal of a record: the shim calls f
// (and waits for it) before it clears the record.
func (c *ChallSrv) OnCleanup(f func(fqdn string)) {
	c.hookMu.Lock()
	c.cleanupHook = f
	c.hookMu.Unlock()
}

func (c *ChallSrv) post(path string, body any) error {
	b, _ := json.Marshal(body)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Post(c.MgmtURL+path, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("challtestsrv %s: %s", path, resp.Status)
	}
	return nil
}

// serveHTTPReq implements lego's httpreq protocol (default mode).
func (c *ChallSrv) serveHTTPReq(w http.ResponseWriter, r *http.Request) {
	var m struct {
		FQDN  string `json:"fqdn"`
		Value string `json:"value"`
	}
	if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&m) != nil || m.FQDN == "" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var err error
	switch r.URL.Path {
	case "/present":
		c.hookMu.Lock()
		hook := c.hook
		c.hookMu.Unlock()
		if hook != nil {
			hook(m.FQDN)
		}
		c.presents.Add(1)
		err = c.SetTXT(m.FQDN, m.Value)
	case "/cleanup":
		c.hookMu.Lock()
		hook := c.cleanupHook
		c.hookMu.Unlock()
		if hook != nil {
			hook(m.FQDN)
		}
		err = c.ClearTXT(m.FQDN)
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// freeUDPAndTCPPort returns a port free for both UDP and TCP (as every
// port testutil.FreePorts hands out is).
func freeUDPAndTCPPort(t testing.TB) int { return freePorts(t, 1)[0] }

// waitTCP waits until addr accepts connections, the process exits or d
// passes.
func waitTCP(addr string, exited <-chan struct{}, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		select {
		case <-exited:
			return fmt.Errorf("exited before it listened on %s", addr)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %s", addr, d)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(t testing.TB, n int) []int { return testutil.FreePorts(t, n) }

// syncBuffer is a log buffer safe for the writers exec starts.
type syncBuffer = testutil.SyncBuffer
