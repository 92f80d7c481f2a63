// Package bench is a load generator for any RFC 8555 (ACME) server, built
// on lego's ACME API client: N concurrent clients each register an account
// once and then run full issuances one after another (newOrder, the
// authorization, the challenge answered by an in-process responder,
// finalize with a fresh P-256 key, download). It reports issuances per
// second, latency percentiles per step and end to end, failures by ACME
// problem type, and the CPU time of the client and of the server
// processes per issuance. `acmebridge bench` is its command line.
package bench

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"

	"github.com/acmebridge/acmebridge/upstream"
)

// Challenge types the bench answers.
const (
	HTTP01 = "http-01"
	DNS01  = "dns-01"
)

// Step names, in the order of an issuance. Total is the whole issuance,
// newOrder to download.
const (
	StepNewAccount = "newAccount"
	StepNewOrder   = "newOrder"
	StepAuthz      = "authz"
	StepChallenge  = "challenge"
	StepFinalize   = "finalize"
	StepDownload   = "download"
	StepTotal      = "total"
)

// Config describes one run.
type Config struct {
	// Label names the run in reports (default: the directory URL).
	Label string
	// Directory is the ACME directory URL (HTTPS).
	Directory string
	// CABundle is a PEM file of the roots to trust; empty: the system's.
	CABundle string
	// Clients is the number of concurrent clients (accounts); Orders the
	// issuances each runs one after another.
	Clients, Orders int
	// Challenge is HTTP01 or DNS01.
	Challenge string
	// EABKID and EABHMAC (base64url) bind each new account when set.
	EABKID, EABHMAC string
	// HTTPAddr is where the shared http-01 responder listens
	// (127.0.0.1:PORT, the port the server validates on).
	HTTPAddr string
	// DNSAddr, when set, is where the in-process DNS server listens; the
	// server under test must resolve through it. Required for dns-01.
	DNSAddr string
	// Domain is the parent of every name ordered (default bench.test):
	// each issuance orders one new name, so no authorization is reused.
	Domain string
	// ServerPIDs are processes whose CPU time is counted as the server's.
	ServerPIDs []int
	// PollInterval is the wait between polls when the server sends no
	// Retry-After (default 50ms); MaxRetryAfter caps a Retry-After
	// (default 1s), so a run measures the server rather than its hints.
	PollInterval, MaxRetryAfter time.Duration
	// ClientPolls makes every issuance read the authorization once after
	// answering its challenge and the order once after finalizing, even
	// when the answer already said valid, as certbot does (lego and
	// x/crypto/acme skip a read the answer made unnecessary): 7 requests
	// per issuance instead of 5.
	ClientPolls bool
	// Window, when positive, closes a Window every Window issuances
	// (OnWindow is called with it, and the result lists them): a long
	// run's drift in latency and server memory.
	Window   int
	OnWindow func(Window)
	// Timeout bounds one issuance (default 60s).
	Timeout time.Duration
	// Progress, when set, is called after each issuance with the numbers
	// done so far.
	Progress func(issued, failed int)
}

func (c *Config) defaults() error {
	if c.Directory == "" {
		return errors.New("bench: a directory URL is required")
	}
	if c.Label == "" {
		c.Label = c.Directory
	}
	if c.Clients <= 0 {
		c.Clients = 1
	}
	if c.Orders <= 0 {
		c.Orders = 1
	}
	if c.Challenge == "" {
		c.Challenge = HTTP01
	}
	switch c.Challenge {
	case HTTP01:
		if c.HTTPAddr == "" {
			return errors.New("bench: http-01 needs the address of the responder (--http-port)")
		}
	case DNS01:
		if c.DNSAddr == "" {
			return errors.New("bench: dns-01 needs the DNS server's address (--dns-server), which the server under test resolves through")
		}
	default:
		return fmt.Errorf("bench: challenge %q: want %s or %s", c.Challenge, HTTP01, DNS01)
	}
	if (c.EABKID == "") != (c.EABHMAC == "") {
		return errors.New("bench: --eab-kid and --eab-hmac go together")
	}
	if c.Domain == "" {
		c.Domain = "bench.test"
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 50 * time.Millisecond
	}
	if c.MaxRetryAfter <= 0 {
		c.MaxRetryAfter = time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 60 * time.Second
	}
	return nil
}

// run is the state of one Run.
type run struct {
	cfg    Config
	runID  string
	roots  *x509.CertPool
	http01 *HTTP01Responder
	dns    *DNSServer

	lat      *Recorder
	win      *windows
	errs     Counter // failed issuances by problem type
	problems Counter // every problem document received, retried ones too
	requests atomic.Int64
	polls    atomic.Int64
	issued   atomic.Int64
	failed   atomic.Int64
	firstErr sync.Once
	sample   string // the first failure, for the report
}

// Run runs the benchmark and returns its result. It fails only when the
// run cannot start (bad configuration, a responder that cannot listen, a
// directory that cannot be read) or no client can register; failed
// issuances are counted in the result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	r := &run{cfg: cfg, runID: randomLabel(), lat: NewRecorder()}
	r.lat.Declare(StepNewAccount, StepNewOrder, StepAuthz, StepChallenge, StepFinalize, StepDownload, StepTotal)
	if cfg.CABundle != "" {
		pemBytes, err := os.ReadFile(cfg.CABundle)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		r.roots = x509.NewCertPool()
		if !r.roots.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("bench: no certificate in %s", cfg.CABundle)
		}
	}
	if cfg.DNSAddr != "" {
		d, err := StartDNS(ctx, cfg.DNSAddr)
		if err != nil {
			return nil, err
		}
		defer func() { _ = d.Close() }() // the run's result is made; a stop error changes nothing
		r.dns = d
	}
	if cfg.Challenge == HTTP01 {
		h, err := StartHTTP01(ctx, cfg.HTTPAddr)
		if err != nil {
			return nil, err
		}
		defer func() { _ = h.Close() }()
		r.http01 = h
	}

	// Register every client first, concurrently; the measured phase starts
	// when all are ready.
	clients := make([]*api.Core, cfg.Clients)
	regErrs := make([]error, cfg.Clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() { clients[i], regErrs[i] = r.register(ctx) })
	}
	wg.Wait()
	var ready []*api.Core
	for i, c := range clients {
		if regErrs[i] != nil {
			r.errs.Inc(problemType(regErrs[i]))
			r.noteFailure(fmt.Errorf("register: %w", regErrs[i]))
			continue
		}
		ready = append(ready, c)
	}
	if len(ready) == 0 {
		return nil, fmt.Errorf("bench: no client could register: %s", r.sample)
	}

	r.win = newWindows(cfg.Window, cfg.ServerPIDs, cfg.OnWindow)
	srvBefore := readServers(cfg.ServerPIDs)
	reqBefore := r.requests.Load()
	cpuBefore := SelfCPU()
	start := time.Now()
	for ci, c := range ready {
		wg.Go(func() {
			for oi := range cfg.Orders {
				if ctx.Err() != nil {
					return
				}
				name := fmt.Sprintf("c%d-o%d-%s.%s", ci, oi, r.runID, cfg.Domain)
				if err := r.issue(ctx, c, name); err != nil {
					r.failed.Add(1)
					r.errs.Inc(problemType(err))
					r.noteFailure(fmt.Errorf("%s: %w", name, err))
				} else {
					r.issued.Add(1)
				}
				if cfg.Progress != nil {
					cfg.Progress(int(r.issued.Load()), int(r.failed.Load()))
				}
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	clientCPU := SelfCPU() - cpuBefore
	srvAfter := readServers(cfg.ServerPIDs)

	res := &Result{
		Label: cfg.Label, Directory: cfg.Directory, Challenge: cfg.Challenge,
		Clients: len(ready), Orders: cfg.Orders,
		Issued: int(r.issued.Load()), Failed: int(r.failed.Load()),
		WallSeconds: wall.Seconds(), Errors: r.errs.Map(), Problems: r.problems.Map(),
		FirstError: r.sample, StartedAt: start.UTC(),
	}
	res.Steps, res.Latency = r.lat.Summaries()
	res.Windows = r.win.list()
	if res.Issued > 0 {
		res.Throughput = float64(res.Issued) / wall.Seconds()
		res.RequestsPerIssuance = float64(r.requests.Load()-reqBefore) / float64(res.Issued+res.Failed)
		res.PollsPerIssuance = float64(r.polls.Load()) / float64(res.Issued+res.Failed)
	}
	res.ClientCPU = CPU{Seconds: clientCPU.Seconds(), MsPerIssuance: perIssuance(clientCPU, res.Issued)}
	res.Server = serverCPU(srvBefore, srvAfter, res.Issued)
	return res, ctx.Err()
}

func perIssuance(d time.Duration, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(d) / float64(time.Millisecond) / float64(n)
}

func (r *run) noteFailure(err error) {
	r.firstErr.Do(func() { r.sample = err.Error() })
}

// httpClient is one client's own connection pool, counting its requests.
func (r *run) httpClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.TLSClientConfig = &tls.Config{RootCAs: r.roots, MinVersion: tls.VersionTLS12}
	return &http.Client{Timeout: 30 * time.Second, Transport: &countingTransport{next: tr, r: r}}
}

// register makes one client: its account key, its lego core, its account.
func (r *run) register(ctx context.Context) (*api.Core, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	core, err := api.New(r.httpClient(), "acmebridge-bench", r.cfg.Directory, "", key)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	t0 := time.Now()
	req := acme.Account{TermsOfServiceAgreed: true}
	if r.cfg.EABKID != "" {
		_, err = core.Accounts.NewEAB(ctx, req, r.cfg.EABKID, r.cfg.EABHMAC)
	} else {
		_, err = core.Accounts.New(ctx, req)
	}
	if err != nil {
		return nil, err
	}
	r.lat.Add(StepNewAccount, time.Since(t0))
	return core, nil
}

// issue runs one full issuance for name and records its steps.
func (r *run) issue(ctx context.Context, core *api.Core, name string) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	tr := &tracker{}
	ctx = context.WithValue(ctx, trackerKey{}, tr)
	start := time.Now()
	step := func(s string, t0 time.Time) { r.lat.Add(s, time.Since(t0)) }

	t0 := time.Now()
	order, err := core.Orders.New(ctx, []string{name}, nil)
	if err != nil {
		return err
	}
	step(StepNewOrder, t0)

	for _, azURL := range order.Authorizations {
		t0 = time.Now()
		az, err := core.Authorizations.Get(ctx, azURL)
		if err != nil {
			return err
		}
		step(StepAuthz, t0)
		if az.Status == acme.StatusValid {
			continue
		}
		t0 = time.Now()
		if err := r.solve(ctx, core, tr, azURL, az); err != nil {
			return err
		}
		step(StepChallenge, t0)
	}

	// Finalize with a fresh key, then poll the order until it is valid.
	t0 = time.Now()
	certKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader,
		&x509.CertificateRequest{Subject: pkix.Name{CommonName: name}, DNSNames: []string{name}}, certKey)
	if err != nil {
		return err
	}
	o, err := core.Orders.UpdateForCSR(ctx, order.Finalize, csr)
	if err != nil {
		return err
	}
	if r.cfg.ClientPolls && o.Status == acme.StatusValid {
		if o, err = core.Orders.Get(ctx, order.Location); err != nil {
			return err
		}
	}
	for o.Status != acme.StatusValid {
		switch o.Status {
		case acme.StatusProcessing, acme.StatusReady, acme.StatusPending:
		default:
			return fmt.Errorf("order %s: %w", o.Status, orderErr(o.Order))
		}
		if err := r.wait(ctx, tr); err != nil {
			return err
		}
		o, err = core.Orders.Get(ctx, order.Location)
		if err != nil {
			return err
		}
	}
	step(StepFinalize, t0)

	t0 = time.Now()
	cert, err := core.Certificates.Get(ctx, o.Certificate, true)
	if err != nil {
		return err
	}
	if err := checkLeaf(cert.Cert, name, certKey.Public()); err != nil {
		return err
	}
	step(StepDownload, t0)
	step(StepTotal, start)
	r.win.add(time.Since(start))
	return nil
}

// solve answers the authorization's challenge of the configured type and
// waits until the authorization is valid.
func (r *run) solve(ctx context.Context, core *api.Core, tr *tracker, azURL string, az acme.Authorization) error {
	var ch *acme.Challenge
	for i := range az.Challenges {
		if az.Challenges[i].Type == r.cfg.Challenge {
			ch = &az.Challenges[i]
		}
	}
	if ch == nil {
		return fmt.Errorf("authorization for %s offers no %s challenge", az.Identifier.Value, r.cfg.Challenge)
	}
	keyAuth, err := core.GetKeyAuthorization(ch.Token)
	if err != nil {
		return err
	}
	if r.cfg.Challenge == HTTP01 {
		r.http01.Set(ch.Token, keyAuth)
		defer r.http01.Clear(ch.Token)
	} else {
		sum := sha256.Sum256([]byte(keyAuth))
		fqdn := "_acme-challenge." + strings.TrimPrefix(az.Identifier.Value, "*.") + "."
		value := base64.RawURLEncoding.EncodeToString(sum[:])
		r.dns.SetTXT(fqdn, value)
		defer r.dns.ClearTXT(fqdn, value)
	}
	chl, err := core.Challenges.New(ctx, ch.URL)
	if err != nil {
		return err
	}
	status, perr := chl.Status, chl.Error
	if r.cfg.ClientPolls && status == acme.StatusValid {
		a, err := core.Authorizations.Get(ctx, azURL)
		if err != nil {
			return err
		}
		status = a.Status
	}
	for {
		switch status {
		case acme.StatusValid:
			return nil
		case acme.StatusPending, acme.StatusProcessing:
		default:
			if perr != nil {
				return perr
			}
			return fmt.Errorf("challenge %s", status)
		}
		if err := r.wait(ctx, tr); err != nil {
			return err
		}
		a, err := core.Authorizations.Get(ctx, azURL)
		if err != nil {
			return err
		}
		status, perr = a.Status, nil
		for _, c := range a.Challenges {
			if c.URL == ch.URL && c.Error != nil {
				perr = c.Error
			}
		}
	}
}

// wait sleeps before a poll: the last Retry-After (capped), else the poll
// interval.
func (r *run) wait(ctx context.Context, tr *tracker) error {
	r.polls.Add(1)
	d := time.Duration(tr.retryAfter.Load())
	if d <= 0 {
		d = r.cfg.PollInterval
	}
	d = min(d, r.cfg.MaxRetryAfter)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func orderErr(o acme.Order) error {
	if o.Error != nil {
		return o.Error
	}
	return errors.New("no problem document")
}

// checkLeaf requires the first certificate of chainPEM to name name and to
// hold the key the CSR was made with.
func checkLeaf(chainPEM []byte, name string, pub crypto.PublicKey) error {
	certs, err := upstream.ParsePEMCertificates(chainPEM)
	if err != nil || len(certs) == 0 {
		return fmt.Errorf("download: no certificate in the answer: %w", err)
	}
	leaf := certs[0]
	if err := leaf.VerifyHostname(name); err != nil {
		return fmt.Errorf("download: %w", err)
	}
	if k, ok := pub.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(leaf.PublicKey) {
		return errors.New("download: the certificate does not hold the CSR's key")
	}
	return nil
}

// problemType classifies a failure: the ACME problem type when the server
// sent one, else a short client-side kind.
func problemType(err error) string {
	var pd *acme.ProblemDetails
	if errors.As(err, &pd) && pd.Type != "" {
		return strings.TrimPrefix(pd.Type, "urn:ietf:params:acme:error:")
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "client: timeout"
	case errors.Is(err, context.Canceled):
		return "client: canceled"
	case strings.Contains(err.Error(), "connection refused"), strings.Contains(err.Error(), "connection reset"):
		return "client: connection"
	case strings.HasPrefix(err.Error(), "download:"):
		return "client: bad certificate"
	}
	return "client: other"
}
