package va

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
)

const (
	caaAccount = "https://acme.test/acme/account/1234"
	caaOther   = "https://acme.test/acme/account/9999"
)

var caaIdentities = []string{"ca.test", "Bridge.Test."}

// caa returns a CAA record in zone-file syntax.
func caa(name string, flag int, tag, value string) string {
	return fmt.Sprintf("%s 60 IN CAA %d %s %q", name, flag, tag, value)
}

func TestParseIssueValue(t *testing.T) {
	p := func(kv ...string) []caaParam {
		var out []caaParam
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, caaParam{tag: kv[i], value: kv[i+1]})
		}
		return out
	}
	for _, tc := range []struct {
		in     string
		issuer string
		params []caaParam
		ok     bool
	}{
		{"ca.test", "ca.test", nil, true},
		{"  ca.test\t", "ca.test", nil, true},
		{"", "", nil, true},
		{";", "", nil, true},
		{"  ;  ", "", nil, true},
		{"ca.test;", "ca.test", nil, true},
		{"ca.test; accounturi=https://a.test/acct/1", "ca.test", p("accounturi", "https://a.test/acct/1"), true},
		{"ca.test;accounturi = x ; validationmethods=dns-01,http-01 ", "ca.test", p("accounturi", "x", "validationmethods", "dns-01,http-01"), true},
		{"ca.test; a-b=", "ca.test", p("a-b", ""), true},
		{"; policy=ev", "", p("policy", "ev"), true},
		{"x1-y.example-ca.net", "x1-y.example-ca.net", nil, true},
		// RFC 8659 §4.2 example of a malformed value.
		{"%%%%%", "", nil, false},
		{"ca.test.", "", nil, false},
		{"-ca.test", "", nil, false},
		{"ca..test", "", nil, false},
		{"ca.test extra", "", nil, false},
		{"ca.test; novalue", "", nil, false},
		{"ca.test; a=b;", "", nil, false},
		{"ca.test; a=b c", "", nil, false},
		{"ca.test; -a=b", "", nil, false},
		{"ca.test; a=b;; c=d", "", nil, false},
		{"ca_test", "", nil, false},
	} {
		issuer, params, ok := parseIssueValue(tc.in)
		require.Equal(t, tc.ok, ok, "%q", tc.in)
		require.Equal(t, tc.issuer, issuer, "%q", tc.in)
		require.Equal(t, tc.params, params, "%q", tc.in)
	}
}

func TestParseValidationMethods(t *testing.T) {
	for in, want := range map[string][]string{
		"":                   nil,
		"dns-01":             {"dns-01"},
		"dns-01,http-01":     {"dns-01", "http-01"},
		"tls-alpn-01,ca-foo": {"tls-alpn-01", "ca-foo"},
	} {
		got, ok := parseValidationMethods(in)
		require.True(t, ok, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"dns-01,", ",dns-01", "dns-01, http-01", "http_01", "-x"} {
		_, ok := parseValidationMethods(in)
		require.False(t, ok, in)
	}
}

// caaZone is the DNS data of TestCheckCAA.
func caaZone(t *testing.T, z *testDNS) {
	z.add(t,
		// Allowed at the parent, found by climbing.
		caa("allow.test.", 0, "issue", "ca.test"),
		"www.allow.test. 60 IN A 192.0.2.1",
		// Only another CA.
		caa("other.test.", 0, "issue", "other-ca.test"),
		caa("other.test.", 0, "iodef", "mailto:security@other.test"),
		// issue ";" forbids everyone; additive with a named issuer.
		caa("none.test.", 0, "issue", ";"),
		caa("additive.test.", 0, "issue", ";"),
		caa("additive.test.", 0, "issue", "bridge.test"),
		caa("malformed.test.", 0, "issue", "%%%%%"),
		caa("malformed2.test.", 0, "issue", "ca.test; a=b;"),
		// Case does not matter for tags and issuer names.
		caa("case.test.", 0, "ISSUE", "CA.Test"),
		// issuewild.
		caa("wild.test.", 0, "issue", "ca.test"),
		caa("wild.test.", 0, "issuewild", "other-ca.test"),
		caa("wild2.test.", 0, "issue", "other-ca.test"),
		caa("wild2.test.", 0, "issuewild", "ca.test"),
		caa("wild3.test.", 0, "issue", "ca.test"),
		caa("onlywild.test.", 0, "issuewild", "other-ca.test"),
		caa("nowild.test.", 0, "issue", "ca.test"),
		caa("nowild.test.", 0, "issuewild", ";"),
		// Critical and non-critical unknown properties.
		caa("critical.test.", 0, "issue", "ca.test"),
		caa("critical.test.", 128, "tbs", "Unknown"),
		caa("noncritical.test.", 0, "tbs", "Unknown"),
		caa("reservedflag.test.", 1, "tbs", "Unknown"),
		caa("criticaliodef.test.", 128, "iodef", "mailto:x@criticaliodef.test"),
		caa("criticalissue.test.", 128, "issue", "ca.test"),
		// RFC 8657.
		caa("acct.test.", 0, "issue", "ca.test; accounturi="+caaAccount),
		caa("acct2.test.", 0, "issue", "ca.test; accounturi="+caaOther),
		caa("acct2.test.", 0, "issue", "ca.test; accounturi="+caaAccount+"; validationmethods=dns-01"),
		caa("acctdup.test.", 0, "issue", "ca.test; accounturi="+caaAccount+"; accounturi="+caaAccount),
		caa("acctother.test.", 0, "issue", "other-ca.test; accounturi="+caaAccount),
		caa("methods.test.", 0, "issue", "ca.test; validationmethods=dns-01,tls-alpn-01"),
		caa("badmethods.test.", 0, "issue", "ca.test; validationmethods=http_01"),
		caa("dupmethods.test.", 0, "issue", "ca.test; validationmethods=http-01; validationmethods=http-01"),
		caa("unknownparam.test.", 0, "issue", "ca.test; policy=ev; ValidationMethods=http-01"),
		// A nearer RRset shadows the parent's.
		caa("shadow.test.", 0, "issue", ";"),
		caa("sub.shadow.test.", 0, "issue", "ca.test"),
		// CNAMEs: CAA(X) chases aliases; the climb goes on from X's parent,
		// not from the target's.
		"www.alias.test. 60 IN CNAME host.target-other.test.",
		caa("host.target-other.test.", 0, "issue", "other-ca.test"),
		"www.alias2.test. 60 IN CNAME host.target-allow.test.",
		caa("host.target-allow.test.", 0, "issue", "ca.test"),
		"www.alias3.test. 60 IN CNAME nothing.elsewhere.test.",
		caa("elsewhere.test.", 0, "issue", "other-ca.test"),
		"www.alias4.test. 60 IN CNAME nothing.elsewhere2.test.",
		"nothing.elsewhere2.test. 60 IN A 192.0.2.1",
		caa("alias4.test.", 0, "issue", "other-ca.test"),
		// SERVFAIL below a found RRset and above it.
		caa("x.above.test.", 0, "issue", "ca.test"),
	)
	z.setServfail("broken.test.")
	z.setServfail("www.servfail.test.")
	z.setServfail("above.test.") // never asked: the climb stops at x.above.test
}

func TestCheckCAA(t *testing.T) {
	z := newTestDNS(t)
	caaZone(t, z)
	v := newTestValidator(t, z)

	for _, tc := range []struct {
		name     string
		wildcard bool
		account  string
		method   string
		kind     *acmeerr.Kind // nil: allowed
		detail   string
	}{
		{name: "www.allow.test"},
		{name: "a.b.c.allow.test"},
		{name: "ALLOW.test."},
		{name: "*.allow.test"},
		{name: "allow.test", wildcard: true},
		{name: "www.other.test", kind: kindp(acmeerr.CAA), detail: "CAA issue records at other.test do not authorize this CA (ca.test, Bridge.Test.) to issue for www.other.test"},
		{name: "none.test", kind: kindp(acmeerr.CAA), detail: "CAA issue records at none.test forbid every CA to issue for none.test"},
		{name: "x.additive.test"},
		{name: "malformed.test", kind: kindp(acmeerr.CAA), detail: "forbid every CA"},
		{name: "malformed2.test", kind: kindp(acmeerr.CAA), detail: "forbid every CA"},
		{name: "case.test"},
		{name: "wild.test"},
		{name: "*.wild.test", kind: kindp(acmeerr.CAA), detail: "CAA issuewild records at wild.test do not authorize this CA"},
		{name: "wild2.test", kind: kindp(acmeerr.CAA), detail: "CAA issue records at wild2.test"},
		{name: "*.wild2.test"},
		{name: "*.sub.wild2.test"},
		{name: "*.wild3.test"},
		{name: "onlywild.test"},
		{name: "*.onlywild.test", kind: kindp(acmeerr.CAA), detail: "issuewild records at onlywild.test"},
		{name: "nowild.test"},
		{name: "*.nowild.test", kind: kindp(acmeerr.CAA), detail: "CAA issuewild records at nowild.test forbid every CA to issue for *.nowild.test"},
		{name: "critical.test", kind: kindp(acmeerr.CAA), detail: `CAA record at critical.test marks the property "tbs", unknown to this CA, as critical`},
		{name: "*.critical.test", kind: kindp(acmeerr.CAA), detail: "critical"},
		{name: "noncritical.test"},
		{name: "reservedflag.test"},
		{name: "criticaliodef.test"},
		{name: "criticalissue.test"},
		{name: "acct.test"},
		{name: "acct.test", account: caaOther, kind: kindp(acmeerr.CAA), detail: "CAA issue records at acct.test authorize this CA for acct.test only for another ACME account (accounturi)"},
		{name: "acct.test", account: "-", kind: kindp(acmeerr.CAA), detail: "another ACME account"},
		{name: "acct2.test", kind: kindp(acmeerr.CAA), detail: "another ACME account"},
		{name: "acct2.test", method: "dns-01"},
		{name: "acct2.test", account: caaOther},
		{name: "acctdup.test", kind: kindp(acmeerr.CAA), detail: "several (unsatisfiable)"},
		{name: "acctother.test", kind: kindp(acmeerr.CAA), detail: "do not authorize this CA"},
		{name: "methods.test", method: "dns-01"},
		{name: "methods.test", method: "tls-alpn-01"},
		{name: "methods.test", kind: kindp(acmeerr.CAA), detail: "only for validation methods dns-01,tls-alpn-01, and the authorization was validated by http-01"},
		{name: "methods.test", method: "-", kind: kindp(acmeerr.CAA), detail: "validated by unknown"},
		{name: "badmethods.test", method: "http-01", kind: kindp(acmeerr.CAA), detail: "not a list of method labels"},
		{name: "dupmethods.test", kind: kindp(acmeerr.CAA), detail: "several (unsatisfiable)"},
		{name: "unknownparam.test"},
		{name: "unknownparam.test", method: "dns-01", kind: kindp(acmeerr.CAA), detail: "only for validation methods http-01"},
		{name: "sub.shadow.test"},
		{name: "www.sub.shadow.test"},
		{name: "other.shadow.test", kind: kindp(acmeerr.CAA), detail: "at shadow.test forbid every CA"},
		{name: "www.alias.test", kind: kindp(acmeerr.CAA), detail: "records at www.alias.test do not authorize"},
		{name: "www.alias2.test"},
		{name: "www.alias3.test"},
		{name: "www.alias4.test", kind: kindp(acmeerr.CAA), detail: "records at alias4.test"},
		{name: "www.broken.test", kind: kindp(acmeerr.DNS), detail: "CAA for www.broken.test could not be checked, so no certificate is issued: DNS query for CAA broken.test: SERVFAIL"},
		{name: "www.servfail.test", kind: kindp(acmeerr.DNS), detail: "SERVFAIL"},
		{name: "www.x.above.test"},
		{name: "www.above.test", kind: kindp(acmeerr.DNS), detail: "DNS query for CAA above.test: SERVFAIL"},
		{name: "localhost"},
		{name: "a.b.localhost"},
		{name: "192.0.2.1"},
		{name: "2001:db8::1"},
	} {
		label := fmt.Sprintf("%s wildcard=%v account=%s method=%s", tc.name, tc.wildcard, tc.account, tc.method)
		account, method := caaAccount, "http-01"
		if tc.account == "-" {
			account = ""
		} else if tc.account != "" {
			account = tc.account
		}
		if tc.method == "-" {
			method = ""
		} else if tc.method != "" {
			method = tc.method
		}
		err := v.CheckCAA(ctxT(t), tc.name, tc.wildcard, caaIdentities, account, method)
		if tc.kind == nil {
			require.NoError(t, err, label)
			continue
		}
		requireKind(t, err, *tc.kind, tc.detail)
	}
}

func kindp(k acmeerr.Kind) *acmeerr.Kind { return &k }

func TestCheckCAANoIdentity(t *testing.T) {
	z := newTestDNS(t)
	caaZone(t, z)
	v := newTestValidator(t, z)
	// Without identities only names whose CAA restricts nothing pass.
	require.NoError(t, v.CheckCAA(ctxT(t), "www.nothing.test", false, nil, caaAccount, "http-01"))
	require.NoError(t, v.CheckCAA(ctxT(t), "noncritical.test", false, nil, caaAccount, "http-01"))
	err := v.CheckCAA(ctxT(t), "allow.test", false, nil, caaAccount, "http-01")
	requireKind(t, err, acmeerr.CAA, "restrict issuance for allow.test to other CAs (no CAA identity is configured for this CA)")
}

func TestCheckCAAFailover(t *testing.T) {
	// The next resolver is asked after a SERVFAIL, as for every lookup.
	bad := newTestDNS(t)
	bad.setServfail("other.test.")
	good := newTestDNS(t)
	caaZone(t, good)
	v := newTestValidator(t, bad, func(o *Options) { o.Resolvers = append(o.Resolvers, good.addr) })
	requireKind(t, v.CheckCAA(ctxT(t), "other.test", false, caaIdentities, caaAccount, "http-01"), acmeerr.CAA)
}

func TestCheckCAAUnreachable(t *testing.T) {
	v := newTestValidator(t, nil, func(o *Options) {
		o.Resolvers = []string{fmt.Sprintf("127.0.0.1:%d", freePort(t))}
		o.Timeout = 300 * time.Millisecond
	})
	err := v.CheckCAA(ctxT(t), "www.example.test", false, caaIdentities, caaAccount, "http-01")
	requireKind(t, err, acmeerr.DNS, "CAA for www.example.test could not be checked", "DNS query for CAA www.example.test")
	// localhost names never reach the resolver.
	require.NoError(t, v.CheckCAA(ctxT(t), "localhost.", false, caaIdentities, caaAccount, "http-01"))
	// Not a name at all.
	requireKind(t, v.CheckCAA(ctxT(t), "bad name", false, caaIdentities, caaAccount, "http-01"), acmeerr.Malformed)
}

func TestCheckCAASystemResolver(t *testing.T) {
	// No resolvers configured: CAA goes to the servers of resolv.conf,
	// since Go's resolver has no CAA lookup.
	oldConf, oldServers := resolvConf, systemResolvers
	t.Cleanup(func() { resolvConf, systemResolvers = oldConf, oldServers })
	resolvConf = filepath.Join(t.TempDir(), "resolv.conf")
	require.NoError(t, os.WriteFile(resolvConf, []byte("search example.test\nnameserver 192.0.2.53\nnameserver 2001:db8::53\n"), 0o600))
	servers, err := systemResolvers()
	require.NoError(t, err)
	require.Equal(t, []string{"192.0.2.53:53", "[2001:db8::53]:53"}, servers)

	v := newTestValidator(t, nil)
	require.NoError(t, os.WriteFile(resolvConf, []byte("# no servers\n"), 0o600))
	requireKind(t, v.CheckCAA(ctxT(t), "www.example.test", false, caaIdentities, caaAccount, "http-01"),
		acmeerr.DNS, "no system resolver to ask")
	require.NoError(t, os.Remove(resolvConf))
	requireKind(t, v.CheckCAA(ctxT(t), "www.example.test", false, caaIdentities, caaAccount, "http-01"),
		acmeerr.DNS, "no system resolver to ask")

	// The servers found are asked like configured ones.
	z := newTestDNS(t)
	caaZone(t, z)
	systemResolvers = func() ([]string, error) { return []string{z.addr}, nil }
	require.NoError(t, v.CheckCAA(ctxT(t), "www.allow.test", false, caaIdentities, caaAccount, "http-01"))
	requireKind(t, v.CheckCAA(ctxT(t), "www.other.test", false, caaIdentities, caaAccount, "http-01"), acmeerr.CAA)
	requireKind(t, v.CheckCAA(ctxT(t), "www.broken.test", false, caaIdentities, caaAccount, "http-01"), acmeerr.DNS, "SERVFAIL")
}
