package proxy

import (
	"sync"

	"github.com/go-jose/go-jose/v4"
)

// keyCacheSize bounds the accounts whose key a server remembers.
const keyCacheSize = 1 << 16

// accountKey is an account's key as this server last read it from the
// store: what a "kid" request's signature is checked with before the store
// is asked (proxy/jws.go verifyKID). It is only ever a guess: the store
// operation that uses the request's nonce does so only if the account's
// key thumbprint is still tp, so a key changed since (by another replica,
// RFC 8555 §7.3.5) makes the request be verified again with the key the
// store holds.
type accountKey struct {
	jwk *jose.JSONWebKey
	// tp is the account's stored KeyThumbprint, dir its directory.
	tp, dir string
}

// keyCache maps account IDs to their keys, at most keyCacheSize of them
// (one taken out at random when full).
type keyCache struct {
	mu sync.Mutex
	m  map[string]accountKey
}

func (c *keyCache) get(id string) (accountKey, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.m[id]
	return k, ok
}

func (c *keyCache) put(id string, k accountKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]accountKey{}
	}
	if _, ok := c.m[id]; !ok && len(c.m) >= keyCacheSize {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[id] = k
}

func (c *keyCache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, id)
}
