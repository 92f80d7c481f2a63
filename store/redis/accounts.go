package redis

import (
	"context"
	"time"

	"github.com/acmebridge/acmebridge/store"
)

// createAccountScript stores a new account, its key index entry, its place
// last in the listing of accounts and, optionally, the binding of an EAB
// key.
//
// KEYS: account, key index entry, listing of accounts, sequence, [EAB key].
// ARGV: JSON, version, key thumbprint, account ID, binding time.
var createAccountScript = newScript("create account", `
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then
  return 'conflict'
end
if #KEYS >= 5 then
  local k = redis.call('HMGET', KEYS[5], 'v', 'acct')
  if not k[1] then return 'notfound' end
  if k[2] and k[2] ~= '' then return 'conflict' end
  redis.call('HSET', KEYS[5], 'acct', ARGV[4], 'bound', ARGV[5])
  redis.call('HINCRBY', KEYS[5], 'v', 1)
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[1], 'tp', ARGV[3])
redis.call('SET', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[3], redis.call('INCR', KEYS[4]), ARGV[4])
return 'ok'
`)

// getIndexedScript reads a record through a unique index.
//
// KEYS: index entry. ARGV: the record key's name up to the ID, then the
// fields to read. Answers nil when the index has no entry.
var getIndexedScript = newLossyScript("get by index", `
local id = redis.call('GET', KEYS[1])
if not id then return false end
return redis.call('HMGET', ARGV[1] .. id, unpack(ARGV, 2))
`)

// casIndexedScript is a compare-and-set of a record that has a unique index
// (an account's key thumbprint, a certificate's serial): when the indexed
// value changes, the index entry moves, unless the new value is taken.
//
// KEYS: record, index entry of the new value. ARGV: expected version, name
// of the indexed field, new value, the index key's name up to the value,
// record ID, then field/value pairs to store.
var casIndexedScript = newScript("update indexed record", `
local bad = cas(KEYS[1], ARGV[1])
if bad then return bad end
local old = redis.call('HGET', KEYS[1], ARGV[2])
if old ~= ARGV[3] then
  if ARGV[3] == '' or redis.call('EXISTS', KEYS[2]) == 1 then return 'conflict' end
  if old then redis.call('DEL', ARGV[4] .. old) end
  redis.call('SET', KEYS[2], ARGV[5])
end
hset_args(KEYS[1], 6, #ARGV)
return 'ok'
`)

// CreateAccount stores a new account, indexes its key thumbprint and lists
// it last of the accounts, in one script. ErrConflict if the ID or the
// thumbprint is taken. If a.EABKeyID is set, the EAB key is bound to the
// account (AccountID, BoundAt = a.CreatedAt or now, Version incremented) in
// the same script: ErrNotFound if the key does not exist, ErrConflict if it
// is already bound.
func (s *Store) CreateAccount(ctx context.Context, a *store.Account) error {
	if a.ID == "" || a.KeyThumbprint == "" {
		return errorf("account needs an ID and a key thumbprint")
	}
	d, err := encode("account", a)
	if err != nil {
		return err
	}
	boundAt := a.CreatedAt
	if boundAt.IsZero() {
		boundAt = time.Now().UTC()
	}
	keys := []string{s.key(kindAccount, a.ID), s.key(kindAccountKey, a.KeyThumbprint),
		s.listKey(store.KindAccount), s.global(keyOrderSeq)}
	if a.EABKeyID != "" {
		keys = append(keys, s.key(kindEAB, a.EABKeyID))
	}
	return s.exec(ctx, createAccountScript, keys, d, version(a.Version), a.KeyThumbprint, a.ID, formatTime(boundAt))
}

// GetAccount returns the account with that ID or ErrNotFound.
func (s *Store) GetAccount(ctx context.Context, id string) (*store.Account, error) {
	var a store.Account
	if _, err := s.getRecord(ctx, "get account", s.key(kindAccount, id), &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// GetAccountByKey returns the account whose KeyThumbprint is tp, or
// ErrNotFound.
func (s *Store) GetAccountByKey(ctx context.Context, tp string) (*store.Account, error) {
	var a store.Account
	if _, err := s.getIndexed(ctx, "get account by key", s.key(kindAccountKey, tp), kindAccount, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// UpdateAccount stores a if the stored Version equals a.Version, then
// increments a.Version. A changed KeyThumbprint moves the key index;
// ErrConflict if the new key belongs to another account. ErrNotFound if the
// account does not exist.
func (s *Store) UpdateAccount(ctx context.Context, a *store.Account) error {
	next := *a
	next.Version++
	d, err := encode("account", &next)
	if err != nil {
		return err
	}
	err = s.exec(ctx, casIndexedScript,
		[]string{s.key(kindAccount, a.ID), s.key(kindAccountKey, a.KeyThumbprint)},
		version(a.Version), "tp", a.KeyThumbprint, s.key(kindAccountKey, ""), a.ID,
		"v", version(next.Version), "d", d, "tp", a.KeyThumbprint)
	if err != nil {
		return err
	}
	a.Version = next.Version
	return nil
}

// getIndexed reads the record of kind that the index entry at indexKey
// points to into rec (one script, so the index and the record are read at
// one instant) and returns the fields after d and v.
func (s *Store) getIndexed(ctx context.Context, op, indexKey, kind string, rec any, fields ...string) ([]any, error) {
	args := []any{s.key(kind, ""), "d", "v"}
	for _, f := range fields {
		args = append(args, f)
	}
	v, err := s.run(ctx, getIndexedScript, []string{indexKey}, args...)
	if err != nil {
		return nil, err
	}
	vals, ok := v.([]any)
	if !ok {
		return nil, store.ErrNotFound
	}
	return decodeRecord(op, vals, rec)
}
