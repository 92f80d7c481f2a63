package redis

import (
	"context"
	"strconv"
	"time"

	"github.com/acmebridge/acmebridge/store"
)

// A validation job is a hash of plain fields (validationFields) under
// kindValidation and the authorization's ID, plus "q", its member in the
// validation queue; it expires with its authorization. The queue is a
// sorted set whose scores are all 0, ordered by member: the due key of the
// job's LeaseUntil (20 digits, see dueKey), ":", the authorization ID.
// ClaimValidation takes the first member if its lease has ended.

// Key names of validation jobs.
const (
	kindValidation     = "vjob"  // hash: validation job fields (built in Lua)
	keyValidationQueue = "vjobs" // zset, all scores 0: due key ":" authorization ID
)

// validationFieldNames are the hash fields that make up store.Validation,
// in the order validationFromFields reads them.
var validationFieldNames = []string{"authzID", "challengeID", "keyAuthorization", "attempts", "owner", "leaseUntil"}

// startValidationScript is updateAuthzScript followed by storing the
// validation job in place of any other of the authorization.
//
// KEYS: those of updateAuthzScript, then the job and the validation queue.
// ARGV: those of updateAuthzScript, the queue member, then the job's
// field/value pairs.
var startValidationScript = newScript("start validation", updateAuthzBody+`
remove_job(KEYS[4], KEYS[5])
hset_args(KEYS[4], 11, #ARGV)
redis.call('ZADD', KEYS[5], 0, ARGV[10])
redis.call('PEXPIRE', KEYS[4], ARGV[2])
return 'ok'
`)

// finishValidationScript is updateAuthzScript followed by removing the
// authorization's validation job.
//
// KEYS: those of updateAuthzScript, then the job and the validation queue.
// ARGV: those of updateAuthzScript.
var finishValidationScript = newScript("finish validation", updateAuthzBody+`
remove_job(KEYS[4], KEYS[5])
return 'ok'
`)

// claimValidationScript claims the validation job whose lease ended first:
// sets its owner and lease, counts the attempt and moves its queue entry
// to the new lease's end. Entries whose job or authorization is gone (they
// expired) are dropped on the way.
//
// KEYS: validation queue. ARGV: exclusive upper bound of due members,
// owner, LeaseUntil, due key of LeaseUntil, the job key's name up to the
// authorization ID, the authorization key's name up to the ID, the most
// entries to drop, then the job fields to return. Answers {dropped,
// fields...}, or {dropped} if no job is due.
var claimValidationScript = newScript("claim validation", `
local dropped = 0
while dropped <= tonumber(ARGV[7]) do
  local m = redis.call('ZRANGEBYLEX', KEYS[1], '-', ARGV[1], 'LIMIT', 0, 1)[1]
  if not m then break end
  local id = string.sub(m, 22)
  local jkey = ARGV[5] .. id
  local q = redis.call('HGET', jkey, 'q')
  if q ~= m or redis.call('EXISTS', ARGV[6] .. id) == 0 then
    redis.call('ZREM', KEYS[1], m)
    if q == m then redis.call('DEL', jkey) end
    dropped = dropped + 1
  else
    local nq = ARGV[4] .. ':' .. id
    redis.call('ZREM', KEYS[1], m)
    redis.call('ZADD', KEYS[1], 0, nq)
    redis.call('HSET', jkey, 'owner', ARGV[2], 'leaseUntil', ARGV[3], 'q', nq)
    redis.call('HINCRBY', jkey, 'attempts', 1)
    local out = redis.call('HMGET', jkey, unpack(ARGV, 8))
    table.insert(out, 1, dropped)
    return out
  end
end
return {dropped}
`)

// validationMember is v's member in the validation queue.
func validationMember(v *store.Validation) string {
	return dueKey(v.LeaseUntil) + ":" + v.AuthzID
}

// validationFields are the field/value pairs of v's hash.
func validationFields(v *store.Validation) []any {
	return []any{
		"authzID", v.AuthzID,
		"challengeID", v.ChallengeID,
		"keyAuthorization", v.KeyAuthorization,
		"attempts", strconv.Itoa(v.Attempts),
		"owner", v.Owner,
		"leaseUntil", formatTime(v.LeaseUntil),
		"q", validationMember(v),
	}
}

// validationFromFields decodes the values of validationFieldNames;
// ErrNotFound if the job does not exist.
func validationFromFields(op string, vals []any) (*store.Validation, error) {
	if len(vals) != len(validationFieldNames) || vals[0] == nil {
		return nil, store.ErrNotFound
	}
	v := &store.Validation{AuthzID: str(vals[0]), ChallengeID: str(vals[1]), KeyAuthorization: str(vals[2]), Owner: str(vals[4])}
	var err error
	if v.Attempts, err = strconv.Atoi(str(vals[3])); err != nil {
		return nil, errorf("%s: malformed attempts %q", op, vals[3])
	}
	if v.LeaseUntil, err = parseTime(str(vals[5])); err != nil {
		return nil, errorf("%s: malformed leaseUntil: %w", op, err)
	}
	return v, nil
}

// validationKeys are the keys of authzID's validation job and the queue.
func (s *Store) validationKeys(authzID string) []string {
	return []string{s.key(kindValidation, authzID), s.global(keyValidationQueue)}
}

// StartValidation stores a if the stored Version equals a.Version (then
// increments a.Version) and, in the same script, v as a's validation job
// in place of any other; the job expires with a. ErrConflict if a moved,
// ErrNotFound if it does not exist.
func (s *Store) StartValidation(ctx context.Context, a *store.Authorization, v *store.Validation) error {
	if v.AuthzID != a.ID || v.Owner == "" {
		return errorf("validation job for %q (owner %q) does not match authorization %q", v.AuthzID, v.Owner, a.ID)
	}
	args := append([]any{validationMember(v)}, validationFields(v)...)
	return s.writeAuthz(ctx, startValidationScript, a, s.validationKeys(a.ID), args)
}

// ClaimValidation takes the validation job whose lease ended first, if it
// ended at or before now, sets Owner to owner and LeaseUntil to now+lease,
// increments Attempts and returns it, in one script. ErrNoJob if no lease
// has ended. A job whose authorization no longer exists (it expired) is
// deleted instead of claimed.
func (s *Store) ClaimValidation(ctx context.Context, owner string, now time.Time, lease time.Duration) (*store.Validation, error) {
	if owner == "" || lease <= 0 {
		return nil, errorf("claim validation: owner must be set and lease positive")
	}
	fields, err := s.claimLeased(ctx, "claim validation", claimValidationScript, keyValidationQueue, kindValidation, kindAuthz,
		validationFieldNames, owner, now, lease)
	if err != nil {
		return nil, err
	}
	return validationFromFields("claim validation", fields)
}

// GetValidation returns the validation job of an authorization or
// ErrNotFound.
func (s *Store) GetValidation(ctx context.Context, authzID string) (*store.Validation, error) {
	vals, err := s.c.HMGet(ctx, s.key(kindValidation, authzID), validationFieldNames...).Result()
	if err != nil {
		return nil, wrap("get validation", err)
	}
	return validationFromFields("get validation", vals)
}

// FinishValidation stores a if the stored Version equals a.Version (then
// increments a.Version) and removes a's validation job, in one script.
// ErrConflict if a moved, ErrNotFound if it does not exist.
func (s *Store) FinishValidation(ctx context.Context, a *store.Authorization) error {
	return s.writeAuthz(ctx, finishValidationScript, a, s.validationKeys(a.ID), nil)
}

// DeleteValidation removes the validation job of an authorization; a
// missing job is not an error.
func (s *Store) DeleteValidation(ctx context.Context, authzID string) error {
	return s.exec(ctx, deleteJobScript, s.validationKeys(authzID))
}
