package va

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/acmebridge/acmebridge/acmeerr"
)

// RFC 8555 §10.4 ("Server-Side Request Forgery"): "In order to further limit
// the SSRF risk, ACME server operators should ensure that validation queries
// can only be sent to servers on the public Internet, and not, say, web
// services within the server operator's internal network."
//
// nonPublic are the special-purpose ranges (IANA IPv4 and IPv6
// Special-Purpose Address Registries, RFC 6890) that a validation never
// reaches unless Options.AllowPrivate is set.
var nonPublic = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		// IPv4
		"0.0.0.0/8",       // "this network", unspecified (RFC 791)
		"10.0.0.0/8",      // private (RFC 1918)
		"100.64.0.0/10",   // shared address space, CGNAT (RFC 6598)
		"127.0.0.0/8",     // loopback (RFC 1122)
		"169.254.0.0/16",  // link-local, cloud metadata (RFC 3927)
		"172.16.0.0/12",   // private (RFC 1918)
		"192.0.0.0/24",    // IETF protocol assignments (RFC 6890)
		"192.0.2.0/24",    // TEST-NET-1 (RFC 5737)
		"192.88.99.0/24",  // 6to4 relay anycast (RFC 7526)
		"192.168.0.0/16",  // private (RFC 1918)
		"198.18.0.0/15",   // benchmarking (RFC 2544)
		"198.51.100.0/24", // TEST-NET-2 (RFC 5737)
		"203.0.113.0/24",  // TEST-NET-3 (RFC 5737)
		"224.0.0.0/4",     // multicast (RFC 5771)
		"240.0.0.0/4",     // reserved, broadcast (RFC 1112, RFC 919)
		// IPv6
		"::/96",          // unspecified, loopback, IPv4-compatible (RFC 4291)
		"::ffff:0:0/96",  // IPv4-mapped, checked after Unmap (RFC 4291)
		"64:ff9b:1::/48", // local-use NAT64 (RFC 8215)
		"100::/64",       // discard-only (RFC 6666)
		"2001::/23",      // IETF protocol assignments, Teredo (RFC 2928)
		"2001:db8::/32",  // documentation (RFC 3849)
		"2002::/16",      // 6to4, embeds an arbitrary IPv4 (RFC 3056)
		"3fff::/20",      // documentation (RFC 9637)
		"5f00::/16",      // SRv6 SIDs (RFC 9602)
		"fc00::/7",       // unique local (RFC 4193)
		"fe80::/10",      // link-local (RFC 4291)
		"fec0::/10",      // site-local, deprecated (RFC 3879)
		"ff00::/8",       // multicast (RFC 4291)
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

var (
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
	nat64          = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052
)

// isPublic reports whether a is a globally routable unicast address.
func isPublic(a netip.Addr) bool {
	if !a.IsValid() || a.Zone() != "" {
		return false
	}
	a = a.Unmap()
	if a.IsLoopback() || a.IsPrivate() || a.IsUnspecified() || a.IsMulticast() ||
		a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() {
		return false
	}
	if a.Is6() {
		if nat64.Contains(a) {
			// The well-known NAT64 prefix reaches the embedded IPv4 address.
			b := a.As16()
			return isPublic(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
		}
		if !globalUnicast6.Contains(a) {
			return false
		}
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// checkAddr returns a Connection error for an address the policy forbids.
func (v *Validator) checkAddr(a netip.Addr) *acmeerr.Error {
	if a.Zone() != "" {
		return acmeerr.New(acmeerr.Connection, "address %s is not publicly routable", sanitize(a.String()))
	}
	if v.allowAll || isPublic(a) {
		return nil
	}
	for _, p := range v.allowed {
		if p.Contains(a.Unmap()) {
			return nil
		}
	}
	return acmeerr.New(acmeerr.Connection, "address %s is not publicly routable", a.Unmap())
}

// resolveHost returns the addresses host may be dialled at: an IP literal
// as-is, a name through the configured resolvers. Addresses the policy
// forbids are dropped; if none is left the error names the host, not its
// addresses (the first refused one is in Err, for the logs). IPv6
// addresses come first.
func (v *Validator) resolveHost(ctx context.Context, host string) ([]netip.Addr, *acmeerr.Error) {
	if a, err := netip.ParseAddr(host); err == nil {
		if e := v.checkAddr(a); e != nil {
			return nil, e
		}
		return []netip.Addr{a.Unmap()}, nil
	}
	name, err := normalizeName(host)
	if err != nil || strings.HasPrefix(name, "*.") {
		return nil, acmeerr.New(acmeerr.Malformed, "%q is not a valid host name", sanitize(host))
	}
	addrs, aerr := v.resolver.lookupAddrs(ctx, name)
	if aerr != nil {
		return nil, aerr
	}
	var v6, v4 []netip.Addr
	var first *acmeerr.Error
	for _, a := range addrs {
		a = a.Unmap()
		if e := v.checkAddr(a); e != nil {
			if first == nil {
				first = e
			}
			continue
		}
		if a.Is6() {
			v6 = append(v6, a)
		} else {
			v4 = append(v4, a)
		}
	}
	out := append(v6, v4...)
	if len(out) == 0 {
		if first != nil {
			// Which addresses the operator's resolvers gave is not told:
			// with split-horizon DNS they describe the internal network.
			return nil, acmeerr.Wrap(acmeerr.Connection, first, "%s has no publicly routable address", name)
		}
		return nil, acmeerr.New(acmeerr.DNS, "no A or AAAA records found for %s", name)
	}
	return out, nil
}

// pinnedDialer dials only addresses that were resolved and checked before:
// host names are looked up in its table, never in DNS, so a name cannot be
// rebound between the check and the connection.
type pinnedDialer struct {
	v     *Validator
	mu    sync.Mutex
	addrs map[string][]netip.Addr
}

func newPinnedDialer(v *Validator) *pinnedDialer {
	return &pinnedDialer{v: v, addrs: map[string][]netip.Addr{}}
}

// pin resolves and checks host, and remembers the result for dial.
func (d *pinnedDialer) pin(ctx context.Context, host string) *acmeerr.Error {
	key := strings.ToLower(strings.TrimSuffix(host, "."))
	d.mu.Lock()
	_, ok := d.addrs[key]
	d.mu.Unlock()
	if ok {
		return nil
	}
	addrs, err := d.v.resolveHost(ctx, host)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.addrs[key] = addrs
	d.mu.Unlock()
	return nil
}

// DialContext connects to a pinned host ("host:port"), trying its addresses
// in order until one accepts. It has the signature of
// http.Transport.DialContext.
func (d *pinnedDialer) DialContext(ctx context.Context, network, hostport string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("bad port in %q", hostport)
	}
	d.mu.Lock()
	addrs, ok := d.addrs[strings.ToLower(strings.TrimSuffix(host, "."))]
	d.mu.Unlock()
	if !ok {
		// Never reached: every URL is pinned before it is requested.
		return nil, acmeerr.New(acmeerr.Internal, "va: %s was not resolved before dialing", sanitize(host))
	}
	return d.v.dialAddrs(ctx, network, addrs, uint16(port))
}

// dialAddrs connects to the first of addrs that accepts on port. Each
// address is checked again against the policy right before its dial.
func (v *Validator) dialAddrs(ctx context.Context, network string, addrs []netip.Addr, port uint16) (net.Conn, error) {
	if network != "tcp" && network != "tcp4" && network != "tcp6" {
		return nil, fmt.Errorf("va: network %q not allowed", network)
	}
	var firstErr error
	var dialer net.Dialer
	for _, a := range addrs {
		if e := v.checkAddr(a); e != nil {
			return nil, e
		}
		conn, err := dialer.DialContext(ctx, "tcp", netip.AddrPortFrom(a, port).String())
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	if firstErr == nil {
		firstErr = errors.New("no address to dial")
	}
	return nil, firstErr
}

// netCause names the class of a network failure in words of our own: the
// remote side's text never reaches the client.
func netCause(ctx context.Context, err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) ||
		errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "validation cancelled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable"
	default:
		return "connection failed"
	}
}
