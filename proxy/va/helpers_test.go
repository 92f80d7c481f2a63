package va

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
)

const (
	testToken   = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
	testKeyAuth = testToken + ".nP1qzpXGymHBrUEepNY9HCsQk7K8KhOypzEt62jcerQ"
)

// testDNS is a real miekg/dns server on a free UDP+TCP port that answers like
// a recursive resolver: it follows CNAMEs inside its own records, answers
// NXDOMAIN for unknown names, SERVFAIL for names listed in servfail, and
// truncates UDP answers larger than the client's buffer.
type testDNS struct {
	addr     string
	mu       sync.Mutex
	rrs      map[string][]dns.RR
	servfail map[string]bool
	tcpHits  atomic.Int64
	// caaQuestions counts the CAA questions asked.
	caaQuestions atomic.Int64
}

// listenDNSPort listens on one loopback port for both UDP and TCP, as a
// DNS server does (resolvers retry a truncated answer over TCP).
func listenDNSPort(tb testing.TB) (net.PacketConn, net.Listener) {
	tb.Helper()
	for range 50 {
		p, err := net.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(tb, err)
		port := p.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			return p, l
		}
		_ = p.Close()
	}
	tb.Fatal("no free UDP+TCP port")
	return nil, nil
}

func newTestDNS(t *testing.T) *testDNS {
	t.Helper()
	z := &testDNS{rrs: map[string][]dns.RR{}, servfail: map[string]bool{}}
	pc, l := listenDNSPort(t)
	z.addr = l.Addr().String()
	for _, srv := range []*dns.Server{
		{PacketConn: pc, Handler: z},
		{Listener: l, Handler: z},
	} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return z
}

// add adds records in zone-file syntax, e.g. `ok.test. 60 IN A 127.0.0.1`.
func (z *testDNS) add(t *testing.T, records ...string) {
	t.Helper()
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, s := range records {
		rr, err := dns.NewRR(s)
		require.NoError(t, err)
		name := dns.CanonicalName(rr.Header().Name)
		z.rrs[name] = append(z.rrs[name], rr)
	}
}

// setServfail makes z answer SERVFAIL for name.
func (z *testDNS) setServfail(name string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.servfail[name] = true
}

func (z *testDNS) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	if _, isTCP := w.RemoteAddr().(*net.TCPAddr); isTCP {
		z.tcpHits.Add(1)
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	q := r.Question[0]
	if q.Qtype == dns.TypeCAA {
		z.caaQuestions.Add(1)
	}
	name := dns.CanonicalName(q.Name)
	z.mu.Lock()
	if z.servfail[name] {
		m.Rcode = dns.RcodeServerFailure
	} else {
		for i := 0; i < 8; i++ {
			rrs, ok := z.rrs[name]
			if !ok {
				m.Rcode = dns.RcodeNameError
				break
			}
			var cname *dns.CNAME
			for _, rr := range rrs {
				if rr.Header().Rrtype == q.Qtype {
					m.Answer = append(m.Answer, rr)
				} else if c, ok := rr.(*dns.CNAME); ok {
					cname = c
				}
			}
			if cname == nil || len(m.Answer) > 0 {
				break
			}
			m.Answer = append(m.Answer, cname)
			name = dns.CanonicalName(cname.Target)
		}
	}
	if len(m.Answer) == 0 && m.Rcode != dns.RcodeServerFailure {
		// A negative answer carries the SOA of the zone it came from, when
		// the test gave one (RFC 2308 §3).
		for d := dns.CanonicalName(q.Name); d != ""; {
			if soa := z.soaAt(d); soa != nil {
				m.Ns = append(m.Ns, soa)
				break
			}
			_, d, _ = strings.Cut(d, ".")
		}
	}
	z.mu.Unlock()
	if _, isUDP := w.RemoteAddr().(*net.UDPAddr); isUDP {
		size := dns.MinMsgSize
		if opt := r.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

// soaAt returns the SOA record the test gave for name, if any (z.mu held).
func (z *testDNS) soaAt(name string) dns.RR {
	if name == "." {
		return nil
	}
	for _, rr := range z.rrs[name] {
		if rr.Header().Rrtype == dns.TypeSOA {
			return rr
		}
	}
	return nil
}

// newTestValidator returns a Validator that may reach loopback and resolves
// through z; mods adjust the options first.
func newTestValidator(t *testing.T, z *testDNS, mods ...func(*Options)) *Validator {
	t.Helper()
	opts := Options{AllowPrivate: true, Timeout: 5 * time.Second}
	if z != nil {
		opts.Resolvers = []string{z.addr}
	}
	for _, m := range mods {
		m(&opts)
	}
	v, err := New(opts)
	require.NoError(t, err)
	return v
}

// requireKind asserts err is an *acmeerr.Error of kind k whose detail holds
// every one of parts.
func requireKind(t *testing.T, err error, k acmeerr.Kind, parts ...string) *acmeerr.Error {
	t.Helper()
	require.Error(t, err)
	var ae *acmeerr.Error
	require.ErrorAs(t, err, &ae)
	require.Equal(t, k, ae.Kind, "kind of %q", ae.Detail)
	for _, p := range parts {
		require.Contains(t, ae.Detail, p)
	}
	return ae
}

// portOf returns the port of a "host:port" or URL string.
func portOf(t *testing.T, s string) int {
	t.Helper()
	i := strings.LastIndex(s, ":")
	require.Positive(t, i)
	p, err := strconv.Atoi(strings.TrimRight(s[i+1:], "/"))
	require.NoError(t, err)
	return p
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return p
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	return t.Context()
}
