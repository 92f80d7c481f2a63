package redis

import (
	"context"
	"strconv"
	"time"

	"github.com/acmebridge/acmebridge/store"
)

// Authorization reuse (RFC 8555 §7.4.1). An authorization's hash holds,
// besides "v" and "d", its status ("st"), the expiry key of its Expires
// ("exp", see expiryKey: byte order is time order) and, while it is valid,
// "vi": the index of valid authorizations it is a member of. That index
// (authzIndexKey) is a sorted set per account, identifier and wildcard flag
// of the IDs of its valid authorizations, scored by the store-wide
// sequence taken when each became valid, so the highest is the most
// recently validated. Every script that writes an authorization keeps it
// in step (index_authz in the prelude); the set lives as long as the
// longest TTL of the authorizations added to it, and entries whose
// authorization is gone, no longer valid or expired are dropped when the
// set is written or read.

// createAuthzScript stores a new authorization on its own and, if it is
// valid, indexes it.
//
// KEYS: authorization, its index of valid authorizations, sequence, the
// retire set of authorizations (retention.go). ARGV: version, JSON,
// status, expiry key, TTL in ms, ID, the authorization key's name up to
// the ID, the expiry key of now, Expires in ms.
var createAuthzScript = newScript("create authorization", `
if redis.call('EXISTS', KEYS[1]) == 1 then return 'conflict' end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2], 'st', ARGV[3], 'exp', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[4], ARGV[9], ARGV[6])
index_authz(KEYS[1], ARGV[6], ARGV[3], KEYS[2], KEYS[3], ARGV[5], ARGV[7], ARGV[8])
return 'ok'
`)

// updateAuthzScript is the compare-and-set of an authorization. One that
// expires gets its TTL refreshed; one kept for good (with its valid order)
// stays so. The index of valid authorizations follows.
//
// KEYS: authorization, its index of valid authorizations, sequence. ARGV:
// expected version, TTL in ms, new version, JSON, status, expiry key, ID,
// the authorization key's name up to the ID, the expiry key of now.
var updateAuthzScript = newScript("update authorization", updateAuthzBody+`
return 'ok'
`)

// updateAuthzBody is the compare-and-set of updateAuthzScript, which the
// scripts of validation jobs (validations.go) begin with: same KEYS[1..3]
// and ARGV[1..9].
const updateAuthzBody = `
local bad = cas(KEYS[1], ARGV[1])
if bad then return bad end
redis.call('HSET', KEYS[1], 'v', ARGV[3], 'd', ARGV[4], 'st', ARGV[5], 'exp', ARGV[6])
if redis.call('PTTL', KEYS[1]) >= 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
index_authz(KEYS[1], ARGV[7], ARGV[5], KEYS[2], KEYS[3], ARGV[2], ARGV[8], ARGV[9])
`

// findAuthzScript returns the JSON and version of the most recently
// validated authorization of an index that is valid and expires after now,
// or nil. Entries it passes whose authorization is gone or not valid are
// dropped, and so are those expired at drop (the earlier of now and the
// wall clock, so asking about a later time drops nothing still valid).
//
// KEYS: index of valid authorizations. ARGV: the authorization key's name
// up to the ID, the expiry key of now, the expiry key of drop.
var findAuthzScript = newLossyScript("find valid authorization", `
for _, m in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do
  local f = redis.call('HMGET', ARGV[1] .. m, 'd', 'v', 'st', 'exp')
  if not f[1] or f[3] ~= 'valid' or not f[4] then
    redis.call('ZREM', KEYS[1], m)
  elseif f[4] > ARGV[2] then
    return {f[1], f[2]}
  elseif f[4] <= ARGV[3] then
    redis.call('ZREM', KEYS[1], m)
  end
end
return false
`)

// authzIndexKey is the index of an account's valid authorizations for an
// identifier and wildcard flag. Account and type are length-prefixed, so no
// two of them share a key.
func (s *Store) authzIndexKey(accountID string, id store.Identifier, wildcard bool) string {
	w := "e:"
	if wildcard {
		w = "w:"
	}
	return s.key(kindAuthzValid, strconv.Itoa(len(accountID))+":"+accountID+
		strconv.Itoa(len(id.Type))+":"+id.Type+w+id.Value)
}

// authzKeys are the KEYS of the scripts that write a: its hash, its index
// of valid authorizations and the sequence.
func (s *Store) authzKeys(a *store.Authorization) []string {
	return []string{s.key(kindAuthz, a.ID), s.authzIndexKey(a.AccountID, a.Identifier, a.Wildcard), s.global(keyOrderSeq)}
}

// CreateAuthz stores a new authorization without an order
// (pre-authorization) with its TTL and, if it is valid, indexes it, in one
// script. ErrConflict if the ID is taken.
func (s *Store) CreateAuthz(ctx context.Context, a *store.Authorization) error {
	if a.ID == "" || a.AccountID == "" {
		return errorf("authorization needs an ID and an account ID")
	}
	d, err := encode("authorization", a)
	if err != nil {
		return err
	}
	return s.exec(ctx, createAuthzScript, append(s.authzKeys(a), s.global(keyRetireAuthzs)),
		version(a.Version), d, a.Status, expiryKey(a.Expires), millis(s.recordTTL(a.Expires)), a.ID,
		s.key(kindAuthz, ""), expiryKey(time.Now()), msec(a.Expires))
}

// FindValidAuthz returns the account's most recently validated
// authorization for the identifier and wildcard flag that is valid and
// expires after now, or ErrNotFound, in one script.
func (s *Store) FindValidAuthz(ctx context.Context, accountID string, id store.Identifier, wildcard bool, now time.Time) (*store.Authorization, error) {
	drop := time.Now()
	if now.Before(drop) {
		drop = now
	}
	v, err := s.run(ctx, findAuthzScript, []string{s.authzIndexKey(accountID, id, wildcard)},
		s.key(kindAuthz, ""), expiryKey(now), expiryKey(drop))
	if err != nil {
		return nil, err
	}
	vals, ok := v.([]any)
	if !ok {
		return nil, store.ErrNotFound
	}
	var a store.Authorization
	if _, err := decodeRecord("find valid authorization", vals, &a); err != nil {
		return nil, err
	}
	if a.Status != store.StatusValid || !a.Expires.After(now) {
		return nil, errorf("find valid authorization: index returned %s authorization %s expiring %s",
			a.Status, a.ID, a.Expires.Format(time.RFC3339Nano))
	}
	return &a, nil
}
