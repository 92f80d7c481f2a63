package bolt

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

const (
	// minSweep is the size below which the used-nonce map is never swept.
	minSweep = 1024
	// maxNonces caps the used-nonce map. A use that finds it full of
	// nonces that have not expired is refused (the client gets badNonce
	// and retries): forgetting a used nonce would let it be replayed.
	// Only requests whose signature verified record a use.
	maxNonces = 1 << 20
)

// nonceCache records the nonces used in this process, until they expire
// (see Store for why memory is enough for bolt: a bolt file serves one
// process, and the nonce key is made anew at every start, so nonces of an
// earlier run are invalid). Expired entries are swept whenever the map has
// doubled since the last sweep, so the cost of sweeping is amortised over
// the uses and the map stays within about twice the number of live
// entries.
type nonceCache struct {
	log *slog.Logger
	max int // maxNonces; a field so tests can lower it

	mu        sync.Mutex
	m         map[string]time.Time // nonce → its expiry
	nextSweep int                  // sweep when len(m) reaches this
}

func newNonceCache(log *slog.Logger) *nonceCache {
	return &nonceCache{log: log, max: maxNonces, m: make(map[string]time.Time), nextSweep: minSweep}
}

// use records nonce as used until until and reports whether it was its
// first use (judged at now).
func (c *nonceCache) use(nonce string, until, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if exp, ok := c.m[nonce]; ok && now.Before(exp) {
		return false
	}
	if len(c.m)+1 >= min(c.nextSweep, c.max) {
		c.sweepLocked(now)
	}
	if len(c.m) >= c.max {
		c.log.Warn("used-nonce record full: nonce refused", "kept", len(c.m))
		return false
	}
	c.m[nonce] = until
	return true
}

// sweepLocked drops the entries expired at now. c.mu must be held.
func (c *nonceCache) sweepLocked(now time.Time) {
	before := len(c.m)
	for n, exp := range c.m {
		if !now.Before(exp) {
			delete(c.m, n)
		}
	}
	c.nextSweep = min(max(2*len(c.m), minSweep), c.max)
	c.log.Debug("used nonces swept", "expired", before-len(c.m), "kept", len(c.m))
}

// NonceKey returns this process's nonce key, made at Open: the record of
// used nonces is in memory, so a restart must invalidate every nonce.
func (s *Store) NonceKey(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, finish(err)
	}
	return s.nonceKey, nil
}

// UseNonce records the nonce as used until it expires and reports whether
// this is its first use. Exactly one call returns true for a given nonce.
func (s *Store) UseNonce(ctx context.Context, nonce string, until time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, finish(err)
	}
	return s.nonces.use(nonce, until, time.Now()), nil
}
