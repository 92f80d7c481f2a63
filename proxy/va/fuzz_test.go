package va

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/challenge/http01"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
)

// Fuzz targets of the validation responses (issue 8, item 1): what a DNS
// resolver and an http-01 server send back is attacker-controlled. Seeds are
// real answers: lego's own http-01 responder and the miekg/dns server the
// tests use. Invariants: no panic, every failure an *acmeerr.Error of the
// kinds validation uses, a success only when the answer really holds the
// key authorization, and nothing of a response body or record echoed in a
// problem detail (docs/security.md: the target's response text is never echoed).

// rawServer answers every DNS query, on one UDP and TCP port, with the
// bytes of the current fuzz input (its ID set to the query's).
type rawServer struct {
	addr   string
	answer atomic.Pointer[[]byte]
	hits   atomic.Int64
}

func (s *rawServer) respond(q []byte) []byte {
	s.hits.Add(1)
	p := s.answer.Load()
	if p == nil {
		return nil
	}
	out := append([]byte(nil), *p...)
	if len(out) >= 2 && len(q) >= 2 {
		out[0], out[1] = q[0], q[1]
	}
	return out
}

// newRawDNS starts a server whose answers are those of answer (nil: the
// fuzz input set with set).
func newRawDNS(tb testing.TB, answer func(q []byte) []byte) *rawServer {
	s := &rawServer{}
	if answer == nil {
		answer = s.respond
	}
	pc, l := listenDNSPort(tb)
	s.addr = l.Addr().String()
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(answer(buf[:n]), from)
		}
	}()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(2 * time.Second))
				var n [2]byte
				if _, err := io.ReadFull(c, n[:]); err != nil {
					return
				}
				q := make([]byte, int(n[0])<<8|int(n[1]))
				if _, err := io.ReadFull(c, q); err != nil {
					return
				}
				r := answer(q)
				if len(r) > 0xffff {
					r = r[:0xffff]
				}
				_, _ = c.Write(append([]byte{byte(len(r) >> 8), byte(len(r))}, r...))
			}()
		}
	}()
	tb.Cleanup(func() { _ = pc.Close(); _ = l.Close() })
	return s
}

// nxdomain answers every query NXDOMAIN.
func nxdomain(q []byte) []byte {
	var m dns.Msg
	if m.Unpack(q) != nil {
		return nil
	}
	var r dns.Msg
	r.SetRcode(&m, dns.RcodeNameError)
	b, _ := r.Pack()
	return b
}

// realDNSAnswers are answers of the test DNS server (miekg/dns, as a
// recursive resolver answers) to the questions validation asks.
func realDNSAnswers(tb testing.TB) [][]byte {
	z := &testDNS{rrs: map[string][]dns.RR{}, servfail: map[string]bool{}}
	want := dns01Value(testKeyAuth)
	for _, s := range []string{
		txt("_acme-challenge.fuzz.test.", want),
		txt("_acme-challenge.fuzz.test.", "SECRET-unrelated-record"),
		"fuzz.test. 60 IN A 192.0.2.1",
		"fuzz.test. 60 IN AAAA 2001:db8::1",
		`fuzz.test. 60 IN CAA 0 issue "ca.example; accounturi=https://acme.test/acct/1; validationmethods=dns-01"`,
		`fuzz.test. 60 IN CAA 0 issuewild ";"`,
		`fuzz.test. 60 IN CAA 128 tbs "SECRET"`,
		`fuzz.test. 60 IN CAA 0 iodef "mailto:SECRET@example.com"`,
		"_acme-challenge.cname.test. 60 IN CNAME x.auth.test.",
		txt("x.auth.test.", want),
	} {
		rr, err := dns.NewRR(s)
		require.NoError(tb, err)
		name := dns.CanonicalName(rr.Header().Name)
		z.rrs[name] = append(z.rrs[name], rr)
	}
	var out [][]byte
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"_acme-challenge.fuzz.test.", dns.TypeTXT}, {"fuzz.test.", dns.TypeA}, {"fuzz.test.", dns.TypeAAAA},
		{"fuzz.test.", dns.TypeCAA}, {"_acme-challenge.cname.test.", dns.TypeTXT}, {"missing.test.", dns.TypeTXT},
	} {
		var m dns.Msg
		m.SetQuestion(q.name, q.qtype)
		m.SetEdns0(ednsSize, false)
		w := &captureWriter{}
		z.ServeDNS(w, &m)
		b, err := w.msg.Pack()
		require.NoError(tb, err)
		out = append(out, b)
	}
	return out
}

// captureWriter is a dns.ResponseWriter that keeps the message.
type captureWriter struct {
	dns.ResponseWriter
	msg *dns.Msg
}

func (w *captureWriter) WriteMsg(m *dns.Msg) error { w.msg = m; return nil }
func (w *captureWriter) RemoteAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
}

// kindIn asserts err is an *acmeerr.Error of one of kinds, with a bounded,
// printable detail that does not hold "SECRET".
func kindIn(t *testing.T, err error, kinds ...acmeerr.Kind) *acmeerr.Error {
	t.Helper()
	var ae *acmeerr.Error
	require.True(t, errors.As(err, &ae), "not an *acmeerr.Error: %v", err)
	require.Contains(t, kinds, ae.Kind, ae.Detail)
	require.LessOrEqual(t, len(ae.Detail), 1024, ae.Detail)
	return ae
}

// FuzzDNSAnswer answers dns-01's TXT query, the A/AAAA lookups of http-01
// and tls-alpn-01, and CAA's queries with arbitrary bytes. dns-01 succeeds
// only if the answer holds a TXT record of the expected digest for the name
// asked (or a CNAME to one); no TXT value is ever put in a problem.
func FuzzDNSAnswer(f *testing.F) {
	for _, a := range realDNSAnswers(f) {
		f.Add(a)
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0x83, 0})
	s := newRawDNS(f, nil)
	v, err := New(Options{Resolvers: []string{s.addr}, Timeout: time.Second, AllowPrivate: true})
	require.NoError(f, err)
	want := dns01Value(testKeyAuth)
	f.Fuzz(func(t *testing.T, answer []byte) {
		s.answer.Store(&answer)
		ctx := t.Context()
		err := v.Validate(ctx, IdentDNS, "fuzz.test", TypeDNS01, testToken, testKeyAuth)
		if err != nil {
			ae := kindIn(t, err, acmeerr.DNS, acmeerr.IncorrectResponse)
			require.NotContains(t, ae.Detail, "SECRET", "a TXT record was echoed")
		} else {
			// The answer holds the digest, for the name asked or a name a
			// CNAME from it points at.
			var m dns.Msg
			require.NoError(t, m.Unpack(answer), "dns-01 passed on an answer that does not parse")
			found := false
			for _, rr := range answers(&m, "_acme-challenge.fuzz.test.", dns.TypeTXT) {
				found = found || strings.Join(rr.(*dns.TXT).Txt, "") == want
			}
			require.True(t, found, "dns-01 passed without the expected TXT record: %v", m.Answer)
		}
		if _, err := v.resolver.lookupAddrs(ctx, "fuzz.test"); err != nil {
			kindIn(t, err, acmeerr.DNS)
		}
		if err := v.CheckCAA(ctx, "fuzz.test", false, []string{"ca.example"}, "https://acme.test/acct/1", TypeDNS01); err != nil {
			kindIn(t, err, acmeerr.CAA, acmeerr.DNS)
		}
	})
}

// httpFuzzServer answers every connection with the current fuzz input,
// after the first read of the request, then closes it.
type httpFuzzServer struct {
	port   int
	answer atomic.Pointer[[]byte]
}

func newHTTPFuzzServer(tb testing.TB) *httpFuzzServer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	s := &httpFuzzServer{port: l.Addr().(*net.TCPAddr).Port}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(2 * time.Second))
				buf := make([]byte, 4096)
				if _, err := c.Read(buf); err != nil {
					return
				}
				if p := s.answer.Load(); p != nil {
					_, _ = c.Write(*p)
				}
			}()
		}
	}()
	tb.Cleanup(func() { _ = l.Close() })
	return s
}

// realHTTPAnswers are the raw responses of lego's http-01 responder (what
// clients run) and of Go's net/http, for the challenge URL and others.
func realHTTPAnswers(tb testing.TB) [][]byte {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(tb, l.Close())
	p := http01.NewProviderServer("127.0.0.1", strconv.Itoa(port))
	ctx := context.Background()
	require.NoError(tb, p.Present(ctx, "127.0.0.1", testToken, testKeyAuth))
	defer func() { _ = p.CleanUp(ctx, "127.0.0.1", testToken, testKeyAuth) }()
	get := func(addr, path string) []byte {
		c, err := net.Dial("tcp", addr)
		require.NoError(tb, err)
		defer c.Close()
		_, err = fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: acmebridge-va\r\nAccept: */*\r\nConnection: close\r\n\r\n", path)
		require.NoError(tb, err)
		b, err := io.ReadAll(c)
		require.NoError(tb, err)
		return b
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var out [][]byte
	for i := 0; i < 50 && len(out) == 0; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			_ = c.Close()
			out = append(out, get(addr, wellKnownPrefix+testToken))
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	require.NotEmpty(tb, out, "lego's http-01 responder did not start")
	out = append(out, get(addr, wellKnownPrefix+"other"))

	// Go's server: a redirect, a body over the cap, chunked, 404 with a
	// body that must not be echoed.
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "http://127.0.0.1:"+strconv.Itoa(port)+wellKnownPrefix+testToken, http.StatusFound)
		case "/metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/SECRET", http.StatusFound)
		case "/big":
			_, _ = w.Write(bytes.Repeat([]byte("SECRET "), maxBody))
		case "/chunked":
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, testKeyAuth[:10])
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, testKeyAuth[10:])
		default:
			http.Error(w, "SECRET internal page", http.StatusNotFound)
		}
	})}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	go func() { _ = srv.Serve(gl) }()
	defer srv.Close()
	for _, path := range []string{"/redirect", "/metadata", "/big", "/chunked", "/missing"} {
		out = append(out, get(gl.Addr().String(), path))
	}
	return out
}

// bodyOnly is what follows the last end of headers in a raw response:
// nothing there may reach a problem detail.
func bodyOnly(raw []byte) []byte {
	end := -1
	for _, sep := range []string{"\r\n\r\n", "\n\n"} {
		if i := bytes.LastIndex(raw, []byte(sep)); i >= 0 && i+len(sep) > end {
			end = i + len(sep)
		}
	}
	if end < 0 {
		return nil
	}
	return raw[end:]
}

// FuzzHTTP01Response answers http-01's GET with arbitrary bytes: status
// lines, headers, redirects (to anywhere: the address policy is on, with
// only the test server's 127.0.0.1 let through), bodies. A failure never
// echoes the body; names resolve only through a server that knows none.
func FuzzHTTP01Response(f *testing.F) {
	for _, a := range realHTTPAnswers(f) {
		f.Add(a)
	}
	f.Add([]byte("HTTP/1.1 200 OK\r\n\r\n" + testKeyAuth + "\r\n"))
	f.Add([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 302 Found\r\nLocation: http://127.0.0.2/\r\n\r\nSECRET"))
	f.Add([]byte("HTTP/1.1 301 Moved\r\nLocation: http://fuzz.test/x\r\nContent-Length: 6\r\n\r\nSECRET"))
	s := newHTTPFuzzServer(f)
	d := newRawDNS(f, nxdomain)
	v, err := New(Options{HTTPPort: s.port, Resolvers: []string{d.addr}, Timeout: 2 * time.Second})
	require.NoError(f, err)
	v.allowed = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	f.Fuzz(func(t *testing.T, raw []byte) {
		s.answer.Store(&raw)
		err := v.Validate(t.Context(), IdentIP, "127.0.0.1", TypeHTTP01, testToken, testKeyAuth)
		if err == nil {
			// Only an answer that holds the key authorization passes.
			resp, rerr := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
			if rerr == nil {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					require.True(t, matchHTTPBody(b, testKeyAuth), "http-01 passed on a body that is not the key authorization: %q", b)
				}
			}
			return
		}
		ae := kindIn(t, err, acmeerr.Connection, acmeerr.IncorrectResponse, acmeerr.DNS, acmeerr.TLS, acmeerr.Unauthorized, acmeerr.Malformed)
		if body := bodyOnly(raw); bytes.Contains(body, []byte("SECRET")) && !bytes.Contains(raw[:len(raw)-len(body)], []byte("SECRET")) {
			require.NotContains(t, ae.Detail, "SECRET", "the response body was echoed")
		}
	})
}
