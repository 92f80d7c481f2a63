package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/store/bolt"
)

// reportUsage is printed with a usage error of `acmebridge report`.
const reportUsage = `usage: acmebridge report [--since 30d] [--until T] [--expiring 30d] [--bucket 1d]
                         [--config FILE] [--directory D] [--file AUDIT_LOG]... [--server URL]
                         [--token-file F] [--ca-file F] [--json | --csv]
  --since and --until take a span back from now (30d, 12h, 2w, 1w2d) or a time
  (RFC 3339, or a date 2006-01-02 meaning 00:00 UTC); the window is [since, until).
`

// reportPageSize is how many certificates one admin API or store page
// lists (the admin API's maximum).
var reportPageSize = 1000

// reportOptions are the parsed flags of `acmebridge report`.
type reportOptions struct {
	configPath string
	files      []string
	since      time.Time
	until      time.Time
	expiring   time.Duration
	bucket     time.Duration
	server     string
	tokenFile  string
	caFile     string
	format     string // text, json or csv
	// directory keeps one directory's events and certificates (a name,
	// or "/" for the top level); "" every directory's.
	directory string
}

// cmdReport prints what the audit log says about a window (issuance by
// upstream, account and registered domain; refusals; revocations) and the
// certificates expiring soon, for people (tables), programs (--json) or
// spreadsheets (--csv).
func cmdReport(args []string, stdout, stderr io.Writer) int {
	return runReport(args, stdout, stderr, time.Now())
}

// runReport is cmdReport at a given time.
func runReport(args []string, stdout, stderr io.Writer, now time.Time) int {
	opts, ok := parseReportFlags(args, stderr, now)
	if !ok {
		return 2
	}
	cfg, err := configs.Load(opts.configPath)
	if err != nil {
		fmt.Fprintln(stderr, "report:", err)
		return 1
	}
	if len(opts.files) == 0 {
		if cfg.Audit.File == "-" {
			fmt.Fprintln(stderr, "report: audit.file is standard output in this configuration; name the file the log went to with --file")
			return 2
		}
		opts.files = []string{cfg.Audit.File}
	}
	if opts.directory != "" && opts.directory != audit.TopLevel && !cfg.HasDirectory(opts.directory) {
		fmt.Fprintf(stderr, "report: no directory %q is configured\n", opts.directory)
		return 2
	}
	sum, err := summarizeFiles(opts.files, opts.directory, opts.since, opts.until, opts.bucket)
	if err != nil {
		fmt.Fprintln(stderr, "report:", err)
		return 1
	}
	if sum.Unreadable > 0 {
		fmt.Fprintf(stderr, "report: %d unreadable audit lines skipped\n", sum.Unreadable)
	}
	rep := &report{GeneratedAt: now.UTC(), Files: opts.files, Directory: opts.directory, Summary: sum}
	if opts.expiring > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		rep.Expiring, err = expiringCertificates(ctx, cfg, opts, now, stderr)
		if err != nil {
			fmt.Fprintln(stderr, "report: expiring certificates:", err)
			fmt.Fprintln(stderr, "report: (--expiring 0 leaves them out)")
			return 1
		}
	}
	switch opts.format {
	case "json":
		err = writeReportJSON(stdout, rep)
	case "csv":
		err = writeReportCSV(stdout, rep)
	default:
		err = writeReportText(stdout, rep)
	}
	if err != nil {
		fmt.Fprintln(stderr, "report:", err)
		return 1
	}
	return 0
}

// parseReportFlags parses the command line; a usage error is printed and
// reported as false.
func parseReportFlags(args []string, stderr io.Writer, now time.Time) (reportOptions, bool) {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, reportUsage); fs.PrintDefaults() }
	var o reportOptions
	fs.StringVar(&o.configPath, "config", "", "configuration file (default: the quickstart); gives the audit log, admin API and store")
	fs.StringVar(&o.directory, "directory", "", `only this directory's events and certificates (a configured one; "/" the top level)`)
	fs.Func("file", "audit log to read instead of the config's audit.file (repeat for rotated files)", func(s string) error {
		o.files = append(o.files, s)
		return nil
	})
	since := fs.String("since", "30d", "start of the window: a span back from now (30d, 12h, 2w) or a time (RFC 3339, 2006-01-02)")
	until := fs.String("until", "", "end of the window, excluded (default: now); same forms as --since")
	expiring := fs.String("expiring", "30d", "list certificates expiring within this span from now (0: leave them out)")
	bucket := fs.String("bucket", "1d", "interval of the issuance time series (1d, 1h, ...)")
	fs.StringVar(&o.server, "server", os.Getenv("ACMEBRIDGE_ADMIN"), "admin API base URL (env ACMEBRIDGE_ADMIN; default: from the config's admin.listen)")
	fs.StringVar(&o.tokenFile, "token-file", os.Getenv("ACMEBRIDGE_ADMIN_TOKEN_FILE"), "admin bearer token file (env ACMEBRIDGE_ADMIN_TOKEN_FILE; default: the config's admin.token_file)")
	fs.StringVar(&o.caFile, "ca-file", os.Getenv("ACMEBRIDGE_ADMIN_CA_FILE"), "CA bundle to trust for an https admin API (env ACMEBRIDGE_ADMIN_CA_FILE; default: the config's admin.tls.ca_file)")
	asJSON := fs.Bool("json", false, "print one JSON document")
	asCSV := fs.Bool("csv", false, "print one CSV table with a section column")
	if err := fs.Parse(args); err != nil {
		return o, false
	}
	bad := func(format string, a ...any) (reportOptions, bool) {
		fmt.Fprintf(stderr, "report: "+format+"\n", a...)
		return o, false
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q (every option is a flag: --since 30d)", fs.Arg(0))
	}
	if *asJSON && *asCSV {
		return bad("--json and --csv exclude each other")
	}
	o.format = "text"
	if *asJSON {
		o.format = "json"
	} else if *asCSV {
		o.format = "csv"
	}
	var err error
	if o.since, err = parseWhen(*since, now); err != nil {
		return bad("--since: %v", err)
	}
	o.until = now
	if *until != "" {
		if o.until, err = parseWhen(*until, now); err != nil {
			return bad("--until: %v", err)
		}
	}
	if !o.since.Before(o.until) {
		return bad("--since (%s) must be before --until (%s)", o.since.UTC().Format(time.RFC3339), o.until.UTC().Format(time.RFC3339))
	}
	if *expiring == "0" {
		o.expiring = 0
	} else if o.expiring, err = parseSpan(*expiring); err != nil {
		return bad("--expiring: %v", err)
	}
	if o.bucket, err = parseSpan(*bucket); err != nil {
		return bad("--bucket: %v", err)
	}
	if n := o.until.Sub(o.since) / o.bucket; n >= audit.MaxBuckets {
		return bad("--bucket %s makes %d intervals of the window (at most %d): choose a larger one", *bucket, n, audit.MaxBuckets)
	}
	return o, true
}

// spanUnit matches the day and week counts parseSpan turns into hours.
var spanUnit = regexp.MustCompile(`(\d+(?:\.\d+)?)([dw])`)

// parseSpan parses a positive span: a Go duration (12h, 90m) extended with
// days and weeks (30d, 2w, 1w2d12h).
func parseSpan(s string) (time.Duration, error) {
	var convErr error
	hours := spanUnit.ReplaceAllStringFunc(s, func(m string) string {
		p := spanUnit.FindStringSubmatch(m)
		n, err := strconv.ParseFloat(p[1], 64)
		if err != nil {
			convErr = err
		}
		if p[2] == "w" {
			n *= 7
		}
		return strconv.FormatFloat(n*24, 'f', -1, 64) + "h"
	})
	d, err := time.ParseDuration(hours)
	if err != nil || convErr != nil {
		return 0, fmt.Errorf("%q is not a span such as 30d, 12h, 2w or 1w2d", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q is not a positive span", s)
	}
	return d, nil
}

// parseWhen parses a point in time: RFC 3339, a date (00:00 UTC), or a span
// back from now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	d, err := parseSpan(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a span back from now (30d, 12h, 2w) nor a time (RFC 3339 such as 2026-01-31T00:00:00Z, or a date such as 2026-01-31)", s)
	}
	return now.Add(-d), nil
}

// formatSpan writes a span the way the flags take it (30d, 12h, 1h30m0s).
func formatSpan(d time.Duration) string {
	switch {
	case d > 0 && d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d > 0 && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

// summarizeFiles summarizes audit logs read one after the other (a log and
// its rotated predecessors, in any order: the window is by time).
func summarizeFiles(paths []string, directory string, since, until time.Time, bucket time.Duration) (*audit.Summary, error) {
	var readers []io.Reader
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
		defer func() { _ = f.Close() }() // read only
		readers = append(readers, f)
		// A newline after a file whose last line has none (torn), so it is
		// not glued to the next file's first.
		var last [1]byte
		if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
			if _, err := f.ReadAt(last[:], fi.Size()-1); err == nil && last[0] != '\n' {
				readers = append(readers, strings.NewReader("\n"))
			}
		}
	}
	return audit.SummarizeDirectory(io.MultiReader(readers...), directory, since, until, bucket)
}

// report is what `acmebridge report` prints.
type report struct {
	GeneratedAt time.Time
	Files       []string
	// Directory is --directory ("" every directory).
	Directory string
	Summary   *audit.Summary
	// Expiring is nil with --expiring 0.
	Expiring *expiring
}

// expiring are the certificates, not revoked, that expire after the report
// was made and before Before.
type expiring struct {
	Within time.Duration
	Before time.Time
	// Source is where they were listed: "admin-api" or "store".
	Source       string
	Certificates []expiringCert
}

// expiringCert is one expiring certificate.
type expiringCert struct {
	ID       string    `json:"id"`
	Serial   string    `json:"serial"`
	Names    []string  `json:"names"`
	Upstream string    `json:"upstream"`
	Account  string    `json:"account"`
	NotAfter time.Time `json:"not_after"`
}

// byUpstream counts the expiring certificates by upstream.
func (e *expiring) byUpstream() audit.Tally {
	m := map[string]int{}
	for _, c := range e.Certificates {
		m[cmp.Or(c.Upstream, audit.None)]++
	}
	t := audit.Tally{}
	for k, n := range m {
		t = append(t, audit.Count{Key: k, N: n})
	}
	slices.SortFunc(t, func(a, b audit.Count) int { return cmp.Or(cmp.Compare(b.N, a.N), cmp.Compare(a.Key, b.Key)) })
	return t
}

// expiringCertificates lists the certificates expiring within opts.expiring
// through the admin API of the running server, the way the admin commands
// do (a bolt file serves one process). When no server answers there, it
// reads the store directly instead, and says so on stderr.
func expiringCertificates(ctx context.Context, cfg *configs.Config, opts reportOptions, now time.Time, stderr io.Writer) (*expiring, error) {
	exp := &expiring{Within: opts.expiring, Before: now.Add(opts.expiring).UTC(), Source: "admin-api"}
	server := cmp.Or(opts.server, adminURLOf(cfg.Admin))
	tokenFile := cmp.Or(opts.tokenFile, cfg.Admin.TokenFile)
	certs, apiErr := expiringFromAPI(ctx, server, tokenFile, cmp.Or(opts.caFile, cfg.Admin.TLS.CAFile), opts.expiring, opts.directory)
	var dial *net.OpError
	var pathErr *os.PathError
	switch {
	case apiErr == nil:
	case errors.As(apiErr, &dial) && dial.Op == "dial", errors.As(apiErr, &pathErr):
		// No server there (or no token: the server never ran here).
		fmt.Fprintf(stderr, "report: no admin API (%v); reading the store directly\n", apiErr)
		exp.Source = "store"
		var err error
		if certs, err = expiringFromStore(ctx, cfg, exp.Before, opts.directory); err != nil {
			return nil, fmt.Errorf("%w (and the admin API: %w)", err, apiErr)
		}
	default:
		return nil, apiErr
	}
	for _, c := range certs {
		if c.NotAfter.After(now) && c.NotAfter.Before(exp.Before) {
			exp.Certificates = append(exp.Certificates, c)
		}
	}
	slices.SortStableFunc(exp.Certificates, func(a, b expiringCert) int {
		return cmp.Or(a.NotAfter.Compare(b.NotAfter), cmp.Compare(a.Serial, b.Serial))
	})
	if exp.Certificates == nil {
		exp.Certificates = []expiringCert{}
	}
	return exp, nil
}

// expiringFromAPI pages through GET /api/v1/certificates?expiring=
// (&directory= for one directory).
func expiringFromAPI(ctx context.Context, server, tokenFile, caFile string, within time.Duration, directory string) ([]expiringCert, error) {
	c, err := newAdminClient(server, tokenFile, caFile)
	if err != nil {
		return nil, err
	}
	var out []expiringCert
	cursor := ""
	for {
		var page struct {
			Items []expiringCert `json:"items"`
			Next  string         `json:"next"`
		}
		q := url.Values{"expiring": {within.String()}, "limit": {strconv.Itoa(reportPageSize)}, "cursor": {cursor}}
		if directory != "" {
			q.Set("directory", directory)
		}
		if err := c.call(ctx, http.MethodGet, "/api/v1/certificates?"+q.Encode(), nil, &page); err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
		if page.Next == "" || page.Next == cursor {
			return out, nil
		}
		cursor = page.Next
	}
}

// expiringFromStore lists the certificates expiring before a time from the
// configured store, opened directly (no server running). Certificates hold
// no secret, so the store is read without its sealing key. directory, when
// not "", keeps that directory's ("/" the top level).
func expiringFromStore(ctx context.Context, cfg *configs.Config, before time.Time, directory string) ([]expiringCert, error) {
	log := slog.New(slog.DiscardHandler)
	var st store.Store
	var err error
	switch cfg.Store.Driver {
	case "redis":
		st, err = openRedis(cfg, log)
	default:
		// Never create an empty store for a report.
		if _, err := os.Stat(cfg.Store.Bolt.Path); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		st, err = bolt.Open(bolt.Options{Path: cfg.Store.Bolt.Path, Logger: log})
	}
	if err != nil {
		return nil, err
	}
	defer func() { _ = st.Close() }() // only read from
	var out []expiringCert
	cursor := ""
	for {
		page, err := st.ListExpiring(ctx, before, cursor, reportPageSize)
		if err != nil {
			return nil, fmt.Errorf("store: listing expiring certificates: %w", err)
		}
		for _, id := range page.IDs {
			c, err := st.GetCertificate(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("store: certificate %s: %w", id, err)
			}
			if c.RevokedAt.IsZero() && (directory == "" || audit.DirectoryLabel(c.Directory) == directory) {
				out = append(out, expiringCert{ID: c.ID, Serial: c.Serial, Names: c.Names, Upstream: c.Upstream, Account: c.AccountID, NotAfter: c.NotAfter})
			}
		}
		if page.Next == "" {
			return out, nil
		}
		cursor = page.Next
	}
}

// reportJSON is the document --json prints.
type reportJSON struct {
	GeneratedAt time.Time `json:"generated_at"`
	// Directory is the directory reported on ("/" the top level); absent
	// for every directory.
	Directory       string        `json:"directory,omitempty"`
	Since           time.Time     `json:"since"`
	Until           time.Time     `json:"until"`
	AuditFiles      []string      `json:"audit_files"`
	Events          int           `json:"events"`
	UnreadableLines int           `json:"unreadable_lines"`
	Orders          int           `json:"orders"`
	Issued          issuedJSON    `json:"issued"`
	Refused         refusedJSON   `json:"refused"`
	Revoked         revokedJSON   `json:"revoked"`
	OrdersInvalid   audit.Tally   `json:"orders_invalid_by_reason"`
	ChallengesFail  audit.Tally   `json:"challenges_invalid_by_type"`
	Expiring        *expiringJSON `json:"expiring"`
}

type issuedJSON struct {
	Total      int          `json:"total"`
	ByUpstream audit.Tally  `json:"by_upstream"`
	ByAccount  audit.Tally  `json:"by_account"`
	ByDomain   audit.Tally  `json:"by_domain"`
	Bucket     string       `json:"bucket"`
	OverTime   []bucketJSON `json:"over_time"`
}

type bucketJSON struct {
	Start   time.Time   `json:"start"`
	Total   int         `json:"total"`
	Issued  audit.Tally `json:"by_upstream"`
	Refused int         `json:"refused"`
}

type refusedJSON struct {
	Total    int         `json:"total"`
	ByReason audit.Tally `json:"by_reason"`
	ByRule   audit.Tally `json:"by_rule"`
}

type revokedJSON struct {
	Total        int           `json:"total"`
	ByReason     audit.Tally   `json:"by_reason"`
	Certificates []audit.Event `json:"certificates"`
}

type expiringJSON struct {
	Within       string         `json:"within"`
	Before       time.Time      `json:"before"`
	Source       string         `json:"source"`
	Total        int            `json:"total"`
	ByUpstream   audit.Tally    `json:"by_upstream"`
	Certificates []expiringCert `json:"certificates"`
}

func writeReportJSON(w io.Writer, r *report) error {
	s := r.Summary
	doc := reportJSON{
		GeneratedAt: r.GeneratedAt, Directory: r.Directory, Since: s.Since.UTC(), Until: s.Until.UTC(), AuditFiles: r.Files,
		Events: s.Events, UnreadableLines: s.Unreadable, Orders: s.Orders,
		Issued: issuedJSON{Total: s.Issued.Total(), ByUpstream: s.Issued, ByAccount: s.IssuedByAccount,
			ByDomain: s.IssuedByDomain, Bucket: formatSpan(s.Bucket), OverTime: []bucketJSON{}},
		Refused:       refusedJSON{Total: s.Refused.Total(), ByReason: s.Refused, ByRule: s.RefusedByRule},
		Revoked:       revokedJSON{Total: len(s.Revocations), ByReason: s.Revoked, Certificates: s.Revocations},
		OrdersInvalid: s.OrdersInvalid, ChallengesFail: s.ChallengesInvalid,
	}
	for _, b := range s.Buckets {
		doc.Issued.OverTime = append(doc.Issued.OverTime, bucketJSON{Start: b.Start, Total: b.Issued.Total(), Issued: b.Issued, Refused: b.Refused})
	}
	if e := r.Expiring; e != nil {
		doc.Expiring = &expiringJSON{Within: formatSpan(e.Within), Before: e.Before, Source: e.Source,
			Total: len(e.Certificates), ByUpstream: e.byUpstream(), Certificates: e.Certificates}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// csvHeader are the columns of --csv. Every row fills "section" and the
// columns that apply to it: "window" rows fill key (since, until,
// generated_at) and time; "summary" rows and tallies fill key and count;
// the time series
// fills time (the interval's start), key (the upstream) and count; a
// revocation fills time, serial, names, upstream, account, reason and
// actor; an expiring certificate fills time (its notAfter), serial, names,
// upstream and account.
var csvHeader = []string{"section", "key", "count", "time", "serial", "names", "upstream", "account", "reason", "actor"}

func writeReportCSV(w io.Writer, r *report) error {
	s := r.Summary
	cw := csv.NewWriter(w)
	row := func(cells ...string) {
		full := make([]string, len(csvHeader))
		copy(full, cells)
		_ = cw.Write(full)
	}
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	row(csvHeader...)
	row("window", "since", "", ts(s.Since))
	row("window", "until", "", ts(s.Until))
	row("window", "generated_at", "", ts(r.GeneratedAt))
	counts := [][2]string{
		{"events", itoa(s.Events)}, {"unreadable_lines", itoa(s.Unreadable)}, {"orders_created", itoa(s.Orders)},
		{"certificates_issued", itoa(s.Issued.Total())}, {"refusals", itoa(s.Refused.Total())},
		{"revocations", itoa(len(s.Revocations))}, {"orders_invalid", itoa(s.OrdersInvalid.Total())},
		{"challenges_invalid", itoa(s.ChallengesInvalid.Total())},
	}
	if r.Expiring != nil {
		counts = append(counts, [2]string{"certificates_expiring", itoa(len(r.Expiring.Certificates))})
	}
	for _, c := range counts {
		row("summary", c[0], c[1])
	}
	tally := func(section string, t audit.Tally) {
		for _, c := range t {
			row(section, c.Key, itoa(c.N))
		}
	}
	tally("issued_by_upstream", s.Issued)
	tally("issued_by_account", s.IssuedByAccount)
	tally("issued_by_domain", s.IssuedByDomain)
	tally("refused_by_reason", s.Refused)
	tally("refused_by_rule", s.RefusedByRule)
	tally("revoked_by_reason", s.Revoked)
	tally("orders_invalid_by_reason", s.OrdersInvalid)
	tally("challenges_invalid_by_type", s.ChallengesInvalid)
	upstreams := s.Issued.Keys()
	for _, b := range s.Buckets {
		for _, u := range upstreams {
			row("issued_over_time", u, itoa(b.Issued.Get(u)), ts(b.Start))
		}
	}
	for _, e := range s.Revocations {
		row("revocation", "", "", ts(e.Time), e.Serial, strings.Join(e.Names, " "), e.Upstream, e.Account, audit.RevocationReasonOf(e), e.Actor)
	}
	if r.Expiring != nil {
		tally("expiring_by_upstream", r.Expiring.byUpstream())
		for _, c := range r.Expiring.Certificates {
			row("expiring", "", "", ts(c.NotAfter), c.Serial, strings.Join(c.Names, " "), c.Upstream, c.Account)
		}
	}
	cw.Flush()
	return cw.Error()
}

func itoa(n int) string { return strconv.Itoa(n) }

// writeReportText prints the report as aligned tables.
func writeReportText(w io.Writer, r *report) error {
	s := r.Summary
	var b bytes.Buffer
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	fmt.Fprintf(&b, "acmebridge report: %s to %s (UTC, %s)\n", ts(s.Since), ts(s.Until), formatSpan(s.Until.Sub(s.Since)))
	if r.Directory != "" {
		fmt.Fprintf(&b, "directory %s only\n", r.Directory)
	}
	fmt.Fprintf(&b, "audit log %s: %d events in the window", strings.Join(r.Files, ", "), s.Events)
	if s.Unreadable > 0 {
		fmt.Fprintf(&b, ", %d unreadable lines skipped", s.Unreadable)
	}
	fmt.Fprintf(&b, "\ngenerated %s\n", ts(r.GeneratedAt))

	table := func(title string, header []string, rows [][]string) {
		fmt.Fprintf(&b, "\n%s\n", title)
		tw := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  "+strings.Join(header, "\t"))
		if len(rows) == 0 {
			fmt.Fprintln(tw, "  (none)")
		}
		for _, r := range rows {
			fmt.Fprintln(tw, "  "+strings.Join(r, "\t"))
		}
		tw.Flush()
	}
	tally := func(title, keyHeader, countHeader string, t audit.Tally) {
		total := t.Total()
		var rows [][]string
		for _, c := range t {
			rows = append(rows, []string{c.Key, itoa(c.N), fmt.Sprintf("%.1f%%", 100*float64(c.N)/float64(total))})
		}
		table(title, []string{keyHeader, countHeader, "SHARE"}, rows)
	}

	summary := [][]string{
		{"orders created", itoa(s.Orders)},
		{"certificates issued", itoa(s.Issued.Total())},
		{"refusals (newOrder and finalize)", itoa(s.Refused.Total())},
		{"revocations", itoa(len(s.Revocations))},
		{"orders invalid (validation or upstream)", itoa(s.OrdersInvalid.Total())},
		{"challenges invalid", itoa(s.ChallengesInvalid.Total())},
	}
	if e := r.Expiring; e != nil {
		summary = append(summary, []string{"certificates expiring within " + formatSpan(e.Within), itoa(len(e.Certificates))})
	}
	table("Summary", []string{"WHAT", "COUNT"}, summary)
	tally("Issued by upstream", "UPSTREAM", "CERTIFICATES", s.Issued)
	tally("Issued by account", "ACCOUNT", "CERTIFICATES", s.IssuedByAccount)
	table("Issued by registered domain (a certificate counts once per domain among its names)",
		[]string{"DOMAIN", "CERTIFICATES"}, tallyRows(s.IssuedByDomain))
	tally("Refusals by reason (problem type)", "REASON", "REFUSALS", s.Refused)
	tally("Refusals by policy rule", "RULE", "REFUSALS", s.RefusedByRule)
	tally("Revocations by reason", "REASON", "REVOCATIONS", s.Revoked)
	var rows [][]string
	for _, e := range s.Revocations {
		rows = append(rows, []string{ts(e.Time), dash(e.Serial), dash(strings.Join(e.Names, ",")), dash(e.Upstream),
			dash(e.Account), audit.RevocationReasonOf(e), dash(e.Actor)})
	}
	table("Revocations", []string{"TIME", "SERIAL", "NAMES", "UPSTREAM", "ACCOUNT", "REASON", "BY"}, rows)
	tally("Orders invalid by reason (problem type)", "REASON", "ORDERS", s.OrdersInvalid)
	tally("Challenges invalid by type", "TYPE", "CHALLENGES", s.ChallengesInvalid)

	if s.Bucket > 0 {
		upstreams := s.Issued.Keys()
		rows = nil
		for _, bk := range s.Buckets {
			if bk.Issued.Total() == 0 {
				continue
			}
			row := []string{ts(bk.Start)}
			for _, u := range upstreams {
				row = append(row, itoa(bk.Issued.Get(u)))
			}
			rows = append(rows, append(row, itoa(bk.Issued.Total())))
		}
		header := []string{"FROM"}
		for _, u := range upstreams {
			header = append(header, strings.ToUpper(u))
		}
		header = append(header, "TOTAL")
		table("Issued per "+formatSpan(s.Bucket)+" (intervals with issuance)", header, rows)
	}

	if e := r.Expiring; e != nil {
		rows = nil
		for _, c := range e.Certificates {
			rows = append(rows, []string{ts(c.NotAfter), fmt.Sprintf("%.1f", c.NotAfter.Sub(r.GeneratedAt).Hours()/24),
				dash(c.Serial), dash(strings.Join(c.Names, ",")), dash(c.Upstream), dash(c.Account)})
		}
		table(fmt.Sprintf("Certificates expiring within %s (before %s; not revoked; from the %s)", formatSpan(e.Within), ts(e.Before), sourceName(e.Source)),
			[]string{"NOT AFTER", "DAYS LEFT", "SERIAL", "NAMES", "UPSTREAM", "ACCOUNT"}, rows)
	}
	_, err := w.Write(b.Bytes())
	return err
}

func tallyRows(t audit.Tally) [][]string {
	var rows [][]string
	for _, c := range t {
		rows = append(rows, []string{c.Key, itoa(c.N)})
	}
	return rows
}

func sourceName(s string) string {
	if s == "store" {
		return "store, read directly"
	}
	return "admin API"
}
