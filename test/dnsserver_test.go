package test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// dnsServer is the test DNS server: it answers A 127.0.0.1 for every name,
// an empty AAAA, SOA and NS for zone apexes (the last two labels of a name)
// and the TXT and CAA records the tests set (SERVFAIL for the names set
// so). It is authoritative and claims recursion, so it serves both as the
// "recursive resolver" of acmebridge's validator and of the clients'
// propagation checks.
//
// It also serves lego's httpreq DNS provider protocol over HTTP:
// POST /present and /cleanup with {"fqdn": "...", "value": "..."}.
type dnsServer struct {
	// Addr is the host:port of the UDP and TCP DNS listeners.
	Addr string
	// HTTPURL is the base URL of the httpreq endpoint.
	HTTPURL string

	mu  sync.Mutex
	txt map[string][]string // canonical fqdn -> values
	// caa and servfail are set by SetCAA and SetServfail (nil until then).
	caa      map[string][]*dns.CAA // canonical fqdn -> records
	servfail map[string]bool       // canonical fqdn -> answer SERVFAIL
}

// SetCAA adds a CAA record (RFC 8659) to fqdn, e.g.
// SetCAA("example.test", 0, "issue", "ca.example; accounturi=...").
func (d *dnsServer) SetCAA(fqdn string, flag uint8, tag, value string) {
	name := dns.CanonicalName(fqdn)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.caa == nil {
		d.caa = map[string][]*dns.CAA{}
	}
	d.caa[name] = append(d.caa[name], &dns.CAA{
		Hdr:  dns.RR_Header{Name: name, Rrtype: dns.TypeCAA, Class: dns.ClassINET, Ttl: 0},
		Flag: flag, Tag: tag, Value: value,
	})
}

// ClearCAA removes the CAA records of fqdn.
func (d *dnsServer) ClearCAA(fqdn string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.caa, dns.CanonicalName(fqdn))
}

// SetServfail makes every query for fqdn answer SERVFAIL (on) or not.
func (d *dnsServer) SetServfail(fqdn string, on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.servfail == nil {
		d.servfail = map[string]bool{}
	}
	d.servfail[dns.CanonicalName(fqdn)] = on
}

// caaOf returns the CAA records of name (a canonical fqdn), with the owner
// name as asked, and whether name answers SERVFAIL.
func (d *dnsServer) caaOf(name, asked string) ([]dns.RR, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []dns.RR
	for _, rr := range d.caa[name] {
		c := *rr
		c.Hdr.Name = asked
		out = append(out, &c)
	}
	return out, d.servfail[name]
}

// startDNSServer starts a DNS server on a free 127.0.0.1 port (UDP and TCP)
// and the httpreq endpoint; both stop when the test ends.
func startDNSServer(t testing.TB) *dnsServer {
	t.Helper()
	d := &dnsServer{txt: map[string][]string{}}

	var udp net.PacketConn
	var tcp net.Listener
	var err error
	for i := 0; i < 20; i++ {
		udp, err = net.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(t, err)
		port := udp.LocalAddr().(*net.UDPAddr).Port
		tcp, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			break
		}
		udp.Close()
		udp = nil
	}
	require.NoError(t, err, "could not bind a UDP and TCP port pair for the test DNS server")
	d.Addr = udp.LocalAddr().String()

	handler := dns.HandlerFunc(d.serveDNS)
	udpSrv := &dns.Server{PacketConn: udp, Handler: handler}
	tcpSrv := &dns.Server{Listener: tcp, Handler: handler}
	started := make(chan struct{}, 2)
	udpSrv.NotifyStartedFunc = func() { started <- struct{}{} }
	tcpSrv.NotifyStartedFunc = func() { started <- struct{}{} }
	go func() { _ = udpSrv.ActivateAndServe() }()
	go func() { _ = tcpSrv.ActivateAndServe() }()
	for i := 0; i < 2; i++ {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("test DNS server did not start")
		}
	}

	hl, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	d.HTTPURL = "http://" + hl.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /present", d.handleHTTPReq(true))
	mux.HandleFunc("POST /cleanup", d.handleHTTPReq(false))
	hsrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hsrv.Serve(hl) }()

	t.Cleanup(func() {
		_ = hsrv.Close()
		_ = udpSrv.Shutdown()
		_ = tcpSrv.Shutdown()
	})
	return d
}

// SetTXT adds value to the TXT records of fqdn.
func (d *dnsServer) SetTXT(fqdn, value string) {
	name := dns.CanonicalName(fqdn)
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, v := range d.txt[name] {
		if v == value {
			return
		}
	}
	d.txt[name] = append(d.txt[name], value)
}

// ClearTXT removes value from the TXT records of fqdn ("" removes all).
func (d *dnsServer) ClearTXT(fqdn, value string) {
	name := dns.CanonicalName(fqdn)
	d.mu.Lock()
	defer d.mu.Unlock()
	if value == "" {
		delete(d.txt, name)
		return
	}
	vals := d.txt[name][:0]
	for _, v := range d.txt[name] {
		if v != value {
			vals = append(vals, v)
		}
	}
	if len(vals) == 0 {
		delete(d.txt, name)
	} else {
		d.txt[name] = vals
	}
}

// TXT returns a copy of the TXT values of fqdn.
func (d *dnsServer) TXT(fqdn string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.txt[dns.CanonicalName(fqdn)]...)
}

func (d *dnsServer) handleHTTPReq(present bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			FQDN  string `json:"fqdn"`
			Value string `json:"value"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil || req.FQDN == "" || req.Value == "" {
			http.Error(w, "want JSON {\"fqdn\",\"value\"}", http.StatusBadRequest)
			return
		}
		if present {
			d.SetTXT(req.FQDN, req.Value)
		} else {
			d.ClearTXT(req.FQDN, req.Value)
		}
		w.WriteHeader(http.StatusOK)
	}
}

// zoneOf returns the zone apex of name: its last two labels.
func zoneOf(name string) string {
	labels := dns.SplitDomainName(name)
	if len(labels) <= 2 {
		return dns.Fqdn(strings.Join(labels, "."))
	}
	return dns.Fqdn(strings.Join(labels[len(labels)-2:], "."))
}

func (d *dnsServer) soa(zone string) *dns.SOA {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
		Ns:      "ns." + zone,
		Mbox:    "hostmaster." + zone,
		Serial:  1,
		Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 0,
	}
}

func (d *dnsServer) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := dns.CanonicalName(q.Name)
	zone := zoneOf(name)
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: 0}
	}
	if _, fail := d.caaOf(name, q.Name); fail {
		m.Rcode = dns.RcodeServerFailure
		_ = w.WriteMsg(m)
		return
	}
	if q.Qclass == dns.ClassINET {
		switch q.Qtype {
		case dns.TypeCAA:
			rrs, _ := d.caaOf(name, q.Name)
			m.Answer = append(m.Answer, rrs...)
		case dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: net.IPv4(127, 0, 0, 1).To4()})
		case dns.TypeTXT:
			for _, v := range d.TXT(name) {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: splitTXT(v)})
			}
		case dns.TypeSOA:
			if name == zone {
				m.Answer = append(m.Answer, d.soa(zone))
			}
		case dns.TypeNS:
			if name == zone {
				m.Answer = append(m.Answer, &dns.NS{Hdr: hdr(dns.TypeNS), Ns: "ns." + zone})
			}
		}
	}
	if len(m.Answer) == 0 {
		// NODATA: the SOA of the zone in the authority section.
		m.Ns = append(m.Ns, d.soa(zone))
	}
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(opt.UDPSize(), false)
	}
	if err := w.WriteMsg(m); err != nil && !errors.Is(err, net.ErrClosed) {
		fmt.Println("test DNS server: write:", err)
	}
}

// splitTXT splits a value into 255-byte character-strings.
func splitTXT(v string) []string {
	var out []string
	for len(v) > 255 {
		out = append(out, v[:255])
		v = v[255:]
	}
	return append(out, v)
}

// TestDNSServer checks the test DNS server itself, so a failure of the
// end-to-end tests is not mistaken for one of acmebridge.
func TestDNSServer(t *testing.T) {
	d := startDNSServer(t)
	c := &dns.Client{Timeout: 2 * time.Second}
	ask := func(net, name string, qt uint16) *dns.Msg {
		c.Net = net
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), qt)
		r, _, err := c.Exchange(m, d.Addr)
		require.NoError(t, err)
		require.Equal(t, dns.RcodeSuccess, r.Rcode)
		return r
	}
	r := ask("udp", "a.b.e2e.test", dns.TypeA)
	require.Len(t, r.Answer, 1)
	require.Equal(t, "127.0.0.1", r.Answer[0].(*dns.A).A.String())
	r = ask("tcp", "a.b.e2e.test", dns.TypeAAAA)
	require.Empty(t, r.Answer)
	require.Len(t, r.Ns, 1)
	r = ask("udp", "e2e.test", dns.TypeSOA)
	require.Len(t, r.Answer, 1)
	r = ask("udp", "x.e2e.test", dns.TypeSOA)
	require.Empty(t, r.Answer)

	d.SetTXT("_acme-challenge.x.e2e.test", "one")
	resp, err := http.Post(d.HTTPURL+"/present", "application/json", strings.NewReader(`{"fqdn":"_acme-challenge.x.e2e.test.","value":"two"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	r = ask("udp", "_ACME-challenge.x.e2e.test", dns.TypeTXT)
	require.Len(t, r.Answer, 2)
	resp, err = http.Post(d.HTTPURL+"/cleanup", "application/json", strings.NewReader(`{"fqdn":"_acme-challenge.x.e2e.test.","value":"one"}`))
	require.NoError(t, err)
	resp.Body.Close()
	r = ask("tcp", "_acme-challenge.x.e2e.test", dns.TypeTXT)
	require.Len(t, r.Answer, 1)
	require.Equal(t, []string{"two"}, r.Answer[0].(*dns.TXT).Txt)
}
