package va

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/acmebridge/acmebridge/acmeerr"
)

// resolver answers the two questions validation asks of DNS. Errors are
// *acmeerr.Error of kind DNS, with details of our own making.
type resolver interface {
	// lookupAddrs returns the A and AAAA addresses of name.
	lookupAddrs(ctx context.Context, name string) ([]netip.Addr, *acmeerr.Error)
	// lookupTXT returns the TXT records of name, each one's strings joined.
	lookupTXT(ctx context.Context, name string) ([]string, *acmeerr.Error)
	// lookupCAA returns the CAA records of name, CNAMEs followed; none
	// for NXDOMAIN or NODATA (caa.go); and how long the answer may be
	// reused (caacache.go).
	lookupCAA(ctx context.Context, name string) ([]*dns.CAA, time.Duration, *acmeerr.Error)
}

// newResolver returns a resolver querying servers, or the system's.
func newResolver(servers []string, timeout time.Duration) (resolver, error) {
	if len(servers) == 0 {
		// The system's resolver, as every other program on the host sees
		// names: /etc/hosts first, then /etc/resolv.conf.
		return goResolver{r: net.DefaultResolver}, nil
	}
	r := &dnsResolver{
		udp: &dns.Client{Net: "udp", Timeout: timeout, UDPSize: ednsSize},
		tcp: &dns.Client{Net: "tcp", Timeout: timeout},
	}
	for _, s := range servers {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			// A bare address means port 53.
			host, port = strings.Trim(s, "[]"), "53"
		}
		if host == "" || port == "" || strings.ContainsAny(host, "/ ") {
			return nil, fmt.Errorf("va: resolver %q is not host:port", s)
		}
		r.servers = append(r.servers, net.JoinHostPort(host, port))
	}
	return r, nil
}

// ednsSize is the EDNS0 UDP payload size advertised (DNS flag day 2020).
const ednsSize = 1232

// maxCNAMEs bounds how many CNAMEs of an answer are followed.
const maxCNAMEs = 8

// dnsResolver queries recursive resolvers with miekg/dns: UDP first, TCP when
// the answer is truncated, the next server on network errors and SERVFAIL.
type dnsResolver struct {
	servers []string
	udp     *dns.Client
	tcp     *dns.Client
}

// exchange sends one question and returns the first usable answer (NOERROR
// or NXDOMAIN).
func (r *dnsResolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, *acmeerr.Error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.RecursionDesired = true
	q.SetEdns0(ednsSize, false)
	tname := dns.TypeToString[qtype]

	var last *acmeerr.Error
	for _, server := range r.servers {
		resp, _, err := r.udp.ExchangeContext(ctx, q, server)
		if err == nil && resp.Truncated {
			resp, _, err = r.tcp.ExchangeContext(ctx, q, server)
		}
		if err != nil {
			last = acmeerr.Wrap(acmeerr.DNS, err, "DNS query for %s %s: %s", tname, name, netCause(ctx, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if resp.Id != q.Id {
			last = acmeerr.New(acmeerr.DNS, "DNS query for %s %s: mismatched answer", tname, name)
			continue
		}
		switch resp.Rcode {
		case dns.RcodeSuccess, dns.RcodeNameError:
			return resp, nil
		default:
			last = acmeerr.New(acmeerr.DNS, "DNS query for %s %s: %s", tname, name, dns.RcodeToString[resp.Rcode])
		}
	}
	if last == nil {
		last = acmeerr.New(acmeerr.DNS, "DNS query for %s %s: no resolver configured", tname, name)
	}
	return nil, last
}

// answers returns the records of type qtype for name in resp, following the
// CNAME chain the recursive resolver put in the answer section.
func answers(resp *dns.Msg, name string, qtype uint16) []dns.RR {
	names := map[string]bool{dns.CanonicalName(name): true}
	for i := 0; i < maxCNAMEs; i++ {
		grew := false
		for _, rr := range resp.Answer {
			c, ok := rr.(*dns.CNAME)
			if !ok || !names[dns.CanonicalName(c.Hdr.Name)] {
				continue
			}
			if t := dns.CanonicalName(c.Target); !names[t] {
				names[t] = true
				grew = true
			}
		}
		if !grew {
			break
		}
	}
	var out []dns.RR
	for _, rr := range resp.Answer {
		if rr.Header().Rrtype == qtype && names[dns.CanonicalName(rr.Header().Name)] {
			out = append(out, rr)
		}
	}
	return out
}

func (r *dnsResolver) lookupAddrs(ctx context.Context, name string) ([]netip.Addr, *acmeerr.Error) {
	var out []netip.Addr
	var firstErr *acmeerr.Error
	nx := 0
	for _, qtype := range []uint16{dns.TypeAAAA, dns.TypeA} {
		resp, err := r.exchange(ctx, name, qtype)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if resp.Rcode == dns.RcodeNameError {
			nx++
			continue
		}
		for _, rr := range answers(resp, name, qtype) {
			var ip net.IP
			switch rr := rr.(type) {
			case *dns.A:
				ip = rr.A
			case *dns.AAAA:
				ip = rr.AAAA
			}
			if a, ok := netip.AddrFromSlice(ip); ok {
				out = append(out, a.Unmap())
			}
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	if nx == 2 {
		return nil, acmeerr.New(acmeerr.DNS, "NXDOMAIN looking up A and AAAA for %s", name)
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return nil, acmeerr.New(acmeerr.DNS, "no A or AAAA records found for %s", name)
}

func (r *dnsResolver) lookupTXT(ctx context.Context, name string) ([]string, *acmeerr.Error) {
	resp, err := r.exchange(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	if resp.Rcode == dns.RcodeNameError {
		return nil, acmeerr.New(acmeerr.DNS, "NXDOMAIN looking up TXT for %s", name)
	}
	var out []string
	for _, rr := range answers(resp, name, dns.TypeTXT) {
		// A TXT record may hold several character-strings; they form one
		// value, as in Boulder and lego.
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out, nil
}

// goResolver is the system resolver (net.DefaultResolver), used when no
// resolvers are configured.
type goResolver struct{ r *net.Resolver }

func (g goResolver) lookupAddrs(ctx context.Context, name string) ([]netip.Addr, *acmeerr.Error) {
	addrs, err := g.r.LookupNetIP(ctx, "ip", name) // not made absolute, so /etc/hosts applies
	if err != nil {
		return nil, goDNSError(ctx, "A and AAAA", name, err)
	}
	if len(addrs) == 0 {
		return nil, acmeerr.New(acmeerr.DNS, "no A or AAAA records found for %s", name)
	}
	return addrs, nil
}

func (g goResolver) lookupTXT(ctx context.Context, name string) ([]string, *acmeerr.Error) {
	txts, err := g.r.LookupTXT(ctx, dns.Fqdn(name))
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			// The Go resolver does not tell NXDOMAIN from NODATA.
			return nil, nil
		}
		return nil, goDNSError(ctx, "TXT", name, err)
	}
	return txts, nil
}

func goDNSError(ctx context.Context, what, name string, err error) *acmeerr.Error {
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound {
		return acmeerr.Wrap(acmeerr.DNS, err, "NXDOMAIN looking up %s for %s", what, name)
	}
	return acmeerr.Wrap(acmeerr.DNS, err, "DNS query for %s %s: %s", what, name, netCause(ctx, err))
}
