package audit

import (
	"cmp"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/publicsuffix"
)

// None is the key under which a Tally counts events that lack the field it
// is keyed by (a refusal no policy rule made, an event without an account).
const None = "(none)"

// MaxBuckets bounds the number of time buckets Summarize makes, so a tiny
// bucket over a long window is an error rather than a huge allocation.
const MaxBuckets = 10000

// Count is one key of a Tally and how many events it counted.
type Count struct {
	Key string `json:"key"`
	N   int    `json:"n"`
}

// Tally is a set of counts sorted by count, largest first, then by key.
type Tally []Count

// Total is the sum of the counts.
func (t Tally) Total() int {
	n := 0
	for _, c := range t {
		n += c.N
	}
	return n
}

// Get returns the count of key (0 when absent).
func (t Tally) Get(key string) int {
	for _, c := range t {
		if c.Key == key {
			return c.N
		}
	}
	return 0
}

// Keys returns the keys in the Tally's order.
func (t Tally) Keys() []string {
	out := make([]string, len(t))
	for i, c := range t {
		out[i] = c.Key
	}
	return out
}

// tallyOf sorts a map of counts into a Tally (never nil, so it encodes as
// [] in JSON).
func tallyOf(m map[string]int) Tally {
	t := make(Tally, 0, len(m))
	for k, n := range m {
		t = append(t, Count{Key: k, N: n})
	}
	slices.SortFunc(t, func(a, b Count) int {
		if c := cmp.Compare(b.N, a.N); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	return t
}

// Bucket is one interval of a Summary's time series: [Start, Start+bucket).
type Bucket struct {
	Start time.Time `json:"start"`
	// Issued counts certificate.issued events by upstream.
	Issued Tally `json:"issued"`
	// Refused counts order.refused and finalize.refused events.
	Refused int `json:"refused"`
}

// Summary aggregates the events of an audit log in a time window, for
// reports and the dashboard. Every Tally is sorted (see Tally) and never
// nil.
type Summary struct {
	// Since and Until are the window: events with Since <= time < Until.
	// A zero bound is open.
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	// Events counts the events in the window; Unreadable the lines of the
	// whole log that were not events (a torn last line after a crash).
	Events     int `json:"events"`
	Unreadable int `json:"unreadable"`
	// Orders counts order.created events.
	Orders int `json:"orders"`
	// Issued counts certificate.issued events by upstream.
	Issued Tally `json:"issued"`
	// IssuedByAccount counts certificate.issued events by account ID.
	IssuedByAccount Tally `json:"issued_by_account"`
	// IssuedByDomain counts certificate.issued events by registered domain
	// (see RegisteredDomain): a certificate counts once for each distinct
	// registered domain among its names, so the counts may add up to more
	// than Issued.Total().
	IssuedByDomain Tally `json:"issued_by_domain"`
	// Refused counts order.refused and finalize.refused events by problem
	// type (Event.Problem, e.g. rejectedIdentifier, badCSR, caa).
	Refused Tally `json:"refused"`
	// RefusedByRule counts the same events by the policy rule that refused
	// them: Event.Rule when set, else (on a line written before Problem
	// existed) the rule the policy named in the reason ("rule NAME: ..."),
	// else None (a refusal not made by a rule,
	// such as a CSR that does not match its order).
	RefusedByRule Tally `json:"refused_by_rule"`
	// Revoked counts certificate.revoked events by reason: RFC 5280 reason
	// codes by name (keyCompromise, superseded...), other reasons as
	// recorded (an operator's revocation through the admin API is "admin").
	Revoked Tally `json:"revoked"`
	// Revocations are the certificate.revoked events, in log order.
	Revocations []Event `json:"revocations"`
	// OrdersInvalid counts order.invalid events (an order that failed after
	// it was created: validation or upstream) by problem type.
	OrdersInvalid Tally `json:"orders_invalid"`
	// ChallengesInvalid counts challenge.invalid events by challenge type.
	ChallengesInvalid Tally `json:"challenges_invalid"`
	// Bucket is the size of the time series' intervals (0: no series).
	Bucket time.Duration `json:"bucket"`
	// Buckets is the time series: consecutive, including empty ones, the
	// first starting at Since truncated to a multiple of Bucket (so one-hour
	// or one-day buckets start on UTC hours or days) and the last holding
	// Until. With an open bound the series starts or ends at the first or
	// last event.
	Buckets []Bucket `json:"buckets"`
}

// Summarize reads an audit log and aggregates the events in [since, until)
// (a zero bound is open). bucket > 0 also counts issuance by upstream and
// refusals per interval of that size (see Summary.Buckets). Unreadable
// lines are counted, not fatal; an error is a read error or more than
// MaxBuckets buckets.
func Summarize(r io.Reader, since, until time.Time, bucket time.Duration) (*Summary, error) {
	return SummarizeDirectory(r, "", since, until, bucket)
}

// SummarizeDirectory is Summarize of one directory's events (a name, or
// TopLevel; "" is every directory's, as Summarize).
func SummarizeDirectory(r io.Reader, directory string, since, until time.Time, bucket time.Duration) (*Summary, error) {
	if !since.IsZero() && !until.IsZero() && !since.Before(until) {
		return nil, fmt.Errorf("audit: summary window: since (%s) is not before until (%s)", since.Format(time.RFC3339), until.Format(time.RFC3339))
	}
	s := &Summary{Since: since, Until: until, Revocations: []Event{}, Buckets: []Bucket{}}
	if bucket > 0 {
		s.Bucket = bucket
	}
	var (
		issued, byAccount, byDomain      = map[string]int{}, map[string]int{}, map[string]int{}
		refused, byRule, revoked         = map[string]int{}, map[string]int{}, map[string]int{}
		ordersInvalid, challengesInvalid = map[string]int{}, map[string]int{}
		series                           = map[int64]*bucketCounts{}
		first, last                      time.Time
	)
	at := func(t time.Time) *bucketCounts {
		k := t.UTC().Truncate(bucket).UnixNano()
		b := series[k]
		if b == nil {
			b = &bucketCounts{issued: map[string]int{}}
			series[k] = b
		}
		return b
	}
	bad, err := Read(r, Filter{Since: since, Directory: directory}, func(e Event) {
		if !until.IsZero() && !e.Time.Before(until) {
			return
		}
		s.Events++
		if first.IsZero() || e.Time.Before(first) {
			first = e.Time
		}
		if e.Time.After(last) {
			last = e.Time
		}
		switch e.Event {
		case OrderCreated:
			s.Orders++
		case CertIssued:
			up := orNone(e.Upstream)
			issued[up]++
			byAccount[orNone(e.Account)]++
			for _, d := range registeredDomains(e.Names) {
				byDomain[d]++
			}
			if bucket > 0 {
				at(e.Time).issued[up]++
			}
		case OrderRefused, FinalizeRefused:
			refused[problemOf(e)]++
			byRule[refusingRule(e)]++
			if bucket > 0 {
				at(e.Time).refused++
			}
		case CertRevoked:
			revoked[RevocationReasonOf(e)]++
			s.Revocations = append(s.Revocations, e)
		case OrderInvalid:
			ordersInvalid[problemOf(e)]++
		case ChallengeInvalid:
			challengesInvalid[orNone(e.Challenge)]++
		}
	})
	s.Unreadable = bad
	if err != nil {
		return nil, err
	}
	s.Issued, s.IssuedByAccount, s.IssuedByDomain = tallyOf(issued), tallyOf(byAccount), tallyOf(byDomain)
	s.Refused, s.RefusedByRule, s.Revoked = tallyOf(refused), tallyOf(byRule), tallyOf(revoked)
	s.OrdersInvalid, s.ChallengesInvalid = tallyOf(ordersInvalid), tallyOf(challengesInvalid)
	if bucket > 0 {
		from, to := since, until.Add(-1) // the last bucket holds the instant before until
		if from.IsZero() {
			from = first
		}
		if until.IsZero() {
			to = last
		}
		if s.Buckets, err = buckets(series, bucket, from, to); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// bucketCounts is a Bucket being counted.
type bucketCounts struct {
	issued  map[string]int
	refused int
}

// buckets lays the counted intervals out densely, from the one holding
// from to the one holding to (none when either is zero: no bound, no event).
func buckets(series map[int64]*bucketCounts, size time.Duration, from, to time.Time) ([]Bucket, error) {
	out := []Bucket{}
	if from.IsZero() || to.IsZero() || to.Before(from) {
		return out, nil
	}
	first, last := from.UTC().Truncate(size), to.UTC().Truncate(size)
	if n := int64(last.Sub(first)/size) + 1; n > MaxBuckets {
		return nil, fmt.Errorf("audit: summary: %d buckets of %s (at most %d)", n, size, MaxBuckets)
	}
	for start := first; !start.After(last); start = start.Add(size) {
		b := Bucket{Start: start, Issued: Tally{}}
		if c := series[start.UnixNano()]; c != nil {
			b.Issued, b.Refused = tallyOf(c.issued), c.refused
		}
		out = append(out, b)
	}
	return out, nil
}

func orNone(s string) string {
	if s == "" {
		return None
	}
	return s
}

// problemOf is the problem type of a refusal or failure: Event.Problem,
// or, on a line written before it existed, the type its reason starts
// with ("rejectedIdentifier: detail" -> "rejectedIdentifier").
func problemOf(e Event) string {
	if e.Problem != "" {
		return e.Problem
	}
	t, _, _ := strings.Cut(e.Reason, ": ")
	return orNone(strings.TrimSpace(t))
}

// RevocationReasonOf names a certificate.revoked event's reason: Event.RevocationReason
// by its RFC 5280 name, or, on a line written before it existed, the
// code in Reason.
func RevocationReasonOf(e Event) string {
	if e.RevocationReason != nil {
		if name, ok := reasonNames[*e.RevocationReason]; ok {
			return name
		}
		return strconv.Itoa(*e.RevocationReason)
	}
	return RevocationReason(e.Reason)
}

// ruleInReason finds the rule the policy names in a refusal: its messages
// read "rule NAME: why". A split order's subproblems ("a: matches rule X;
// b: matches rule Y") name no single rule and do not match.
var ruleInReason = regexp.MustCompile(`\brule ([^;:]+?): `)

// refusingRule is the policy rule that refused e (see Summary.RefusedByRule).
func refusingRule(e Event) string {
	if e.Rule != "" {
		return e.Rule
	}
	if e.Problem != "" {
		return None // a typed line names its rule in Rule, or none refused it
	}
	if m := ruleInReason.FindStringSubmatch(e.Reason); m != nil {
		return m[1]
	}
	return None
}

// reasonNames are the RFC 5280 §5.3.1 CRLReason codes by value.
var reasonNames = map[int]string{
	0: "unspecified", 1: "keyCompromise", 2: "cACompromise", 3: "affiliationChanged",
	4: "superseded", 5: "cessationOfOperation", 6: "certificateHold", 8: "removeFromCRL",
	9: "privilegeWithdrawn", 10: "aACompromise",
}

// RevocationReason names a certificate.revoked event's reason: an RFC 5280
// reason code ("1") by its name ("keyCompromise"), anything else as it is,
// and an empty reason as None.
func RevocationReason(reason string) string {
	if n, err := strconv.Atoi(reason); err == nil {
		if name, ok := reasonNames[n]; ok {
			return name
		}
	}
	return orNone(reason)
}

// RegisteredDomain is the domain a name was registered under: the public
// suffix plus one label (golang.org/x/net/publicsuffix EffectiveTLDPlusOne),
// lower case, without a wildcard label or trailing dot. An IP address, and a
// name that is itself a public suffix or otherwise has no registered domain,
// is returned as it is (lower case).
func RegisteredDomain(name string) string {
	n := strings.TrimSuffix(strings.ToLower(strings.TrimPrefix(name, "*.")), ".")
	if _, err := netip.ParseAddr(n); err == nil {
		return n
	}
	if d, err := publicsuffix.EffectiveTLDPlusOne(n); err == nil {
		return d
	}
	return n
}

// registeredDomains are the distinct registered domains of names.
func registeredDomains(names []string) []string {
	var out []string
	for _, n := range names {
		if d := RegisteredDomain(n); d != "" && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}
