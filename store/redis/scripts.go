package redis

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acmebridge/acmebridge/store"
)

// Scripts answer with a status string ("ok", "notfound", "conflict") or,
// when they return data, an array.
const (
	statusOK       = "ok"
	statusNotFound = "notfound"
	statusConflict = "conflict"
)

// prelude is the Lua every script starts with: helpers shared by the
// scripts (Redis caches each script whole, so sharing is by text).
const prelude = `
-- cas: 'notfound' if the record hash at key does not exist, 'conflict' if
-- its version is not want, nil if the compare-and-set may go ahead.
local function cas(key, want)
  local v = redis.call('HGET', key, 'v')
  if not v then return 'notfound' end
  if v ~= want then return 'conflict' end
  return nil
end

-- hset_args: HSET key with ARGV[from..to] as field/value pairs.
local function hset_args(key, from, to)
  local args = {}
  for i = from, to do args[#args + 1] = ARGV[i] end
  if #args > 0 then redis.call('HSET', key, unpack(args)) end
end

-- write_order stores an order from the six arguments at ARGV[a]: expected
-- version (unused here), new version, JSON, TTL in ms ('0': keep for good),
-- member in the expiring set, deadline in ms. An order kept for good leaves
-- the expiring set, and KEYS[first_authz..] (its authorizations) are kept
-- for good too.
local function write_order(okey, expiring, a, first_authz)
  redis.call('HSET', okey, 'v', ARGV[a + 1], 'd', ARGV[a + 2])
  local ttl, member = ARGV[a + 3], ARGV[a + 4]
  if ttl == '0' then
    redis.call('PERSIST', okey)
    redis.call('ZREM', expiring, member)
    for i = first_authz, #KEYS do redis.call('PERSIST', KEYS[i]) end
  else
    redis.call('PEXPIRE', okey, ttl)
    redis.call('ZADD', expiring, ARGV[a + 5], member)
  end
end

-- prune_authzs drops from the index of valid authorizations ikey the
-- entries whose authorization (abase .. ID) is gone, not valid, or expired
-- at drop (an expiry key, see expiryKey).
local function prune_authzs(ikey, abase, drop)
  for _, m in ipairs(redis.call('ZRANGE', ikey, 0, -1)) do
    local f = redis.call('HMGET', abase .. m, 'st', 'exp')
    if f[1] ~= 'valid' or not f[2] or f[2] <= drop then
      redis.call('ZREM', ikey, m)
    end
  end
end

-- index_authz brings the index of valid authorizations in step with the
-- authorization hash akey (ID id) just written with status st: a valid one
-- is a member of ikey, added last (scored by the next value of seqkey) if
-- it was not there already, and the hash's field "vi" names ikey; any other
-- is in no index. ikey lives at least ttl ms, the authorization's TTL, and
-- loses the entries prune_authzs drops.
local function index_authz(akey, id, st, ikey, seqkey, ttl, abase, drop)
  local old = redis.call('HGET', akey, 'vi')
  if st ~= 'valid' then
    if old then
      redis.call('ZREM', old, id)
      redis.call('HDEL', akey, 'vi')
    end
    return
  end
  if old and old ~= ikey then redis.call('ZREM', old, id) end
  if not redis.call('ZSCORE', ikey, id) then
    redis.call('ZADD', ikey, redis.call('INCR', seqkey), id)
  end
  redis.call('HSET', akey, 'vi', ikey)
  prune_authzs(ikey, abase, drop)
  if redis.call('PTTL', ikey) < tonumber(ttl) then
    redis.call('PEXPIRE', ikey, ttl)
  end
end

-- remove_job deletes the job hash at jkey and its entry in the queue.
local function remove_job(jkey, queue)
  local q = redis.call('HGET', jkey, 'q')
  if q then redis.call('ZREM', queue, q) end
  redis.call('DEL', jkey)
end

-- sweep looks at up to n members of the expiring set whose deadline (ms) is
-- at or before now. Each is "<length of account ID>:<account ID><order ID>".
-- An order that is gone leaves its account's listing and the listing of
-- all orders (all); one that lives on (clock skew, or it became permanent)
-- is rescheduled or dropped from the set. Keys are built from base, the
-- store's tagged prefix.
local function sweep(expiring, all, base, now, n)
  local due = redis.call('ZRANGEBYSCORE', expiring, '-inf', now, 'LIMIT', 0, n)
  for _, m in ipairs(due) do
    local len, rest = string.match(m, '^(%d+):(.*)$')
    if not len then
      redis.call('ZREM', expiring, m)
    else
      len = tonumber(len)
      local acct, oid = string.sub(rest, 1, len), string.sub(rest, len + 1)
      local left = redis.call('PTTL', base .. 'order:' .. oid)
      if left == -2 then
        redis.call('ZREM', base .. 'orders:' .. acct, oid)
        redis.call('ZREM', all, oid)
        redis.call('ZREM', expiring, m)
      elseif left == -1 then
        redis.call('ZREM', expiring, m)
      else
        redis.call('ZADD', expiring, string.format('%.0f', tonumber(now) + left), m)
      end
    end
  end
end
`

// script is a Lua script with a name for errors.
type script struct {
	name string
	s    *redis.Script
	// lossy is set on scripts whose effects may be lost without breaking a
	// promise: they do not wait for replicas (see durability.go).
	lossy bool
}

// newScript returns the script prelude + body: a write, which waits for
// replicas when the store is configured to (durability.go).
func newScript(name, body string) *script {
	return &script{name: name, s: redis.NewScript(prelude + body)}
}

// newLossyScript returns a script that reads, or writes only what may be
// lost (rate-limit counters, the pruning of listings): it never waits for
// replicas.
func newLossyScript(name, body string) *script {
	sc := newScript(name, body)
	sc.lossy = true
	return sc
}

// run runs sc (EVALSHA, then EVAL if Redis lost its script cache), then
// for a write WAIT when the store waits for replicas. Status
// answers become nil or a sentinel error; a nil answer is (nil, nil); other
// answers are returned as they are.
func (s *Store) run(ctx context.Context, sc *script, keys []string, args ...any) (any, error) {
	var v any
	var err error
	if s.waitReplicas > 0 && !sc.lossy {
		v, err = s.runDurable(ctx, sc, keys, args...)
	} else {
		v, err = sc.s.Run(ctx, s.c, keys, args...).Result()
	}
	if isNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, wrap(sc.name, err)
	}
	if st, ok := v.(string); ok {
		switch st {
		case statusOK:
			return st, nil
		case statusNotFound:
			return nil, store.ErrNotFound
		case statusConflict:
			return nil, store.ErrConflict
		}
		return nil, errorf("%s: unexpected answer %q", sc.name, st)
	}
	return v, nil
}

// exec runs a script that answers with a status only.
func (s *Store) exec(ctx context.Context, sc *script, keys []string, args ...any) error {
	_, err := s.run(ctx, sc, keys, args...)
	return err
}

// orderArgs are the six script arguments write_order reads for storing
// next in place of the order at version want: see the prelude.
func (s *Store) orderArgs(want string, next *store.Order) ([]any, error) {
	d, err := encode("order", next)
	if err != nil {
		return nil, err
	}
	ttl, deadline := "0", "0"
	if next.Status != store.StatusValid {
		t := s.recordTTL(next.Expires)
		ttl = millis(t)
		deadline = strconv.FormatInt(time.Now().Add(t).UnixMilli(), 10)
	}
	return []any{want, version(next.Version), d, ttl, expiringMember(next), deadline}, nil
}

// orderPersistKeys are the keys write_order makes permanent with an order
// that is valid: its authorizations. None for an order that is not valid.
func (s *Store) orderPersistKeys(o *store.Order) []string {
	if o.Status != store.StatusValid {
		return nil
	}
	keys := make([]string, len(o.AuthzIDs))
	for i, id := range o.AuthzIDs {
		keys[i] = s.key(kindAuthz, id)
	}
	return keys
}

// expiringMember is an order's member in the expiring set: its account ID,
// length-prefixed, then its ID (see sweep in the prelude).
func expiringMember(o *store.Order) string {
	return strconv.Itoa(len(o.AccountID)) + ":" + o.AccountID + o.ID
}
