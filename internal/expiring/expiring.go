// Package expiring is a bounded in-memory map whose entries expire: what
// a replica keeps of answers it may reuse for a while (an upstream CA's ARI
// window, a CAA record set) without asking again.
package expiring

import (
	"sync"
	"time"
)

// Map holds values by key until their expiry, at most Max of them. It is
// safe for concurrent use; the zero value is not: use New.
type Map[V any] struct {
	max int
	mu  sync.Mutex
	m   map[string]entry[V]
}

type entry[V any] struct {
	v     V
	until time.Time
}

// New returns a Map that holds at most size entries (at least 1).
func New[V any](size int) *Map[V] {
	return &Map[V]{max: max(1, size), m: map[string]entry[V]{}}
}

// Get returns the value stored under key if it has not expired at now.
func (c *Map[V]) Get(key string, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || !now.Before(e.until) {
		if ok {
			delete(c.m, key)
		}
		var zero V
		return zero, false
	}
	return e.v, true
}

// Put stores v under key until until. A full map first drops what has
// expired at now, then, if still full, everything: a bound, not an LRU,
// since every entry is cheap to fetch again.
func (c *Map[V]) Put(key string, v V, until, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k, e := range c.m {
			if !now.Before(e.until) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.max {
			clear(c.m)
		}
	}
	c.m[key] = entry[V]{v: v, until: until}
}

// Len is the number of entries held, expired ones included.
func (c *Map[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
