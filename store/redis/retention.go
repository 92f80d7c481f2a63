package redis

import (
	"context"
	"strconv"
	"time"

	"github.com/acmebridge/acmebridge/store"
)

// Retention (store.Store.Sweep). Three sorted sets hold every order,
// authorization and certificate ID scored by when it ends, in Unix ms: an
// order's and an authorization's Expires, a certificate's NotAfter (fixed
// when it is stored). The scripts that create them add them
// (createOrderScript, createAuthzScript, putCertificateScript), and
// createOrderScript raises each of the order's authorizations' "ru" field
// (retain until, ms) to the order's Expires, so an authorization reused by
// a later order is kept as long as that order. The TTLs of orders and
// authorizations that never became valid (see the package documentation)
// stay: those leave on their own, and a sweep drops their entries when it
// meets them. sweepScript removes a bounded batch of due records; being
// driven by the caller's now, not Redis's clock, a test clock drives it.

// Store-wide keys of retention.
const (
	keyRetireOrders = "retire:order" // zset: order ID by Expires (ms)
	keyRetireAuthzs = "retire:authz" // zset: authorization ID by Expires or later (ms)
	keyRetireCerts  = "retire:cert"  // zset: certificate ID by NotAfter (ms)
)

// sweepScript removes up to n due records: orders first (one still live,
// in processing or with an issuance or validation job, is looked at again
// at retry, and its authorizations are kept until then), then
// certificates, then authorizations (one whose "ru" is later moves there;
// one with a validation job is looked at again at retry). Each removal
// takes the record's index entries with it. Keys found only while it runs
// are built from base, the store's tagged prefix.
//
// KEYS: the three retire sets (orders, authorizations, certificates), the
// listing of all orders, the listing of certificates, the expiry index of
// certificates, the expiring set. ARGV: base, the orders' cutoff in ms
// (empty to keep orders and authorizations), their retry in ms, the
// certificates' cutoff in ms (empty to keep them), n. Answer: removed orders,
// authorizations, certificates, entries looked at.
var sweepScript = newScript("sweep", `
local base, n = ARGV[1], tonumber(ARGV[5])
local out = {0, 0, 0, 0}
local function due(key, cutoff)
  if n - out[4] <= 0 then return {} end
  return redis.call('ZRANGEBYSCORE', key, '-inf', cutoff, 'LIMIT', 0, n - out[4])
end
local function keep_until(akey, t)
  if redis.call('EXISTS', akey) == 0 then return end
  local ru = tonumber(redis.call('HGET', akey, 'ru') or '0')
  if ru < tonumber(t) then redis.call('HSET', akey, 'ru', t) end
end
if ARGV[2] ~= '' then
  for _, id in ipairs(due(KEYS[1], ARGV[2])) do
    out[4] = out[4] + 1
    local okey = base .. 'order:' .. id
    local d = redis.call('HGET', okey, 'd')
    if not d then
      redis.call('ZREM', KEYS[1], id)
    else
      local o = cjson.decode(d)
      local authzs = o.authzIDs
      if type(authzs) ~= 'table' then authzs = {} end
      local live = o.status == 'processing' or redis.call('EXISTS', base .. 'job:' .. id) == 1
      for _, a in ipairs(authzs) do
        if redis.call('EXISTS', base .. 'vjob:' .. a) == 1 then live = true end
      end
      if live then
        for _, a in ipairs(authzs) do keep_until(base .. 'authz:' .. a, ARGV[3]) end
        redis.call('ZADD', KEYS[1], ARGV[3], id)
      else
        local acct = o.accountID
        if type(acct) ~= 'string' then acct = '' end
        redis.call('DEL', okey)
        redis.call('ZREM', base .. 'orders:' .. acct, id)
        redis.call('ZREM', KEYS[4], id)
        redis.call('ZREM', KEYS[7], string.len(acct) .. ':' .. acct .. id)
        redis.call('ZREM', KEYS[1], id)
        out[1] = out[1] + 1
      end
    end
  end
end
if ARGV[4] ~= '' then
  for _, id in ipairs(due(KEYS[3], ARGV[4])) do
    out[4] = out[4] + 1
    local ckey = base .. 'cert:' .. id
    local f = redis.call('HMGET', ckey, 'v', 'serial', 'exp')
    if f[1] then
      if f[2] and redis.call('GET', base .. 'serial:' .. f[2]) == id then
        redis.call('DEL', base .. 'serial:' .. f[2])
      end
      if f[3] and f[3] ~= '' then redis.call('ZREM', KEYS[6], f[3]) end
      redis.call('ZREM', KEYS[5], id)
      redis.call('DEL', ckey)
      out[3] = out[3] + 1
    end
    redis.call('ZREM', KEYS[3], id)
  end
end
if ARGV[2] ~= '' then
  for _, id in ipairs(due(KEYS[2], ARGV[2])) do
    out[4] = out[4] + 1
    local akey = base .. 'authz:' .. id
    local f = redis.call('HMGET', akey, 'v', 'ru', 'vi')
    if not f[1] then
      redis.call('ZREM', KEYS[2], id)
    elseif f[2] and tonumber(f[2]) > tonumber(ARGV[2]) then
      redis.call('ZADD', KEYS[2], f[2], id)
    elseif redis.call('EXISTS', base .. 'vjob:' .. id) == 1 then
      redis.call('ZADD', KEYS[2], ARGV[3], id)
    else
      if f[3] then redis.call('ZREM', f[3], id) end
      redis.call('DEL', akey)
      redis.call('ZREM', KEYS[2], id)
      out[2] = out[2] + 1
    end
  end
end
return out
`)

// msec formats t as Unix milliseconds, a retire set's score.
func msec(t time.Time) string {
	return strconv.FormatInt(t.UnixMilli(), 10)
}

// Sweep removes the records whose retention ended at now, at most limit
// entries looked at, in scripts of at most store.SweepBatch: each is short,
// so Redis serves other clients between them.
func (s *Store) Sweep(ctx context.Context, now time.Time, r store.Retention, limit int) (store.Swept, error) {
	if limit < 1 {
		return store.Swept{}, errorf("sweep: limit %d is not positive", limit)
	}
	orderCut, retry, certCut := "", "", ""
	if r.Orders > 0 {
		cut := now.Add(-r.Orders)
		orderCut, retry = msec(cut), msec(cut.Add(store.SweepRetry))
	}
	if r.Certificates > 0 {
		certCut = msec(now.Add(-r.Certificates))
	}
	keys := []string{s.global(keyRetireOrders), s.global(keyRetireAuthzs), s.global(keyRetireCerts),
		s.listKey(store.KindOrder), s.listKey(store.KindCertificate), s.global(keyCertExpiry), s.global(keyExpiring)}
	var total store.Swept
	for total.Examined < limit {
		n := min(limit-total.Examined, store.SweepBatch)
		v, err := s.run(ctx, sweepScript, keys, s.base, orderCut, retry, certCut, n)
		if err != nil {
			return total, err
		}
		vals, ok := v.([]any)
		if !ok || len(vals) != 4 {
			return total, errorf("sweep: unexpected answer %v", v)
		}
		var c [4]int
		for i, x := range vals {
			k, ok := x.(int64)
			if !ok {
				return total, errorf("sweep: unexpected answer %v", v)
			}
			c[i] = int(k)
		}
		got := store.Swept{Orders: c[0], Authorizations: c[1], Certificates: c[2], Examined: c[3]}
		total = total.Add(got)
		if got.Examined < n {
			break
		}
	}
	return total, nil
}
