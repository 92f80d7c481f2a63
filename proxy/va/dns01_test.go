package va

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
)

// txt returns a TXT record in zone-file syntax.
func txt(name, value string) string {
	return fmt.Sprintf("%s 60 IN TXT %q", name, value)
}

func TestDNS01Value(t *testing.T) {
	// RFC 8555 §8.4 example is not reproducible without the key; check the
	// construction instead: base64url, no padding, 43 characters.
	v := dns01Value(testKeyAuth)
	require.Len(t, v, 43)
	require.NotContains(t, v, "=")
	require.NotContains(t, v, "+")
	require.NotContains(t, v, "/")
}

func TestDNS01Success(t *testing.T) {
	want := dns01Value(testKeyAuth)
	z := newTestDNS(t)
	z.add(t,
		txt("_acme-challenge.ok.test.", "unrelated"),
		txt("_acme-challenge.ok.test.", want),
		// A CNAME delegating the challenge, as acme-dns users do.
		"_acme-challenge.cname.test. 60 IN CNAME x.auth.test.",
		txt("x.auth.test.", want),
		// One value split over several character-strings.
		fmt.Sprintf(`_acme-challenge.split.test. 60 IN TXT %q %q`, want[:20], want[20:]),
	)
	// Enough records that the UDP answer is truncated and TCP is needed.
	var big []string
	for i := 0; i < 20; i++ {
		big = append(big, txt("_acme-challenge.big.test.", strings.Repeat(fmt.Sprint(i%10), 200)))
	}
	z.add(t, append(big, txt("_acme-challenge.big.test.", want))...)
	v := newTestValidator(t, z)

	for _, name := range []string{"ok.test", "OK.Test.", "*.ok.test", "cname.test", "split.test"} {
		require.NoError(t, v.Validate(ctxT(t), IdentDNS, name, TypeDNS01, testToken, testKeyAuth), name)
	}
	// The caller may pass no token for dns-01.
	require.NoError(t, v.Validate(ctxT(t), IdentDNS, "ok.test", TypeDNS01, "", testKeyAuth))

	before := z.tcpHits.Load()
	require.NoError(t, v.Validate(ctxT(t), IdentDNS, "big.test", TypeDNS01, testToken, testKeyAuth))
	require.Greater(t, z.tcpHits.Load(), before, "truncated UDP answer retried over TCP")
}

func TestDNS01NoRecord(t *testing.T) {
	z := newTestDNS(t)
	// The name exists, with no TXT record.
	z.add(t, "_acme-challenge.ok.test. 60 IN A 192.0.2.1")
	v := newTestValidator(t, z)
	err := v.Validate(ctxT(t), IdentDNS, "ok.test", TypeDNS01, testToken, testKeyAuth)
	ae := requireKind(t, err, acmeerr.DNS)
	require.Equal(t, "dns-01: no TXT record found at _acme-challenge.ok.test", ae.Detail)
}

func TestDNS01WrongValue(t *testing.T) {
	z := newTestDNS(t)
	z.add(t, txt("_acme-challenge.ok.test.", "SECRET-WRONG-VALUE"), txt("_acme-challenge.ok.test.", dns01Value("other")))
	v := newTestValidator(t, z)
	err := v.Validate(ctxT(t), IdentDNS, "ok.test", TypeDNS01, testToken, testKeyAuth)
	ae := requireKind(t, err, acmeerr.IncorrectResponse, "none of the 2 TXT records at _acme-challenge.ok.test")
	require.NotContains(t, ae.Detail, "SECRET")

	// The key authorization itself, not its digest, is wrong.
	z.add(t, txt("_acme-challenge.raw.test.", testKeyAuth))
	err = v.Validate(ctxT(t), IdentDNS, "raw.test", TypeDNS01, testToken, testKeyAuth)
	requireKind(t, err, acmeerr.IncorrectResponse)
}

func TestDNS01NXDOMAIN(t *testing.T) {
	z := newTestDNS(t)
	v := newTestValidator(t, z)
	err := v.Validate(ctxT(t), IdentDNS, "missing.test", TypeDNS01, testToken, testKeyAuth)
	ae := requireKind(t, err, acmeerr.DNS)
	require.Equal(t, "dns-01: NXDOMAIN looking up TXT for _acme-challenge.missing.test", ae.Detail)
}

func TestDNS01ServerFailure(t *testing.T) {
	z := newTestDNS(t)
	z.setServfail("_acme-challenge.ok.test.")
	v := newTestValidator(t, z)
	err := v.Validate(ctxT(t), IdentDNS, "ok.test", TypeDNS01, testToken, testKeyAuth)
	requireKind(t, err, acmeerr.DNS, "SERVFAIL")

	// The next resolver is asked after a SERVFAIL.
	good := newTestDNS(t)
	good.add(t, txt("_acme-challenge.ok.test.", dns01Value(testKeyAuth)))
	v = newTestValidator(t, z, func(o *Options) { o.Resolvers = append(o.Resolvers, good.addr) })
	require.NoError(t, v.Validate(ctxT(t), IdentDNS, "ok.test", TypeDNS01, testToken, testKeyAuth))
}

func TestDNS01ResolverUnreachable(t *testing.T) {
	// Nothing listens on this UDP port: the query fails fast or times out.
	v := newTestValidator(t, nil, func(o *Options) {
		o.Resolvers = []string{fmt.Sprintf("127.0.0.1:%d", freePort(t))}
		o.Timeout = 300 * time.Millisecond
	})
	err := v.Validate(ctxT(t), IdentDNS, "ok.test", TypeDNS01, testToken, testKeyAuth)
	requireKind(t, err, acmeerr.DNS, "DNS query for TXT _acme-challenge.ok.test")
}
