package redis

import (
	"context"
	"strconv"
	"time"

	"github.com/acmebridge/acmebridge/store"
)

// sweepBatch is how many expired orders each CreateOrder looks at to drop
// them from their accounts' listings. More than one per order created, so
// the backlog shrinks whenever orders are being created.
const sweepBatch = 16

// createOrderScript stores a new order, its new authorizations (indexing
// the valid ones for reuse) and its place in the account's listing and in
// the listing of all orders, then sweeps a few expired orders out of their
// listings.
//
// KEYS: order, account's listing, sequence, expiring set, listing of all
// orders, then the n new authorizations' indexes of valid authorizations
// (authzIndexKey), then the n new authorizations, then the reused ones.
// ARGV: the six order arguments of write_order, n, order ID, base, now in
// ms, the authorization key's name up to the ID, the expiry key of now,
// then for each new authorization its JSON, version, TTL in ms, status,
// expiry key and ID, then the order's Expires in ms and each new
// authorization's (retention.go: the retire sets, built from base, and
// every authorization's "ru").
var createOrderScript = newScript("create order", `
if redis.call('EXISTS', KEYS[1]) == 1 then return 'conflict' end
local n = tonumber(ARGV[7])
for i = 6 + n, #KEYS do
  local found = redis.call('EXISTS', KEYS[i]) == 1
  if i < 6 + 2 * n then
    if found then return 'conflict' end
  elseif not found then
    return 'notfound'
  end
end
local seq = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[2], seq, ARGV[8])
redis.call('ZADD', KEYS[5], seq, ARGV[8])
for i = 1, n do
  local a = 13 + (i - 1) * 6
  local akey = KEYS[5 + n + i]
  redis.call('HSET', akey, 'v', ARGV[a + 1], 'd', ARGV[a], 'st', ARGV[a + 3], 'exp', ARGV[a + 4])
  redis.call('PEXPIRE', akey, ARGV[a + 2])
  if ARGV[a + 3] == 'valid' then
    index_authz(akey, ARGV[a + 5], 'valid', KEYS[5 + i], KEYS[3], ARGV[a + 2], ARGV[11], ARGV[12])
  end
end
write_order(KEYS[1], KEYS[4], 1, 6 + 2 * n)
sweep(KEYS[4], KEYS[5], ARGV[9], ARGV[10], `+strconv.Itoa(sweepBatch)+`)
local rx = 13 + 6 * n
redis.call('ZADD', ARGV[9] .. 'retire:order', ARGV[rx], ARGV[8])
for i = 1, n do
  redis.call('ZADD', ARGV[9] .. 'retire:authz', ARGV[rx + i], ARGV[13 + (i - 1) * 6 + 5])
end
for i = 6 + n, #KEYS do
  if tonumber(redis.call('HGET', KEYS[i], 'ru') or '0') < tonumber(ARGV[rx]) then
    redis.call('HSET', KEYS[i], 'ru', ARGV[rx])
  end
end
return 'ok'
`)

// updateOrderScript is the compare-and-set of an order.
//
// KEYS: order, expiring set, then the authorizations to keep for good (only
// when the order is valid). ARGV: the six order arguments of write_order.
var updateOrderScript = newScript("update order", `
local bad = cas(KEYS[1], ARGV[1])
if bad then return bad end
write_order(KEYS[1], KEYS[2], 1, 3)
return 'ok'
`)

// CreateOrder stores a new order, its new authorizations (indexing the
// valid ones for reuse) and its places in the account's listing and the
// listing of all orders in one script. Every authorization passed must be
// listed in o.AuthzIDs; the IDs listed but not passed must exist
// (ErrNotFound otherwise). ErrConflict if the order ID or a new
// authorization's ID is taken. The order and the new authorizations get
// their TTLs (see the package documentation).
func (s *Store) CreateOrder(ctx context.Context, o *store.Order, authzs []*store.Authorization) error {
	if o.ID == "" || o.AccountID == "" {
		return errorf("order needs an ID and an account ID")
	}
	listed := make(map[string]bool, len(o.AuthzIDs))
	for _, id := range o.AuthzIDs {
		listed[id] = true
	}
	isNew := make(map[string]bool, len(authzs))
	indexKeys := make([]string, 0, len(authzs))
	newKeys := make([]string, 0, len(authzs))
	var authzArgs []any
	for _, a := range authzs {
		if !listed[a.ID] || isNew[a.ID] {
			return errorf("order %s: authorization %q is not listed in AuthzIDs or is passed twice", o.ID, a.ID)
		}
		isNew[a.ID] = true
		d, err := encode("authorization", a)
		if err != nil {
			return err
		}
		indexKeys = append(indexKeys, s.authzIndexKey(a.AccountID, a.Identifier, a.Wildcard))
		newKeys = append(newKeys, s.key(kindAuthz, a.ID))
		authzArgs = append(authzArgs, d, version(a.Version), millis(s.recordTTL(a.Expires)),
			a.Status, expiryKey(a.Expires), a.ID)
	}
	keys := []string{s.key(kindOrder, o.ID), s.key(kindOrderList, o.AccountID), s.global(keyOrderSeq),
		s.global(keyExpiring), s.listKey(store.KindOrder)}
	keys = append(keys, indexKeys...)
	keys = append(keys, newKeys...)
	for _, id := range o.AuthzIDs {
		if !isNew[id] {
			keys = append(keys, s.key(kindAuthz, id))
		}
	}
	args, err := s.orderArgs("", o)
	if err != nil {
		return err
	}
	now := time.Now()
	args = append(args, len(authzs), o.ID, s.base, strconv.FormatInt(now.UnixMilli(), 10),
		s.key(kindAuthz, ""), expiryKey(now))
	args = append(args, authzArgs...)
	args = append(args, msec(o.Expires))
	for _, a := range authzs {
		args = append(args, msec(a.Expires))
	}
	return s.exec(ctx, createOrderScript, keys, args...)
}

// GetOrder returns the order or ErrNotFound.
func (s *Store) GetOrder(ctx context.Context, id string) (*store.Order, error) {
	var o store.Order
	if _, err := s.getRecord(ctx, "get order", s.key(kindOrder, id), &o); err != nil {
		return nil, err
	}
	return &o, nil
}

// UpdateOrder stores o if the stored Version equals o.Version, then
// increments o.Version. ErrNotFound if the order does not exist. The TTL
// is refreshed; a valid order, and its authorizations, lose theirs. An
// order's AccountID never changes.
func (s *Store) UpdateOrder(ctx context.Context, o *store.Order) error {
	next := *o
	next.Version++
	args, err := s.orderArgs(version(o.Version), &next)
	if err != nil {
		return err
	}
	keys := append([]string{s.key(kindOrder, o.ID), s.global(keyExpiring)}, s.orderPersistKeys(o)...)
	if err := s.exec(ctx, updateOrderScript, keys, args...); err != nil {
		return err
	}
	o.Version = next.Version
	return nil
}

// ListOrders lists the IDs of an account's orders, oldest first, at most
// limit (which must be positive) per page. The cursor is "" for the first
// page and Page.Next for the following ones; Next is opaque (a position in
// the store-wide creation sequence) and empty on the last page. Orders that
// have expired are left out. A malformed cursor gives an error matching
// ErrNotFound.
func (s *Store) ListOrders(ctx context.Context, accountID, cursor string, limit int) (store.Page, error) {
	return s.listBySeq(ctx, "list orders", s.key(kindOrderList, accountID), kindOrder, cursor, limit, false)
}

// GetAuthz returns the authorization or ErrNotFound.
func (s *Store) GetAuthz(ctx context.Context, id string) (*store.Authorization, error) {
	var a store.Authorization
	if _, err := s.getRecord(ctx, "get authorization", s.key(kindAuthz, id), &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// UpdateAuthz stores a if the stored Version equals a.Version, then
// increments a.Version. ErrNotFound if the authorization does not exist.
// Its TTL is refreshed from a.Expires, unless it belongs to a valid order
// and is kept for good. The index of valid authorizations follows in the
// same script.
func (s *Store) UpdateAuthz(ctx context.Context, a *store.Authorization) error {
	return s.writeAuthz(ctx, updateAuthzScript, a, nil, nil)
}

// writeAuthz runs sc, a script that begins with updateAuthzBody, for a:
// KEYS are a's (authzKeys) then keys, ARGV the nine of updateAuthzBody
// then args. a.Version is incremented once it ran.
func (s *Store) writeAuthz(ctx context.Context, sc *script, a *store.Authorization, keys []string, args []any) error {
	next := *a
	next.Version++
	d, err := encode("authorization", &next)
	if err != nil {
		return err
	}
	all := append([]any{version(a.Version), millis(s.recordTTL(a.Expires)), version(next.Version), d,
		a.Status, expiryKey(a.Expires), a.ID, s.key(kindAuthz, ""), expiryKey(time.Now())}, args...)
	if err := s.exec(ctx, sc, append(s.authzKeys(a), keys...), all...); err != nil {
		return err
	}
	a.Version = next.Version
	return nil
}
