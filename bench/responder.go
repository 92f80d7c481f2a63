package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// http01Prefix is the path under which http-01 answers are served
// (RFC 8555 §8.3).
const http01Prefix = "/.well-known/acme-challenge/"

// HTTP01Responder is one HTTP server answering the http-01 challenges of
// every client of a run: they share the port the server under test
// validates on, so the answers live in one map keyed by token.
type HTTP01Responder struct {
	// Addr is the address it listens on.
	Addr string

	answers sync.Map // token -> key authorization
	srv     *http.Server
	done    chan struct{}
}

// StartHTTP01 listens on addr (host:port) and serves the answers set with
// Set until Close; ctx bounds the listening only.
func StartHTTP01(ctx context.Context, addr string) (*HTTP01Responder, error) {
	l, err := new(net.ListenConfig).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http-01 responder: %w", err)
	}
	r := &HTTP01Responder{Addr: l.Addr().String(), done: make(chan struct{})}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(r.done)
		_ = r.srv.Serve(l)
	}()
	return r, nil
}

// ServeHTTP answers GET /.well-known/acme-challenge/TOKEN.
func (r *HTTP01Responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	token, ok := strings.CutPrefix(req.URL.Path, http01Prefix)
	if !ok || (req.Method != http.MethodGet && req.Method != http.MethodHead) {
		http.NotFound(w, req)
		return
	}
	v, ok := r.answers.Load(token)
	if !ok {
		http.NotFound(w, req)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	// The answer is a key authorization this process set, served as text/plain.
	_, _ = w.Write([]byte(v.(string))) //nolint:gosec // G705: not reflected input (see above)
}

// Set publishes the key authorization for token.
func (r *HTTP01Responder) Set(token, keyAuth string) { r.answers.Store(token, keyAuth) }

// Clear removes token's answer.
func (r *HTTP01Responder) Clear(token string) { r.answers.Delete(token) }

// Close stops the server.
func (r *HTTP01Responder) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := r.srv.Shutdown(ctx)
	<-r.done
	return err
}

// DNSServer is an in-process DNS server (UDP and TCP) for the server
// under test to resolve through: it answers A 127.0.0.1 for every name
// (so http-01 reaches the responder), no AAAA, CAA or other records, and
// the TXT records set for dns-01. It claims authority and recursion, so it
// serves as a resolver.
type DNSServer struct {
	// Addr is the host:port of both listeners.
	Addr string

	mu   sync.RWMutex
	txt  map[string][]string // lower-case fqdn -> values
	udp  *dns.Server
	tcp  *dns.Server
	errc chan error
}

// StartDNS listens on addr (host:port, UDP and TCP; port 0 picks one free
// for both); ctx bounds the listening only.
func StartDNS(ctx context.Context, addr string) (*DNSServer, error) {
	pc, l, err := listenPair(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("dns server: %w", err)
	}
	d := &DNSServer{Addr: pc.LocalAddr().String(), txt: map[string][]string{}, errc: make(chan error, 2)}
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	d.udp = &dns.Server{PacketConn: pc, Handler: d, NotifyStartedFunc: notify}
	d.tcp = &dns.Server{Listener: l, Handler: d, NotifyStartedFunc: notify}
	go func() { d.errc <- d.udp.ActivateAndServe() }()
	go func() { d.errc <- d.tcp.ActivateAndServe() }()
	for range 2 {
		select {
		case <-started:
		case err := <-d.errc:
			_ = d.Close()
			return nil, fmt.Errorf("dns server: %w", err)
		case <-time.After(10 * time.Second):
			_ = d.Close()
			return nil, errors.New("dns server: did not start")
		}
	}
	return d, nil
}

// listenPair binds UDP and TCP on the same port.
func listenPair(ctx context.Context, addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	tries := 1
	if port == "0" {
		tries = 20
	}
	for i := 0; ; i++ {
		var lc net.ListenConfig
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, nil, err
		}
		p := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := lc.Listen(ctx, "tcp", net.JoinHostPort(host, fmt.Sprint(p)))
		if err == nil {
			return pc, l, nil
		}
		_ = pc.Close() // the TCP port is taken: the listen error is the one that counts
		if i+1 >= tries {
			return nil, nil, err
		}
	}
}

// SetTXT adds value to the TXT records of fqdn.
func (d *DNSServer) SetTXT(fqdn, value string) {
	k := strings.ToLower(dns.Fqdn(fqdn))
	d.mu.Lock()
	defer d.mu.Unlock()
	d.txt[k] = append(d.txt[k], value)
}

// ClearTXT removes value from the TXT records of fqdn.
func (d *DNSServer) ClearTXT(fqdn, value string) {
	k := strings.ToLower(dns.Fqdn(fqdn))
	d.mu.Lock()
	defer d.mu.Unlock()
	vs := d.txt[k]
	for i, v := range vs {
		if v == value {
			vs = append(vs[:i], vs[i+1:]...)
			break
		}
	}
	if len(vs) == 0 {
		delete(d.txt, k)
	} else {
		d.txt[k] = vs
	}
}

// ServeDNS answers one query.
func (d *DNSServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative, m.RecursionAvailable = true, true
	for _, q := range req.Question {
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 0}
		switch q.Qtype {
		case dns.TypeA:
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IPv4(127, 0, 0, 1)})
		case dns.TypeTXT:
			hdr.Rrtype = dns.TypeTXT
			d.mu.RLock()
			for _, v := range d.txt[strings.ToLower(q.Name)] {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: []string{v}})
			}
			d.mu.RUnlock()
		}
		if len(m.Answer) == 0 {
			// NODATA (CAA, AAAA, a TXT not set), as a real zone answers
			// it: with its SOA, whose TTL and MINIMUM tell resolvers how
			// long to reuse the empty answer (RFC 2308 §3).
			m.Ns = append(m.Ns, &dns.SOA{
				Hdr: dns.RR_Header{Name: zoneOf(q.Name), Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 300},
				Ns:  "ns." + zoneOf(q.Name), Mbox: "hostmaster." + zoneOf(q.Name), Serial: 1,
				Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 300,
			})
		}
	}
	_ = w.WriteMsg(m)
}

// Close stops both listeners.
func (d *DNSServer) Close() error {
	return errors.Join(d.udp.Shutdown(), d.tcp.Shutdown())
}

// zoneOf is the zone a name is answered from: its last two labels (every
// name the bench orders is under one such zone).
func zoneOf(name string) string {
	labels := dns.SplitDomainName(name)
	if len(labels) > 2 {
		labels = labels[len(labels)-2:]
	}
	return dns.Fqdn(strings.Join(labels, "."))
}
