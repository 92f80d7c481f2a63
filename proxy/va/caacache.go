package va

import (
	"time"

	"github.com/miekg/dns"

	"github.com/acmebridge/acmebridge/internal/expiring"
)

// CAA answers are reused while their TTL runs, up to caaCacheMax: every
// finalize climbs the tree of each of its names (RFC 8659 §3), so without
// a cache an issuance for www.example.com asks three questions, two of
// which (example.com, com) every other name of the zone asks too. The
// CA/Browser Forum's Baseline Requirements (§3.2.2.8) let a CA rely on a
// CAA answer "within the TTL of the CAA record, or 8 hours, whichever is
// greater"; acmebridge keeps the stricter of the two: the TTL, never more
// than 8 hours. A negative answer (NXDOMAIN or NODATA) is reused as a
// recursive resolver reuses it (RFC 2308 §5): for the smaller of its SOA's
// TTL and MINIMUM field, and not at all without an SOA. A TTL of 0 is
// never reused, so a zone that must be seen changing at once can say so.
const (
	caaCacheMax     = 8 * time.Hour
	caaCacheEntries = 8192
)

// caaCache holds CAA answers by canonical name (an empty set: no CAA at
// the name).
type caaCache struct {
	now func() time.Time
	m   *expiring.Map[[]*dns.CAA]
}

func newCAACache(now func() time.Time) *caaCache {
	if now == nil {
		now = time.Now
	}
	return &caaCache{now: now, m: expiring.New[[]*dns.CAA](caaCacheEntries)}
}

// get returns the answer cached for name, if one is still fresh.
func (c *caaCache) get(name string) ([]*dns.CAA, bool) { return c.m.Get(name, c.now()) }

// put caches rrs for ttl, capped at caaCacheMax; a ttl of 0 caches
// nothing.
func (c *caaCache) put(name string, rrs []*dns.CAA, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	now := c.now()
	c.m.Put(name, rrs, now.Add(min(ttl, caaCacheMax)), now)
}

// answerTTL is how long resp, the answer to a CAA question, may be reused:
// the smallest TTL of the records that answer it, or for a negative answer
// the smaller of its SOA's TTL and MINIMUM field (RFC 2308 §5); 0 when
// there is nothing to go by.
func answerTTL(resp *dns.Msg, rrs []dns.RR) time.Duration {
	var ttl uint32
	first := true
	if len(rrs) > 0 {
		// The CNAMEs followed count too: their TTLs bound the answer's.
		for _, rr := range resp.Answer {
			if first || rr.Header().Ttl < ttl {
				ttl, first = rr.Header().Ttl, false
			}
		}
		return time.Duration(ttl) * time.Second
	}
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return time.Duration(min(soa.Hdr.Ttl, soa.Minttl)) * time.Second
		}
	}
	return 0
}
