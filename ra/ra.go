// Package ra is acmebridge's domain core, its registration authority: every
// decision about accounts, orders, authorizations, what a certificate may
// hold, issuance and revocation is made here, in typed operations that know
// nothing of HTTP. The ACME transport (proxy/) and the admin API
// (proxy/admin/) verify who is asking, decode the request, call an
// operation and turn its result or its error (an acmeerr kind) into a
// response. docs/architecture.md draws the flow of one order through it.
package ra

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/core"
	"github.com/acmebridge/acmebridge/internal/expiring"
	"github.com/acmebridge/acmebridge/policy"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/upstream"
)

// Validator checks one challenge (implemented by proxy/va).
type Validator interface {
	Validate(ctx context.Context, identType, identValue, typ, token, keyAuthorization string) error
}

// Router is the policy decision for an order (implemented by policy).
type Router interface {
	Route(req policy.Request) (*policy.Decision, error)
}

// Auditor records audit events (implemented by audit.Log).
type Auditor interface {
	Record(e audit.Event) error
}

// Observer receives the domain's measurements (implemented by
// proxy.Metrics; every method must accept a nil receiver). directory is
// the name of the directory (tenant) the order belongs to, "" for the top
// level: always a configured one, never a client's word.
type Observer interface {
	Order(directory, state string)
	Issued(directory, upstream string, d time.Duration)
	UpstreamError(upstream string, transient bool)
	Validation(typ, result string)
}

// Options are the domain core's dependencies.
type Options struct {
	// Config is the validated configuration.
	Config *configs.Config
	// Store holds every record.
	Store store.Store
	// Validator validates challenges.
	Validator Validator
	// CAA checks CAA at finalize for the upstreams that need it
	// (configs.Upstream.ChecksCAA); nil means the Validator, when it can.
	CAA CAAChecker
	// Router takes the policy decision at newOrder and finalize for the
	// top-level directory; nil: NewRouter's.
	Router Router
	// NewRouter makes a directory's policy engine (the top level's too
	// when Router is nil, and every one after a reload); nil: policy.New.
	NewRouter func(configs.Policy) Router
	// NewValidator makes the validator of a directory from its
	// configuration (its validation.allow_private_addresses); nil: the
	// Validator for every directory.
	NewValidator func(*configs.Config) Validator
	// Issuers are the upstreams by name.
	Issuers map[string]upstream.Issuer
	// AccountURL is an account's ACME URL in its directory, which CAA's
	// accounturi names (RFC 8657).
	AccountURL func(directory, id string) string
	// Clock returns the current time; time.Now when nil.
	Clock func() time.Time
	// Logger receives the operations' log lines; slog.Default when nil.
	Logger *slog.Logger
	// WorkerID names this replica's workers (for job leases).
	WorkerID string
	// Audit receives the audit events; nil records none.
	Audit Auditor
	// Metrics receives the measurements; nil measures nothing.
	Metrics Observer
}

// RA is the domain core. Create it with New, and run Run for the
// background issuance and validation workers.
type RA struct {
	// cur is the setup in force (setup.go): configuration, directories,
	// upstreams; Reload swaps it.
	cur          atomic.Pointer[setup]
	store        store.Store
	caa          CAAChecker
	explicitCAA  bool
	hasValidator bool
	newRouter    func(configs.Policy) Router
	newValidator func(*configs.Config) Validator
	accountURL   func(directory, id string) string
	now          func() time.Time
	log          *slog.Logger
	audit        Auditor
	metrics      Observer
	workerID     string
	breaker      *Breaker
	// workers are the issuance workers' slots (handoff.go).
	workers workerSlots
	// ari caches the upstream CAs' renewal windows (renewal.go).
	ari ariCache
	// Background work (validations) and its waiters.
	baseCtx   context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	kick      chan struct{}
	waitersMu sync.Mutex
	waiters   map[string][]*waiter
	// reloadMu makes reloads one at a time; issMu guards the issuers'
	// uses and the retired ones still draining (reload.go).
	reloadMu sync.Mutex
	issMu    sync.Mutex
	retired  []*issuerRef
}

// nopObserver measures nothing.
type nopObserver struct{}

func (nopObserver) Order(string, string)                 {}
func (nopObserver) Issued(string, string, time.Duration) {}
func (nopObserver) UpstreamError(string, bool)           {}
func (nopObserver) Validation(string, string)            {}

// New builds the domain core from its options.
func New(opts Options) (*RA, error) {
	if opts.Store == nil {
		return nil, errors.New("ra: Store is required")
	}
	cfg := opts.Config
	if cfg == nil {
		cfg = configs.Default()
	}
	ra := &RA{store: opts.Store, caa: opts.CAA, explicitCAA: opts.CAA != nil, hasValidator: opts.Validator != nil,
		newRouter: opts.NewRouter, newValidator: opts.NewValidator, accountURL: opts.AccountURL,
		now: opts.Clock, log: opts.Logger, audit: opts.Audit,
		metrics: opts.Metrics, workerID: opts.WorkerID, waiters: map[string][]*waiter{},
		kick: make(chan struct{}, max(1, cfg.Orders.Workers)), ari: ariCache{m: expiring.New[ariEntry](ariCacheSize)}}
	if ra.now == nil {
		ra.now = time.Now
	}
	if ra.log == nil {
		ra.log = slog.Default()
	}
	if ra.metrics == nil {
		ra.metrics = nopObserver{}
	}
	if ra.accountURL == nil {
		ra.accountURL = func(_, id string) string { return id }
	}
	if ra.workerID == "" {
		ra.workerID = core.RandomID()
	}
	if ra.caa == nil {
		ra.caa, _ = opts.Validator.(CAAChecker)
	}
	if ra.newRouter == nil {
		ra.newRouter = defaultRouter
	}
	if ra.newValidator == nil {
		v := opts.Validator
		ra.newValidator = func(*configs.Config) Validator { return v }
	}
	s, err := ra.build(cfg, opts.Issuers, 1, opts.Router)
	if err != nil {
		return nil, err
	}
	ra.adopt(s, nil)
	ra.cur.Store(s)
	ra.breaker = NewBreaker(func() time.Time { return ra.now() })
	ra.baseCtx, ra.cancel = context.WithCancel(context.Background())
	return ra, nil
}

// Close stops background work started by the core (validations) and
// waits for it.
func (ra *RA) Close() {
	ra.cancel()
	ra.wg.Wait()
}

// SetRateLimits replaces the top-level directory's rate limits in force;
// the buckets in the store keep what was spent.
func (ra *RA) SetRateLimits(l configs.RateLimits) {
	old := ra.current()
	s := *old
	s.dirs = maps.Clone(old.dirs)
	d := *old.dirs[""]
	d.lim = newLimiter(l, ra.store, func() time.Time { return ra.now() }, "")
	s.dirs[""] = &d
	ra.cur.Store(&s)
}

// Wait waits for the background validations started so far to end.
func (ra *RA) Wait() { ra.wg.Wait() }

// WorkerID names this replica's workers in job leases.
func (ra *RA) WorkerID() string { return ra.workerID }

// Config is the configuration the core runs with.
func (ra *RA) Config() *configs.Config { return ra.conf() }

// Breaker is the upstreams' circuit breaker.
func (ra *RA) Breaker() *Breaker { return ra.breaker }

// Client says who sent a request, for the audit log: the transport's
// request ID and the client's address (after trusted proxies).
type Client struct {
	RequestID string
	Remote    string
}

type clientKey struct{}

// WithClient returns ctx carrying who sent the request: the audit lines an
// operation writes name it. It is request metadata, never a dependency.
func WithClient(ctx context.Context, c Client) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

// record writes an audit event, with the client ctx carries (none for
// background work), before the response that depends on it. The event's
// directory is the one ctx names unless the caller set it (background work
// sets it from the record it acts on).
func (ra *RA) record(ctx context.Context, e audit.Event) {
	c, _ := ctx.Value(clientKey{}).(Client)
	e.RequestID, e.Remote = c.RequestID, c.Remote
	if e.Directory == "" {
		e.Directory = DirectoryOf(ctx)
	}
	if ra.audit == nil {
		return
	}
	if err := ra.audit.Record(e); err != nil {
		ra.log.Error("audit: record", "event", e.Event, "err", err)
	}
}

// Upstreams are the names of the configured upstreams, sorted.
func (ra *RA) Upstreams() []string { return sortedNames(ra.current().issuers) }
