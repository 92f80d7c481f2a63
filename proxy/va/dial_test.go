package va

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
)

func TestIsPublic(t *testing.T) {
	for s, want := range map[string]bool{
		"8.8.8.8":                true,
		"1.1.1.1":                true,
		"2606:4700:4700::1111":   true,
		"::ffff:8.8.8.8":         true,
		"64:ff9b::808:808":       true, // NAT64 of 8.8.8.8
		"127.0.0.1":              false,
		"127.8.9.10":             false,
		"10.1.2.3":               false,
		"172.16.0.1":             false,
		"172.31.255.255":         false,
		"192.168.1.1":            false,
		"169.254.169.254":        false,
		"100.64.0.1":             false,
		"100.127.255.254":        false,
		"0.0.0.0":                false,
		"0.1.2.3":                false,
		"192.0.0.8":              false,
		"192.0.2.1":              false,
		"198.18.0.1":             false,
		"198.51.100.1":           false,
		"203.0.113.1":            false,
		"224.0.0.1":              false,
		"239.255.255.250":        false,
		"240.0.0.1":              false,
		"255.255.255.255":        false,
		"::":                     false,
		"::1":                    false,
		"::127.0.0.1":            false,
		"::ffff:127.0.0.1":       false,
		"::ffff:169.254.169.254": false,
		"64:ff9b::a00:1":         false, // NAT64 of 10.0.0.1
		"64:ff9b:1::1":           false,
		"100::1":                 false,
		"2001::1":                false,
		"2001:db8::1":            false,
		"2002:a00:1::1":          false,
		"3fff::1":                false,
		"fc00::1":                false,
		"fd12:3456::1":           false,
		"fe80::1":                false,
		"fec0::1":                false,
		"ff02::1":                false,
		"fe80::1%eth0":           false,
	} {
		require.Equal(t, want, isPublic(netip.MustParseAddr(s)), s)
	}
	require.False(t, isPublic(netip.Addr{}))
}

func TestCheckAddrAllowPrivate(t *testing.T) {
	v := newTestValidator(t, nil)
	require.Nil(t, v.checkAddr(netip.MustParseAddr("127.0.0.1")))
	require.Nil(t, v.checkAddr(netip.MustParseAddr("10.0.0.1")))

	v = newTestValidator(t, nil, func(o *Options) { o.AllowPrivate = false })
	err := v.checkAddr(netip.MustParseAddr("::ffff:10.0.0.1"))
	require.NotNil(t, err)
	require.Equal(t, acmeerr.Connection, err.Kind)
	require.Equal(t, "address 10.0.0.1 is not publicly routable", err.Detail)
	require.Nil(t, v.checkAddr(netip.MustParseAddr("8.8.4.4")))
}

func TestPinnedDialerNeverResolves(t *testing.T) {
	v := newTestValidator(t, nil)
	d := newPinnedDialer(v)
	_, err := d.DialContext(ctxT(t), "tcp", "localhost:80")
	require.Error(t, err)
	require.Contains(t, err.Error(), "was not resolved before dialing")
	_, err = v.dialAddrs(ctxT(t), "udp", []netip.Addr{netip.MustParseAddr("127.0.0.1")}, 53)
	require.Error(t, err)
}

func TestResolveHostOrder(t *testing.T) {
	z := newTestDNS(t)
	z.add(t,
		"both.test. 60 IN A 127.0.0.1",
		"both.test. 60 IN AAAA ::1",
		"public.test. 60 IN A 10.0.0.1",
		"public.test. 60 IN A 8.8.8.8",
		"alias.test. 60 IN CNAME both.test.",
		"v6only.test. 60 IN AAAA ::1",
	)
	v := newTestValidator(t, z)
	got, err := v.resolveHost(ctxT(t), "both.test")
	require.Nil(t, err)
	require.Equal(t, []netip.Addr{netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.1")}, got)
	got, err = v.resolveHost(ctxT(t), "alias.test")
	require.Nil(t, err)
	require.Len(t, got, 2)
	got, err = v.resolveHost(ctxT(t), "v6only.test")
	require.Nil(t, err)
	require.Equal(t, []netip.Addr{netip.MustParseAddr("::1")}, got)

	// Forbidden addresses are dropped; the public one is kept.
	v = newTestValidator(t, z, func(o *Options) { o.AllowPrivate = false })
	got, err = v.resolveHost(ctxT(t), "public.test")
	require.Nil(t, err)
	require.Equal(t, []netip.Addr{netip.MustParseAddr("8.8.8.8")}, got)
}

func TestNew(t *testing.T) {
	v, err := New(Options{})
	require.NoError(t, err)
	require.Equal(t, 80, v.httpPort)
	require.Equal(t, 443, v.tlsALPNPort)
	require.Equal(t, 10*time.Second, v.timeout)
	require.NotNil(t, v.resolver)
	require.NotNil(t, v.log)

	v, err = New(Options{Resolvers: []string{"192.0.2.53", "[2001:db8::53]:5353", "dns.test:53"}})
	require.NoError(t, err)
	require.Equal(t, []string{"192.0.2.53:53", "[2001:db8::53]:5353", "dns.test:53"}, v.resolver.(*dnsResolver).servers)

	for _, bad := range []Options{
		{HTTPPort: 70000},
		{TLSALPNPort: -1},
		{Timeout: -time.Second},
		{Resolvers: []string{":53"}},
	} {
		_, err := New(bad)
		require.Error(t, err, "%+v", bad)
	}
}

func TestGoResolverFallback(t *testing.T) {
	z := newTestDNS(t)
	z.add(t, "ok.test. 60 IN A 127.0.0.1", txt("_acme-challenge.ok.test.", "v"))
	r := goResolver{r: &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, z.addr)
	}}}
	addrs, err := r.lookupAddrs(ctxT(t), "ok.test")
	require.Nil(t, err)
	require.Equal(t, []netip.Addr{netip.MustParseAddr("127.0.0.1")}, addrs)
	txts, err := r.lookupTXT(ctxT(t), "_acme-challenge.ok.test")
	require.Nil(t, err)
	require.Equal(t, []string{"v"}, txts)
	_, err = r.lookupAddrs(ctxT(t), "missing.test")
	require.NotNil(t, err)
	require.Equal(t, acmeerr.DNS, err.Kind)
	txts, err = r.lookupTXT(ctxT(t), "_acme-challenge.missing.test")
	require.Nil(t, err)
	require.Empty(t, txts)
}

func TestSanitize(t *testing.T) {
	require.Equal(t, "a?b?c", sanitize("a\nb\x00c"))
	long := sanitize(string(make([]byte, 500)))
	require.Len(t, long, 128+3)
}
