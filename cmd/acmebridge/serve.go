package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/core"
	"github.com/acmebridge/acmebridge/internal/atomicfile"
	"github.com/acmebridge/acmebridge/notify"
	"github.com/acmebridge/acmebridge/policy"
	"github.com/acmebridge/acmebridge/proxy"
	"github.com/acmebridge/acmebridge/proxy/admin"
	"github.com/acmebridge/acmebridge/proxy/va"
	"github.com/acmebridge/acmebridge/ra"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/upstream/local"
)

func cmdServe(args []string, stdout, stderr io.Writer) int {
	// SIGHUP asks for a reload (reload.go). It is taken from the first
	// moment, so one that arrives while the server starts (opening a large
	// bolt file, reaching Vault or an upstream CA) waits and is applied
	// once the server is up, instead of ending the process as Go does with
	// a SIGHUP nobody asked for.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (default: the quickstart)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof reads it)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	tuneGC(os.Getenv)
	if *cpuProfile != "" {
		stopProfile, err := startCPUProfile(*cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "acmebridge:", err)
			return 1
		}
		defer stopProfile()
	}
	cfg, err := configs.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, *path, hup, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "acmebridge:", err)
		return 1
	}
	return 0
}

// gcPercent is the garbage collector's target (GOGC) serve runs with when
// the environment sets none: the heap may grow to five times what is live
// between collections instead of twice. acmebridge's live heap is small
// (about 15 MiB anonymous memory under load), so this costs about 20 MiB
// and takes about 15% off the CPU per certificate (docs/performance.md,
// "The garbage collector's target"). GOGC, and GOMEMLIMIT for a container
// with a memory limit, take precedence as the Go runtime defines them.
const gcPercent = 400

// tuneGC sets the collector's target to gcPercent unless GOGC is set.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

// closeLogged closes c at shutdown and logs a failure: nothing is left to
// undo then, but the operator should see a store, audit log or upstream
// that did not close cleanly.
func closeLogged(log *slog.Logger, what string, c io.Closer) {
	if err := c.Close(); err != nil {
		log.Error("closing "+what, "err", err)
	}
}

func newLogger(cfg configs.Log, w io.Writer) *slog.Logger {
	lvl := new(slog.LevelVar)
	lvl.Set(logLevel(cfg.Level))
	return newLoggerVar(cfg, w, lvl)
}

// newLoggerVar is newLogger at a level a reload can change.
func newLoggerVar(cfg configs.Log, w io.Writer, lvl *slog.LevelVar) *slog.Logger {
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve runs the ACME and admin listeners until ctx ends, then shuts down
// gracefully. path is the configuration file cfg was read from, which a
// reload reads again ("" for the quickstart); each value on hup (SIGHUP)
// asks for a reload, one received before the server is up included.
func serve(ctx context.Context, cfg *configs.Config, path string, hup <-chan os.Signal, stdout, stderr io.Writer) error {
	level := new(slog.LevelVar)
	level.Set(logLevel(cfg.Log.Level))
	log := newLoggerVar(cfg.Log, stderr, level)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	st, err := openStore(cfg, log)
	if err != nil {
		return err
	}
	defer closeLogged(log, "store", st)

	ups := newUpstreamSet(st, log)
	built, err := ups.build(cfg)
	if err != nil {
		return err
	}
	built.commit()
	// Closed after the worker stopped (defers run last to first); the core
	// closes those a reload retired.
	defer ups.closeAll()
	issuers := built.Issuers
	tlsCfg, bundle, err := serverTLS(cfg, ups.localCAs(cfg), log)
	if err != nil {
		return err
	}
	newValidator, err := validators(cfg.Validation, log)
	if err != nil {
		return err
	}
	v := newValidator(cfg)
	for _, name := range cfg.DirectoryNames() {
		warnPrivateValidation(cfg.ForDirectory(name), log)
	}
	auditLog, err := audit.Open(cfg.Audit.File)
	if err != nil {
		return err
	}
	defer closeLogged(log, "audit log", auditLog)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	engine := policy.New(cfg.Policy)
	metrics := proxy.NewMetrics(reg, st)
	registerRedisMetrics(reg, st)
	observed := store.Observed(st, metrics.ObserveStore)
	notifier, err := notify.New(notify.Options{Config: cfg.Notifications, Store: observed, Owner: replicaName(),
		Logger: log, Registry: reg})
	if err != nil {
		return err
	}
	srv, err := proxy.New(proxy.Options{Config: cfg, Store: observed, Validator: v, NewValidator: newValidator,
		Router: engine, Issuers: issuers, Logger: log,
		Audit: notifier.Tee(auditLog), Metrics: metrics})
	if err != nil {
		return err
	}
	token, err := admin.EnsureToken(cfg.Admin.TokenFile)
	if err != nil {
		return err
	}
	scoped, err := admin.ReadDirectoryTokens(token, cfg.Admin.DirectoryTokens)
	if err != nil {
		return err
	}
	scopedTokens := admin.NewScopedTokens(scoped)
	rl := &reloader{path: path, log: log, level: level, srv: srv, metrics: metrics, ups: ups, st: st, notifier: notifier,
		adminToken: token, scopedTokens: scopedTokens}

	var lc net.ListenConfig
	acmeLn, err := lc.Listen(ctx, "tcp", cfg.Server.Listen)
	if err != nil {
		return err
	}
	adminTLS, err := adminTLSConfig(cfg, log)
	if err != nil {
		_ = acmeLn.Close() // never served: the error to report is err
		return err
	}
	adminLn, err := lc.Listen(ctx, "tcp", cfg.Admin.Listen)
	if err != nil {
		_ = acmeLn.Close() // as above
		return err
	}
	if adminTLS != nil {
		adminLn = tls.NewListener(adminLn, adminTLS)
	}
	acmeSrv := &http.Server{Handler: srv.Handler(), TLSConfig: tlsCfg, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second,
		MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	adminSrv := &http.Server{Handler: admin.New(admin.Options{Store: st, Logger: log, Registry: reg, API: &admin.APIOptions{
		Token: token, Scoped: scopedTokens, Directories: srv.RA(), Store: st, Audit: auditLog, RA: srv.RA(), Live: srv.RA(), Reloader: rl, Approver: srv.RA()},
		Dashboard:  &admin.DashboardOptions{AuditFile: cfg.Audit.File, Health: srv.UpstreamHealth},
		Generation: srv.RA().Generation}),
		ReadHeaderTimeout: 10 * time.Second}

	errc := make(chan error, 2)
	go func() {
		if tlsCfg != nil {
			errc <- acmeSrv.ServeTLS(acmeLn, "", "")
		} else {
			errc <- acmeSrv.Serve(acmeLn)
		}
	}()
	go func() { errc <- adminSrv.Serve(adminLn) }()
	workerDone := make(chan struct{})
	go func() { srv.Run(ctx); close(workerDone) }()
	notifyDone := make(chan struct{})
	go func() { runNotifier(ctx, notifier, srv, metrics); close(notifyDone) }()
	rl.start(ctx, hup)

	printBanner(stdout, cfg, bundle)
	log.Info("acmebridge started", "directory", cfg.Server.ExternalURL+"/directory", "listen", acmeLn.Addr().String(), "admin", adminLn.Addr().String())

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = acmeSrv.Shutdown(shutCtx)
	_ = adminSrv.Shutdown(shutCtx)
	srv.Close()
	<-workerDone
	<-notifyDone
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return serveErr
}

// serverTLS returns the ACME listener's TLS configuration and the path of
// the CA bundle clients should trust ("" when the operator brings their own
// certificate). Configured files are read again when they change
// (keyPair). Without them the first local CA (or a dedicated one under
// data_dir/ca/tls) issues the server's certificate, and a new one before
// it expires (selfIssued).
func serverTLS(cfg *configs.Config, cas []*local.CA, log *slog.Logger) (*tls.Config, string, error) {
	t := cfg.Server.TLS
	if t.Disabled {
		return nil, writeBundle(cfg, cas), nil
	}
	if t.CertFile != "" {
		kp, err := loadKeyPair("server.tls", t.CertFile, t.KeyFile, log)
		if err != nil {
			return nil, "", err
		}
		return kp.tlsConfig(), writeBundle(cfg, cas), nil
	}
	if len(cas) == 0 {
		ca, err := local.New(local.Options{Name: "tls", Dir: filepath.Join(cfg.DataDir, "ca", "tls"), Logger: log})
		if err != nil {
			return nil, "", err
		}
		cas = append(cas, ca)
	}
	u, _ := url.Parse(cfg.Server.ExternalURL)
	hosts := []string{u.Hostname()}
	if h, _, err := net.SplitHostPort(cfg.Server.Listen); err == nil && h != "" && h != u.Hostname() {
		hosts = append(hosts, h)
	}
	si, err := newSelfIssued(cas[0], hosts, log, time.Now)
	if err != nil {
		return nil, "", err
	}
	return &tls.Config{GetCertificate: si.getCertificate, MinVersion: tls.VersionTLS12}, writeBundle(cfg, cas), nil
}

// adminTLSConfig is the admin listener's TLS configuration from
// admin.tls (files read again when they change), or nil for plain HTTP, which it warns about on an address
// other than loopback (the bearer token and the dashboard's session would
// cross the network in the clear).
func adminTLSConfig(cfg *configs.Config, log *slog.Logger) (*tls.Config, error) {
	t := cfg.Admin.TLS
	if !t.On() {
		if host, _, err := net.SplitHostPort(cfg.Admin.Listen); err == nil {
			if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
				log.Warn("the admin listener speaks plain HTTP on a non-loopback address: set admin.tls", "listen", cfg.Admin.Listen)
			}
		}
		return nil, nil
	}
	kp, err := loadKeyPair("admin.tls", t.CertFile, t.KeyFile, log)
	if err != nil {
		return nil, err
	}
	return kp.tlsConfig(), nil
}

// warnPrivateValidation warns when validations may reach private addresses
// while the ACME listener is not on loopback: anyone who can reach it can
// then point an http-01 redirect or a name at the services of the network
// acmebridge runs in (RFC 8555 §10.4). The quickstart listens on loopback.
// validators builds the two validators a configuration can ask for, one
// that reaches private addresses and one that does not, and returns what
// picks a directory's (its validation.allow_private_addresses).
func validators(c configs.Validation, log *slog.Logger) (func(*configs.Config) ra.Validator, error) {
	c.AllowPrivateAddresses = false
	public, err := va.FromConfig(c, log)
	if err != nil {
		return nil, err
	}
	c.AllowPrivateAddresses = true
	private, err := va.FromConfig(c, log)
	if err != nil {
		return nil, err
	}
	return func(d *configs.Config) ra.Validator {
		if d.Validation.AllowPrivateAddresses {
			return private
		}
		return public
	}, nil
}

func warnPrivateValidation(cfg *configs.Config, log *slog.Logger) {
	if !cfg.Validation.AllowPrivateAddresses {
		return
	}
	host, _, err := net.SplitHostPort(cfg.Server.Listen)
	if err != nil {
		return
	}
	if ip, err := netip.ParseAddr(host); (err == nil && ip.IsLoopback()) || host == "localhost" {
		return
	}
	log.Warn("validation.allow_private_addresses is true on an ACME listener that is not loopback: "+
		"clients can make acmebridge connect to loopback, private and link-local (cloud metadata) addresses; "+
		"set it false unless every client is trusted", "listen", cfg.Server.Listen)
}

// writeBundle writes data_dir/ca.pem with the roots of every local CA.
func writeBundle(cfg *configs.Config, cas []*local.CA) string {
	if len(cas) == 0 {
		return ""
	}
	var buf bytes.Buffer
	for _, ca := range cas {
		buf.Write(ca.RootsPEM())
	}
	p := filepath.Join(cfg.DataDir, "ca.pem")
	if err := replaceFile(p, buf.Bytes()); err != nil {
		return ""
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return abs
}

// replaceFile makes path hold b, mode 0644 (public root certificates, for
// the clients to read), through atomicfile: a client reading it while a
// reload writes it sees the old bundle or the new one, never an empty or
// half-written file. Unchanged contents are left alone.
func replaceFile(path string, b []byte) error {
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, b) {
		return nil
	}
	return atomicfile.Replace(path, b, 0o644)
}

func printBanner(w io.Writer, cfg *configs.Config, bundle string) {
	dir := cfg.Server.ExternalURL + "/directory"
	fmt.Fprintf(w, "acmebridge %s\n  ACME directory: %s\n", version, dir)
	if bundle != "" {
		fmt.Fprintf(w, "  CA bundle to trust: %s\n", bundle)
	}
	tokenFile, _ := filepath.Abs(cfg.Admin.TokenFile)
	fmt.Fprintf(w, "  admin: %s (token in %s)\n", adminURLOf(cfg.Admin), tokenFile)
	if bundle != "" {
		fmt.Fprintf(w, "\nGet a certificate:\n  LEGO_CA_CERTIFICATES=%s lego --server %s --email you@example.com --accept-tos --domains host.example --http --http.port :80 run\n", bundle, dir)
		fmt.Fprintf(w, "  REQUESTS_CA_BUNDLE=%s certbot certonly --server %s --standalone -d host.example --agree-tos -m you@example.com\n", bundle, dir)
	}
}

// replicaName names this process in notification leases and in the
// events it alone sees (its circuit breakers, its reloads).
func replicaName() string {
	host, _ := os.Hostname()
	return host + "-" + core.RandomID()[:8]
}

// upstreamWatch is how often the upstreams' breakers are read for
// upstream.down and upstream.recovered.
const upstreamWatch = 2 * time.Second

// runNotifier delivers the notification outbox, scans for expiring
// certificates (the definition of the unrenewed-expiry alerts) and tells
// of upstreams whose breaker opened or closed, until ctx ends.
func runNotifier(ctx context.Context, n *notify.Notifier, srv *proxy.Server, m *proxy.Metrics) {
	if n == nil {
		return
	}
	go func() {
		t := time.NewTicker(upstreamWatch)
		defer t.Stop()
		for {
			r := srv.RA()
			for _, name := range r.Upstreams() {
				n.UpstreamState(ctx, name, !r.Breaker().Failing(name))
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	n.Run(ctx, func(ctx context.Context) ([]notify.Expiring, error) {
		in, err := m.Unrenewed(ctx)
		out := make([]notify.Expiring, 0, len(in))
		for id, w := range in {
			out = append(out, notify.Expiring{CertificateID: id, Within: w})
		}
		return out, err
	})
}

// startCPUProfile profiles the process into path until the returned
// function is called (at shutdown): what `make bench` and an operator
// measuring a hot path read with go tool pprof.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path) // #nosec G304 -- the operator names the file
	if err != nil {
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}
