package redis

import (
	"context"

	"github.com/acmebridge/acmebridge/store"
)

// An EAB key's hash holds its binding in fields of their own, "acct" and
// "bound", besides the JSON in "d": CreateAccount binds a key inside a
// script, which sets those fields and increments "v" without touching the
// JSON. The fields win over the JSON when the key is read.

// createListedScript stores a new record hash, unless the key exists, and
// its place last in its kind's listing.
//
// KEYS: record, listing, sequence. ARGV: record ID, then field/value pairs.
var createListedScript = newScript("create record", `
if redis.call('EXISTS', KEYS[1]) == 1 then return 'conflict' end
hset_args(KEYS[1], 2, #ARGV)
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1])
return 'ok'
`)

// casScript is a compare-and-set of a record hash without indexes. A record
// that expires gets its TTL refreshed; a permanent one stays permanent.
//
// KEYS: record. ARGV: expected version, TTL in ms (empty: leave the TTL
// alone), then field/value pairs.
var casScript = newScript("update record", `
local bad = cas(KEYS[1], ARGV[1])
if bad then return bad end
hset_args(KEYS[1], 3, #ARGV)
if ARGV[2] ~= '' and redis.call('PTTL', KEYS[1]) >= 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 'ok'
`)

// eabFields are the field/value pairs of k's hash.
func eabFields(k *store.EABKey) ([]any, error) {
	d, err := encode("EAB key", k)
	if err != nil {
		return nil, err
	}
	return []any{"v", version(k.Version), "d", d, "acct", k.AccountID, "bound", formatTime(k.BoundAt)}, nil
}

// PutEABKey stores a new EAB key and lists it last of the EAB keys, in one
// script; ErrConflict if the ID exists. The HMAC key is stored as given:
// this driver does not encrypt it.
func (s *Store) PutEABKey(ctx context.Context, k *store.EABKey) error {
	if k.ID == "" {
		return errorf("EAB key needs an ID")
	}
	fields, err := eabFields(k)
	if err != nil {
		return err
	}
	keys := []string{s.key(kindEAB, k.ID), s.listKey(store.KindEABKey), s.global(keyOrderSeq)}
	return s.exec(ctx, createListedScript, keys, append([]any{k.ID}, fields...)...)
}

// GetEABKey returns the key or ErrNotFound.
func (s *Store) GetEABKey(ctx context.Context, id string) (*store.EABKey, error) {
	var k store.EABKey
	rest, err := s.getRecord(ctx, "get EAB key", s.key(kindEAB, id), &k, "acct", "bound")
	if err != nil {
		return nil, err
	}
	if len(rest) == 2 && rest[0] != nil {
		k.AccountID = str(rest[0])
		if k.BoundAt, err = parseTime(str(rest[1])); err != nil {
			return nil, errorf("get EAB key: binding time: %w", err)
		}
	}
	return &k, nil
}

// UpdateEABKey stores k if the stored Version equals k.Version, then
// increments k.Version. ErrNotFound if the key does not exist. A key bound
// since k was read has a new Version, so a stale k cannot undo the binding.
func (s *Store) UpdateEABKey(ctx context.Context, k *store.EABKey) error {
	next := *k
	next.Version++
	fields, err := eabFields(&next)
	if err != nil {
		return err
	}
	args := append([]any{version(k.Version), ""}, fields...)
	if err := s.exec(ctx, casScript, []string{s.key(kindEAB, k.ID)}, args...); err != nil {
		return err
	}
	k.Version = next.Version
	return nil
}
