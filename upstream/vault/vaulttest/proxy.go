package vaulttest

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// ProxyMode says what a Proxy does with sign requests (paths holding
// "/sign/" or "/sign-verbatim/"); everything else always passes.
type ProxyMode int32

// The proxy modes.
const (
	// Pass forwards and answers.
	Pass ProxyMode = iota
	// SignThenDrop forwards the request, so Vault signs, and closes the
	// client's connection without the answer: a lost answer.
	SignThenDrop
	// DropUnsent reads the request and closes the connection without
	// forwarding it: the client cannot tell this from SignThenDrop.
	DropUnsent
)

// Proxy stands between a client and a dev server and loses or delays the
// answers to sign requests on demand.
type Proxy struct {
	// URL is the proxy's base URL, to use as Vault's address.
	URL  string
	mode atomic.Int32
	// once, when set, applies to the next sign request only.
	once atomic.Int32
	// delay holds every sign request this long before it is forwarded
	// (nanoseconds); signs counts the sign requests that arrived.
	delay atomic.Int64
	signs atomic.Int64
}

// StartProxy starts a proxy to target, closed when the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	p := &Proxy{}
	client := &http.Client{Timeout: time.Minute}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mode := Pass
		if strings.Contains(r.URL.Path, "/sign/") || strings.Contains(r.URL.Path, "/sign-verbatim/") {
			p.signs.Add(1)
			mode = ProxyMode(p.mode.Load())
			if once := ProxyMode(p.once.Swap(int32(Pass))); once != Pass {
				mode = once
			}
			if d := time.Duration(p.delay.Load()); d > 0 {
				select {
				case <-time.After(d):
				case <-r.Context().Done():
					return
				}
			}
		}
		if mode == DropUnsent {
			drop(w)
			return
		}
		out, err := http.NewRequest(r.Method, target+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		out.Header = r.Header.Clone()
		resp, err := client.Do(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if mode == SignThenDrop {
			drop(w)
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// SetMode sets what happens to every sign request from now on.
func (p *Proxy) SetMode(m ProxyMode) { p.mode.Store(int32(m)) }

// Next sets what happens to the next sign request only.
func (p *Proxy) Next(m ProxyMode) { p.once.Store(int32(m)) }

// SetSignDelay holds every later sign request d before it is forwarded: a
// slow CA, so signing requests are in flight for a while.
func (p *Proxy) SetSignDelay(d time.Duration) { p.delay.Store(int64(d)) }

// Signs is how many sign requests arrived so far.
func (p *Proxy) Signs() int { return int(p.signs.Load()) }

// drop closes the client's connection without an answer.
func drop(w http.ResponseWriter) {
	if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
		conn.Close()
	}
}
