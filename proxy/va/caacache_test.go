package va

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
)

// testClock is a clock the test moves.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestCAACacheReusesWithinTTL: a second finalize for names of the same
// zone asks no CAA question while the answers' TTLs run; an answer with
// TTL 0 is never reused, one past its TTL is asked again, and none is kept
// longer than 8 hours (BR 3.2.2.8), so a record published since is seen.
func TestCAACacheReusesWithinTTL(t *testing.T) {
	z := newTestDNS(t)
	z.add(t,
		`cached.test. 60 IN CAA 0 issue "ca.test"`,
		`www.cached.test. 60 IN A 127.0.0.1`,
		`long.test. 86400 IN CAA 0 issue "ca.test"`,
		`zero.test. 0 IN CAA 0 issue "ca.test"`,
	)
	v := newTestValidator(t, z)
	clk := &testClock{t: time.Now()}
	v.caa = newCAACache(clk.now)
	check := func(name string) {
		require.NoError(t, v.CheckCAA(ctxT(t), name, false, []string{"ca.test"}, "", "http-01"))
	}

	check("www.cached.test") // www.cached.test (NODATA, no SOA: not kept), cached.test
	require.EqualValues(t, 2, z.caaQuestions.Load())
	check("www.cached.test")
	require.EqualValues(t, 3, z.caaQuestions.Load(), "only the answer without a TTL is asked again")
	check("cached.test")
	require.EqualValues(t, 3, z.caaQuestions.Load(), "cached.test's set is reused")

	clk.add(61 * time.Second)
	check("cached.test")
	require.EqualValues(t, 4, z.caaQuestions.Load(), "asked again once its TTL passed")

	check("zero.test")
	check("zero.test")
	require.EqualValues(t, 6, z.caaQuestions.Load(), "TTL 0 is never reused")

	check("long.test")
	clk.add(7 * time.Hour)
	check("long.test")
	require.EqualValues(t, 7, z.caaQuestions.Load())
	// A day-long TTL is reused for 8 hours at most: a record that now
	// forbids this CA is seen after that.
	z.mu.Lock()
	z.rrs["long.test."] = nil
	z.mu.Unlock()
	z.add(t, `long.test. 86400 IN CAA 0 issue "other.test"`)
	clk.add(61 * time.Minute)
	err := v.CheckCAA(ctxT(t), "long.test", false, []string{"ca.test"}, "", "http-01")
	requireKind(t, err, acmeerr.CAA, "do not authorize this CA")
	require.EqualValues(t, 8, z.caaQuestions.Load())
}

// TestCAAAnswerTTL: how long each kind of answer may be reused.
func TestCAAAnswerTTL(t *testing.T) {
	caa := func(ttl uint32) dns.RR {
		return &dns.CAA{Hdr: dns.RR_Header{Name: "a.test.", Rrtype: dns.TypeCAA, Class: dns.ClassINET, Ttl: ttl}, Tag: "issue", Value: "ca.test"}
	}
	cname := &dns.CNAME{Hdr: dns.RR_Header{Name: "b.test.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 30}, Target: "a.test."}
	soa := func(ttl, minimum uint32) dns.RR {
		return &dns.SOA{Hdr: dns.RR_Header{Name: "test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl}, Minttl: minimum}
	}
	for _, tc := range []struct {
		name    string
		answer  []dns.RR
		ns      []dns.RR
		records bool
		want    time.Duration
	}{
		{"records: their smallest TTL", []dns.RR{caa(300), caa(120)}, nil, true, 120 * time.Second},
		{"a CNAME bounds it", []dns.RR{cname, caa(300)}, nil, true, 30 * time.Second},
		{"NODATA: SOA TTL", nil, []dns.RR{soa(60, 3600)}, false, 60 * time.Second},
		{"NODATA: SOA MINIMUM", nil, []dns.RR{soa(3600, 300)}, false, 300 * time.Second},
		{"NODATA without SOA", nil, nil, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &dns.Msg{Answer: tc.answer, Ns: tc.ns}
			var rrs []dns.RR
			if tc.records {
				rrs = tc.answer
			}
			require.Equal(t, tc.want, answerTTL(m, rrs))
		})
	}
}

// BenchmarkCheckCAA is the CAA check of one finalize for a name without
// CAA under a zone whose apex has none either (the common case): three
// questions (name, zone, TLD) when the answers may not be reused (TTL 0),
// none once they are reused within their TTL.
func BenchmarkCheckCAA(b *testing.B) {
	for _, ttl := range []int{0, 300} {
		b.Run(fmt.Sprintf("ttl%d", ttl), func(b *testing.B) {
			t := &testing.T{}
			z := newTestDNS(t)
			z.add(t, fmt.Sprintf(`test. %d IN SOA ns.test. hostmaster.test. 1 3600 600 86400 %d`, ttl, ttl),
				`www.zone.test. 0 IN A 127.0.0.1`, `zone.test. 0 IN A 127.0.0.1`)
			v := newTestValidator(t, z)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := v.CheckCAA(ctx, "www.zone.test", false, []string{"ca.test"}, "", "http-01"); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(z.caaQuestions.Load())/float64(b.N), "questions/op")
		})
	}
}
