package test

import (
	"context"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/publicsuffix"
)

// reportYAML routes two zones to one local CA and a third to another,
// refuses a retired zone with a reason and denies everything else.
const reportYAML = `upstreams:
  - name: internal
    type: local
  - name: public
    type: local
policy:
  rules:
    - name: corp
      match: {domains: ["*.alpha.test", "*.beta.test"]}
      upstreams: [internal]
    - name: no-legacy
      match: {domains: ["*.legacy.test"]}
      action: deny
      reason: "legacy names are retired"
    - name: pub
      match: {domains: ["*.gamma.test", "*.acme.co.uk"]}
      upstreams: [public]
  default: {action: deny}
`

// reportCount is one entry of a tally in `acmebridge report --json`.
type reportCount struct {
	Key string `json:"key"`
	N   int    `json:"n"`
}

// reportDoc is the part of `acmebridge report --json` the test checks.
type reportDoc struct {
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
	Events int       `json:"events"`
	Orders int       `json:"orders"`
	Issued struct {
		Total      int           `json:"total"`
		ByUpstream []reportCount `json:"by_upstream"`
		ByAccount  []reportCount `json:"by_account"`
		ByDomain   []reportCount `json:"by_domain"`
		OverTime   []struct {
			Start      time.Time     `json:"start"`
			ByUpstream []reportCount `json:"by_upstream"`
		} `json:"over_time"`
	} `json:"issued"`
	Refused struct {
		Total    int           `json:"total"`
		ByReason []reportCount `json:"by_reason"`
		ByRule   []reportCount `json:"by_rule"`
	} `json:"refused"`
	Revoked struct {
		Total        int           `json:"total"`
		ByReason     []reportCount `json:"by_reason"`
		Certificates []auditEvent  `json:"certificates"`
	} `json:"revoked"`
	Expiring *struct {
		Within       string `json:"within"`
		Source       string `json:"source"`
		Total        int    `json:"total"`
		Certificates []struct {
			Serial   string    `json:"serial"`
			Names    []string  `json:"names"`
			Upstream string    `json:"upstream"`
			Account  string    `json:"account"`
			NotAfter time.Time `json:"not_after"`
		} `json:"certificates"`
	} `json:"expiring"`
}

// asMap turns a tally into key -> count (its order is checked apart).
func asMap(t []reportCount) map[string]int {
	m := map[string]int{}
	for _, c := range t {
		m[c.Key] = c.N
	}
	return m
}

// requireSortedTally requires count desc, then key asc.
func requireSortedTally(t *testing.T, name string, tl []reportCount) {
	t.Helper()
	require.True(t, slices.IsSortedFunc(tl, func(a, b reportCount) int {
		if a.N != b.N {
			return b.N - a.N
		}
		return strings.Compare(a.Key, b.Key)
	}), "%s is not sorted by count then key: %v", name, tl)
}

// TestReport issues real certificates with lego for two accounts through two
// local CAs, provokes policy refusals and revocations (by the client and by
// the operator), then checks `acmebridge report` (JSON, CSV and text)
// against the audit log of the same run, read here independently, and
// against what the test knows it did.
func TestReport(t *testing.T) {
	quietLego(t)
	s := startServer(t, reportYAML)
	start := time.Now()

	alice, aliceUser := legoAccount(t, s, "alice@example.com", nil)
	bob, bobUser := legoAccount(t, s, "bob@example.com", nil)
	aliceID, bobID := accountID(aliceUser.reg.Location), accountID(bobUser.reg.Location)

	// What the test does, and so what the report must say.
	type issued struct {
		account, upstream string
		names             []string
		serial            string
		chain             []byte
	}
	plan := []issued{
		{account: aliceID, upstream: "internal", names: []string{"a.alpha.test"}},
		{account: aliceID, upstream: "internal", names: []string{"b.alpha.test", "c.beta.test"}},
		{account: aliceID, upstream: "public", names: []string{"x.gamma.test"}},
		{account: bobID, upstream: "public", names: []string{"y.gamma.test"}},
		{account: bobID, upstream: "public", names: []string{"shop.acme.co.uk", "www.shop.acme.co.uk"}},
	}
	for i := range plan {
		c := alice
		if plan[i].account == bobID {
			c = bob
		}
		res := legoObtain(t, c, plan[i].names...)
		roots, rootsName := rootPool(t, s, plan[i].upstream)
		leaf := verifyChainPool(t, roots, rootsName, res.Certificate, plan[i].names)
		plan[i].serial, plan[i].chain = hex.EncodeToString(leaf.SerialNumber.Bytes()), res.Certificate
	}
	wantIssuedByUpstream := map[string]int{"internal": 2, "public": 3}
	wantIssuedByAccount := map[string]int{aliceID: 3, bobID: 2}
	// c.beta.test shares a certificate with b.alpha.test: both domains
	// count it; the two names under acme.co.uk count once.
	wantIssuedByDomain := map[string]int{"alpha.test": 2, "beta.test": 1, "gamma.test": 2, "acme.co.uk": 1}

	// Refusals: a deny rule with a reason, and the default deny.
	_, err := legoObtainErr(alice, "old.legacy.test")
	requireProblem(t, err, "rejectedIdentifier")
	_, err = legoObtainErr(bob, "nothing.delta.test")
	requireProblem(t, err, "rejectedIdentifier")

	// Revocations: alice revokes x.gamma.test as superseded; the operator
	// revokes y.gamma.test through the admin API.
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	superseded := uint(4)
	require.NoError(t, alice.Certificate.RevokeWithReason(ctx, plan[2].chain, &superseded))
	s.admin(t, "cert", "revoke", "--reason", "5", plan[3].serial)
	revokedSerials := []string{plan[2].serial, plan[3].serial}

	// The audit log of this run, read independently of acmebridge's audit
	// package.
	lines := readAudit(t, s.AuditFile())
	logIssuedByUpstream, logIssuedByAccount, logIssuedByDomain := map[string]int{}, map[string]int{}, map[string]int{}
	logRefused, logOrders := 0, 0
	var logRevoked []string
	for _, l := range lines {
		e := l.E
		switch e.Event {
		case "certificate.issued":
			logIssuedByUpstream[e.Upstream]++
			logIssuedByAccount[e.Account]++
			seen := map[string]bool{}
			for _, n := range e.Names {
				d, err := publicsuffix.EffectiveTLDPlusOne(n)
				require.NoError(t, err, n)
				if !seen[d] {
					seen[d] = true
					logIssuedByDomain[d]++
				}
			}
		case "order.refused", "finalize.refused":
			logRefused++
		case "order.created":
			logOrders++
		case "certificate.revoked":
			logRevoked = append(logRevoked, e.Serial)
		}
	}
	dump := dumpAudit(lines)
	require.Equal(t, wantIssuedByUpstream, logIssuedByUpstream, "the audit log holds what the test issued:\n%s", dump)
	require.Equal(t, wantIssuedByAccount, logIssuedByAccount, dump)
	require.Equal(t, wantIssuedByDomain, logIssuedByDomain, dump)
	require.Equal(t, 2, logRefused, dump)
	require.Equal(t, 5, logOrders, dump)
	require.ElementsMatch(t, revokedSerials, logRevoked, dump)

	report := func(t *testing.T, args ...string) cliResult {
		t.Helper()
		r := runCLI(t, s.Dir, append([]string{"report", "--config", s.ConfigPath}, args...)...)
		require.Equal(t, 0, r.Code, "acmebridge report %v:\nstdout:\n%s\nstderr:\n%s", args, r.Stdout, r.Stderr)
		return r
	}

	t.Run("json", func(t *testing.T) {
		r := report(t, "--since", "1h", "--json", "--expiring", "100d", "--bucket", "1h")
		var doc reportDoc
		require.NoError(t, json.Unmarshal([]byte(r.Stdout), &doc), r.Stdout)
		require.WithinDuration(t, time.Now(), doc.Until, time.Minute)
		require.WithinDuration(t, doc.Until.Add(-time.Hour), doc.Since, time.Second)
		require.False(t, doc.Since.After(start), "the window holds the whole run")
		require.Equal(t, len(lines), doc.Events, "every line of this run is in the window")

		require.Equal(t, 5, doc.Issued.Total)
		require.Equal(t, logIssuedByUpstream, asMap(doc.Issued.ByUpstream))
		require.Equal(t, logIssuedByAccount, asMap(doc.Issued.ByAccount))
		require.Equal(t, logIssuedByDomain, asMap(doc.Issued.ByDomain))
		require.Equal(t, []reportCount{{"public", 3}, {"internal", 2}}, doc.Issued.ByUpstream)
		for name, tl := range map[string][]reportCount{"by_account": doc.Issued.ByAccount, "by_domain": doc.Issued.ByDomain} {
			requireSortedTally(t, name, tl)
		}
		perHour := map[string]int{}
		for _, b := range doc.Issued.OverTime {
			require.Equal(t, b.Start, b.Start.Truncate(time.Hour), "hourly buckets start on the hour")
			for _, c := range b.ByUpstream {
				perHour[c.Key] += c.N
			}
		}
		require.Equal(t, logIssuedByUpstream, perHour, "the time series adds up to the totals")
		require.Equal(t, logOrders, doc.Orders)

		require.Equal(t, logRefused, doc.Refused.Total)
		require.Equal(t, map[string]int{"rejectedIdentifier": 2}, asMap(doc.Refused.ByReason))
		require.Equal(t, map[string]int{"no-legacy": 1, "default": 1}, asMap(doc.Refused.ByRule))

		require.Equal(t, 2, doc.Revoked.Total)
		require.Equal(t, map[string]int{"superseded": 1, "cessationOfOperation": 1}, asMap(doc.Revoked.ByReason))
		var serials []string
		for _, e := range doc.Revoked.Certificates {
			serials = append(serials, e.Serial)
		}
		require.Equal(t, revokedSerials, serials, "revocations in log order")
		require.Equal(t, "admin", doc.Revoked.Certificates[1].Actor)

		// The local CAs issue for 90 days: every certificate not revoked
		// expires within 100 days; the admin API of the running server
		// lists them.
		require.NotNil(t, doc.Expiring)
		require.Equal(t, "admin-api", doc.Expiring.Source)
		require.Equal(t, "100d", doc.Expiring.Within)
		var expiring []string
		for _, c := range doc.Expiring.Certificates {
			expiring = append(expiring, c.Serial)
			require.NotEmpty(t, c.Upstream)
			require.Contains(t, []string{aliceID, bobID}, c.Account)
		}
		var want []string
		for _, p := range plan {
			if !slices.Contains(revokedSerials, p.serial) {
				want = append(want, p.serial)
			}
		}
		require.ElementsMatch(t, want, expiring)
		require.Equal(t, len(want), doc.Expiring.Total)

		// By default (30 days) nothing issued today expires.
		r = report(t, "--since", "1h", "--json")
		doc = reportDoc{}
		require.NoError(t, json.Unmarshal([]byte(r.Stdout), &doc))
		require.Equal(t, "30d", doc.Expiring.Within)
		require.Zero(t, doc.Expiring.Total)
		require.Equal(t, 5, doc.Issued.Total)

		// A window that ended before the run holds none of it.
		r = report(t, "--since", "2h", "--until", start.Add(-time.Minute).UTC().Format(time.RFC3339), "--json", "--expiring", "0")
		doc = reportDoc{}
		require.NoError(t, json.Unmarshal([]byte(r.Stdout), &doc))
		require.Zero(t, doc.Events)
		require.Zero(t, doc.Issued.Total)
		require.Nil(t, doc.Expiring)
	})

	t.Run("csv", func(t *testing.T) {
		r := report(t, "--since", "1h", "--csv", "--expiring", "100d")
		rows, err := csv.NewReader(strings.NewReader(r.Stdout)).ReadAll()
		require.NoError(t, err, r.Stdout)
		require.Equal(t, []string{"section", "key", "count", "time", "serial", "names", "upstream", "account", "reason", "actor"}, rows[0])
		sections := map[string]map[string]string{}
		var revoked, expiring []string
		for _, row := range rows[1:] {
			if sections[row[0]] == nil {
				sections[row[0]] = map[string]string{}
			}
			sections[row[0]][row[1]] = row[2]
			switch row[0] {
			case "revocation":
				revoked = append(revoked, row[4])
			case "expiring":
				expiring = append(expiring, row[4])
			}
		}
		toCSV := func(m map[string]int) map[string]string {
			out := map[string]string{}
			for k, v := range m {
				out[k] = itoa(v)
			}
			return out
		}
		require.Equal(t, toCSV(logIssuedByUpstream), sections["issued_by_upstream"])
		require.Equal(t, toCSV(logIssuedByAccount), sections["issued_by_account"])
		require.Equal(t, toCSV(logIssuedByDomain), sections["issued_by_domain"])
		require.Equal(t, map[string]string{"no-legacy": "1", "default": "1"}, sections["refused_by_rule"])
		require.Equal(t, "5", sections["summary"]["certificates_issued"])
		require.Equal(t, "2", sections["summary"]["refusals"])
		require.Equal(t, "3", sections["summary"]["certificates_expiring"])
		require.Equal(t, revokedSerials, revoked)
		require.Len(t, expiring, 3)
	})

	t.Run("text", func(t *testing.T) {
		r := report(t, "--since", "1h")
		out := r.Stdout
		require.Regexp(t, `(?m)^  certificates issued\s+5$`, out)
		require.Regexp(t, `(?m)^  public\s+3\s+60\.0%$`, out)
		require.Regexp(t, `(?m)^  internal\s+2\s+40\.0%$`, out)
		require.Regexp(t, `(?m)^  `+regexp.QuoteMeta(aliceID)+`\s+3\s+60\.0%$`, out)
		require.Regexp(t, `(?m)^  acme\.co\.uk\s+1$`, out)
		require.Regexp(t, `(?m)^  no-legacy\s+1\s+50\.0%$`, out)
		require.Regexp(t, `(?m)^  \S+\s+`+plan[3].serial+`\s+y\.gamma\.test\s+public\s+`+regexp.QuoteMeta(bobID)+`\s+cessationOfOperation\s+admin$`, out)
		require.Regexp(t, `(?m)^  certificates expiring within 30d\s+0$`, out)
		require.Contains(t, out, "from the admin API")
	})

	t.Run("usage-error", func(t *testing.T) {
		r := runCLI(t, s.Dir, "report", "--config", s.ConfigPath, "--since", "last week")
		require.Equal(t, 2, r.Code)
		require.Contains(t, r.Stderr, "--since")
		require.Empty(t, r.Stdout)
	})
}
