package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/acmebridge/acmebridge/audit"
)

// cmdAudit reads the audit log back, filtered.
func cmdAudit(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", "acmebridge-data/audit.log", "audit log file")
	since := fs.String("since", "", "only events newer than this (e.g. 24h, 30d, or RFC 3339)")
	account := fs.String("account", "", "only this account's events")
	name := fs.String("name", "", "only events naming this identifier")
	event := fs.String("event", "", "only these event types (comma-separated)")
	directory := fs.String("directory", "", `only this directory's events ("/" the top level)`)
	asJSON := fs.Bool("json", false, "print JSON lines")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	f := audit.Filter{Account: *account, Name: *name, Directory: *directory}
	if *event != "" {
		f.Events = strings.Split(*event, ",")
	}
	if *since != "" {
		if t, err := time.Parse(time.RFC3339, *since); err == nil {
			f.Since = t
		} else if d, err := parseSince(*since); err == nil {
			f.Since = time.Now().Add(-d)
		} else {
			fmt.Fprintln(stderr, "audit: --since takes a duration (24h, 30d) or an RFC 3339 time")
			return 2
		}
	}
	in, err := os.Open(*file)
	if err != nil {
		fmt.Fprintln(stderr, "audit:", err)
		return 1
	}
	defer func() { _ = in.Close() }() // read only
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	enc := json.NewEncoder(stdout)
	if !*asJSON {
		fmt.Fprintln(tw, "TIME\tEVENT\tDIRECTORY\tACCOUNT\tNAMES\tUPSTREAM\tSERIAL\tREASON")
	}
	bad, err := audit.Read(in, f, func(e audit.Event) {
		if *asJSON {
			_ = enc.Encode(e)
			return
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Format(time.RFC3339), e.Event, audit.DirectoryLabel(e.Directory), dash(e.Account),
			dash(strings.Join(e.Names, ",")), dash(e.Upstream), dash(e.Serial), dash(e.Why()))
	})
	tw.Flush()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if bad > 0 {
		fmt.Fprintf(stderr, "audit: %d unreadable lines skipped\n", bad)
	}
	return 0
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// parseSince accepts Go durations and days ("30d").
func parseSince(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := time.ParseDuration(d + "h")
		return n * 24, err
	}
	return time.ParseDuration(s)
}
