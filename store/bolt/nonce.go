package bolt

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"slices"
	"sync"
	"time"
)

const (
	// minSweep is the size below which the used-nonce map is never swept.
	minSweep = 1024
	// DefaultMaxUsedNonces caps the used-nonce map (Options.MaxUsedNonces):
	// about 40 MB of memory at most (a 16-byte digest and an expiry per
	// nonce). Only requests whose signature verified record a use.
	DefaultMaxUsedNonces = 1 << 20
)

// nonceCache records the nonces used in this process, until they expire
// (see Store for why memory is enough for bolt: a bolt file serves one
// process, and the nonce key is made anew at every start, so nonces of an
// earlier run are invalid). Expired entries are swept whenever the map has
// doubled since the last sweep, so the cost of sweeping is amortised over
// the uses and the map stays within about twice the number of live
// entries.
//
// When the map is full of nonces that have not expired, it forgets the
// quarter that expire first and raises its floor to their latest expiry:
// from then on every nonce expiring at or before the floor is refused, used
// or not, so a forgotten nonce can never be replayed (store.Store.UseNonce).
// A full record thus shortens the life of the oldest outstanding nonces
// (their clients get badNonce and retry with the fresh nonce of that
// answer) instead of refusing every new use, which would lock every client
// out for as long as whoever filled it keeps it full. Nonces carry their
// expiry to the second, so the floor moves by whole seconds: only a record
// filled for the most part within the last second refuses that second's
// nonces (a million verified requests in a second, at the default size).
type nonceCache struct {
	log *slog.Logger
	max int

	mu        sync.Mutex
	m         map[nonceID]int64 // nonce → its expiry (Unix ns)
	nextSweep int               // sweep when len(m) reaches this
	// floor is the latest expiry forgotten to make room: a nonce expiring
	// at or before it is refused.
	floor time.Time
}

func newNonceCache(log *slog.Logger, capacity int) *nonceCache {
	if capacity <= 0 {
		capacity = DefaultMaxUsedNonces
	}
	return &nonceCache{log: log, max: capacity, m: make(map[nonceID]int64), nextSweep: min(minSweep, capacity)}
}

// nonceID is what the record keeps of a nonce: the first 128 bits of its
// SHA-256, a third of the memory of the nonce itself as a map key. Two
// nonces share one only by a collision of SHA-256 truncated to 128 bits
// (about 2^-88 among a full record's 2^20), which no client can aim at.
type nonceID [16]byte

func nonceIDOf(nonce string) nonceID {
	sum := sha256.Sum256([]byte(nonce))
	return nonceID(sum[:16])
}

// use records nonce as used until until and reports whether it was its
// first use (judged at now).
func (c *nonceCache) use(nonce string, until, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !until.After(c.floor) {
		return false
	}
	id := nonceIDOf(nonce)
	if exp, ok := c.m[id]; ok && now.UnixNano() < exp {
		return false
	}
	if len(c.m)+1 >= min(c.nextSweep, c.max) {
		c.sweepLocked(now)
	}
	if len(c.m) >= c.max {
		c.forgetOldestLocked()
		if !until.After(c.floor) {
			return false
		}
	}
	c.m[id] = until.UnixNano()
	return true
}

// sweepLocked drops the entries expired at now. c.mu must be held.
func (c *nonceCache) sweepLocked(now time.Time) {
	before := len(c.m)
	for n, exp := range c.m {
		if now.UnixNano() >= exp {
			delete(c.m, n)
		}
	}
	c.nextSweep = min(max(2*len(c.m), minSweep), c.max)
	c.log.Debug("used nonces swept", "expired", before-len(c.m), "kept", len(c.m))
}

// forgetOldestLocked makes room in a full map: it raises the floor to the
// expiry below which lies a quarter of the entries and drops every entry
// at or below it (more than a quarter when many share that expiry). c.mu
// must be held.
func (c *nonceCache) forgetOldestLocked() {
	exps := make([]int64, 0, len(c.m))
	for _, exp := range c.m {
		exps = append(exps, exp)
	}
	slices.Sort(exps)
	floor := time.Unix(0, exps[max(len(exps)/4, 1)-1])
	if floor.After(c.floor) {
		c.floor = floor
	}
	before := len(c.m)
	for n, exp := range c.m {
		if exp <= c.floor.UnixNano() {
			delete(c.m, n)
		}
	}
	c.log.Warn("used-nonce record full: the oldest nonces are now refused", "refused_expiring_until", c.floor,
		"forgotten", before-len(c.m), "kept", len(c.m))
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
// The record is bounded (Options.MaxUsedNonces); when full, the nonces
// that expire first are refused (see nonceCache).
func (s *Store) UseNonce(ctx context.Context, nonce string, until time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, finish(err)
	}
	return s.nonces.use(nonce, until, time.Now()), nil
}
