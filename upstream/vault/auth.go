package vault

import (
	"context"
	"errors"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/acmebridge/acmebridge/acmeerr"
)

// Renewer timing.
const (
	// renewRetry is how soon a failed renewal or login is tried again.
	renewRetry = 15 * time.Second
	// idleCheck is how often a token that never expires is looked up
	// again (so a revoked token is noticed before a signing request).
	idleCheck = time.Hour
)

// authenticator holds the token the client uses and keeps it valid.
//
// Vault's `token renew` documentation: "Lease renewal will fail if the
// token is not renewable, the token has already been revoked, or if the
// token has already reached its maximum TTL." So a renewable token is
// renewed at two thirds of its TTL; a token that cannot be extended any
// more is replaced: a login method (AppRole, Kubernetes) logs in again, a
// token is read again from its file (where an operator puts the next one).
type authenticator struct {
	u         *Upstream
	tokenFile string
	tokenEnv  string
	// method logs in for a token (AppRole, Kubernetes); nil when the
	// token comes from a file or variable.
	method *loginMethod
	// wake nudges the renewer when the token changed.
	wake chan struct{}

	// mu serialises logins and token changes.
	mu sync.Mutex
	// gen grows whenever the token changes, so that of several requests
	// refused with the same token only the first gets a new one.
	gen   uint64
	token string
	// known says ttl and renewable describe the token, learnt at since.
	known     bool
	ttl       time.Duration
	renewable bool
	since     time.Time
}

// sourceToken reads the token from its file or environment variable.
func (a *authenticator) sourceToken() (string, error) {
	if a.tokenEnv != "" {
		tok := strings.TrimSpace(os.Getenv(a.tokenEnv))
		if tok == "" {
			return "", acmeerr.New(acmeerr.Internal, "vault %s: environment variable %s holds no token", a.u.name, a.tokenEnv)
		}
		return tok, nil
	}
	b, err := os.ReadFile(a.tokenFile)
	if err != nil {
		return "", acmeerr.Wrap(acmeerr.Internal, err, "vault %s: reading the token file", a.u.name)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", acmeerr.New(acmeerr.Internal, "vault %s: token file %s is empty", a.u.name, a.tokenFile)
	}
	return tok, nil
}

// readToken puts the token from its source in place.
func (a *authenticator) readToken() error {
	tok, err := a.sourceToken()
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.setTokenLocked(tok, false, 0, false)
	return nil
}

// setTokenLocked installs a token; known says ttl and renewable are
// meaningful (a login tells them; a token read from a file is
// looked up by the renewer).
func (a *authenticator) setTokenLocked(tok string, known bool, ttl time.Duration, renewable bool) {
	a.token = tok
	a.gen++
	a.u.client.SetToken(tok)
	a.known, a.ttl, a.renewable, a.since = known, ttl, renewable, a.u.clock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// ensure makes sure a token is in place (logging in the first time when
// there is a login method) and returns its generation.
func (a *authenticator) ensure(ctx context.Context) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token != "" {
		return a.gen, nil
	}
	if a.method != nil {
		return a.gen, a.loginLocked(ctx)
	}
	tok, err := a.sourceToken()
	if err != nil {
		return 0, err
	}
	a.setTokenLocked(tok, false, 0, false)
	return a.gen, nil
}

// refresh replaces the token Vault refused, generation gen: a login method
// logs in again; a token is read again from its source (an operator may have
// rotated the file). It reports whether a different token is now in place.
func (a *authenticator) refresh(ctx context.Context, gen uint64) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gen != gen {
		return true, nil // another request already replaced it
	}
	if a.method != nil {
		if err := a.loginLocked(ctx); err != nil {
			return false, err
		}
		return true, nil
	}
	tok, err := a.sourceToken()
	if err != nil {
		return false, err
	}
	if tok == a.token {
		return false, nil
	}
	a.setTokenLocked(tok, false, 0, false)
	a.u.log.Info("vault token replaced from its source after Vault refused the previous one")
	return true, nil
}

// call runs fn with a token in place. If Vault answers 403 — its answer to
// a missing, expired or revoked token, so it did nothing — a fresh token is
// obtained and fn runs once more.
func (u *Upstream) call(ctx context.Context, fn func(ctx context.Context) error) error {
	gen, err := u.auth.ensure(ctx)
	if err != nil {
		return err
	}
	err = fn(ctx)
	if statusOf(err) != 403 {
		return err
	}
	ok, rerr := u.auth.refresh(ctx, gen)
	if rerr != nil {
		u.log.Warn("vault: getting a new token after a 403 failed", "err", rerr)
	}
	if !ok {
		return err
	}
	return fn(ctx)
}

// run is the renewer: it learns the token's TTL, renews it at two thirds
// of it while it is renewable, and logs in again (a login method) or reads the
// token again when it cannot be extended. It returns when stop closes.
func (a *authenticator) run(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
		case <-t.C:
		}
		t.Reset(a.maintain(ctx))
	}
}

// maintain does what the token needs now and returns when to look again.
func (a *authenticator) maintain(ctx context.Context) time.Duration {
	a.mu.Lock()
	tok, gen, known, ttl, renewable, since := a.token, a.gen, a.known, a.ttl, a.renewable, a.since
	a.mu.Unlock()
	log := a.u.log
	if tok == "" {
		// A login method before its first login: log in now, so the
		// first order does not wait for it.
		if _, err := a.ensure(ctx); err != nil {
			if ctx.Err() == nil {
				log.Warn("vault: login failed; retrying", "method", a.method.kind, "err", err, "in", renewRetry)
			}
			return renewRetry
		}
		return 0
	}
	if !known {
		var s *api.Secret
		err := a.u.call(ctx, func(ctx context.Context) error {
			var err error
			s, err = a.u.client.Auth().Token().LookupSelfWithContext(ctx)
			return err
		})
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("vault: token lookup failed; retrying", "err", a.u.callError("token lookup", err), "in", renewRetry)
			}
			return renewRetry
		}
		ttl, _ = s.TokenTTL()
		renewable, _ = s.TokenIsRenewable()
		a.mu.Lock()
		if a.gen == gen {
			a.known, a.ttl, a.renewable, a.since = true, ttl, renewable, a.u.clock()
			since = a.since
		}
		a.mu.Unlock()
		log.Debug("vault token looked up", "ttl", ttl, "renewable", renewable)
	}
	if ttl <= 0 {
		// A token without expiry (a root or periodic-less service token):
		// look it up again later, to notice a revocation.
		a.mu.Lock()
		if a.gen == gen {
			a.known = false
		}
		a.mu.Unlock()
		return idleCheck
	}
	now := a.u.clock()
	expires := since.Add(ttl)
	if due := since.Add(ttl * 2 / 3); now.Before(due) {
		return due.Sub(now)
	}
	retry := min(renewRetry, max(time.Second, expires.Sub(now)/3))
	if renewable {
		s, err := a.u.client.Auth().Token().RenewSelfWithContext(ctx, 0)
		switch {
		case err == nil && s != nil && s.Auth != nil:
			newTTL := time.Duration(s.Auth.LeaseDuration) * time.Second
			a.mu.Lock()
			if a.gen == gen {
				a.ttl, a.renewable, a.since = newTTL, s.Auth.Renewable, a.u.clock()
			}
			a.mu.Unlock()
			extended := now.Add(newTTL).After(expires.Add(time.Second))
			log.Debug("vault token renewed", "ttl", newTTL, "extended", extended)
			if extended || a.method == nil {
				return 0 // the next due time follows from the new TTL
			}
			// At its maximum TTL: a login's token is replaced below.
		case statusOf(err) == 403:
			// Revoked or expired: replaced below.
		default:
			if ctx.Err() == nil {
				log.Warn("vault: token renewal failed; retrying", "err", a.u.callError("token renewal", err), "in", retry)
			}
			return retry
		}
	}
	if _, err := a.refresh(ctx, gen); err != nil {
		if ctx.Err() == nil {
			log.Warn("vault: replacing the token failed; retrying", "err", err, "in", retry)
		}
		return retry
	}
	a.mu.Lock()
	changed := a.gen != gen
	a.mu.Unlock()
	if !changed {
		if now.After(expires) {
			log.Error("vault: the token has expired and its source holds no other", "expired", expires)
			return renewRetry
		}
		log.Warn("vault: the token cannot be renewed and expires soon; put a new one in its source", "expires", expires)
		return max(time.Second, expires.Sub(now))
	}
	return 0
}

// statusOf returns the HTTP status of a Vault error response, or 0.
func statusOf(err error) int {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// escape escapes one path segment.
func escape(s string) string { return url.PathEscape(s) }
