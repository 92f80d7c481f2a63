package redis

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// keyReload counts reload requests (INCR): every replica polls it.
const keyReload = "reload"

// ListJobs returns the order IDs of every job, from the job queue (whose
// members end with them, after the 20-digit due key and ":").
func (s *Store) ListJobs(ctx context.Context) ([]string, error) {
	members, err := s.c.ZRange(ctx, s.global(keyJobQueue), 0, -1).Result()
	if err != nil {
		return nil, wrap("list jobs", err)
	}
	ids := make([]string, 0, len(members))
	for _, m := range members {
		if len(m) > 21 {
			ids = append(ids, m[21:])
		}
	}
	return ids, nil
}

// PublishReload counts a reload request with one INCR.
func (s *Store) PublishReload(ctx context.Context) (int64, error) {
	var incr *redis.IntCmd
	if _, err := s.durable(ctx, func(c redis.Cmdable) redis.Cmder {
		incr = c.Incr(ctx, s.global(keyReload))
		return incr
	}); err != nil {
		return 0, wrap("publish reload", err)
	}
	return incr.Val(), nil
}

// ReloadRequested reads the reload requests' count.
func (s *Store) ReloadRequested(ctx context.Context) (int64, error) {
	n, err := s.c.Get(ctx, s.global(keyReload)).Int64()
	if isNil(err) {
		return 0, nil
	}
	if err != nil {
		return 0, wrap("reload requested", err)
	}
	return n, nil
}
