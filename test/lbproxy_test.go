package test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// lbProxy is a round-robin TLS reverse proxy standing in for the load
// balancer in front of several replicas: every request goes to the next
// backend in turn. A backend that refuses the connection (it is down) is
// skipped for the next one, which is safe since the request never reached
// it; any other failure is answered 502, as a load balancer would. It sets
// X-Forwarded-For and X-Forwarded-Proto and counts the requests each backend
// answered.
type lbProxy struct {
	// URL is the proxy's https base URL; Roots trusts its certificate.
	URL   string
	Roots *x509.CertPool

	srv       *httptest.Server
	transport *http.Transport

	mu       sync.Mutex
	backends []string // base URLs, e.g. http://127.0.0.1:1234
	next     int
	counts   map[string]int
	refused  int // connections refused (and retried elsewhere)
	failed   int // requests answered 502
	// observe, when set, sees every answer a client gets.
	observe func(r *http.Request, status int, h http.Header, body []byte)
}

// SetObserver makes f see every answer the proxy gives a client (its own
// 502s included), after it was sent.
func (p *lbProxy) SetObserver(f func(r *http.Request, status int, h http.Header, body []byte)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.observe = f
}

func (p *lbProxy) observed(r *http.Request, status int, h http.Header, body []byte) {
	p.mu.Lock()
	f := p.observe
	p.mu.Unlock()
	if f != nil {
		f(r, status, h, body)
	}
}

// fail answers 502 and reports it to the observer.
func (p *lbProxy) fail(w http.ResponseWriter, r *http.Request, msg string) {
	http.Error(w, msg, http.StatusBadGateway)
	p.observed(r, http.StatusBadGateway, w.Header(), []byte(msg))
}

// startLBProxy starts the proxy with no backends (SetBackends adds them,
// once their configs know the proxy's URL); it stops when the test ends.
func startLBProxy(t *testing.T) *lbProxy {
	t.Helper()
	p := &lbProxy{
		counts: map[string]int{},
		transport: &http.Transport{
			// One connection per request: a backend killed between two
			// requests shows as a refused dial, never as a reused
			// connection that dies under a request.
			DisableKeepAlives:     true,
			DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			ResponseHeaderTimeout: 90 * time.Second,
			Proxy:                 nil,
		},
	}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(p.serve))
	p.srv.Config.ErrorLog = nil
	p.srv.StartTLS()
	t.Cleanup(p.srv.Close)
	p.URL = p.srv.URL
	p.Roots = x509.NewCertPool()
	p.Roots.AddCert(p.srv.Certificate())
	return p
}

// SetBackends replaces the backends (base URLs).
func (p *lbProxy) SetBackends(urls ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backends = append([]string(nil), urls...)
	p.next = 0
}

// Counts returns how many requests each backend answered.
func (p *lbProxy) Counts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.counts {
		out[k] = v
	}
	return out
}

// ResetCounts zeroes the counters.
func (p *lbProxy) ResetCounts() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts = map[string]int{}
	p.refused, p.failed = 0, 0
}

// Stats returns the refused (retried) and failed (502) counters.
func (p *lbProxy) Stats() (refused, failed int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused, p.failed
}

// HTTPClient is a client trusting only the proxy's certificate.
func (p *lbProxy) HTTPClient() *http.Client {
	return &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: p.Roots, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: 10 * time.Second,
			Proxy:               nil,
		},
	}
}

// pick returns the backends in the order to try for one request: the next
// in turn first, then the others.
func (p *lbProxy) pick() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.backends)
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, p.backends[(p.next+i)%n])
	}
	if n > 0 {
		p.next = (p.next + 1) % n
	}
	return out
}

func (p *lbProxy) count(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f()
}

func (p *lbProxy) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "lbproxy: reading the request: "+err.Error(), http.StatusBadRequest)
		return
	}
	clientIP, _, _ := net.SplitHostPort(r.RemoteAddr)
	var lastErr error
	for _, be := range p.pick() {
		out, err := http.NewRequestWithContext(r.Context(), r.Method, be+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			http.Error(w, "lbproxy: "+err.Error(), http.StatusInternalServerError)
			return
		}
		out.Header = r.Header.Clone()
		out.Header.Del("Connection")
		if prior := r.Header.Get("X-Forwarded-For"); prior != "" {
			out.Header.Set("X-Forwarded-For", prior+", "+clientIP)
		} else {
			out.Header.Set("X-Forwarded-For", clientIP)
		}
		out.Header.Set("X-Forwarded-Proto", "https")
		out.Header.Set("X-Forwarded-Host", r.Host)
		out.Host = r.Host
		out.ContentLength = int64(len(body))
		resp, err := p.transport.RoundTrip(out)
		if err != nil {
			lastErr = err
			if errors.Is(err, syscall.ECONNREFUSED) {
				// The backend is down and never saw the request: the
				// next one may take it.
				p.count(func() { p.refused++ })
				continue
			}
			p.count(func() { p.failed++ })
			p.fail(w, r, fmt.Sprintf("lbproxy: backend %s: %v", be, err))
			return
		}
		p.count(func() { p.counts[be]++ })
		for k, vs := range resp.Header {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		w.WriteHeader(resp.StatusCode)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		_, _ = w.Write(b)
		if err != nil {
			// The backend died mid-answer: the client gets a cut body.
			p.count(func() { p.failed++ })
			p.observed(r, http.StatusBadGateway, resp.Header, []byte("lbproxy: body cut: "+err.Error()))
			return
		}
		p.observed(r, resp.StatusCode, resp.Header, b)
		return
	}
	p.count(func() { p.failed++ })
	p.fail(w, r, fmt.Sprintf("lbproxy: no backend answered: %v", lastErr))
}

// TestLBProxy checks the proxy itself: round robin, X-Forwarded-For, and a
// backend that is down skipped without an error.
func TestLBProxy(t *testing.T) {
	var mu sync.Mutex
	seen := map[string][]string{}
	mk := func(name string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			seen[name] = append(seen[name], r.Header.Get("X-Forwarded-For"))
			mu.Unlock()
			fmt.Fprintf(w, "%s %s %s", name, r.Method, b)
		}))
		t.Cleanup(s.Close)
		return s
	}
	a, b := mk("a"), mk("b")
	// A port nothing listens on: refused.
	down := fmt.Sprintf("http://127.0.0.1:%d", freePorts(t, 1)[0])
	p := startLBProxy(t)
	p.SetBackends(a.URL, b.URL, down)
	c := p.HTTPClient()
	var got []string
	for i := 0; i < 6; i++ {
		resp, err := c.Post(p.URL+"/x", "text/plain", strings.NewReader(itoa(i)))
		require.NoError(t, err)
		bb, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", bb)
		got = append(got, string(bb))
	}
	// a, b, down→a, b, a... : turn order a b down a b down; down falls to a.
	require.Equal(t, []string{"a POST 0", "b POST 1", "a POST 2", "a POST 3", "b POST 4", "a POST 5"}, got)
	counts := p.Counts()
	require.Equal(t, 4, counts[a.URL])
	require.Equal(t, 2, counts[b.URL])
	refused, failed := p.Stats()
	require.Equal(t, 2, refused)
	require.Zero(t, failed)
	require.Equal(t, "127.0.0.1", seen["a"][0])
}
