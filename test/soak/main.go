// Command soak (make soak) drives a long run of issuances through the
// domain core (ra) against a real store, with a clock it advances itself:
// a fixed fleet of names renewed on a schedule over simulated years, the
// retention sweep run every simulated day, and every simulated month a line
// of what the store holds (the bolt file's size and live records; Redis's
// used_memory and key count). The figures must plateau: the state of a
// fleet renewing for years is bounded by the retention periods, not by the
// number of issuances.
//
// Validation is answered by a validator that accepts every challenge: this
// measures what the store keeps, not the network. Everything else is the
// server's own code: ra, the store driver, the local CA (with the same
// clock, so certificates expire on the simulated calendar).
package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	goredis "github.com/redis/go-redis/v9"

	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/ra"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/store/bolt"
	"github.com/acmebridge/acmebridge/store/redis"
	"github.com/acmebridge/acmebridge/upstream"
	"github.com/acmebridge/acmebridge/upstream/local"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// params are the soak's flags.
type params struct {
	driver    string
	redisAddr string
	dir       string
	fleet     int
	renew     time.Duration
	duration  time.Duration
	validity  time.Duration
	accounts  int
	workers   int
	issuances int
	memProf   string
}

func run(args []string, out io.Writer) error {
	var p params
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.StringVar(&p.driver, "store", "bolt", "store driver: bolt or redis")
	fs.StringVar(&p.redisAddr, "redis", "127.0.0.1:6379", "Redis address (-store redis); the soak uses its own key prefix and removes its keys at the end")
	fs.StringVar(&p.dir, "dir", "", "working directory (default: a new one under /tmp, removed at the end)")
	fs.IntVar(&p.fleet, "fleet", 8220, "names in the fleet, each renewed every -renew")
	fs.DurationVar(&p.renew, "renew", 6*24*time.Hour, "how often each name is renewed (simulated)")
	fs.DurationVar(&p.duration, "duration", 730*24*time.Hour, "simulated time to run")
	fs.DurationVar(&p.validity, "validity", 7*24*time.Hour, "certificate lifetime")
	fs.IntVar(&p.accounts, "accounts", 100, "accounts the fleet is spread over")
	fs.IntVar(&p.workers, "workers", 32, "issuances in flight")
	fs.IntVar(&p.issuances, "issuances", 0, "stop after this many issuances (0: run the whole -duration)")
	fs.StringVar(&p.memProf, "memprofile", "", "write a heap profile here at the end (go tool pprof reads it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if p.fleet <= 0 || p.renew < 24*time.Hour || p.accounts <= 0 || p.workers <= 0 {
		return errors.New("-fleet, -accounts and -workers must be positive and -renew at least a day")
	}
	if p.dir == "" {
		d, err := os.MkdirTemp("", "acmebridge-soak-")
		if err != nil {
			return err
		}
		defer func() { _ = os.RemoveAll(d) }()
		p.dir = d
	}
	s, err := newSoak(p, out)
	if err != nil {
		return err
	}
	defer s.close()
	return s.run()
}

// clock is the simulated clock: a fixed start plus an offset the soak
// advances.
type clock struct {
	start  time.Time
	offset atomic.Int64
}

func (c *clock) now() time.Time            { return c.start.Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration)   { c.offset.Add(int64(d)) }
func (c *clock) elapsed() time.Duration    { return time.Duration(c.offset.Load()) }
func (c *clock) at(d time.Duration) string { return c.start.Add(d).Format("2006-01-02") }

// acceptAll is the soak's validator: every challenge validates.
type acceptAll struct{}

func (acceptAll) Validate(context.Context, string, string, string, string, string) error { return nil }

type soak struct {
	p      params
	out    io.Writer
	clk    *clock
	st     store.Store
	closer io.Closer
	rdb    goredis.UniversalClient
	prefix string
	core   *ra.RA
	cancel context.CancelFunc
	accts  []*store.Account

	issued, failed, removed atomic.Int64
	lastErr                 atomic.Value
}

func newSoak(p params, out io.Writer) (*soak, error) {
	s := &soak{p: p, out: out, clk: &clock{start: time.Now().UTC().Truncate(24 * time.Hour)}}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	switch p.driver {
	case "bolt":
		b, err := bolt.Open(bolt.Options{Path: filepath.Join(p.dir, "acmebridge.db"), Logger: log})
		if err != nil {
			return nil, err
		}
		s.st, s.closer = b, b
	case "redis":
		s.prefix = fmt.Sprintf("soak%d:", time.Now().UnixNano())
		r, err := redis.Open(context.Background(), redis.Options{Addrs: []string{p.redisAddr}, KeyPrefix: s.prefix})
		if err != nil {
			return nil, err
		}
		s.st, s.closer = r, r
		s.rdb = goredis.NewClient(&goredis.Options{Addr: p.redisAddr})
	default:
		return nil, fmt.Errorf("-store %q: want bolt or redis", p.driver)
	}
	cfgPath := filepath.Join(p.dir, "acmebridge.yaml")
	yaml := fmt.Sprintf(`data_dir: %q
upstreams:
  - name: local
    type: local
    local: {dir: %q, validity: %s}
policy:
  default: {upstreams: [local]}
orders:
  workers: %d
`, filepath.Join(p.dir, "data"), filepath.Join(p.dir, "ca"), p.validity, p.workers)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		return nil, err
	}
	cfg, err := configs.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	ca, err := local.New(local.Options{Name: "local", Dir: filepath.Join(p.dir, "ca"), Validity: p.validity, Clock: s.clk.now, Logger: log})
	if err != nil {
		return nil, err
	}
	s.core, err = ra.New(ra.Options{Config: cfg, Store: s.st, Validator: acceptAll{}, CAA: noCAA{},
		Issuers: map[string]upstream.Issuer{"local": ca}, Clock: s.clk.now, Logger: log, WorkerID: "soak",
		AccountURL: func(_, id string) string { return "https://soak.test/acct/" + id }})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.core.Run(ctx)
	return s, nil
}

// noCAA allows every name: CAA is a DNS question, not state.
type noCAA struct{}

func (noCAA) CheckCAA(context.Context, string, bool, []string, string, string) error { return nil }

func (s *soak) close() {
	s.cancel()
	s.core.Close()
	s.core.Wait()
	if s.rdb != nil {
		ctx := context.Background()
		iter := s.rdb.Scan(ctx, 0, s.prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			s.rdb.Del(ctx, iter.Val())
		}
		_ = s.rdb.Close()
	}
	_ = s.closer.Close()
}

func (s *soak) run() error {
	ctx := context.Background()
	for i := range s.p.accounts {
		a, err := s.newAccount(ctx, i)
		if err != nil {
			return fmt.Errorf("account %d: %w", i, err)
		}
		s.accts = append(s.accts, a)
	}
	days := int(s.p.duration / (24 * time.Hour))
	cycle := int(s.p.renew / (24 * time.Hour))
	s.printf("soak: %s store, fleet of %d names over %d accounts renewed every %s, certificates valid %s, %d simulated days, %d in flight\n",
		s.p.driver, s.p.fleet, s.p.accounts, s.p.renew, s.p.validity, days, s.p.workers)
	s.printf("%-5s %-10s %10s %7s %10s %6s %12s %9s %9s %9s %8s\n",
		"month", "date", "issued", "failed", "swept", "iss/s", "store bytes", "keys", "orders", "certs", "heap MiB")
	lastReport, lastIssued := time.Now(), int64(0)
	s.report(0, &lastReport, &lastIssued)
	for day := 0; day < days; day++ {
		var names []int
		for i := day % cycle; i < s.p.fleet; i += cycle {
			names = append(names, i)
		}
		s.issueAll(ctx, names)
		if s.p.issuances > 0 && s.issued.Load()+s.failed.Load() >= int64(s.p.issuances) {
			break
		}
		s.clk.advance(24 * time.Hour)
		if err := s.sweep(ctx); err != nil {
			return fmt.Errorf("day %d: sweep: %w", day, err)
		}
		if (day+1)%30 == 0 {
			s.report((day+1)/30, &lastReport, &lastIssued)
		}
	}
	s.report(-1, &lastReport, &lastIssued)
	if s.p.memProf != "" {
		if err := writeHeapProfile(s.p.memProf); err != nil {
			return err
		}
	}
	if f := s.failed.Load(); f > 0 {
		return fmt.Errorf("%d issuances failed; the last: %v", f, s.lastErr.Load())
	}
	return nil
}

// issueAll issues a certificate for each name, p.workers at a time.
func (s *soak) issueAll(ctx context.Context, names []int) {
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range s.p.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				panic(err)
			}
			for i := range jobs {
				if err := s.issue(ctx, i, key); err != nil {
					s.failed.Add(1)
					s.lastErr.Store(fmt.Sprintf("name %d: %v", i, err))
				} else {
					s.issued.Add(1)
				}
			}
		}()
	}
	for _, i := range names {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
}

// issue runs one issuance for fleet name i through the domain core, as the
// ACME handlers call it: newOrder, each pending authorization's challenge,
// finalize, then the order until it is valid.
func (s *soak) issue(ctx context.Context, i int, key crypto.Signer) error {
	acct := s.accts[i%len(s.accts)]
	name := fmt.Sprintf("host%d.fleet%d.soak.test", i, i%len(s.accts))
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	o, err := s.core.NewOrder(ctx, acct, ra.NewOrderRequest{Identifiers: []store.Identifier{{Type: "dns", Value: name}}})
	if err != nil {
		return fmt.Errorf("newOrder: %w", err)
	}
	for _, id := range o.AuthzIDs {
		a, err := s.core.Authz(ctx, acct, id)
		if err != nil {
			return fmt.Errorf("authz: %w", err)
		}
		for a.Status == store.StatusPending {
			ch := a.Challenges[0]
			for _, c := range a.Challenges {
				if c.Type == "http-01" {
					ch = c
				}
			}
			if a, _, err = s.core.Validate(ctx, acct, id, ch.ID); err != nil {
				return fmt.Errorf("challenge: %w", err)
			}
			if a.Status == store.StatusPending {
				time.Sleep(time.Millisecond)
				if a, err = s.core.Authz(ctx, acct, id); err != nil {
					return err
				}
			}
		}
		if a.Status != store.StatusValid {
			return fmt.Errorf("authorization %s", a.Status)
		}
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}}, key)
	if err != nil {
		return err
	}
	if o, err = s.core.Finalize(ctx, acct, o.ID, csr); err != nil {
		return fmt.Errorf("finalize: %w", err)
	}
	for o.Status == store.StatusProcessing || o.Status == store.StatusReady {
		time.Sleep(time.Millisecond)
		if o, err = s.core.Order(ctx, acct, o.ID); err != nil {
			return err
		}
	}
	if o.Status != store.StatusValid {
		return fmt.Errorf("order %s: %v", o.Status, o.Error)
	}
	return nil
}

func (s *soak) newAccount(ctx context.Context, i int) (*store.Account, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	jwk := jose.JSONWebKey{Key: k.Public()}
	b, err := jwk.MarshalJSON()
	if err != nil {
		return nil, err
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	a, _, err := s.core.NewAccount(ctx, ra.NewAccountRequest{JWK: b, Thumbprint: base64.RawURLEncoding.EncodeToString(tp),
		TermsAgreed: true, Remote: fmt.Sprintf("192.0.2.%d", i%250+1)})
	return a, err
}

// printf writes to the soak's output; a failed write (a closed pipe) has
// nothing to tell.
func (s *soak) printf(format string, args ...any) { _, _ = fmt.Fprintf(s.out, format, args...) }

// report prints one month's line: month 0 is the start, -1 the end.
func (s *soak) report(month int, last *time.Time, lastIssued *int64) {
	ctx := context.Background()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	bytes, keys := s.size(ctx)
	orders := s.count(ctx, store.KindOrder)
	certs := s.count(ctx, store.KindCertificate)
	issued := s.issued.Load()
	rate := float64(issued-*lastIssued) / time.Since(*last).Seconds()
	*last, *lastIssued = time.Now(), issued
	label := fmt.Sprint(month)
	if month < 0 {
		label = "end"
	}
	s.printf("%-5s %-10s %10d %7d %10d %6.0f %12d %9d %9d %9d %8.1f\n", label, s.clk.at(s.clk.elapsed()),
		issued, s.failed.Load(), s.removed.Load(), rate, bytes, keys, orders, certs, float64(m.HeapInuse)/(1<<20))
}

// size is what the store takes: the bolt file and its records, or Redis's
// used_memory and the soak's keys.
func (s *soak) size(ctx context.Context) (int64, int64) {
	if s.rdb == nil {
		fi, err := os.Stat(filepath.Join(s.p.dir, "acmebridge.db"))
		if err != nil {
			return -1, -1
		}
		var keys int64
		for _, k := range []store.Kind{store.KindAccount, store.KindOrder, store.KindCertificate} {
			keys += s.count(ctx, k)
		}
		return fi.Size(), keys
	}
	info, err := s.rdb.Info(ctx, "memory").Result()
	var used int64 = -1
	if err == nil {
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
				_, _ = fmt.Sscan(v, &used)
			}
		}
	}
	n, err := s.rdb.DBSize(ctx).Result()
	if err != nil {
		n = -1
	}
	return used, n
}

// count counts the records of a kind through the store's listing.
func (s *soak) count(ctx context.Context, k store.Kind) int64 {
	var n int64
	cursor := ""
	for {
		p, err := s.st.List(ctx, k, cursor, 1000)
		if err != nil {
			return -1
		}
		n += int64(len(p.IDs))
		if p.Next == "" {
			return n
		}
		cursor = p.Next
	}
}

// sweep runs the retention sweep at the simulated now, as the server's
// sweeper does every retention.sweep_interval (a simulated day here), with
// the configured retention (the defaults: orders 30 days after they ended,
// certificates 90 days after they expired).
func (s *soak) sweep(ctx context.Context) error {
	got, err := s.core.SweepRetention(ctx)
	s.removed.Add(int64(got.Removed()))
	return err
}

// writeHeapProfile writes the live heap, after a collection, to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path) // #nosec G304 -- the operator names the file
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
