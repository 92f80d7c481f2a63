package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/internal/testutil"
	"github.com/acmebridge/acmebridge/proxy/admin"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/store/bolt"
)

func TestParseSpan(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"30d":     30 * 24 * time.Hour,
		"12h":     12 * time.Hour,
		"2w":      14 * 24 * time.Hour,
		"1w2d12h": 9*24*time.Hour + 12*time.Hour,
		"1.5d":    36 * time.Hour,
		"90m":     90 * time.Minute,
		"1h30m":   90 * time.Minute,
	} {
		got, err := parseSpan(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "30", "d", "30 d", "thirty days", "-5d", "0d", "0h", "5y", "1d-2h"} {
		_, err := parseSpan(in)
		require.Error(t, err, in)
	}

	for d, want := range map[time.Duration]string{
		30 * 24 * time.Hour: "30d", 14 * 24 * time.Hour: "14d", 12 * time.Hour: "12h", 90 * time.Minute: "1h30m0s",
	} {
		require.Equal(t, want, formatSpan(d))
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"30d":                       now.Add(-30 * 24 * time.Hour),
		"2w":                        now.Add(-14 * 24 * time.Hour),
		"1h":                        now.Add(-time.Hour),
		"2026-03-01T10:00:00Z":      time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC),
		"2026-03-01T10:00:00+02:00": time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC),
		"2026-03-01":                time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
	} {
		got, err := parseWhen(in, now)
		require.NoError(t, err, in)
		require.True(t, want.Equal(got), "%s: %s, want %s", in, got, want)
	}
	for _, in := range []string{"yesterday", "2026-13-01", "2026-03-01 10:00", "-1d", ""} {
		_, err := parseWhen(in, now)
		require.Error(t, err, in)
		require.ErrorContains(t, err, "RFC 3339", in)
	}
}

func TestReportUsageErrors(t *testing.T) {
	log := filepath.Join(t.TempDir(), "audit.log")
	require.NoError(t, os.WriteFile(log, nil, 0o600))
	now := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--since", "yesterday"}, "--since: \"yesterday\" is neither a span"},
		{[]string{"--until", "soon"}, "--until:"},
		{[]string{"--since", "1d", "--until", "2d"}, "must be before --until"},
		{[]string{"--since", "2026-03-31T12:00:00Z"}, "must be before --until"},
		{[]string{"--json", "--csv"}, "exclude each other"},
		{[]string{"--expiring", "soon"}, "--expiring:"},
		{[]string{"--bucket", "0"}, "--bucket:"},
		{[]string{"--bucket", "1m", "--since", "30d"}, "at most 10000"},
		{[]string{"30d"}, `unexpected argument "30d"`},
		{[]string{"--frobnicate"}, "flag provided but not defined"},
	} {
		args := append([]string{"--file", log, "--expiring", "0"}, c.args...)
		var stdout, stderr bytes.Buffer
		code := runReport(args, &stdout, &stderr, now)
		require.Equal(t, 2, code, "%v: %s", c.args, stderr.String())
		require.Contains(t, stderr.String(), c.want, c.args)
		require.Empty(t, stdout.String(), c.args)
	}

	// Usage through the command table, and runtime errors exit 1.
	code, _, stderr := runCmd("report", "--since", "nope")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "--since")
	code, _, stderr = runCmd("report", "--file", filepath.Join(t.TempDir(), "missing.log"), "--expiring", "0")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "no such file")
	code, _, stderr = runCmd("report", "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "config")
	_, out, _ := runCmd("help")
	require.Contains(t, out, "acmebridge report")
}

// reportLog writes a small audit log (and a torn last line) for the format
// tests, and returns its path.
func reportLog(t *testing.T, t0 time.Time) string {
	t.Helper()
	var b bytes.Buffer
	l := audit.New(&b)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	for _, e := range []audit.Event{
		{Time: at(-time.Hour), Event: audit.CertIssued, Account: "before", Upstream: "dev", Names: []string{"old.example.com"}},
		{Time: at(0), Event: audit.OrderCreated, Account: "acct-1"},
		{Time: at(time.Minute), Event: audit.CertIssued, Account: "acct-1", Upstream: "vault", Serial: "0a", Names: []string{"www.example.com", "example.com"}},
		{Time: at(2 * time.Minute), Event: audit.CertIssued, Account: "acct-2", Upstream: "letsencrypt", Serial: "0b", Names: []string{"shop.example.co.uk"}},
		{Time: at(26 * time.Hour), Event: audit.CertIssued, Account: "acct-1", Upstream: "vault", Serial: "0c", Names: []string{"a.corp.example", "b.corp.example"}},
		{Time: at(27 * time.Hour), Event: audit.OrderRefused, Account: "acct-2", Names: []string{"x.legacy.example"},
			Reason: "rejectedIdentifier: policy forbids x.legacy.example (rule no-legacy: retired, see OPS-42); x.legacy.example: rule no-legacy: retired, see OPS-42"},
		{Time: at(28 * time.Hour), Event: audit.FinalizeRefused, Account: "acct-1", Reason: "badCSR: CSR names do not match the order"},
		{Time: at(29 * time.Hour), Event: audit.CertRevoked, Account: "acct-1", Upstream: "vault", Serial: "0a", Names: []string{"www.example.com", "example.com"}, Reason: "4", Actor: "account"},
	} {
		require.NoError(t, l.Record(e))
	}
	b.WriteString(`{"time":"2026-03-02T`)
	p := filepath.Join(t.TempDir(), "audit.log")
	require.NoError(t, os.WriteFile(p, b.Bytes(), 0o600))
	return p
}

func TestReportFormats(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	log := reportLog(t, t0)
	now := t0.Add(48 * time.Hour)
	args := []string{"--file", log, "--since", "2026-03-01T10:00:00Z", "--expiring", "0"}

	t.Run("json", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		require.Equal(t, 0, runReport(append(args, "--json"), &stdout, &stderr, now), stderr.String())
		require.Contains(t, stderr.String(), "1 unreadable audit lines skipped")
		var doc struct {
			Since, Until    time.Time
			Events          int
			UnreadableLines int `json:"unreadable_lines"`
			Orders          int
			Issued          struct {
				Total      int
				ByUpstream audit.Tally `json:"by_upstream"`
				ByAccount  audit.Tally `json:"by_account"`
				ByDomain   audit.Tally `json:"by_domain"`
				Bucket     string
				OverTime   []struct {
					Start      time.Time
					Total      int
					ByUpstream audit.Tally `json:"by_upstream"`
					Refused    int
				} `json:"over_time"`
			}
			Refused struct {
				Total    int
				ByReason audit.Tally `json:"by_reason"`
				ByRule   audit.Tally `json:"by_rule"`
			}
			Revoked struct {
				Total        int
				ByReason     audit.Tally `json:"by_reason"`
				Certificates []audit.Event
			}
			Expiring *json.RawMessage
		}
		require.NoError(t, json.Unmarshal(stdout.Bytes(), &doc), stdout.String())
		require.True(t, doc.Since.Equal(t0))
		require.True(t, doc.Until.Equal(now))
		require.Equal(t, 7, doc.Events)
		require.Equal(t, 1, doc.UnreadableLines)
		require.Equal(t, 1, doc.Orders)
		require.Equal(t, 3, doc.Issued.Total)
		require.Equal(t, audit.Tally{{Key: "vault", N: 2}, {Key: "letsencrypt", N: 1}}, doc.Issued.ByUpstream)
		require.Equal(t, audit.Tally{{Key: "acct-1", N: 2}, {Key: "acct-2", N: 1}}, doc.Issued.ByAccount)
		require.Equal(t, audit.Tally{{Key: "corp.example", N: 1}, {Key: "example.co.uk", N: 1}, {Key: "example.com", N: 1}}, doc.Issued.ByDomain)
		require.Equal(t, "1d", doc.Issued.Bucket)
		require.Len(t, doc.Issued.OverTime, 3, "daily buckets from 2026-03-01 to 2026-03-03 (until is 10:00 that day)")
		require.Equal(t, []int{2, 1, 0}, []int{doc.Issued.OverTime[0].Total, doc.Issued.OverTime[1].Total, doc.Issued.OverTime[2].Total})
		require.Equal(t, 2, doc.Issued.OverTime[1].Refused)
		require.Equal(t, 2, doc.Refused.Total)
		require.Equal(t, audit.Tally{{Key: "badCSR", N: 1}, {Key: "rejectedIdentifier", N: 1}}, doc.Refused.ByReason)
		require.Equal(t, audit.Tally{{Key: "(none)", N: 1}, {Key: "no-legacy", N: 1}}, doc.Refused.ByRule)
		require.Equal(t, 1, doc.Revoked.Total)
		require.Equal(t, audit.Tally{{Key: "superseded", N: 1}}, doc.Revoked.ByReason)
		require.Equal(t, "0a", doc.Revoked.Certificates[0].Serial)
		require.Equal(t, "null", string(*orNull(doc.Expiring)), "--expiring 0 leaves the section out")
	})

	t.Run("csv", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		require.Equal(t, 0, runReport(append(args, "--csv", "--bucket", "12h"), &stdout, &stderr, now), stderr.String())
		rows, err := csv.NewReader(&stdout).ReadAll() // also checks every row has the header's width
		require.NoError(t, err)
		require.Equal(t, csvHeader, rows[0])
		got := map[string][]string{}
		for _, r := range rows[1:] {
			got[r[0]] = append(got[r[0]], strings.Join(r[1:], "|"))
		}
		require.Equal(t, []string{"since||2026-03-01T10:00:00Z||||||", "until||2026-03-03T10:00:00Z||||||", "generated_at||2026-03-03T10:00:00Z||||||"}, got["window"])
		require.Contains(t, got["summary"], "certificates_issued|3|||||||")
		require.Contains(t, got["summary"], "refusals|2|||||||")
		require.Contains(t, got["summary"], "unreadable_lines|1|||||||")
		require.NotContains(t, strings.Join(got["summary"], "\n"), "expiring")
		require.Equal(t, []string{"vault|2|||||||", "letsencrypt|1|||||||"}, got["issued_by_upstream"])
		require.Equal(t, []string{"corp.example|1|||||||", "example.co.uk|1|||||||", "example.com|1|||||||"}, got["issued_by_domain"])
		require.Equal(t, []string{"(none)|1|||||||", "no-legacy|1|||||||"}, got["refused_by_rule"])
		require.Equal(t, []string{"2026-03-02T15:00:00Z|0a|www.example.com example.com|vault|acct-1|superseded|account"},
			trimKeyCount(got["revocation"]))
		// Five 12-hour buckets (starting 00:00 and 12:00 UTC, the first
		// holding since, the last until) per upstream that issued.
		require.Len(t, got["issued_over_time"], 5*2)
		require.Contains(t, got["issued_over_time"], "vault|1|2026-03-01T00:00:00Z||||||")
		require.Contains(t, got["issued_over_time"], "vault|1|2026-03-02T12:00:00Z||||||")
		require.Contains(t, got["issued_over_time"], "letsencrypt|0|2026-03-02T12:00:00Z||||||")
		require.Empty(t, got["expiring"])
	})

	t.Run("text", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		require.Equal(t, 0, runReport(args, &stdout, &stderr, now), stderr.String())
		out := stdout.String()
		require.Contains(t, out, "acmebridge report: 2026-03-01T10:00:00Z to 2026-03-03T10:00:00Z (UTC, 2d)")
		require.Contains(t, out, "7 events in the window, 1 unreadable lines skipped")
		require.Regexp(t, `(?m)^  certificates issued\s+3$`, out)
		require.Regexp(t, `(?m)^  vault\s+2\s+66\.7%$`, out)
		require.Regexp(t, `(?m)^  letsencrypt\s+1\s+33\.3%$`, out)
		require.Regexp(t, `(?m)^  example\.co\.uk\s+1$`, out)
		require.Regexp(t, `(?m)^  no-legacy\s+1\s+50\.0%$`, out)
		require.Regexp(t, `(?m)^  2026-03-02T15:00:00Z\s+0a\s+www\.example\.com,example\.com\s+vault\s+acct-1\s+superseded\s+account$`, out)
		require.Regexp(t, `(?m)^  FROM\s+VAULT\s+LETSENCRYPT\s+TOTAL$`, out)
		require.Regexp(t, `(?m)^  2026-03-01T00:00:00Z\s+1\s+1\s+2$`, out)
		require.Contains(t, out, "\nChallenges invalid by type\n  TYPE  CHALLENGES  SHARE\n  (none)\n")
		require.NotContains(t, out, "expiring within")
		// Aligned: in each table the second column starts at one offset.
		for _, table := range strings.Split(out, "\n\n")[1:] {
			lines := strings.Split(strings.TrimSpace(table), "\n")[1:]
			col := -1
			for _, l := range lines {
				m := regexp.MustCompile(`^  \S+(?: \S+)*\s{2,}`).FindString(l)
				if m == "" {
					continue
				}
				if col == -1 {
					col = len(m)
				}
				require.Equal(t, col, len(m), "misaligned line in table:\n%s", table)
			}
		}
	})
}

func orNull(m *json.RawMessage) *json.RawMessage {
	if m == nil {
		n := json.RawMessage("null")
		return &n
	}
	return m
}

func trimKeyCount(rows []string) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = strings.TrimPrefix(r, "||")
	}
	return out
}

// certStore fills a bolt store at path with certificates expiring at the
// given offsets from now (negative: expired); the last one is revoked.
func certStore(t *testing.T, path string, now time.Time, offsets ...time.Duration) store.Store {
	t.Helper()
	st, err := bolt.Open(bolt.Options{Path: path})
	require.NoError(t, err)
	ctx := t.Context()
	for i, off := range offsets {
		o := &store.Order{ID: fmt.Sprintf("order-%d", i), AccountID: "acct-1", Status: store.StatusPending,
			Identifiers: []store.Identifier{{Type: "dns", Value: fmt.Sprintf("h%d.example.com", i)}},
			Expires:     now.Add(time.Hour), CreatedAt: now}
		require.NoError(t, st.CreateOrder(ctx, o, nil))
		c := &store.Certificate{ID: fmt.Sprintf("cert-%d", i), AccountID: "acct-1", OrderID: o.ID, Serial: fmt.Sprintf("%02x", i+1),
			Names: []string{o.Identifiers[0].Value}, Upstream: []string{"dev", "vault"}[i%2], NotBefore: now.Add(off - 90*24*time.Hour),
			NotAfter: now.Add(off), IssuedAt: now, ChainPEM: []byte("-"), KeyThumbprint: fmt.Sprintf("tp-%d", i)}
		next := *o
		next.Status, next.CertificateID = store.StatusValid, c.ID
		require.NoError(t, st.PutCertificate(ctx, c, &next))
		if i == len(offsets)-1 {
			c.RevokedAt = now
			require.NoError(t, st.UpdateCertificate(ctx, c))
		}
	}
	return st
}

// TestReportExpiring lists expiring certificates through the real admin API
// (in pages) and, with no server, from the store directly.
func TestReportExpiring(t *testing.T) {
	prev := reportPageSize
	reportPageSize = 2
	t.Cleanup(func() { reportPageSize = prev })

	dir := t.TempDir()
	now := time.Now()
	day := 24 * time.Hour
	// Expiring in 3, 10, 20 and 29 days count; expired, 40 days and the
	// revoked one (5 days) do not.
	st := certStore(t, filepath.Join(dir, "data", "acmebridge.db"), now,
		-day, 3*day, 10*day, 20*day, 29*day, 40*day, 5*day)
	tokenFile := filepath.Join(dir, "admin.token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("secret-token\n"), 0o600))
	srv := httptest.NewServer(admin.New(admin.Options{Store: st, API: &admin.APIOptions{Token: "secret-token", Store: st}}))
	log := filepath.Join(dir, "audit.log")
	require.NoError(t, os.WriteFile(log, nil, 0o600))
	port := testutil.FreePorts(t, 1)[0]
	cfg := filepath.Join(dir, "acmebridge.yaml")
	require.NoError(t, os.WriteFile(cfg, fmt.Appendf(nil, "data_dir: %q\nadmin:\n  listen: \"127.0.0.1:%d\"\n  token_file: %q\naudit:\n  file: %q\n",
		filepath.Join(dir, "data"), port, tokenFile, log), 0o600))

	type doc struct {
		Expiring struct {
			Within       string
			Source       string
			Total        int
			ByUpstream   audit.Tally `json:"by_upstream"`
			Certificates []expiringCert
		}
	}
	wantSerials := []string{"02", "03", "04", "05"}
	check := func(t *testing.T, out []byte, source string) {
		var d doc
		require.NoError(t, json.Unmarshal(out, &d), string(out))
		require.Equal(t, source, d.Expiring.Source)
		require.Equal(t, "30d", d.Expiring.Within)
		require.Equal(t, 4, d.Expiring.Total)
		var serials []string
		for _, c := range d.Expiring.Certificates {
			serials = append(serials, c.Serial)
			require.Equal(t, "acct-1", c.Account)
			require.NotEmpty(t, c.Names)
		}
		require.Equal(t, wantSerials, serials, "soonest first; not expired, revoked or beyond 30 days")
		require.Equal(t, audit.Tally{{Key: "dev", N: 2}, {Key: "vault", N: 2}}, d.Expiring.ByUpstream)
	}

	t.Run("admin-api", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		code := runReport([]string{"--config", cfg, "--server", srv.URL, "--json"}, &stdout, &stderr, now)
		require.Equal(t, 0, code, stderr.String())
		require.Empty(t, stderr.String())
		check(t, stdout.Bytes(), "admin-api")

		stdout.Reset()
		require.Equal(t, 0, runReport([]string{"--config", cfg, "--server", srv.URL, "--expiring", "4d"}, &stdout, &stderr, now))
		require.Regexp(t, `(?m)^  certificates expiring within 4d\s+1$`, stdout.String())
		require.Regexp(t, `Certificates expiring within 4d \(before \S+; not revoked; from the admin API\)\n\s+NOT AFTER\s+DAYS LEFT\s+SERIAL\s+NAMES\s+UPSTREAM\s+ACCOUNT\n\s+\S+\s+3\.0\s+02\s+h1\.example\.com\s+vault\s+acct-1\n`, stdout.String())

		stdout.Reset()
		require.Equal(t, 0, runReport([]string{"--config", cfg, "--server", srv.URL, "--csv"}, &stdout, &stderr, now))
		rows, err := csv.NewReader(&stdout).ReadAll()
		require.NoError(t, err)
		var exp []string
		for _, r := range rows {
			if r[0] == "expiring" {
				exp = append(exp, r[4])
			}
			if r[0] == "summary" && r[1] == "certificates_expiring" {
				require.Equal(t, "4", r[2])
			}
		}
		require.Equal(t, wantSerials, exp)
	})

	t.Run("wrong-token", func(t *testing.T) {
		bad := filepath.Join(dir, "bad.token")
		require.NoError(t, os.WriteFile(bad, []byte("nope"), 0o600))
		var stdout, stderr bytes.Buffer
		code := runReport([]string{"--config", cfg, "--server", srv.URL, "--token-file", bad}, &stdout, &stderr, now)
		require.Equal(t, 1, code)
		require.Contains(t, stderr.String(), "HTTP 401")
		require.Contains(t, stderr.String(), "--expiring 0")
		require.NotContains(t, stderr.String(), "store directly", "an answering server is not bypassed")
		require.Empty(t, stdout.String())
	})

	// The server stops: the report reads the store itself.
	srv.Close()
	require.NoError(t, st.Close())
	t.Run("store", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		code := runReport([]string{"--config", cfg, "--json"}, &stdout, &stderr, now)
		require.Equal(t, 0, code, stderr.String())
		require.Contains(t, stderr.String(), fmt.Sprintf("127.0.0.1:%d", port))
		require.Contains(t, stderr.String(), "reading the store directly")
		check(t, stdout.Bytes(), "store")
	})

	t.Run("no-store", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "other.yaml")
		require.NoError(t, os.WriteFile(other, fmt.Appendf(nil, "data_dir: %q\nadmin:\n  listen: \"127.0.0.1:%d\"\naudit:\n  file: %q\n",
			filepath.Join(t.TempDir(), "empty"), port, log), 0o600))
		var stdout, stderr bytes.Buffer
		require.Equal(t, 1, runReport([]string{"--config", other}, &stdout, &stderr, now))
		require.Contains(t, stderr.String(), "no such file")
		require.NoFileExists(t, filepath.Join(filepath.Dir(other), "empty", "acmebridge.db"), "a report creates no store")
	})
}

func TestAdminURLOf(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8556":  "http://127.0.0.1:8556",
		"0.0.0.0:8556":    "http://127.0.0.1:8556",
		":8556":           "http://127.0.0.1:8556",
		"[::]:8556":       "http://[::1]:8556",
		"[::1]:9000":      "http://[::1]:9000",
		"admin.lan:8556":  "http://admin.lan:8556",
		"10.1.2.3:443":    "http://10.1.2.3:443",
		"not-a-host-port": "http://not-a-host-port",
	} {
		require.Equal(t, want, adminURLOf(configs.Admin{Listen: in}), in)
	}
	require.Equal(t, "https://127.0.0.1:8556", adminURLOf(configs.Admin{Listen: "0.0.0.0:8556",
		TLS: configs.AdminTLS{CertFile: "admin.crt", KeyFile: "admin.key"}}), "https with admin.tls")
}
