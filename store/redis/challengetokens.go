package redis

import (
	"context"
	"time"

	"github.com/acmebridge/acmebridge/store"
)

// kindChallengeToken keys hold the key authorizations of an upstream CA's
// http-01 challenges: string: key authorization, with a TTL of the ttl
// given (Redis removes them; nothing sweeps).
const kindChallengeToken = "h01token"

// PutChallengeToken stores keyAuth under token with one SET PX, replacing
// any value and TTL it had.
func (s *Store) PutChallengeToken(ctx context.Context, token, keyAuth string, ttl time.Duration) error {
	if token == "" {
		return errorf("challenge token is empty")
	}
	if ttl <= 0 {
		return errorf("challenge token ttl %s is not positive", ttl)
	}
	// PX counts milliseconds: a shorter ttl is one, not zero (no expiry).
	ttl = max(ttl, time.Millisecond)
	if err := s.c.Set(ctx, s.key(kindChallengeToken, token), keyAuth, ttl).Err(); err != nil {
		return wrap("put challenge token", err)
	}
	return nil
}

// GetChallengeToken returns the key authorization of token (one GET), or
// ErrNotFound if there is none or its TTL has passed.
func (s *Store) GetChallengeToken(ctx context.Context, token string) (string, error) {
	v, err := s.c.Get(ctx, s.key(kindChallengeToken, token)).Result()
	if isNil(err) {
		return "", store.ErrNotFound
	}
	if err != nil {
		return "", wrap("get challenge token", err)
	}
	return v, nil
}

// DeleteChallengeToken removes token with one DEL; missing is not an
// error.
func (s *Store) DeleteChallengeToken(ctx context.Context, token string) error {
	if err := s.c.Del(ctx, s.key(kindChallengeToken, token)).Err(); err != nil {
		return wrap("delete challenge token", err)
	}
	return nil
}
