package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"
)

// logOf writes events as an audit log (plus extra raw lines at the end).
func logOf(t *testing.T, events []Event, raw ...string) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	l := New(&b)
	for _, e := range events {
		require.NoError(t, l.Record(e))
	}
	for _, r := range raw {
		b.WriteString(r + "\n")
	}
	return &b
}

func TestTally(t *testing.T) {
	tl := tallyOf(map[string]int{"b": 2, "a": 2, "c": 5, "d": 1})
	require.Equal(t, Tally{{"c", 5}, {"a", 2}, {"b", 2}, {"d", 1}}, tl, "count desc, then key asc")
	require.Equal(t, 10, tl.Total())
	require.Equal(t, 2, tl.Get("b"))
	require.Equal(t, 0, tl.Get("zzz"))
	require.Equal(t, []string{"c", "a", "b", "d"}, tl.Keys())
	empty := tallyOf(nil)
	require.NotNil(t, empty)
	b, err := json.Marshal(empty)
	require.NoError(t, err)
	require.Equal(t, "[]", string(b))
	b, err = json.Marshal(Tally{{"x", 1}})
	require.NoError(t, err)
	require.JSONEq(t, `[{"key":"x","n":1}]`, string(b))
}

func TestRegisteredDomain(t *testing.T) {
	for in, want := range map[string]string{
		"www.example.com":       "example.com",
		"a.b.c.example.com":     "example.com",
		"WWW.Example.COM.":      "example.com",
		"*.w.example.org":       "example.org",
		"example.com":           "example.com",
		"shop.example.co.uk":    "example.co.uk",
		"a.e2e.test":            "e2e.test", // not a public suffix: the default rule "*"
		"foo.github.io":         "foo.github.io",
		"127.0.0.1":             "127.0.0.1",
		"2001:db8::1":           "2001:db8::1",
		"com":                   "com", // a public suffix has no registered domain
		"localhost":             "localhost",
		"x.internal.corp.local": "corp.local",
	} {
		require.Equal(t, want, RegisteredDomain(in), in)
	}
	require.Equal(t, []string{"example.com", "example.org"},
		registeredDomains([]string{"a.example.com", "b.example.com", "*.example.org", "example.com"}))
}

func TestRevocationReason(t *testing.T) {
	for in, want := range map[string]string{
		"0": "unspecified", "1": "keyCompromise", "4": "superseded", "5": "cessationOfOperation",
		"10": "aACompromise", "7": "7", "admin": "admin", "": None,
	} {
		require.Equal(t, want, RevocationReason(in), in)
	}
}

func TestRefusals(t *testing.T) {
	for _, c := range []struct {
		e         Event
		typ, rule string
	}{
		// The reasons proxy.refuse writes for policy refusals.
		{Event{Reason: "rejectedIdentifier: policy forbids old.legacy.example (rule no-legacy: legacy names are retired, see OPS-42); old.legacy.example: rule no-legacy: legacy names are retired, see OPS-42"},
			"rejectedIdentifier", "no-legacy"},
		{Event{Reason: "rejectedIdentifier: policy forbids y.other (rule default: policy forbids this identifier); y.other: rule default: policy forbids this identifier"},
			"rejectedIdentifier", "default"},
		{Event{Reason: "rejectedIdentifier: policy forbids *.w.example (rule public zone: wildcard names are not issued)"},
			"rejectedIdentifier", "public zone"},
		// A split order names two rules: no single rule refused it.
		{Event{Reason: "rejectedIdentifier: identifiers of this order match different policy rules; order them separately; a.corp: matches rule corp; b.pub: matches rule pub"},
			"rejectedIdentifier", None},
		// Not the policy's doing.
		{Event{Reason: "badCSR: CSR names do not match the order"}, "badCSR", None},
		{Event{Reason: "rejectedIdentifier: the account's external account binding does not allow some identifiers; x: this account may not order x"},
			"rejectedIdentifier", None},
		{Event{Reason: "caa: CAA record for example.com forbids issuance"}, "caa", None},
		{Event{}, None, None},
		// The rule recorded on the event wins.
		{Event{Rule: "keys", Reason: "badCSR: rule keys allows no RSA keys under 3072 bits"}, "badCSR", "keys"},
		// Typed lines: the problem and the rule are fields, and a detail
		// that happens to read "rule X: " names no rule.
		{Event{Problem: "rejectedIdentifier", Rule: "no-legacy", Detail: "policy forbids x (rule no-legacy: retired)"}, "rejectedIdentifier", "no-legacy"},
		{Event{Problem: "badCSR", Detail: "CSR subject attribute rule x: y is not allowed"}, "badCSR", None},
	} {
		require.Equal(t, c.typ, problemOf(c.e), c.e.Reason)
		require.Equal(t, c.rule, refusingRule(c.e), c.e.Reason)
	}
}

func TestSummarize(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	since, until := t0, t0.Add(3*time.Hour)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	events := []Event{
		// Outside the window: before since, and at until (exclusive).
		{Time: at(-time.Second), Event: CertIssued, Account: "old", Upstream: "dev", Names: []string{"old.example.com"}},
		{Time: until, Event: CertIssued, Account: "late", Upstream: "dev", Names: []string{"late.example.com"}},
		// In the window: since is inclusive.
		{Time: at(0), Event: OrderCreated, Account: "a1", Names: []string{"www.example.com"}},
		{Time: at(0), Event: CertIssued, Account: "a1", Upstream: "vault", Names: []string{"www.example.com", "example.com", "*.example.com"}, Serial: "01"},
		{Time: at(10 * time.Minute), Event: OrderCreated, Account: "a1"},
		{Time: at(10 * time.Minute), Event: CertIssued, Account: "a1", Upstream: "vault", Names: []string{"a.example.com", "b.example.org"}, Serial: "02"},
		{Time: at(70 * time.Minute), Event: OrderCreated, Account: "a2"},
		{Time: at(70 * time.Minute), Event: CertIssued, Account: "a2", Upstream: "letsencrypt", Names: []string{"shop.example.co.uk"}, Serial: "03"},
		{Time: at(71 * time.Minute), Event: CertIssued, Account: "a2", Upstream: "vault", Names: []string{"10.0.0.1"}, Serial: "04"},
		{Time: at(80 * time.Minute), Event: OrderRefused, Account: "a2", Names: []string{"x.legacy.example"},
			Reason: "rejectedIdentifier: policy forbids x.legacy.example (rule no-legacy: retired); x.legacy.example: rule no-legacy: retired"},
		{Time: at(81 * time.Minute), Event: OrderRefused, Account: "a2", Reason: "rejectedIdentifier: policy forbids y (rule no-legacy: retired)"},
		{Time: at(150 * time.Minute), Event: FinalizeRefused, Account: "a1", Order: "o9", Reason: "badCSR: CSR names do not match the order"},
		{Time: at(151 * time.Minute), Event: CertRevoked, Account: "a1", Upstream: "vault", Serial: "01", Reason: "1", Actor: "account"},
		{Time: at(152 * time.Minute), Event: CertRevoked, Account: "a1", Upstream: "vault", Serial: "02", Reason: "admin", Actor: "admin"},
		{Time: at(153 * time.Minute), Event: CertRevoked, Account: "a2", Upstream: "letsencrypt", Serial: "03", Reason: "1", Actor: "certificate key"},
		{Time: at(154 * time.Minute), Event: OrderInvalid, Account: "a1", Reason: "serverInternal: upstream vault failed"},
		{Time: at(155 * time.Minute), Event: ChallengeInvalid, Account: "a1", Challenge: "http-01"},
		{Time: at(156 * time.Minute), Event: ChallengeInvalid, Account: "a1", Challenge: "dns-01"},
		{Time: at(157 * time.Minute), Event: ChallengeInvalid, Account: "a1", Challenge: "http-01"},
		{Time: at(158 * time.Minute), Event: AccountCreated, Account: "a3"},
	}
	in := logOf(t, events, `{"time":"2026-03-01T12:00:00Z","event":"certificate.iss`)

	s, err := Summarize(in, since, until, time.Hour)
	require.NoError(t, err)
	require.Equal(t, since, s.Since)
	require.Equal(t, until, s.Until)
	require.Equal(t, len(events)-2, s.Events)
	require.Equal(t, 1, s.Unreadable)
	require.Equal(t, 3, s.Orders)
	require.Equal(t, Tally{{"vault", 3}, {"letsencrypt", 1}}, s.Issued)
	require.Equal(t, Tally{{"a1", 2}, {"a2", 2}}, s.IssuedByAccount)
	// Certificate 01 has three names under example.com: it counts once.
	require.Equal(t, Tally{{"example.com", 2}, {"10.0.0.1", 1}, {"example.co.uk", 1}, {"example.org", 1}}, s.IssuedByDomain)
	require.Equal(t, Tally{{"rejectedIdentifier", 2}, {"badCSR", 1}}, s.Refused)
	require.Equal(t, Tally{{"no-legacy", 2}, {None, 1}}, s.RefusedByRule)
	require.Equal(t, Tally{{"keyCompromise", 2}, {"admin", 1}}, s.Revoked)
	require.Len(t, s.Revocations, 3)
	require.Equal(t, []string{"01", "02", "03"}, []string{s.Revocations[0].Serial, s.Revocations[1].Serial, s.Revocations[2].Serial})
	require.Equal(t, "certificate key", s.Revocations[2].Actor)
	require.Equal(t, Tally{{"serverInternal", 1}}, s.OrdersInvalid)
	require.Equal(t, Tally{{"http-01", 2}, {"dns-01", 1}}, s.ChallengesInvalid)

	require.Equal(t, time.Hour, s.Bucket)
	require.Equal(t, []Bucket{
		{Start: at(0), Issued: Tally{{"vault", 2}}},
		{Start: at(time.Hour), Issued: Tally{{"letsencrypt", 1}, {"vault", 1}}, Refused: 2},
		{Start: at(2 * time.Hour), Issued: Tally{}, Refused: 1},
	}, s.Buckets, "three hours, the last holding the finalize refusal; the event at until is not in a fourth")

	// The same log without a window: everything, buckets from the first
	// event's hour to the last's.
	s, err = Summarize(logOf(t, events), time.Time{}, time.Time{}, time.Hour)
	require.NoError(t, err)
	require.Equal(t, len(events), s.Events)
	require.Equal(t, Tally{{"dev", 2}, {"vault", 3}, {"letsencrypt", 1}}.sorted(), s.Issued)
	require.Len(t, s.Buckets, 5, "09:00 (the event a second before 10:00) to 13:00 (the one at until)")
	require.Equal(t, at(-time.Hour), s.Buckets[0].Start)
	require.Equal(t, Tally{{"dev", 1}}, s.Buckets[0].Issued)
	require.Equal(t, until, s.Buckets[4].Start)
	require.Equal(t, Tally{{"dev", 1}}, s.Buckets[4].Issued)
	var sum int
	for _, b := range s.Buckets {
		sum += b.Issued.Total()
	}
	require.Equal(t, s.Issued.Total(), sum, "the series adds up to the totals")

	// No series without a bucket size.
	s, err = Summarize(logOf(t, events), since, until, 0)
	require.NoError(t, err)
	require.Empty(t, s.Buckets)
	require.Equal(t, 4, s.Issued.Total())
}

// sorted sorts a Tally written out of order in a test.
func (t Tally) sorted() Tally {
	m := map[string]int{}
	for _, c := range t {
		m[c.Key] += c.N
	}
	return tallyOf(m)
}

func TestSummarizeBucketsAlign(t *testing.T) {
	// A window starting mid-hour in another zone: hourly buckets start on
	// UTC hours, daily ones at UTC midnight, and the first holds since.
	zone := time.FixedZone("X", 5*3600+30*60)
	since := time.Date(2026, 3, 1, 15, 45, 0, 0, zone) // 10:15 UTC
	until := since.Add(2 * time.Hour)                  // 12:15 UTC
	events := []Event{
		{Time: time.Date(2026, 3, 1, 10, 20, 0, 0, time.UTC), Event: CertIssued, Upstream: "dev"},
		{Time: time.Date(2026, 3, 1, 12, 14, 0, 0, time.UTC), Event: CertIssued, Upstream: "dev"},
	}
	s, err := Summarize(logOf(t, events), since, until, time.Hour)
	require.NoError(t, err)
	require.Len(t, s.Buckets, 3)
	for i, h := range []int{10, 11, 12} {
		require.True(t, s.Buckets[i].Start.Equal(time.Date(2026, 3, 1, h, 0, 0, 0, time.UTC)), "bucket %d starts %s", i, s.Buckets[i].Start)
	}
	require.Equal(t, []int{1, 0, 1}, []int{s.Buckets[0].Issued.Total(), s.Buckets[1].Issued.Total(), s.Buckets[2].Issued.Total()})

	s, err = Summarize(logOf(t, events), since, until, 24*time.Hour)
	require.NoError(t, err)
	require.Len(t, s.Buckets, 1)
	require.True(t, s.Buckets[0].Start.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)))
	require.Equal(t, Tally{{"dev", 2}}, s.Buckets[0].Issued)

	// A window ending on a bucket boundary has no empty bucket after it.
	s, err = Summarize(logOf(t, events), time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC), time.Hour)
	require.NoError(t, err)
	require.Len(t, s.Buckets, 3)
}

func TestSummarizeEmptyAndErrors(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	s, err := Summarize(strings.NewReader(""), t0, t0.Add(48*time.Hour), 24*time.Hour)
	require.NoError(t, err)
	require.Zero(t, s.Events)
	require.Len(t, s.Buckets, 2, "an empty window still has its (empty) buckets")
	b, err := json.Marshal(s)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc))
	for _, k := range []string{"issued", "issued_by_account", "issued_by_domain", "refused", "refused_by_rule", "revoked", "revocations", "orders_invalid", "challenges_invalid"} {
		require.Equal(t, []any{}, doc[k], "%s is an empty list in JSON, not null", k)
	}
	s, err = Summarize(strings.NewReader(""), time.Time{}, time.Time{}, time.Hour)
	require.NoError(t, err)
	require.Empty(t, s.Buckets, "no bound and no event: no series")

	_, err = Summarize(strings.NewReader(""), t0, t0, time.Hour)
	require.ErrorContains(t, err, "not before")
	_, err = Summarize(strings.NewReader(""), t0.Add(time.Hour), t0, time.Hour)
	require.ErrorContains(t, err, "not before")
	_, err = Summarize(strings.NewReader(""), t0, t0.Add(365*24*time.Hour), time.Minute)
	require.ErrorContains(t, err, "at most 10000")
	_, err = Summarize(iotest.ErrReader(errors.New("disk on fire")), t0, t0.Add(time.Hour), 0)
	require.ErrorContains(t, err, "disk on fire")
}

// TestRevocationReasonTyped: a typed line's reason code is named; a legacy
// line's Reason still is.
func TestRevocationReasonTyped(t *testing.T) {
	require.Equal(t, "keyCompromise", RevocationReasonOf(Event{RevocationReason: ReasonCode(1)}))
	require.Equal(t, "unspecified", RevocationReasonOf(Event{RevocationReason: ReasonCode(0)}))
	require.Equal(t, "superseded", RevocationReasonOf(Event{Reason: "4"}))
	require.Equal(t, None, RevocationReasonOf(Event{}))
}
