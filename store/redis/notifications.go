package redis

import (
	"context"
	"strconv"
	"time"

	json "github.com/go-json-experiment/json/v1"

	"github.com/acmebridge/acmebridge/store"
)

// The notification outbox. A notification is a hash: "d", its JSON (the
// fields that never change), and plain fields the scripts set: attempts,
// owner, lease, nb (NotBefore), err, and q, its member in the queue. The
// queue (keyNotifyQueue) is a sorted set ordered by member as the job
// queue is: the 20-digit due key, ":", the ID. keyNotifyAge scores the IDs
// by their enqueue time (ms), for the oldest. An acknowledged ID is
// remembered under kindNotifyDone with a TTL of store.NotificationMemory.
const (
	kindNotify     = "notif"     // hash: d, attempts, owner, lease, nb, err, q
	kindNotifyDone = "notifdone" // string with a TTL: an acknowledged ID
	keyNotifyQueue = "notifq"    // zset, all scores 0: due key ":" ID
	keyNotifyAge   = "notifage"  // zset: ID by enqueue time (ms)
)

// notifyFieldNames are the hash fields read back, in notifyFrom's order.
var notifyFieldNames = []string{"d", "attempts", "owner", "lease", "nb", "err"}

// enqueueNotifyScript stores each notification that is neither queued nor
// remembered.
//
// KEYS: queue, age set, then per notification its hash and its done key.
// ARGV: per notification: JSON, NotBefore, queue member, enqueue time (ms).
var enqueueNotifyScript = newScript("enqueue notifications", `
local n = (#KEYS - 2) / 2
for i = 1, n do
  local k, done = KEYS[1 + 2 * i], KEYS[2 + 2 * i]
  local a = 4 * (i - 1)
  if redis.call('EXISTS', k) == 0 and redis.call('EXISTS', done) == 0 then
    redis.call('HSET', k, 'd', ARGV[a + 1], 'attempts', '0', 'owner', '', 'lease', '', 'nb', ARGV[a + 2], 'err', '', 'q', ARGV[a + 3])
    redis.call('ZADD', KEYS[1], 0, ARGV[a + 3])
    redis.call('ZADD', KEYS[2], ARGV[a + 4], string.sub(ARGV[a + 3], 22))
  end
end
return 'ok'
`)

// claimNotifyScript claims the first due notification; a queue member
// whose hash is gone is dropped.
//
// KEYS: queue. ARGV: exclusive upper bound of due members, owner,
// LeaseUntil, its due key, the hash key's name up to the ID. Answers the
// notifyFieldNames values, or an empty array.
var claimNotifyScript = newScript("claim notification", `
for _ = 1, 100 do
  local m = redis.call('ZRANGEBYLEX', KEYS[1], '-', ARGV[1], 'LIMIT', 0, 1)[1]
  if not m then return {} end
  redis.call('ZREM', KEYS[1], m)
  local id = string.sub(m, 22)
  local k = ARGV[5] .. id
  if redis.call('EXISTS', k) == 1 then
    local q = ARGV[4] .. ':' .. id
    redis.call('ZADD', KEYS[1], 0, q)
    redis.call('HSET', k, 'owner', ARGV[2], 'lease', ARGV[3], 'q', q)
    redis.call('HINCRBY', k, 'attempts', 1)
    return redis.call('HMGET', k, 'd', 'attempts', 'owner', 'lease', 'nb', 'err')
  end
end
return {}
`)

// ackNotifyScript removes the notification owner holds and remembers it.
//
// KEYS: hash, queue, age set, done key. ARGV: owner, ID, memory (ms).
var ackNotifyScript = newScript("ack notification", `
local cur = redis.call('HMGET', KEYS[1], 'owner', 'q')
if not cur[2] then return 'notfound' end
if cur[1] ~= ARGV[1] then return 'conflict' end
redis.call('ZREM', KEYS[2], cur[2])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[4], '1', 'PX', ARGV[3])
return 'ok'
`)

// retryNotifyScript releases the notification owner holds until a later
// time.
//
// KEYS: hash, queue. ARGV: owner, new queue member, NotBefore, error.
var retryNotifyScript = newScript("retry notification", `
local cur = redis.call('HMGET', KEYS[1], 'owner', 'q')
if not cur[2] then return 'notfound' end
if cur[1] ~= ARGV[1] then return 'conflict' end
redis.call('ZREM', KEYS[2], cur[2])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
redis.call('HSET', KEYS[1], 'owner', '', 'lease', '', 'nb', ARGV[3], 'err', ARGV[4], 'q', ARGV[2])
return 'ok'
`)

// EnqueueNotifications stores, in one script, every notification that is
// neither queued nor remembered.
func (s *Store) EnqueueNotifications(ctx context.Context, ns []*store.Notification) error {
	if len(ns) == 0 {
		return nil
	}
	keys := []string{s.global(keyNotifyQueue), s.global(keyNotifyAge)}
	var args []any
	for _, n := range ns {
		if n.ID == "" {
			return errorf("enqueue notification: empty ID")
		}
		c := *n
		c.Owner, c.LeaseUntil, c.Attempts, c.LastError = "", time.Time{}, 0, ""
		d, err := encode("notification", &c)
		if err != nil {
			return err
		}
		keys = append(keys, s.key(kindNotify, n.ID), s.key(kindNotifyDone, n.ID))
		args = append(args, d, formatTime(n.NotBefore), dueKey(n.NotBefore)+":"+n.ID, strconv.FormatInt(n.CreatedAt.UnixMilli(), 10))
	}
	return s.exec(ctx, enqueueNotifyScript, keys, args...)
}

// ClaimNotification claims the notification due soonest in one script.
func (s *Store) ClaimNotification(ctx context.Context, owner string, now time.Time, lease time.Duration) (*store.Notification, error) {
	if owner == "" || lease <= 0 {
		return nil, errorf("claim notification: owner must be set and lease positive")
	}
	until := now.Add(lease)
	v, err := s.run(ctx, claimNotifyScript, []string{s.global(keyNotifyQueue)},
		"("+dueKey(now)+";", owner, formatTime(until), dueKey(until), s.key(kindNotify, ""))
	if err != nil {
		return nil, err
	}
	vals, _ := v.([]any)
	if len(vals) == 0 {
		return nil, store.ErrNoJob
	}
	return notifyFrom(vals)
}

// notifyFrom decodes the notifyFieldNames values.
func notifyFrom(vals []any) (*store.Notification, error) {
	const op = "claim notification"
	if len(vals) != len(notifyFieldNames) || vals[0] == nil {
		return nil, store.ErrNotFound
	}
	var n store.Notification
	if err := json.Unmarshal([]byte(str(vals[0])), &n); err != nil {
		return nil, errorf("%s: decode: %w", op, err)
	}
	var err error
	if n.Attempts, err = strconv.Atoi(str(vals[1])); err != nil {
		return nil, errorf("%s: malformed attempts %q", op, vals[1])
	}
	n.Owner = str(vals[2])
	if n.LeaseUntil, err = parseTime(str(vals[3])); err != nil {
		return nil, errorf("%s: malformed lease: %w", op, err)
	}
	if n.NotBefore, err = parseTime(str(vals[4])); err != nil {
		return nil, errorf("%s: malformed notBefore: %w", op, err)
	}
	n.LastError = str(vals[5])
	return &n, nil
}

// AckNotification removes the notification owner holds and remembers its
// ID.
func (s *Store) AckNotification(ctx context.Context, id, owner string) error {
	return s.exec(ctx, ackNotifyScript, []string{s.key(kindNotify, id), s.global(keyNotifyQueue),
		s.global(keyNotifyAge), s.key(kindNotifyDone, id)}, owner, id, millis(store.NotificationMemory))
}

// RetryNotification releases the notification owner holds until next.
func (s *Store) RetryNotification(ctx context.Context, id, owner string, next time.Time, lastErr string) error {
	return s.exec(ctx, retryNotifyScript, []string{s.key(kindNotify, id), s.global(keyNotifyQueue)},
		owner, dueKey(next)+":"+id, formatTime(next), lastErr)
}

// NotificationStats counts the queue and reads the oldest enqueue time.
func (s *Store) NotificationStats(ctx context.Context) (store.NotificationStats, error) {
	var st store.NotificationStats
	n, err := s.c.ZCard(ctx, s.global(keyNotifyAge)).Result()
	if err != nil {
		return st, wrap("notification stats", err)
	}
	st.Queued = int(n)
	if n == 0 {
		return st, nil
	}
	zs, err := s.c.ZRangeWithScores(ctx, s.global(keyNotifyAge), 0, 0).Result()
	if err != nil {
		return st, wrap("notification stats", err)
	}
	if len(zs) == 1 {
		st.Oldest = time.UnixMilli(int64(zs[0].Score))
	}
	return st, nil
}
