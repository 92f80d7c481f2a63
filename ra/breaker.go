package ra

import (
	"sync"
	"time"
)

// Circuit breaker: an upstream that failed transiently BreakerThreshold
// times in a row is skipped, while a later upstream of the route is
// healthy, until a probe of it succeeds (every BreakerProbe, for upstreams
// that can be checked) or BreakerCooldown passes; then the next order
// tries it again.
const (
	BreakerThreshold = 3
	BreakerCooldown  = time.Minute
	BreakerProbe     = 15 * time.Second
)

// Breaker is the health of the upstreams as this replica's issuance
// workers saw them (other replicas keep their own). It is a field of the
// domain core, read by the metrics, the readiness and the dashboard.
type Breaker struct {
	mu     sync.Mutex
	now    func() time.Time
	health map[string]*upstreamHealth
}

type upstreamHealth struct {
	failures  int
	openUntil time.Time
}

// NewBreaker returns a breaker with every upstream closed (healthy).
func NewBreaker(now func() time.Time) *Breaker {
	return &Breaker{now: now, health: map[string]*upstreamHealth{}}
}

// IsOpen reports whether the upstream is being skipped.
func (b *Breaker) IsOpen(name string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.health[name]
	return h != nil && b.now().Before(h.openUntil)
}

// Failure counts a transient failure and reports whether it opened the
// breaker.
func (b *Breaker) Failure(name string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.health[name]
	if h == nil {
		h = &upstreamHealth{}
		b.health[name] = h
	}
	h.failures++
	if h.failures < BreakerThreshold {
		return false
	}
	wasOpen := b.now().Before(h.openUntil)
	h.openUntil = b.now().Add(BreakerCooldown)
	return !wasOpen
}

// Success closes the breaker.
func (b *Breaker) Success(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.health, name)
}

// Open lists the upstreams being skipped.
func (b *Breaker) Open() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for name, h := range b.health {
		if b.now().Before(h.openUntil) {
			out = append(out, name)
		}
	}
	return out
}

// Health is how many transient failures in a row the upstream has had
// since its last success, and until when it is skipped (zero, or a time in
// the past, when it is not).
func (b *Breaker) Health(name string) (failures int, skippedUntil time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.health[name]
	if h == nil {
		return 0, time.Time{}
	}
	return h.failures, h.openUntil
}

// Failing reports whether the upstream has failed transiently
// BreakerThreshold times in a row since its last success: its breaker
// opened and nothing has worked since (the cool-down letting an order try
// it again does not make it healthy).
func (b *Breaker) Failing(name string) bool {
	n, _ := b.Health(name)
	return n >= BreakerThreshold
}
