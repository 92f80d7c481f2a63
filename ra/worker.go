package ra

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/core"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/upstream"
)

// Worker tuning.
const (
	jobPoll        = time.Second
	maxJobAttempts = 10
	// issueDeadline bounds one upstream attempt; the lease is renewed
	// while it runs.
	issueDeadline = 10 * time.Minute
)

// Run runs the issuance workers until ctx ends or Close is called. Each
// worker claims due jobs from the store with a lease, so jobs left by a
// replica that died are taken over once its lease ends.
func (ra *RA) Run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-ra.baseCtx.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	done := make(chan struct{})
	workers := ra.conf().Orders.Workers
	ra.workers.open(ctx, workers)
	defer ra.workers.close()
	for i := 0; i < workers; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			ra.workLoop(ctx)
		}()
	}
	go func() {
		defer func() { done <- struct{}{} }()
		ra.probeLoop(ctx)
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		ra.validationLoop(ctx)
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		ra.drainLoop(ctx)
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		ra.retentionLoop(ctx)
	}()
	for i := 0; i < workers+4; i++ {
		<-done
	}
	ra.closeRetired()
}

// KickWorker wakes a worker for a job just queued.
func (ra *RA) KickWorker() {
	select {
	case ra.kick <- struct{}{}:
	default:
	}
}

func (ra *RA) workLoop(ctx context.Context) {
	t := time.NewTicker(jobPoll)
	defer t.Stop()
	var lastLogged time.Time
	for {
		for ctx.Err() == nil {
			if !ra.workers.acquire(ctx) {
				return
			}
			job, err := ra.store.ClaimJob(ctx, ra.workerID, ra.now(), ra.conf().Orders.JobLease.D())
			if err != nil {
				ra.workers.release()
			}
			if errors.Is(err, store.ErrNoJob) {
				break
			}
			if err != nil {
				// The store is down: say so once in a while, not every poll.
				if ctx.Err() == nil && ra.now().Sub(lastLogged) > 30*time.Second {
					ra.log.Error("worker: claim job", "err", err)
					lastLogged = ra.now()
				}
				break
			}
			ra.processJob(ctx, job)
			ra.workers.release()
		}
		select {
		case <-ctx.Done():
			return
		case <-ra.kick:
		case <-t.C:
		}
	}
}

// validationLoop takes over validation jobs whose lease ended, from any
// replica (one that died mid-validation, or could not record the
// outcome), and runs them again, up to orders.workers at once. It returns
// once ctx ends and the validations it started have.
func (ra *RA) validationLoop(ctx context.Context) {
	t := time.NewTicker(jobPoll)
	defer t.Stop()
	slots := make(chan struct{}, max(1, ra.conf().Orders.Workers))
	var running sync.WaitGroup
	defer running.Wait()
	var lastLogged time.Time
	for {
	claim:
		for ctx.Err() == nil {
			select {
			case slots <- struct{}{}:
			default:
				break claim // every slot is taken
			}
			job, err := ra.store.ClaimValidation(ctx, ra.workerID, ra.now(), ra.validationLease())
			if err != nil {
				<-slots
				// The store is down: say so once in a while, not every poll.
				if !errors.Is(err, store.ErrNoJob) && ctx.Err() == nil && ra.now().Sub(lastLogged) > 30*time.Second {
					ra.log.Error("worker: claim validation", "err", err)
					lastLogged = ra.now()
				}
				break
			}
			running.Add(1)
			go func() {
				defer func() { <-slots; running.Done() }()
				ra.resumeValidation(ctx, job)
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// processJob takes one order to its upstreams, in the route's order.
func (ra *RA) processJob(ctx context.Context, job *store.Job) {
	// ended is the order as stored once valid or invalid, for a finalize
	// waiting in this process.
	var ended *store.Order
	defer func() { ra.notify("order:"+job.OrderID, ended) }()
	o, err := ra.store.GetOrder(ctx, job.OrderID)
	if errors.Is(err, store.ErrNotFound) {
		_ = ra.store.DeleteJob(ctx, job.OrderID)
		return
	}
	if err != nil {
		ra.log.Error("worker: load order", "order", job.OrderID, "err", err)
		job.NotBefore = ra.now().Add(5 * time.Second)
		ra.releaseJob(ctx, job)
		return
	}
	ended = ra.processOrder(ctx, job, o)
}

// processOrder takes the order of a job this replica holds to its
// upstreams and returns the order as stored once valid or invalid.
func (ra *RA) processOrder(ctx context.Context, job *store.Job, o *store.Order) (ended *store.Order) {
	if job.OrderID != o.ID {
		return nil
	}
	if o.Status != store.StatusProcessing {
		_ = ra.store.DeleteJob(ctx, o.ID)
		return nil
	}
	// The certificate's content, decided again from the stored CSR (ra):
	// the upstreams build certificates from it, never from the CSR. An
	// order finalized before these checks existed is refused here.
	content, err := StoredContent(o.CSR, o.Identifiers)
	if err != nil {
		ended = ra.failOrder(ctx, o, "", err)
		return
	}
	// A delegated order's grant is checked again before an upstream is
	// asked: a key revoked while the job waited ends it (delegate.go).
	if err := ra.delegationNow(ctx, o); err != nil {
		if acmeerr.KindOf(err) == acmeerr.Unavailable {
			job.NotBefore = ra.now().Add(5 * time.Second)
			ra.releaseJob(ctx, job)
			return
		}
		ended = ra.failOrder(ctx, o, "", err)
		return
	}
	if !ra.caaFresh(ctx, o, job) {
		return
	}
	req := &upstream.Request{OrderID: o.ID, NotBefore: o.NotBefore, NotAfter: o.NotAfter,
		Profile: o.UpstreamProfile, Ref: job.UpstreamRef, At: o.FinalizedAt}
	content.Apply(req)
	if o.MaxValidity > 0 {
		start := o.NotBefore
		if start.IsZero() {
			// The same limit on every attempt: from the finalization.
			start = o.FinalizedAt
		}
		if start.IsZero() {
			start = ra.now()
		}
		if limit := start.Add(o.MaxValidity); req.NotAfter.IsZero() || req.NotAfter.After(limit) {
			req.NotAfter = limit
		}
	}
	replaced, replacedBy := ra.replacedLeaf(ctx, o)
	lease := ra.leaseKeeper(ctx, job)
	defer lease.stop()
	br := ra.breaker
	var lastErr error
	var lastName string
	for i, name := range o.Upstreams {
		// Held while it issues: a reload that retires it closes it after.
		iss, release, ok := ra.acquire(name)
		if !ok {
			lastErr = acmeerr.New(acmeerr.Internal, "upstream %s is not configured", name)
			continue
		}
		// RFC 9773 §5: only the CA that issued the replaced certificate
		// knows it.
		req.Replaces = nil
		if replacedBy == name {
			req.Replaces = replaced
		}
		if br.IsOpen(name) && ra.anyHealthy(br, o.Upstreams[i+1:]) {
			// Failover without waiting on an upstream known to be down.
			ra.log.Info("worker: skipping unhealthy upstream", "order", o.ID, "upstream", name)
			if lastErr == nil {
				lastErr = acmeerr.New(acmeerr.Unavailable, "upstream %s is unhealthy", name)
			}
			release()
			continue
		}
		ictx, cancel := context.WithTimeout(lease.ctx, issueDeadline)
		start := ra.now()
		res, err := iss.Issue(ictx, req, lease.setRef)
		cancel()
		release()
		if lease.ctx.Err() != nil && ctx.Err() == nil {
			// The lease was lost to another replica: it owns the job now.
			ra.log.Warn("worker: lost the lease", "order", o.ID)
			return
		}
		if err == nil {
			br.Success(name)
			ra.metrics.Issued(o.Directory, name, ra.now().Sub(start))
			var serr error
			ended, serr = ra.storeCertificate(ctx, o, name, res, ra.now().Sub(start))
			if serr != nil && !errors.Is(serr, store.ErrConflict) && ctx.Err() == nil {
				// Not recorded (the store refused the write: full, or
				// unreachable): retried after a backoff rather than when
				// the lease ends. The upstream gives the same certificate
				// again (upstream.Issuer: at most one per order).
				lease.stop()
				job.NotBefore = ra.now().Add(jobBackoff(job.Attempts))
				ra.releaseJob(ctx, job)
			}
			return
		}
		if transient(err) && ctx.Err() == nil && br.Failure(name) {
			ra.log.Warn("worker: upstream marked unhealthy", "upstream", name, "failures", BreakerThreshold, "err", err)
		}
		ra.metrics.UpstreamError(name, transient(err))
		lastErr, lastName = err, name
		ra.log.Warn("worker: upstream failed", "order", o.ID, "upstream", name, "attempt", job.Attempts, "err", err)
		if !transient(err) {
			ended = ra.failOrder(ctx, o, name, err)
			return
		}
	}
	backoff := jobBackoff(job.Attempts)
	// An upstream's Retry-After (a CA's rateLimited, RFC 8555 §6.6) is
	// waited out rather than retried into.
	var last *acmeerr.Error
	if errors.As(lastErr, &last) && last.RetryAfter > backoff {
		backoff = last.RetryAfter
	}
	if job.Attempts >= maxJobAttempts || ra.now().After(o.Expires) || ra.now().Add(backoff).After(o.Expires) {
		ended = ra.failOrder(ctx, o, lastName, giveUpError(o.Upstreams, lastErr))
		return
	}
	lease.stop()
	job.NotBefore = ra.now().Add(backoff)
	ra.releaseJob(ctx, job)
	return nil
}

// replacedLeaf is the certificate the order replaces (RFC 9773 §5) and
// the upstream that issued it; nil when the order replaces none or the
// certificate cannot be read (the order goes on without "replaces").
func (ra *RA) replacedLeaf(ctx context.Context, o *store.Order) (*x509.Certificate, string) {
	if o.Replaces == "" {
		return nil, ""
	}
	c, err := ra.store.GetCertificate(ctx, o.Replaces)
	if err != nil {
		ra.log.Warn("worker: replaced certificate not loaded; ordering without replaces", "order", o.ID, "cert", o.Replaces, "err", err)
		return nil, ""
	}
	leaf, err := core.LeafFromPEM(c.ChainPEM)
	if err != nil {
		ra.log.Warn("worker: replaced certificate unreadable; ordering without replaces", "order", o.ID, "cert", o.Replaces, "err", err)
		return nil, ""
	}
	return leaf, c.Upstream
}

// giveUpError is the problem of an order no upstream could issue: the
// upstream's rateLimited passes through as it is (the client learns when
// to try again); otherwise serverInternal naming the upstreams, with the
// last one's detail when it is meant for clients.
func giveUpError(upstreams []string, lastErr error) error {
	var last *acmeerr.Error
	if !errors.As(lastErr, &last) {
		return acmeerr.Wrap(acmeerr.Internal, lastErr, "no upstream could issue")
	}
	switch last.Kind {
	case acmeerr.RateLimited:
		return lastErr
	case acmeerr.Unavailable, acmeerr.Connection:
		e := acmeerr.Wrap(acmeerr.Unavailable, lastErr, "no upstream could issue (tried %s): %s", strings.Join(upstreams, ", "), last.Detail)
		return e
	}
	return acmeerr.Wrap(acmeerr.Internal, lastErr, "no upstream could issue")
}

// lease keeps a claimed job's lease alive while an upstream works, and
// records the upstream's reference; ctx ends if the lease is lost.
type lease struct {
	ra     *RA
	job    *store.Job
	mu     sync.Mutex
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func (ra *RA) leaseKeeper(ctx context.Context, job *store.Job) *lease {
	l := &lease{ra: ra, job: job, done: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(ctx)
	d := ra.conf().Orders.JobLease.D()
	go func() {
		t := time.NewTicker(d / 3)
		defer t.Stop()
		for {
			select {
			case <-l.done:
				return
			case <-t.C:
				l.mu.Lock()
				l.job.LeaseUntil = ra.now().Add(d)
				err := ra.store.UpdateJob(ctx, l.job, ra.workerID)
				l.mu.Unlock()
				if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
					l.cancel()
					return
				}
			}
		}
	}()
	return l
}

// setRef stores the upstream's reference before the upstream commits to an
// issuance, so a replica that takes the job over resumes it.
func (l *lease) setRef(ref string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.job.UpstreamRef = ref
	return l.ra.store.UpdateJob(l.ctx, l.job, l.ra.workerID)
}

// stop ends the renewals; the job is then the caller's to release or
// complete. It also releases l.ctx: a context derived from the workers'
// long-lived one stays registered with it until cancelled, so a lease
// that did not cancel its context would keep memory per job for the life
// of the process (found by make soak).
func (l *lease) stop() {
	l.once.Do(func() {
		close(l.done)
		// Wait for a renewal in flight to finish: once stop returns, the
		// caller owns the job record.
		l.mu.Lock()
		defer l.mu.Unlock()
		l.cancel()
	})
}

// transient reports whether an upstream error may succeed when retried.
func transient(err error) bool {
	switch acmeerr.KindOf(err) {
	case acmeerr.Internal, acmeerr.Unavailable, acmeerr.Connection, acmeerr.RateLimited:
		return true
	}
	return false
}

func (ra *RA) releaseJob(ctx context.Context, job *store.Job) {
	job.Owner, job.LeaseUntil = "", time.Time{}
	if err := ra.store.UpdateJob(ctx, job, ra.workerID); err != nil {
		ra.log.Error("worker: release job", "order", job.OrderID, "err", err)
	}
}

// jobBackoff is how long a job waits before its next attempt: 2^attempts
// seconds, at most 256.
func jobBackoff(attempts int) time.Duration {
	return time.Duration(1<<min(attempts, 8)) * time.Second
}

// failOrder makes the order invalid with the error (§7.1.6: processing →
// invalid) and drops its job. upstream is the one whose error ended it (""
// when none was asked). It returns o once stored, nil if it was not.
func (ra *RA) failOrder(ctx context.Context, o *store.Order, upstream string, cause error) *store.Order {
	o.Status, o.Error = store.StatusInvalid, storedProblem(cause)
	if err := ra.store.UpdateOrder(ctx, o); err != nil {
		ra.log.Error("worker: fail order", "order", o.ID, "err", err)
		return nil
	}
	_ = ra.store.DeleteJob(ctx, o.ID)
	if acct, err := ra.store.GetAccount(ctx, o.AccountID); err == nil {
		// No certificate: give back what finalize spent.
		ra.dirNamed(o.Directory).lim.notIssued(ctx, acct, o.Identifiers)
	}
	ra.log.Warn("order invalid", "order", o.ID, "account", o.AccountID, "err", cause)
	ra.metrics.Order(o.Directory, store.StatusInvalid)
	ra.record(ctx, audit.Event{Event: audit.OrderInvalid, Account: o.AccountID, Order: o.ID, Names: identValues(o.Identifiers),
		Rule: o.Rule, Upstream: upstream, Upstreams: o.Upstreams, Problem: problemType(o.Error), Detail: o.Error.Detail,
		Directory: o.Directory})
	return o
}

// storeCertificate records the issued certificate and moves the order to
// valid in one atomic step. It returns o once stored, or the store's error.
func (ra *RA) storeCertificate(ctx context.Context, o *store.Order, upstreamName string, res *upstream.Result, took time.Duration) (*store.Order, error) {
	leaf := res.Leaf
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	c := &store.Certificate{
		ID: core.RandomID(), AccountID: o.AccountID, OrderID: o.ID, Serial: core.SerialHex(leaf),
		Names: identValues(o.Identifiers), NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter,
		Upstream: upstreamName, ChainPEM: res.ChainPEM, Alternates: res.Alternates, KeyThumbprint: hex.EncodeToString(sum[:]), IssuedAt: ra.now(),
		Directory: o.Directory,
	}
	o.Status, o.CertificateID, o.Upstream, o.Error = store.StatusValid, c.ID, upstreamName, nil
	if err := ra.store.PutCertificate(ctx, c, o); err != nil {
		ra.log.Error("worker: store certificate", "order", o.ID, "serial", c.Serial, "err", err)
		return nil, err
	}
	ra.metrics.Order(o.Directory, store.StatusValid)
	ra.record(ctx, audit.Event{Event: audit.CertIssued, Account: o.AccountID, Order: o.ID, Names: c.Names, Rule: o.Rule,
		Upstream: upstreamName, Serial: c.Serial, NotAfter: c.NotAfter, Directory: o.Directory})
	ra.log.Info("certificate issued", "order", o.ID, "account", o.AccountID, "upstream", upstreamName,
		"serial", c.Serial, "names", c.Names, "not_after", c.NotAfter, "took_ms", took.Milliseconds())
	return o, nil
}

// probeTimeout bounds one probe of an upstream whose breaker is open.
const probeTimeout = 10 * time.Second

// anyHealthy reports whether one of the upstreams is configured and not
// skipped: only then is skipping an unhealthy one a failover rather than
// giving up.
func (ra *RA) anyHealthy(b *Breaker, names []string) bool {
	for _, n := range names {
		if _, ok := ra.issuer(n); ok && !b.IsOpen(n) {
			return true
		}
	}
	return false
}

// checker is an upstream that can be probed (a directory fetch, a token
// lookup) without issuing.
type checker interface {
	Check(ctx context.Context) (string, error)
}

// probeLoop probes the upstreams being skipped and closes the breaker of
// those that answer again.
func (ra *RA) probeLoop(ctx context.Context) {
	t := time.NewTicker(BreakerProbe)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		br := ra.breaker
		for _, name := range br.Open() {
			iss, _ := ra.issuer(name)
			c, ok := iss.(checker)
			if !ok {
				continue // closed by the cool-down
			}
			pctx, cancel := context.WithTimeout(ctx, probeTimeout)
			_, err := c.Check(pctx)
			cancel()
			if err == nil {
				br.Success(name)
				ra.log.Info("worker: upstream healthy again", "upstream", name)
			}
		}
	}
}
