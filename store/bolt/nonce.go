package bolt

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

const (
	// minSweep is the size below which the nonce map is never swept.
	minSweep = 1024
	// maxNonces caps the nonce map. Reaching it, a quarter of the nonces are
	// dropped even though they have not expired; a client holding one gets
	// badNonce and retries. This bounds memory when something requests
	// nonces faster than they expire.
	maxNonces = 1 << 20
)

// nonceCache holds outstanding nonces in memory (see Store for why that is
// enough for bolt). Expired nonces are swept whenever the map has doubled
// since the last sweep, so the cost of sweeping is amortised over the adds
// and the map stays within about twice the number of live nonces, and never
// above max. Sweeps judge expiry by the wall clock.
type nonceCache struct {
	log *slog.Logger
	max int // maxNonces; a field so tests can lower it

	mu        sync.Mutex
	m         map[string]time.Time // nonce → expiry
	nextSweep int                  // sweep when len(m) reaches this
}

func newNonceCache(log *slog.Logger) *nonceCache {
	return &nonceCache{log: log, max: maxNonces, m: make(map[string]time.Time), nextSweep: minSweep}
}

// add records nonce until exp.
func (c *nonceCache) add(nonce string, exp time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m)+1 >= min(c.nextSweep, c.max) {
		// Sweep before adding, so the new nonce is never the one dropped.
		c.sweepLocked(time.Now())
	}
	c.m[nonce] = exp
}

// consume removes nonce and reports whether it was present and unexpired at
// now.
func (c *nonceCache) consume(nonce string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.m[nonce]
	if !ok {
		return false
	}
	delete(c.m, nonce)
	return now.Before(exp)
}

// sweepLocked drops nonces expired at now and, if the map is still at c.max,
// arbitrary ones until it is down to three quarters of c.max. c.mu must be
// held.
func (c *nonceCache) sweepLocked(now time.Time) {
	before := len(c.m)
	for n, exp := range c.m {
		if !now.Before(exp) {
			delete(c.m, n)
		}
	}
	expired := before - len(c.m)
	evicted := 0
	if len(c.m) >= c.max {
		for n := range c.m {
			if len(c.m) <= c.max/4*3 {
				break
			}
			delete(c.m, n)
			evicted++
		}
	}
	c.nextSweep = min(max(2*len(c.m), minSweep), c.max)
	if evicted > 0 {
		c.log.Warn("nonce cache full: dropped live nonces", "dropped", evicted, "kept", len(c.m))
	}
	c.log.Debug("nonce cache swept", "expired", expired, "kept", len(c.m))
}

// AddNonce records a fresh nonce that expires at exp. Nonces live in memory
// only (see Store).
func (s *Store) AddNonce(ctx context.Context, nonce string, exp time.Time) error {
	if err := ctx.Err(); err != nil {
		return finish(err)
	}
	s.nonces.add(nonce, exp)
	return nil
}

// ConsumeNonce removes the nonce and reports whether it existed and had not
// expired at now. Exactly one call returns true for a given nonce.
func (s *Store) ConsumeNonce(ctx context.Context, nonce string, now time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, finish(err)
	}
	return s.nonces.consume(nonce, now), nil
}
