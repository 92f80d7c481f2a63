package redis

import (
	"context"
	"crypto/rand"
	"time"

	"github.com/redis/go-redis/v9"
)

// keyNonceKey holds the key nonces are minted under: 32 random bytes,
// created by the first replica that asks (SET NX) and kept for good. If
// Redis loses its data, the key and the record of used nonces go together
// and a new key makes every earlier nonce invalid.
const keyNonceKey = "noncekey"

// NonceKey returns the replicas' shared nonce key, creating it on first
// use: one SET NX and one GET.
func (s *Store) NonceKey(ctx context.Context) ([]byte, error) {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	if _, err := s.durable(ctx, func(c redis.Cmdable) redis.Cmder {
		return c.SetNX(ctx, s.global(keyNonceKey), k, 0)
	}); err != nil {
		return nil, wrap("nonce key", err)
	}
	v, err := s.c.Get(ctx, s.global(keyNonceKey)).Bytes()
	if err != nil {
		return nil, wrap("nonce key", err)
	}
	if len(v) < 16 {
		return nil, errorf("nonce key: stored key is %d bytes", len(v))
	}
	return v, nil
}

// UseNonce records the nonce as used until it expires with one SET NX
// PX, so across every replica sharing the Redis exactly one call sets it
// (and returns true). With WaitReplicas the use counts only once
// replicated, so a failover cannot make a used nonce good again.
func (s *Store) UseNonce(ctx context.Context, nonce string, until time.Time) (bool, error) {
	ttl := max(time.Until(until), minNonceTTL)
	var set *redis.StatusCmd
	_, err := s.durable(ctx, func(c redis.Cmdable) redis.Cmder {
		set = c.SetArgs(ctx, s.key(kindNonce, nonce), "1", redis.SetArgs{Mode: "NX", TTL: ttl})
		return set
	})
	if isNil(err) {
		return false, nil
	}
	if err != nil {
		return false, wrap("use nonce", err)
	}
	return set.Val() == "OK", nil
}
