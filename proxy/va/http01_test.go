package va

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
)

const challengePath = "/.well-known/acme-challenge/" + testToken

// httpServer starts a plain HTTP server on 127.0.0.1 and returns it and its
// port.
func httpServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, int) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, portOf(t, srv.URL)
}

func withHTTPPort(p int) func(*Options) { return func(o *Options) { o.HTTPPort = p } }

func TestHTTP01Success(t *testing.T) {
	z := newTestDNS(t)
	z.add(t, "ok.test. 60 IN A 127.0.0.1")
	var hosts sync.Map
	_, port := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		hosts.Store(r.Host, r.URL.Path)
		require.Equal(t, http.MethodGet, r.Method)
		_, _ = fmt.Fprint(w, testKeyAuth+" \r\n\t\n")
	})
	v := newTestValidator(t, z, withHTTPPort(port))

	t.Run("dns identifier", func(t *testing.T) {
		require.NoError(t, v.Validate(ctxT(t), IdentDNS, "OK.test.", TypeHTTP01, testToken, testKeyAuth))
		path, ok := hosts.Load("ok.test")
		require.True(t, ok, "Host header is the name being validated")
		require.Equal(t, challengePath, path)
	})
	t.Run("ip identifier", func(t *testing.T) {
		require.NoError(t, v.Validate(ctxT(t), IdentIP, "127.0.0.1", TypeHTTP01, testToken, testKeyAuth))
		_, ok := hosts.Load("127.0.0.1")
		require.True(t, ok, "RFC 8738 §5: Host header is the IP address")
	})
}

func TestHTTP01IPv6Identifier(t *testing.T) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	var host atomic.Value
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host.Store(r.Host)
		_, _ = fmt.Fprint(w, testKeyAuth)
	})}}
	srv.Start()
	t.Cleanup(srv.Close)
	v := newTestValidator(t, nil, withHTTPPort(l.Addr().(*net.TCPAddr).Port))
	require.NoError(t, v.Validate(ctxT(t), IdentIP, "::1", TypeHTTP01, testToken, testKeyAuth))
	require.Equal(t, "[::1]", host.Load())
}

func TestHTTP01WrongKeyAuthorization(t *testing.T) {
	const body = "SECRET-BODY-0123456789"
	_, port := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprint(w, body)
	})
	v := newTestValidator(t, nil, withHTTPPort(port))
	err := v.Validate(ctxT(t), IdentIP, "127.0.0.1", TypeHTTP01, testToken, testKeyAuth)
	ae := requireKind(t, err, acmeerr.IncorrectResponse)
	require.Equal(t, "http-01: the response to http://127.0.0.1"+challengePath+" was not the key authorization", ae.Detail)
	require.NotContains(t, ae.Detail, "200", "not even the status")
	require.NotContains(t, ae.Error(), body)

	// Leading whitespace is not ignored: RFC 8555 §8.3 ignores it "at the
	// end of the body" only.
	_, port = httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprint(w, " "+testKeyAuth)
	})
	v = newTestValidator(t, nil, withHTTPPort(port))
	err = v.Validate(ctxT(t), IdentIP, "127.0.0.1", TypeHTTP01, testToken, testKeyAuth)
	requireKind(t, err, acmeerr.IncorrectResponse)
}

func TestHTTP01NotFound(t *testing.T) {
	z := newTestDNS(t)
	z.add(t, "ok.test. 60 IN A 127.0.0.1")
	_, port := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "SECRET-404-PAGE", http.StatusNotFound)
	})
	v := newTestValidator(t, z, withHTTPPort(port))
	err := v.Validate(ctxT(t), IdentDNS, "ok.test", TypeHTTP01, testToken, testKeyAuth)
	ae := requireKind(t, err, acmeerr.IncorrectResponse)
	require.Equal(t, "http-01: the response to http://ok.test"+challengePath+" was not the key authorization", ae.Detail)
	require.Contains(t, ae.Error(), "answered 404", "the status is kept for the logs")
	require.NotContains(t, ae.Error(), "SECRET")
}

// redirectChain answers challengePath with n redirects (/r/1 ... /r/n) and
// then the key authorization.
func redirectChain(n int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		i := 0
		if s, ok := strings.CutPrefix(r.URL.Path, "/r/"); ok {
			i, _ = strconv.Atoi(s)
		} else if r.URL.Path != challengePath {
			http.NotFound(w, r)
			return
		}
		if i < n {
			http.Redirect(w, r, "/r/"+strconv.Itoa(i+1), http.StatusFound)
			return
		}
		_, _ = fmt.Fprint(w, testKeyAuth)
	}
}

func TestHTTP01Redirects(t *testing.T) {
	t.Run("10 followed", func(t *testing.T) {
		_, port := httpServer(t, redirectChain(10))
		v := newTestValidator(t, nil, withHTTPPort(port))
		require.NoError(t, v.Validate(ctxT(t), IdentIP, "127.0.0.1", TypeHTTP01, testToken, testKeyAuth))
	})
	t.Run("11 refused", func(t *testing.T) {
		_, port := httpServer(t, redirectChain(11))
		v := newTestValidator(t, nil, withHTTPPort(port))
		err := v.Validate(ctxT(t), IdentIP, "127.0.0.1", TypeHTTP01, testToken, testKeyAuth)
		requireKind(t, err, acmeerr.Connection, "a redirect was refused: more than 10 redirects")
	})
	t.Run("to another name, resolved and pinned", func(t *testing.T) {
		z := newTestDNS(t)
		z.add(t, "ok.test. 60 IN A 127.0.0.1", "other.test. 60 IN A 127.0.0.1")
		var hosts []string
		var mu sync.Mutex
		var srvPort atomic.Int64
		_, port := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			hosts = append(hosts, r.Host)
			mu.Unlock()
			if r.Host == "ok.test" {
				http.Redirect(w, r, fmt.Sprintf("http://other.test:%d/x", srvPort.Load()), http.StatusMovedPermanently)
				return
			}
			_, _ = fmt.Fprint(w, testKeyAuth)
		})
		srvPort.Store(int64(port))
		v := newTestValidator(t, z, withHTTPPort(port))
		require.NoError(t, v.Validate(ctxT(t), IdentDNS, "ok.test", TypeHTTP01, testToken, testKeyAuth))
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, []string{"ok.test", "other.test:" + strconv.Itoa(port)}, hosts)
	})
	t.Run("to https without certificate verification", func(t *testing.T) {
		tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = fmt.Fprint(w, testKeyAuth)
		}))
		t.Cleanup(tlsSrv.Close)
		tlsPort := portOf(t, tlsSrv.URL)
		_, port := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, tlsSrv.URL+"/via-https", http.StatusFound)
		})
		v := newTestValidator(t, nil, withHTTPPort(port), func(o *Options) { o.TLSALPNPort = tlsPort })
		require.NoError(t, v.Validate(ctxT(t), IdentIP, "127.0.0.1", TypeHTTP01, testToken, testKeyAuth))
	})
}

func TestHTTP01RedirectRefused(t *testing.T) {
	otherPort := freePort(t)
	for name, loc := range map[string]string{
		"disallowed port":            "http://127.0.0.1:" + strconv.Itoa(otherPort) + "/x",
		"https on a disallowed port": "https://127.0.0.1:" + strconv.Itoa(otherPort) + "/x",
		"file scheme":                "file:///etc/passwd",
		"ftp scheme":                 "ftp://127.0.0.1/x",
		"gopher scheme":              "gopher://127.0.0.1:70/x",
	} {
		t.Run(name, func(t *testing.T) {
			_, port := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Location", loc)
				w.WriteHeader(http.StatusFound)
				_, _ = fmt.Fprint(w, "SECRET-REDIRECT-BODY")
			})
			v := newTestValidator(t, nil, withHTTPPort(port))
			err := v.Validate(ctxT(t), IdentIP, "127.0.0.1", TypeHTTP01, testToken, testKeyAuth)
			ae := requireKind(t, err, acmeerr.Connection, "a redirect was refused: ")
			require.NotContains(t, ae.Detail, "SECRET")
			require.NotContains(t, ae.Detail, strconv.Itoa(otherPort), "the target is not named")
			require.NotContains(t, ae.Detail, "passwd", "the target is not named")
		})
	}
}

func TestHTTP01OversizeBody(t *testing.T) {
	var written atomic.Int64
	_, port := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("SECRET-CHUNK", 4000))
		for r.Context().Err() == nil && written.Load() < 1<<30 {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	v := newTestValidator(t, nil, withHTTPPort(port))
	err := v.Validate(ctxT(t), IdentIP, "127.0.0.1", TypeHTTP01, testToken, testKeyAuth)
	ae := requireKind(t, err, acmeerr.IncorrectResponse, "was not the key authorization")
	require.NotContains(t, ae.Detail, "SECRET")
	require.Contains(t, ae.Error(), "more than 8192 bytes", "the cause is kept for the logs")
	// The server stops once the connection is closed: far less than it
	// would have sent had the body been read to the end.
	require.Less(t, written.Load(), int64(1<<30))
}

func TestHTTP01SlowServerTimesOut(t *testing.T) {
	release := make(chan struct{})
	_, port := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	v := newTestValidator(t, nil, withHTTPPort(port), func(o *Options) { o.Timeout = 200 * time.Millisecond })
	err := v.Validate(ctxT(t), IdentIP, "127.0.0.1", TypeHTTP01, testToken, testKeyAuth)
	requireKind(t, err, acmeerr.Connection, "timed out")
}

func TestHTTP01SlowBodyTimesOut(t *testing.T) {
	release := make(chan struct{})
	_, port := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		_, _ = fmt.Fprint(w, testToken)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	v := newTestValidator(t, nil, withHTTPPort(port), func(o *Options) { o.Timeout = 200 * time.Millisecond })
	err := v.Validate(ctxT(t), IdentIP, "127.0.0.1", TypeHTTP01, testToken, testKeyAuth)
	requireKind(t, err, acmeerr.Connection, "timed out")
}

func TestHTTP01ConnectionRefused(t *testing.T) {
	v := newTestValidator(t, nil, withHTTPPort(freePort(t)))
	err := v.Validate(ctxT(t), IdentIP, "127.0.0.1", TypeHTTP01, testToken, testKeyAuth)
	requireKind(t, err, acmeerr.Connection, "connection refused")
}

func TestHTTP01CancelledContext(t *testing.T) {
	_, port := httpServer(t, redirectChain(0))
	v := newTestValidator(t, nil, withHTTPPort(port))
	ctx, cancel := context.WithCancel(ctxT(t))
	cancel()
	err := v.Validate(ctx, IdentIP, "127.0.0.1", TypeHTTP01, testToken, testKeyAuth)
	requireKind(t, err, acmeerr.Connection)
}

func TestHTTP01NXDOMAIN(t *testing.T) {
	z := newTestDNS(t)
	v := newTestValidator(t, z)
	err := v.Validate(ctxT(t), IdentDNS, "missing.test", TypeHTTP01, testToken, testKeyAuth)
	requireKind(t, err, acmeerr.DNS, "NXDOMAIN")
}

// SSRF: with AllowPrivate false, nothing private is ever dialled.
func TestHTTP01PrivateAddressRefused(t *testing.T) {
	var hits atomic.Int64
	_, port := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = fmt.Fprint(w, testKeyAuth)
	})
	z := newTestDNS(t)
	z.add(t, "ok.test. 60 IN A 127.0.0.1", "mixed.test. 60 IN A 10.0.0.1", "mixed.test. 60 IN AAAA fe80::1")
	v := newTestValidator(t, z, withHTTPPort(port), func(o *Options) { o.AllowPrivate = false })

	err := v.Validate(ctxT(t), IdentIP, "127.0.0.1", TypeHTTP01, testToken, testKeyAuth)
	requireKind(t, err, acmeerr.Connection, "address 127.0.0.1 is not publicly routable")
	// For a name, the addresses the resolvers gave are not told (with
	// split-horizon DNS they describe the internal network).
	err = v.Validate(ctxT(t), IdentDNS, "ok.test", TypeHTTP01, testToken, testKeyAuth)
	ae := requireKind(t, err, acmeerr.Connection, "http-01: http://ok.test"+challengePath+": ok.test has no publicly routable address")
	require.NotContains(t, ae.Detail, "127.0.0.1")
	err = v.Validate(ctxT(t), IdentDNS, "mixed.test", TypeHTTP01, testToken, testKeyAuth)
	ae = requireKind(t, err, acmeerr.Connection, "mixed.test has no publicly routable address")
	require.NotContains(t, ae.Detail, "10.0.0.1")
	require.NotContains(t, ae.Detail, "fe80")
	err = v.Validate(ctxT(t), IdentIP, "::ffff:127.0.0.1", TypeHTTP01, testToken, testKeyAuth)
	requireKind(t, err, acmeerr.Connection, "address 127.0.0.1 is not publicly routable")
	require.Zero(t, hits.Load())
}

func TestHTTP01RedirectToPrivateRefusedBeforeDial(t *testing.T) {
	const body = "SECRET-REDIRECT-BODY"
	z := newTestDNS(t)
	z.add(t, "internal.test. 60 IN A 10.1.2.3")

	// A listener on 127.0.0.2 (loopback, forbidden) at the same port as the
	// first server, so that only the address policy can stop the dial.
	var redirectTo atomic.Value
	_, port := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", redirectTo.Load().(string))
		w.WriteHeader(http.StatusFound)
		_, _ = fmt.Fprint(w, body)
	})
	trap, err := net.Listen("tcp", net.JoinHostPort("127.0.0.2", strconv.Itoa(port)))
	if err != nil {
		t.Skip("cannot listen on 127.0.0.2:", err)
	}
	var trapped atomic.Int64
	go func() {
		for {
			c, err := trap.Accept()
			if err != nil {
				return
			}
			trapped.Add(1)
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = trap.Close() })

	v := newTestValidator(t, z, withHTTPPort(port), func(o *Options) { o.AllowPrivate = false })
	// Only the first hop, 127.0.0.1, is let through.
	v.allowed = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

	for loc, addr := range map[string]string{
		"http://169.254.169.254/latest/meta-data/":             "169.254.169.254",
		"http://127.0.0.2:" + strconv.Itoa(port) + "/x":        "127.0.0.2",
		"http://internal.test/x":                               "10.1.2.3",
		"http://[::ffff:169.254.169.254]/x":                    "169.254.169.254",
		"http://[fd00::1]:" + strconv.Itoa(port) + "/x":        "fd00::1",
		"https://100.64.0.1/x":                                 "100.64.0.1",
		"http://0.0.0.0:" + strconv.Itoa(port) + "/x":          "0.0.0.0",
		"http://localhost.:" + strconv.Itoa(port) + "/x":       "",
		"http://[fe80::1%25lo]:" + strconv.Itoa(port) + "/x":   "fe80::1",
		"http://2130706434:" + strconv.Itoa(port) + "/decimal": "",
	} {
		redirectTo.Store(loc)
		err := v.Validate(ctxT(t), IdentIP, "127.0.0.1", TypeHTTP01, testToken, testKeyAuth)
		require.Error(t, err, loc)
		var ae *acmeerr.Error
		require.ErrorAs(t, err, &ae)
		t.Log(ae.Detail)
		require.NotContains(t, ae.Detail, body, loc)
		require.NotContains(t, ae.Error(), body, loc)
		require.Equal(t, acmeerr.Connection, ae.Kind, ae.Detail)
		require.Equal(t, "http-01: http://127.0.0.1"+challengePath+": a redirect was refused: its host has no publicly routable address", ae.Detail, loc)
		if addr != "" {
			require.NotContains(t, ae.Detail, addr, "neither the target nor what it resolved to is named")
			require.Contains(t, ae.Error(), addr, "the logs have it")
		}
	}
	require.Zero(t, trapped.Load(), "a forbidden address was dialled")
}

func TestHTTP01ConcurrentValidations(t *testing.T) {
	_, port := httpServer(t, redirectChain(2))
	v := newTestValidator(t, nil, withHTTPPort(port))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < cap(errs); i++ {
		wg.Go(func() {
			errs <- v.Validate(context.Background(), IdentIP, "127.0.0.1", TypeHTTP01, testToken, testKeyAuth)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func TestValidateRejectsBadInput(t *testing.T) {
	v := newTestValidator(t, nil)
	for _, tc := range []struct {
		name                       string
		identType, ident, typ, tok string
		keyAuth                    string
		kind                       acmeerr.Kind
	}{
		{"token with slash", IdentDNS, "ok.test", TypeHTTP01, "../../etc", "../../etc.x", acmeerr.Malformed},
		{"empty token", IdentDNS, "ok.test", TypeHTTP01, "", "x", acmeerr.Malformed},
		{"key authorization of another token", IdentDNS, "ok.test", TypeHTTP01, testToken, "other.x", acmeerr.Internal},
		{"wildcard http-01", IdentDNS, "*.ok.test", TypeHTTP01, testToken, testKeyAuth, acmeerr.Malformed},
		{"wildcard tls-alpn-01", IdentDNS, "*.ok.test", TypeTLSALPN01, testToken, testKeyAuth, acmeerr.Malformed},
		{"bad name", IdentDNS, "ok.test/evil", TypeHTTP01, testToken, testKeyAuth, acmeerr.Malformed},
		{"name with port", IdentDNS, "ok.test:8080", TypeHTTP01, testToken, testKeyAuth, acmeerr.Malformed},
		{"ip as dns", IdentDNS, "127.0.0.1", TypeHTTP01, testToken, testKeyAuth, acmeerr.Malformed},
		{"bad ip", IdentIP, "1.2.3", TypeHTTP01, testToken, testKeyAuth, acmeerr.Malformed},
		{"zoned ip", IdentIP, "fe80::1%eth0", TypeHTTP01, testToken, testKeyAuth, acmeerr.Malformed},
		{"dns-01 for ip", IdentIP, "127.0.0.1", TypeDNS01, testToken, testKeyAuth, acmeerr.Malformed},
		{"unknown challenge", IdentDNS, "ok.test", "tls-sni-01", testToken, testKeyAuth, acmeerr.Malformed},
		{"unknown identifier", "email", "a@b.test", TypeHTTP01, testToken, testKeyAuth, acmeerr.UnsupportedIdentifier},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := v.Validate(ctxT(t), tc.identType, tc.ident, tc.typ, tc.tok, tc.keyAuth)
			requireKind(t, err, tc.kind)
		})
	}
}

// FuzzHTTPBody: the http-01 body comparison accepts exactly the key
// authorization followed by whitespace (RFC 8555 §8.3).
func FuzzHTTPBody(f *testing.F) {
	f.Add([]byte(testKeyAuth), testKeyAuth)
	f.Add([]byte(testKeyAuth+"\r\n"), testKeyAuth)
	f.Add([]byte(" "+testKeyAuth), testKeyAuth)
	f.Add([]byte{}, "")
	f.Add([]byte("\xff\x00"), "a.b")
	f.Fuzz(func(t *testing.T, body []byte, keyAuth string) {
		ok := matchHTTPBody(body, keyAuth)
		trimmed := strings.TrimRight(string(body), " \t\r\n")
		if ok != (trimmed == keyAuth) {
			t.Fatalf("matchHTTPBody(%q, %q) = %v", body, keyAuth, ok)
		}
		if strings.TrimRight(keyAuth, " \t\r\n") == keyAuth && !matchHTTPBody(append([]byte(keyAuth), "\n \t\r"...), keyAuth) {
			t.Fatalf("trailing whitespace not ignored for %q", keyAuth)
		}
	})
}

func TestLogOmitsToken(t *testing.T) {
	var buf syncBuffer
	_, port := httpServer(t, func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	v := newTestValidator(t, nil, withHTTPPort(port), func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	err := v.Validate(ctxT(t), IdentIP, "127.0.0.1", TypeHTTP01, testToken, testKeyAuth)
	requireKind(t, err, acmeerr.IncorrectResponse, testToken) // the client sees its URL
	logged := buf.String()
	require.Contains(t, logged, "challenge validation failed")
	require.Contains(t, logged, "<token>")
	require.NotContains(t, logged, testToken)
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestHTTP01DetailIsNoOracle (issue 14, hole 3): whatever answered, the
// client is told the same detail, so a challenge cannot be used to probe
// what sits behind a redirect (the status of an internal service, whether
// a port is open, its body). The causes stay in the error, for the logs.
func TestHTTP01DetailIsNoOracle(t *testing.T) {
	var behave atomic.Value
	_, port := httpServer(t, func(w http.ResponseWriter, r *http.Request) {
		behave.Load().(http.HandlerFunc)(w, r)
	})
	// An "internal service" on 127.0.0.2 at the same port (redirects may
	// only use the validation ports).
	internal, err := net.Listen("tcp", net.JoinHostPort("127.0.0.2", strconv.Itoa(port)))
	if err != nil {
		t.Skip("cannot listen on 127.0.0.2:", err)
	}
	isrv := &httptest.Server{Listener: internal, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			_, _ = fmt.Fprint(w, "SECRET-INTERNAL-OK")
			return
		case "/sso":
			http.Redirect(w, r, "http://127.0.0.3:"+strconv.Itoa(port)+"/SECRET-LOGIN", http.StatusFound)
			return
		}
		http.Error(w, "SECRET-INTERNAL-FORBIDDEN", http.StatusForbidden)
	})}}
	isrv.Start()
	t.Cleanup(isrv.Close)
	internalURL := "http://127.0.0.2:" + strconv.Itoa(port)
	closed := "http://127.0.0.3:" + strconv.Itoa(port) + "/"

	redirect := func(loc string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, loc, http.StatusFound) }
	}
	v := newTestValidator(t, nil, withHTTPPort(port), func(o *Options) { o.Timeout = 2 * time.Second })
	want := "http-01: the response to http://127.0.0.1" + challengePath + " was not the key authorization"
	status := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { http.Error(w, "SECRET-PAGE", code) }
	}
	for name, h := range map[string]http.HandlerFunc{
		"404":                    status(http.StatusNotFound),
		"500":                    status(http.StatusInternalServerError),
		"401":                    status(http.StatusUnauthorized),
		"200 other body":         status(http.StatusOK),
		"to internal 403":        redirect(internalURL + "/admin"),
		"to internal 200":        redirect(internalURL + "/ok"),
		"to a closed port":       redirect(closed),
		"to internal, redirects": redirect(internalURL + "/sso"),
	} {
		behave.Store(h)
		err := v.Validate(ctxT(t), IdentIP, "127.0.0.1", TypeHTTP01, testToken, testKeyAuth)
		ae := requireKind(t, err, acmeerr.IncorrectResponse)
		require.Equal(t, want, ae.Detail, name)
		for _, leak := range []string{"SECRET", "403", "404", "500", "401", "200", "127.0.0.2", "127.0.0.3", "refused"} {
			require.NotContains(t, ae.Detail, leak, name)
		}
	}
}
