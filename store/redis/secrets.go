package redis

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/acmebridge/acmebridge/store"
)

// kindSecret keys hold named secrets: string: value (sealed by
// store.Sealed), kept for good.
const kindSecret = "secret"

// PutSecret stores a new named secret with one SET NX, so exactly one of
// several replicas racing to create it wins; ErrConflict for the others.
// The value is stored as given: store.Sealed encrypts it first.
func (s *Store) PutSecret(ctx context.Context, name string, value []byte) error {
	if name == "" {
		return errorf("secret needs a name")
	}
	var set *redis.BoolCmd
	_, err := s.durable(ctx, func(c redis.Cmdable) redis.Cmder {
		set = c.SetNX(ctx, s.key(kindSecret, name), value, 0)
		return set
	})
	if err != nil {
		return wrap("put secret", err)
	}
	if !set.Val() {
		return store.ErrConflict
	}
	return nil
}

// GetSecret returns the secret stored under name or ErrNotFound.
func (s *Store) GetSecret(ctx context.Context, name string) ([]byte, error) {
	v, err := s.c.Get(ctx, s.key(kindSecret, name)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, wrap("get secret", err)
	}
	return v, nil
}
