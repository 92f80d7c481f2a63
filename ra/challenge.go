package ra

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/core"
	"github.com/acmebridge/acmebridge/store"
)

// Challenge reads a challenge of an authorization; acct, when set, must
// own it (RFC 8555 §7.5: a GET or POST-as-GET).
func (ra *RA) Challenge(ctx context.Context, acct *store.Account, authzID, chalID string) (*store.Authorization, int, error) {
	a, err := ra.getAuthz(ctx, authzID, acct)
	if err != nil {
		return nil, 0, err
	}
	idx := challengeIndex(a, chalID)
	if idx < 0 {
		return nil, 0, acmeerr.New(acmeerr.NotFound, "no such challenge")
	}
	return a, idx, nil
}

// Validate answers a client that is ready for a challenge's validation
// (RFC 8555 §7.5.1: "The client indicates to the server that it is ready
// for the challenge validation by sending an empty JSON body"): the
// validation starts, and the authorization is returned as it is once the
// outcome is known or orders.validation_wait passed.
func (ra *RA) Validate(ctx context.Context, acct *store.Account, authzID, chalID string) (*store.Authorization, int, error) {
	a, idx, err := ra.Challenge(ctx, acct, authzID, chalID)
	if err != nil {
		return nil, 0, err
	}
	if a, err = ra.startValidation(ctx, a, idx, acct); err != nil {
		return nil, 0, err
	}
	return a, idx, nil
}

func challengeIndex(a *store.Authorization, id string) int {
	for i, c := range a.Challenges {
		if c.ID == id {
			return i
		}
	}
	return -1
}

// startValidation moves a pending challenge to processing and records its
// validation job in the same store write, validates it in the background
// and waits up to orders.validation_wait for the outcome, so a client
// usually sees "valid" at once. A challenge that is not pending is
// returned as it is (§7.5.1: the request is idempotent in effect). The
// job is leased to this replica; if it dies before recording the outcome,
// another replica's worker runs the validation again (resumeValidation),
// so a client that only polls the authorization still gets an answer.
func (ra *RA) startValidation(ctx context.Context, a *store.Authorization, idx int, acct *store.Account) (*store.Authorization, error) {
	c := a.Challenges[idx]
	// A validation left processing without a job (by a version that
	// kept none) is taken up again once it has clearly outlived its
	// budget.
	stale := c.Status == store.StatusProcessing && ra.now().Sub(c.Started) > 2*ra.conf().Validation.Timeout.D()+10*time.Second
	if AuthzStatus(a, ra.now()) != store.StatusPending || (c.Status != store.StatusPending && !stale) {
		return a, nil
	}
	tp := acct.KeyThumbprint
	now := ra.now()
	a.Challenges[idx].Status, a.Challenges[idx].Started = store.StatusProcessing, now
	// §8.1: "keyAuthorization = token || '.' || base64url(Thumbprint(accountKey))".
	job := &store.Validation{AuthzID: a.ID, ChallengeID: c.ID, KeyAuthorization: c.Token + "." + tp,
		Attempts: 1, Owner: ra.workerID, LeaseUntil: now.Add(ra.validationLease())}
	if err := ra.store.StartValidation(ctx, a, job); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return ra.getAuthz(ctx, a.ID, acct)
		}
		return nil, storeDown(err)
	}
	id := a.ID
	w := ra.subscribe("authz:" + id)
	defer ra.unsubscribe("authz:"+id, w)
	// From here the validation owns a: it starts from what was just
	// stored rather than reading it back.
	ra.wg.Add(1)
	go func() {
		defer ra.wg.Done()
		ra.validate(ra.baseCtx, a, job)
	}()
	select {
	case <-w.done:
		if done, _ := w.val.(*store.Authorization); done != nil {
			return done, nil
		}
	case <-time.After(ra.conf().Orders.ValidationWait.D()):
	case <-ctx.Done():
	}
	return ra.getAuthz(ctx, id, acct)
}

// MaxValidationAttempts is how many times a validation job is run before
// it is recorded as failed: a validation whose replicas keep dying.
const MaxValidationAttempts = 5

// validationBudget bounds one run of a validation: the validator's own
// timeout, then time to record the outcome.
func (ra *RA) validationBudget() time.Duration {
	return ra.conf().Validation.Timeout.D() + 5*time.Second
}

// validationLease is how long a replica holds a validation job: the run's
// budget and a margin, so a run never outlives its lease and the lease
// needs no renewal.
func (ra *RA) validationLease() time.Duration {
	return ra.validationBudget() + 5*time.Second
}

// validate runs one validation job and records its outcome on the
// challenge and the authorization, removing the job in the same store
// write (§7.1.6: "If one of the challenges listed in the authorization
// transitions to the "valid" state, then the authorization also changes to
// the "valid" state. If the client attempts to fulfill a challenge and
// fails, or if there is an error while the authorization is still pending,
// then the authorization transitions to the "invalid" state").
//
// a is the authorization as stored with the challenge processing; a
// request waiting in this process is handed the outcome as stored (nil if
// none was).
func (ra *RA) validate(parent context.Context, a *store.Authorization, job *store.Validation) {
	authzID := a.ID
	var stored *store.Authorization
	defer func() { ra.notify("authz:"+authzID, stored) }()
	ctx, cancel := context.WithTimeout(parent, ra.validationBudget())
	defer cancel()
	idx := challengeIndex(a, job.ChallengeID)
	if idx < 0 {
		_ = ra.store.DeleteValidation(ctx, authzID)
		return
	}
	c := a.Challenges[idx]
	var verr error
	if job.Attempts > MaxValidationAttempts {
		verr = acmeerr.New(acmeerr.Internal, "the validation did not complete in %d attempts", MaxValidationAttempts)
	} else {
		verr = ra.dirNamed(a.Directory).va.Validate(ctx, a.Identifier.Type, a.Identifier.Value, c.Type, c.Token, job.KeyAuthorization)
	}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if attempt > 0 {
			if a, err = ra.store.GetAuthz(ctx, authzID); err != nil {
				break
			}
		}
		// Only a pending authorization may take the outcome: one that was
		// deactivated (§7.5.2), expired or decided meanwhile keeps its
		// state (§7.1.6 has no transition out of them), and the job ends.
		ch := &a.Challenges[idx]
		if AuthzStatus(a, ra.now()) != store.StatusPending || ch.Status != store.StatusProcessing {
			if err := ra.store.DeleteValidation(ctx, authzID); err != nil {
				ra.log.Warn("validation: drop job", "authz", authzID, "err", err)
			}
			return
		}
		if verr == nil {
			ch.Status, ch.Validated = store.StatusValid, ra.now()
			a.Status = store.StatusValid
		} else {
			ch.Status, ch.Error = store.StatusInvalid, storedProblem(verr)
			ch.Error.Identifier = &a.Identifier
			a.Status = store.StatusInvalid
		}
		if err = ra.store.FinishValidation(ctx, a); err == nil || !errors.Is(err, store.ErrConflict) {
			break
		}
	}
	if err != nil {
		// The job stays: once its lease ends a worker runs it again.
		ra.log.Error("validation: record outcome", "authz", authzID, "err", err)
		return
	}
	stored = a
	result, event := "valid", audit.ChallengeValid
	e := audit.Event{Event: event, Account: a.AccountID, Names: []string{a.Identifier.Value}, Challenge: c.Type, Directory: a.Directory}
	if verr != nil {
		result, e.Event = "invalid", audit.ChallengeInvalid
		if p := a.Challenges[idx].Error; p != nil {
			e.Problem, e.Detail = problemType(p), p.Detail
		}
	}
	ra.dirNamed(a.Directory).lim.validated(ctx, a.AccountID, a.Identifier, verr != nil)
	ra.metrics.Validation(c.Type, result)
	ra.record(ctx, e)
	ra.log.Info("challenge validated", "authz", authzID, "account", a.AccountID, "type", c.Type,
		"identifier", a.Identifier.Value, "result", result, "attempt", job.Attempts, "err", verr)
}

// resumeValidation runs again a validation job whose lease ended (its
// replica died or could not record the outcome): http-01, dns-01 and
// tls-alpn-01 look at the same answer every time, so running one twice is
// safe. A job with nothing left to decide is dropped.
func (ra *RA) resumeValidation(ctx context.Context, job *store.Validation) {
	a, err := ra.store.GetAuthz(ctx, job.AuthzID)
	if errors.Is(err, store.ErrNotFound) {
		_ = ra.store.DeleteValidation(ctx, job.AuthzID)
		return
	}
	if err != nil {
		ra.log.Error("validation: load authorization", "authz", job.AuthzID, "err", err)
		return
	}
	idx := challengeIndex(a, job.ChallengeID)
	if idx < 0 || AuthzStatus(a, ra.now()) != store.StatusPending || a.Challenges[idx].Status != store.StatusProcessing {
		_ = ra.store.DeleteValidation(ctx, job.AuthzID)
		return
	}
	ra.log.Info("validation: resuming a validation whose lease ended", "authz", a.ID, "type", a.Challenges[idx].Type,
		"identifier", a.Identifier.Value, "attempt", job.Attempts)
	ra.validate(ctx, a, job)
}

// waiter is a request waiting for an outcome reached in this process (a
// validation, an issuance): done is closed by the next notify of its key,
// and val is then the object as stored (the request need not read it
// back), or nil when the outcome must be read from the store.
type waiter struct {
	done chan struct{}
	val  any
}

// subscribe returns a waiter for the next notify(key).
func (ra *RA) subscribe(key string) *waiter {
	w := &waiter{done: make(chan struct{})}
	ra.waitersMu.Lock()
	ra.waiters[key] = append(ra.waiters[key], w)
	ra.waitersMu.Unlock()
	return w
}

func (ra *RA) unsubscribe(key string, ch *waiter) {
	ra.waitersMu.Lock()
	defer ra.waitersMu.Unlock()
	list := ra.waiters[key]
	for i, c := range list {
		if c == ch {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(ra.waiters, key)
	} else {
		ra.waiters[key] = list
	}
}

// notify wakes key's waiters with val, which they only read (nil:
// they read the store).
func (ra *RA) notify(key string, val any) {
	ra.waitersMu.Lock()
	list := ra.waiters[key]
	delete(ra.waiters, key)
	ra.waitersMu.Unlock()
	for _, w := range list {
		w.val = val
		close(w.done)
	}
}

// problemType is a stored problem's type without the ACME namespace, as the
// audit log records it.
func problemType(p *store.Problem) string { return strings.TrimPrefix(p.Type, core.ErrorNS) }
