// Package ra is acmebridge's domain core, its registration authority: every
// decision about accounts, orders, authorizations, what a certificate may
// hold, issuance and revocation is made here, in typed operations that know
// nothing of HTTP. The ACME transport (proxy/) and the admin API
// (proxy/admin/) verify who is asking, decode the request, call an
// operation and turn its result or its error (an acmeerr kind) into a
// response. docs/architecture.md draws the flow of one order through it.
package ra

import (
	"errors"
	"log/slog"
	"time"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/upstream"
)

// Auditor records audit events (implemented by audit.Log).
type Auditor interface {
	Record(e audit.Event) error
}

// Options are the domain core's dependencies.
type Options struct {
	// Store holds every record.
	Store store.Store
	// Issuers are the upstreams by name.
	Issuers map[string]upstream.Issuer
	// Clock returns the current time; time.Now when nil.
	Clock func() time.Time
	// Logger receives the operations' log lines; slog.Default when nil.
	Logger *slog.Logger
	// Audit receives the audit events; nil records none.
	Audit Auditor
}

// RA is the domain core. Create it with New.
type RA struct {
	store   store.Store
	issuers map[string]upstream.Issuer
	now     func() time.Time
	log     *slog.Logger
	audit   Auditor
	breaker *Breaker
}

// New builds the domain core from its options.
func New(opts Options) (*RA, error) {
	if opts.Store == nil {
		return nil, errors.New("ra: Store is required")
	}
	ra := &RA{store: opts.Store, issuers: opts.Issuers, now: opts.Clock, log: opts.Logger, audit: opts.Audit}
	if ra.now == nil {
		ra.now = time.Now
	}
	if ra.log == nil {
		ra.log = slog.Default()
	}
	ra.breaker = NewBreaker(ra.now)
	return ra, nil
}

// Breaker is the upstreams' circuit breaker.
func (ra *RA) Breaker() *Breaker { return ra.breaker }

// Client says who sent a request, for the audit log: the transport's
// request ID and the client's address (after trusted proxies).
type Client struct {
	RequestID string
	Remote    string
}

// record writes an audit event before the response that depends on it.
func (ra *RA) record(c Client, e audit.Event) {
	e.RequestID, e.Remote = c.RequestID, c.Remote
	if ra.audit == nil {
		return
	}
	if err := ra.audit.Record(e); err != nil {
		ra.log.Error("audit: record", "event", e.Event, "err", err)
	}
}
