package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net"
	"time"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/upstream"
)

// Worker tuning.
const (
	jobLease       = 2 * time.Minute
	jobPoll        = time.Second
	maxJobAttempts = 10
	workers        = 4
)

// Run runs the issuance workers until ctx ends or Close is called. Each
// worker claims due jobs from the store with a lease, so jobs left by a
// replica that died are taken over once its lease ends.
func (s *Server) Run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.baseCtx.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	done := make(chan struct{})
	for i := 0; i < workers; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			s.workLoop(ctx)
		}()
	}
	for i := 0; i < workers; i++ {
		<-done
	}
}

// kickWorker wakes a worker for a job just queued.
func (s *Server) kickWorker() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Server) workLoop(ctx context.Context) {
	t := time.NewTicker(jobPoll)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			job, err := s.store.ClaimJob(ctx, s.workerID, s.now(), jobLease)
			if errors.Is(err, store.ErrNoJob) {
				break
			}
			if err != nil {
				if ctx.Err() == nil {
					s.log.Error("worker: claim job", "err", err)
				}
				break
			}
			s.processJob(ctx, job)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-t.C:
		}
	}
}

// processJob takes one order to its upstreams, in the route's order.
func (s *Server) processJob(ctx context.Context, job *store.Job) {
	defer s.notify("order:" + job.OrderID)
	o, err := s.store.GetOrder(ctx, job.OrderID)
	if err != nil {
		s.log.Error("worker: load order", "order", job.OrderID, "err", err)
		s.releaseJob(ctx, job)
		return
	}
	if o.Status != store.StatusProcessing {
		_ = s.store.DeleteJob(ctx, o.ID)
		return
	}
	csr, err := x509.ParseCertificateRequest(o.CSR)
	if err != nil {
		s.failOrder(ctx, o, acmeerr.New(acmeerr.BadCSR, "stored CSR could not be parsed"))
		return
	}
	req := &upstream.Request{OrderID: o.ID, CSR: csr, CSRDER: o.CSR, NotBefore: o.NotBefore, NotAfter: o.NotAfter,
		Profile: o.Profile, Ref: job.UpstreamRef}
	for _, id := range o.Identifiers {
		if id.Type == "ip" {
			req.IPAddresses = append(req.IPAddresses, net.ParseIP(id.Value))
		} else {
			req.DNSNames = append(req.DNSNames, id.Value)
		}
	}
	var lastErr error
	for _, name := range o.Upstreams {
		iss, ok := s.issuers[name]
		if !ok {
			lastErr = acmeerr.New(acmeerr.Internal, "upstream %s is not configured", name)
			continue
		}
		ictx, cancel := context.WithTimeout(ctx, jobLease-10*time.Second)
		start := s.now()
		res, err := iss.Issue(ictx, req, func(ref string) error {
			job.UpstreamRef = ref
			return s.store.UpdateJob(ctx, job, s.workerID)
		})
		cancel()
		if err == nil {
			s.storeCertificate(ctx, o, name, res, s.now().Sub(start))
			return
		}
		lastErr = err
		s.log.Warn("worker: upstream failed", "order", o.ID, "upstream", name, "attempt", job.Attempts, "err", err)
		if !transient(err) {
			s.failOrder(ctx, o, err)
			return
		}
	}
	if job.Attempts >= maxJobAttempts || s.now().After(o.Expires) {
		s.failOrder(ctx, o, acmeerr.Wrap(acmeerr.Internal, lastErr, "no upstream could issue"))
		return
	}
	backoff := time.Duration(1<<min(job.Attempts, 8)) * time.Second
	job.NotBefore = s.now().Add(backoff)
	s.releaseJob(ctx, job)
}

// transient reports whether an upstream error may succeed when retried.
func transient(err error) bool {
	switch acmeerr.KindOf(err) {
	case acmeerr.Internal, acmeerr.Unavailable, acmeerr.Connection, acmeerr.RateLimited:
		return true
	}
	return false
}

func (s *Server) releaseJob(ctx context.Context, job *store.Job) {
	job.Owner, job.LeaseUntil = "", time.Time{}
	if err := s.store.UpdateJob(ctx, job, s.workerID); err != nil {
		s.log.Error("worker: release job", "order", job.OrderID, "err", err)
	}
}

// failOrder makes the order invalid with the error (§7.1.6: processing →
// invalid) and drops its job.
func (s *Server) failOrder(ctx context.Context, o *store.Order, cause error) {
	o.Status, o.Error = store.StatusInvalid, storedProblem(cause)
	if err := s.store.UpdateOrder(ctx, o); err != nil {
		s.log.Error("worker: fail order", "order", o.ID, "err", err)
		return
	}
	_ = s.store.DeleteJob(ctx, o.ID)
	s.log.Warn("order invalid", "order", o.ID, "account", o.AccountID, "err", cause)
}

// storeCertificate records the issued certificate and moves the order to
// valid in one atomic step.
func (s *Server) storeCertificate(ctx context.Context, o *store.Order, upstreamName string, res *upstream.Result, took time.Duration) {
	leaf := res.Leaf
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	c := &store.Certificate{
		ID: randomID(), AccountID: o.AccountID, OrderID: o.ID, Serial: serialHex(leaf),
		Names: identValues(o.Identifiers), NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter,
		Upstream: upstreamName, ChainPEM: res.ChainPEM, KeyThumbprint: hex.EncodeToString(sum[:]), IssuedAt: s.now(),
	}
	o.Status, o.CertificateID, o.Upstream, o.Error = store.StatusValid, c.ID, upstreamName, nil
	if err := s.store.PutCertificate(ctx, c, o); err != nil {
		s.log.Error("worker: store certificate", "order", o.ID, "serial", c.Serial, "err", err)
		return
	}
	s.log.Info("certificate issued", "order", o.ID, "account", o.AccountID, "upstream", upstreamName,
		"serial", c.Serial, "names", c.Names, "not_after", c.NotAfter, "took_ms", took.Milliseconds())
}

func serialHex(c *x509.Certificate) string { return hex.EncodeToString(c.SerialNumber.Bytes()) }
