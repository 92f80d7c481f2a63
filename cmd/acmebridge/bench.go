package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	legolog "github.com/go-acme/lego/v5/log"
	"github.com/schollz/progressbar/v3"

	"github.com/acmebridge/acmebridge/bench"
)

// pidList is a repeatable --server-pid flag.
type pidList []int

func (p *pidList) String() string { return fmt.Sprint([]int(*p)) }

func (p *pidList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return fmt.Errorf("not a process id: %q", s)
		}
		*p = append(*p, n)
	}
	return nil
}

// cmdBench runs the load generator against any ACME directory. Exit 1
// when the run could not start or any issuance failed (the report is
// printed either way).
func cmdBench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg bench.Config
	fs.StringVar(&cfg.Directory, "directory", "", "ACME directory URL (HTTPS; required)")
	fs.StringVar(&cfg.CABundle, "ca-bundle", "", "PEM roots to trust for the server's TLS (default: the system's)")
	fs.IntVar(&cfg.Clients, "clients", 16, "concurrent clients, each with its own account")
	fs.IntVar(&cfg.Orders, "orders", 10, "issuances per client")
	fs.StringVar(&cfg.Challenge, "challenge", bench.HTTP01, "challenge to answer: http-01 or dns-01")
	fs.StringVar(&cfg.EABKID, "eab-kid", "", "External Account Binding key ID (with --eab-hmac)")
	fs.StringVar(&cfg.EABHMAC, "eab-hmac", "", "External Account Binding HMAC key, base64url")
	httpPort := fs.Int("http-port", 80, "port of the http-01 responder on 127.0.0.1 (where the server validates)")
	fs.StringVar(&cfg.DNSAddr, "dns-server", "", "listen address of the in-process DNS server (A 127.0.0.1 for every name, the dns-01 TXT records); the server under test must resolve through it")
	fs.StringVar(&cfg.Domain, "domain", "bench.test", "parent domain of the names ordered")
	fs.StringVar(&cfg.Label, "label", "", "name of the run in the report (default: the directory URL)")
	var pids pidList
	fs.Var(&pids, "server-pid", "a server process whose CPU time to count (repeatable)")
	fs.IntVar(&cfg.Window, "window", 0, "print throughput, p50/p99 and the server's RSS (--server-pid) every N issuances: a long run's drift")
	fs.BoolVar(&cfg.ClientPolls, "client-polls", false, "read the authorization after its challenge and the order after finalize even when already valid, as certbot does (7 requests per issuance)")
	fs.DurationVar(&cfg.PollInterval, "poll-interval", 50*time.Millisecond, "wait between polls when the server sends no Retry-After")
	fs.DurationVar(&cfg.MaxRetryAfter, "max-retry-after", time.Second, "cap on a Retry-After the server sends")
	fs.DurationVar(&cfg.Timeout, "timeout", 60*time.Second, "bound of one issuance")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	noProgress := fs.Bool("no-progress", false, "no progress bar (it is off anyway when stderr is not a terminal)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if cfg.Directory == "" {
		fmt.Fprintln(stderr, "bench: --directory is required")
		return 2
	}
	cfg.HTTPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(*httpPort))
	cfg.ServerPIDs = pids

	// lego logs its retries; they would tear the progress bar.
	legolog.SetDefault(slog.New(slog.DiscardHandler))
	finish := func() {}
	if !*noProgress && isTerminal(stderr) {
		bar := progressbar.NewOptions(cfg.Clients*cfg.Orders,
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription("issuing"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("cert"),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish())
		cfg.Progress = func(issued, failed int) { _ = bar.Set(issued + failed) }
		finish = func() { _ = bar.Finish() }
	}
	cfg.OnWindow = func(w bench.Window) { fmt.Fprintln(stderr, w) }

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench.Run(ctx, cfg)
	finish()
	if res == nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *asJSON {
		err = res.WriteJSON(stdout)
	} else {
		err = res.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	if res.Failed > 0 || ctx.Err() != nil {
		return 1
	}
	return 0
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
