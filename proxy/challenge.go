package proxy

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/store"
)

// handleChallenge serves a challenge: GET and POST-as-GET return it; a POST
// with a JSON object asks the server to validate it (RFC 8555 §7.5.1: "The
// client indicates to the server that it is ready for the challenge
// validation by sending an empty JSON body ("{}")").
func (s *Server) handleChallenge(w http.ResponseWriter, r *http.Request) {
	vars := mux.Vars(r)
	authzID, chalID := vars["authz"], vars["id"]
	var acct *store.Account
	var v *verified
	if r.Method == http.MethodPost {
		var err error
		if v, err = s.verifyPOST(r, byKID); err != nil {
			s.writeProblem(w, r, err)
			return
		}
		acct = v.Account
	}
	a, err := s.getAuthz(r, authzID, acct)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	idx := challengeIndex(a, chalID)
	if idx < 0 {
		s.writeProblem(w, r, acmeerr.New(acmeerr.NotFound, "no such challenge"))
		return
	}
	if v != nil && !v.postAsGet() {
		if err := decodePayload(v.Payload, &struct{}{}); err != nil {
			s.writeProblem(w, r, err)
			return
		}
		if a, err = s.startValidation(r, a, idx, v); err != nil {
			s.writeProblem(w, r, err)
			return
		}
	}
	w.Header().Add("Link", link(s.authzURL(a.ID), "up"))
	writeJSON(w, http.StatusOK, s.challengeJSON(a, a.Challenges[idx]))
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
func (s *Server) startValidation(r *http.Request, a *store.Authorization, idx int, v *verified) (*store.Authorization, error) {
	c := a.Challenges[idx]
	// A validation left processing without a job (by a version that
	// kept none) is taken up again once it has clearly outlived its
	// budget.
	stale := c.Status == store.StatusProcessing && s.now().Sub(c.Started) > 2*s.cfg.Validation.Timeout.D()+10*time.Second
	if authzStatus(a, s.now()) != store.StatusPending || (c.Status != store.StatusPending && !stale) {
		return a, nil
	}
	tp, err := thumbprint(v.JWK)
	if err != nil {
		return nil, err
	}
	now := s.now()
	a.Challenges[idx].Status, a.Challenges[idx].Started = store.StatusProcessing, now
	// §8.1: "keyAuthorization = token || '.' || base64url(Thumbprint(accountKey))".
	job := &store.Validation{AuthzID: a.ID, ChallengeID: c.ID, KeyAuthorization: c.Token + "." + tp,
		Attempts: 1, Owner: s.workerID, LeaseUntil: now.Add(s.validationLease())}
	if err := s.store.StartValidation(r.Context(), a, job); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return s.getAuthz(r, a.ID, v.Account)
		}
		return nil, storeDown(err)
	}
	id := a.ID
	w := s.subscribe("authz:" + id)
	defer s.unsubscribe("authz:"+id, w)
	// From here the validation owns a: it starts from what was just
	// stored rather than reading it back.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.validate(s.baseCtx, a, job)
	}()
	select {
	case <-w.done:
		if done, _ := w.val.(*store.Authorization); done != nil {
			return done, nil
		}
	case <-time.After(s.cfg.Orders.ValidationWait.D()):
	case <-r.Context().Done():
	}
	return s.getAuthz(r, id, v.Account)
}

// maxValidationAttempts is how many times a validation job is run before
// it is recorded as failed: a validation whose replicas keep dying.
const maxValidationAttempts = 5

// validationBudget bounds one run of a validation: the validator's own
// timeout, then time to record the outcome.
func (s *Server) validationBudget() time.Duration {
	return s.cfg.Validation.Timeout.D() + 5*time.Second
}

// validationLease is how long a replica holds a validation job: the run's
// budget and a margin, so a run never outlives its lease and the lease
// needs no renewal.
func (s *Server) validationLease() time.Duration {
	return s.validationBudget() + 5*time.Second
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
func (s *Server) validate(parent context.Context, a *store.Authorization, job *store.Validation) {
	authzID := a.ID
	var stored *store.Authorization
	defer func() { s.notify("authz:"+authzID, stored) }()
	ctx, cancel := context.WithTimeout(parent, s.validationBudget())
	defer cancel()
	idx := challengeIndex(a, job.ChallengeID)
	if idx < 0 {
		_ = s.store.DeleteValidation(ctx, authzID)
		return
	}
	c := a.Challenges[idx]
	var verr error
	if job.Attempts > maxValidationAttempts {
		verr = acmeerr.New(acmeerr.Internal, "the validation did not complete in %d attempts", maxValidationAttempts)
	} else {
		verr = s.va.Validate(ctx, a.Identifier.Type, a.Identifier.Value, c.Type, c.Token, job.KeyAuthorization)
	}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if attempt > 0 {
			if a, err = s.store.GetAuthz(ctx, authzID); err != nil {
				break
			}
		}
		// Only a pending authorization may take the outcome: one that was
		// deactivated (§7.5.2), expired or decided meanwhile keeps its
		// state (§7.1.6 has no transition out of them), and the job ends.
		ch := &a.Challenges[idx]
		if authzStatus(a, s.now()) != store.StatusPending || ch.Status != store.StatusProcessing {
			if err := s.store.DeleteValidation(ctx, authzID); err != nil {
				s.log.Warn("validation: drop job", "authz", authzID, "err", err)
			}
			return
		}
		if verr == nil {
			ch.Status, ch.Validated = store.StatusValid, s.now()
			a.Status = store.StatusValid
		} else {
			ch.Status, ch.Error = store.StatusInvalid, storedProblem(verr)
			ch.Error.Identifier = &a.Identifier
			a.Status = store.StatusInvalid
		}
		if err = s.store.FinishValidation(ctx, a); err == nil || !errors.Is(err, store.ErrConflict) {
			break
		}
	}
	if err != nil {
		// The job stays: once its lease ends a worker runs it again.
		s.log.Error("validation: record outcome", "authz", authzID, "err", err)
		return
	}
	stored = a
	result, event := "valid", audit.ChallengeValid
	e := audit.Event{Event: event, Account: a.AccountID, Names: []string{a.Identifier.Value}, Challenge: c.Type}
	if verr != nil {
		result, e.Event = "invalid", audit.ChallengeInvalid
		if p := a.Challenges[idx].Error; p != nil {
			e.Problem, e.Detail = problemType(p), p.Detail
		}
	}
	s.limits.validated(ctx, a.AccountID, a.Identifier, verr != nil)
	s.metrics.validation(c.Type, result)
	s.record(nil, e)
	s.log.Info("challenge validated", "authz", authzID, "account", a.AccountID, "type", c.Type,
		"identifier", a.Identifier.Value, "result", result, "attempt", job.Attempts, "err", verr)
}

// resumeValidation runs again a validation job whose lease ended (its
// replica died or could not record the outcome): http-01, dns-01 and
// tls-alpn-01 look at the same answer every time, so running one twice is
// safe. A job with nothing left to decide is dropped.
func (s *Server) resumeValidation(ctx context.Context, job *store.Validation) {
	a, err := s.store.GetAuthz(ctx, job.AuthzID)
	if errors.Is(err, store.ErrNotFound) {
		_ = s.store.DeleteValidation(ctx, job.AuthzID)
		return
	}
	if err != nil {
		s.log.Error("validation: load authorization", "authz", job.AuthzID, "err", err)
		return
	}
	idx := challengeIndex(a, job.ChallengeID)
	if idx < 0 || authzStatus(a, s.now()) != store.StatusPending || a.Challenges[idx].Status != store.StatusProcessing {
		_ = s.store.DeleteValidation(ctx, job.AuthzID)
		return
	}
	s.log.Info("validation: resuming a validation whose lease ended", "authz", a.ID, "type", a.Challenges[idx].Type,
		"identifier", a.Identifier.Value, "attempt", job.Attempts)
	s.validate(ctx, a, job)
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
func (s *Server) subscribe(key string) *waiter {
	w := &waiter{done: make(chan struct{})}
	s.waitersMu.Lock()
	s.waiters[key] = append(s.waiters[key], w)
	s.waitersMu.Unlock()
	return w
}

func (s *Server) unsubscribe(key string, ch *waiter) {
	s.waitersMu.Lock()
	defer s.waitersMu.Unlock()
	list := s.waiters[key]
	for i, c := range list {
		if c == ch {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.waiters, key)
	} else {
		s.waiters[key] = list
	}
}

// notify wakes key's waiters with val, which they only read (nil:
// they read the store).
func (s *Server) notify(key string, val any) {
	s.waitersMu.Lock()
	list := s.waiters[key]
	delete(s.waiters, key)
	s.waitersMu.Unlock()
	for _, w := range list {
		w.val = val
		close(w.done)
	}
}

// problemType is a stored problem's type without the ACME namespace, as the
// audit log records it.
func problemType(p *store.Problem) string { return strings.TrimPrefix(p.Type, errNS) }
