package redis

import (
	"context"
	"strconv"
	"time"
)

// AddNonce records a fresh nonce that expires at exp: one SET of its expiry
// (Unix nanoseconds) with a TTL that removes the key once it has expired.
func (s *Store) AddNonce(ctx context.Context, nonce string, exp time.Time) error {
	ttl := max(time.Until(exp), minNonceTTL)
	err := s.c.Set(ctx, s.key(kindNonce, nonce), strconv.FormatInt(exp.UnixNano(), 10), ttl).Err()
	return wrap("add nonce", err)
}

// ConsumeNonce removes the nonce and reports whether it existed and had not
// expired at now. The removal is one GETDEL, so across every replica sharing
// the Redis exactly one call gets the nonce's expiry back; an expired nonce
// is removed all the same.
func (s *Store) ConsumeNonce(ctx context.Context, nonce string, now time.Time) (bool, error) {
	v, err := s.c.GetDel(ctx, s.key(kindNonce, nonce)).Result()
	if isNil(err) {
		return false, nil
	}
	if err != nil {
		return false, wrap("consume nonce", err)
	}
	exp, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return false, errorf("consume nonce: malformed expiry %q", v)
	}
	return now.Before(time.Unix(0, exp)), nil
}
