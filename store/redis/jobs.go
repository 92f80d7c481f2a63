package redis

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/acmebridge/acmebridge/store"
)

// A job is a hash of plain fields (jobFields), so ClaimJob can set the owner
// and lease and count the attempt inside a script. Besides the Job's fields
// it holds "nbk", the due key of NotBefore, and "q", its member in the job
// queue.
//
// The job queue is a sorted set whose scores are all 0, ordered by member:
// the due key of the time the job is next due (20 digits, so byte order is
// time order, to the nanosecond), ":", the order ID. ClaimJob takes the
// first member, if it is due.

// jobFieldNames are the hash fields of a job that make up store.Job, in the
// order jobFromFields reads them.
var jobFieldNames = []string{"orderID", "attempts", "notBefore", "owner", "leaseUntil", "upstreamRef"}

// maxOrphans is how many jobs whose order has expired ClaimJob drops in one
// call before it gives up looking for a live one.
const maxOrphans = 100

// enqueueJobScript stores a job and its queue entry, and the order
// (compare-and-set), unless the order already has a job or a record the
// finalize decided on moved (store.Unchanged: a record gone has moved).
//
// KEYS: order, job, job queue, expiring set, the n records that must be
// unchanged, then the authorizations to keep for good (only when the
// order is valid). ARGV: the six order arguments of write_order, the queue
// member, n, the n versions the records must still have, then the job's
// field/value pairs.
var enqueueJobScript = newScript("enqueue job", `
local bad = cas(KEYS[1], ARGV[1])
if bad then return bad end
local n = tonumber(ARGV[8])
for i = 1, n do
  if redis.call('HGET', KEYS[4 + i], 'v') ~= ARGV[8 + i] then return 'conflict' end
end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'conflict' end
hset_args(KEYS[2], 9 + n, #ARGV)
redis.call('ZADD', KEYS[3], 0, ARGV[7])
write_order(KEYS[1], KEYS[4], 1, 5 + n)
return 'ok'
`)

// claimJobScript claims the first due job: sets its owner and lease, counts
// the attempt and moves its queue entry to the lease's end (or NotBefore,
// if later). Jobs whose order has expired are dropped on the way.
//
// KEYS: job queue. ARGV: exclusive upper bound of due members, owner,
// LeaseUntil, due key of LeaseUntil, the job key's name up to the order ID,
// the order key's name up to the ID, the most jobs to drop, then the job
// fields to return. Answers {dropped, fields...}, or {dropped} if no job is
// due.
var claimJobScript = newScript("claim job", `
local dropped = 0
while dropped <= tonumber(ARGV[7]) do
  local m = redis.call('ZRANGEBYLEX', KEYS[1], '-', ARGV[1], 'LIMIT', 0, 1)[1]
  if not m then break end
  local oid = string.sub(m, 22)
  local jkey = ARGV[5] .. oid
  local nbk = redis.call('HGET', jkey, 'nbk')
  if not nbk or redis.call('EXISTS', ARGV[6] .. oid) == 0 then
    redis.call('ZREM', KEYS[1], m)
    redis.call('DEL', jkey)
    dropped = dropped + 1
  else
    local due = ARGV[4]
    if nbk > due then due = nbk end
    local q = due .. ':' .. oid
    redis.call('ZREM', KEYS[1], m)
    redis.call('ZADD', KEYS[1], 0, q)
    redis.call('HSET', jkey, 'owner', ARGV[2], 'leaseUntil', ARGV[3], 'q', q)
    redis.call('HINCRBY', jkey, 'attempts', 1)
    local out = redis.call('HMGET', jkey, unpack(ARGV, 8))
    table.insert(out, 1, dropped)
    return out
  end
end
return {dropped}
`)

// updateJobScript stores a job if owner holds it.
//
// KEYS: job, job queue. ARGV: owner, the new queue member, then the job's
// field/value pairs.
var updateJobScript = newScript("update job", `
local cur = redis.call('HMGET', KEYS[1], 'owner', 'q')
if not cur[2] then return 'notfound' end
if cur[1] ~= ARGV[1] then return 'conflict' end
redis.call('ZREM', KEYS[2], cur[2])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
hset_args(KEYS[1], 3, #ARGV)
return 'ok'
`)

// deleteJobScript removes a job and its queue entry.
//
// KEYS: job, job queue.
var deleteJobScript = newScript("delete job", `
remove_job(KEYS[1], KEYS[2])
return 'ok'
`)

// Times outside what UnixNano can represent (the zero time among them) are
// clamped to its range.
var (
	minDue = time.Unix(0, math.MinInt64)
	maxDue = time.Unix(0, math.MaxInt64)
)

// dueKey encodes t as 20 decimal digits whose byte order is time order.
func dueKey(t time.Time) string {
	var n int64
	switch {
	case t.Before(minDue):
		n = math.MinInt64
	case t.After(maxDue):
		n = math.MaxInt64
	default:
		n = t.UnixNano()
	}
	// The sign bit flipped on the two's complement bits: string order is
	// then numeric order.
	return fmt.Sprintf("%020d", uint64(n)^(1<<63)) //nolint:gosec // G115: a bit reinterpretation, on purpose
}

// jobDue is when j may next be claimed: not before NotBefore, and not while
// an owner holds a lease.
func jobDue(j *store.Job) time.Time {
	if j.Owner != "" && j.LeaseUntil.After(j.NotBefore) {
		return j.LeaseUntil
	}
	return j.NotBefore
}

// queueMember is j's member in the job queue.
func queueMember(j *store.Job) string {
	return dueKey(jobDue(j)) + ":" + j.OrderID
}

// jobFields are the field/value pairs of j's hash.
func jobFields(j *store.Job) []any {
	return []any{
		"orderID", j.OrderID,
		"attempts", strconv.Itoa(j.Attempts),
		"notBefore", formatTime(j.NotBefore),
		"owner", j.Owner,
		"leaseUntil", formatTime(j.LeaseUntil),
		"upstreamRef", j.UpstreamRef,
		"nbk", dueKey(j.NotBefore),
		"q", queueMember(j),
	}
}

// jobFromFields decodes the values of jobFieldNames; ErrNotFound if the job
// does not exist.
func jobFromFields(op string, vals []any) (*store.Job, error) {
	if len(vals) != len(jobFieldNames) || vals[0] == nil {
		return nil, store.ErrNotFound
	}
	j := &store.Job{OrderID: str(vals[0]), Owner: str(vals[3]), UpstreamRef: str(vals[5])}
	var err error
	if j.Attempts, err = strconv.Atoi(str(vals[1])); err != nil {
		return nil, errorf("%s: malformed attempts %q", op, vals[1])
	}
	if j.NotBefore, err = parseTime(str(vals[2])); err != nil {
		return nil, errorf("%s: malformed notBefore: %w", op, err)
	}
	if j.LeaseUntil, err = parseTime(str(vals[4])); err != nil {
		return nil, errorf("%s: malformed leaseUntil: %w", op, err)
	}
	return j, nil
}

// EnqueueJob stores j and, in the same script, o (if the stored order's
// Version equals o.Version; o.Version is then incremented). j.OrderID must
// be o.ID. ErrConflict if the order moved or already has a job; ErrNotFound
// if the order does not exist.
func (s *Store) EnqueueJob(ctx context.Context, j *store.Job, o *store.Order, unchanged ...store.Unchanged) error {
	if j.OrderID == "" || j.OrderID != o.ID {
		return errorf("job for order %q does not match order %q", j.OrderID, o.ID)
	}
	next := *o
	next.Version++
	args, err := s.orderArgs(version(o.Version), &next)
	if err != nil {
		return err
	}
	keys := []string{s.key(kindOrder, o.ID), s.key(kindJob, j.OrderID), s.global(keyJobQueue), s.global(keyExpiring)}
	args = append(args, queueMember(j), len(unchanged))
	for _, u := range unchanged {
		switch {
		case u.EABKey != "":
			keys = append(keys, s.key(kindEAB, u.EABKey))
		case u.Authz != "":
			keys = append(keys, s.key(kindAuthz, u.Authz))
		default:
			return errorf("precondition names no record")
		}
		args = append(args, version(u.Version))
	}
	args = append(args, jobFields(j)...)
	keys = append(keys, s.orderPersistKeys(o)...)
	if err := s.exec(ctx, enqueueJobScript, keys, args...); err != nil {
		return err
	}
	o.Version = next.Version
	return nil
}

// ClaimJob takes the job due soonest if it is due at now (NotBefore reached
// and no lease running: a lease runs while now is before LeaseUntil), sets
// Owner to owner and LeaseUntil to now+lease, increments Attempts and
// returns it, in one script. ErrNoJob if no job is due. A job whose order
// no longer exists (it expired) is deleted instead of claimed.
func (s *Store) ClaimJob(ctx context.Context, owner string, now time.Time, lease time.Duration) (*store.Job, error) {
	if owner == "" || lease <= 0 {
		return nil, errorf("claim job: owner must be set and lease positive")
	}
	fields, err := s.claimLeased(ctx, "claim job", claimJobScript, keyJobQueue, kindJob, kindOrder, jobFieldNames, owner, now, lease)
	if err != nil {
		return nil, err
	}
	return jobFromFields("claim job", fields)
}

// claimLeased runs a claim script over a queue of leased records (issuance
// or validation jobs) whose parent kind (the order, the authorization) may
// have expired: the script claims the record due soonest, or deletes up to
// maxOrphans records whose parent is gone. It returns the claimed record's
// fields, or ErrNoJob.
func (s *Store) claimLeased(ctx context.Context, what string, script *script, queue, kind, parent string,
	fieldNames []string, owner string, now time.Time, lease time.Duration) ([]any, error) {
	until := now.Add(lease)
	args := []any{
		"(" + dueKey(now) + ";", owner, formatTime(until), dueKey(until),
		s.key(kind, ""), s.key(parent, ""), maxOrphans,
	}
	for _, f := range fieldNames {
		args = append(args, f)
	}
	v, err := s.run(ctx, script, []string{s.global(queue)}, args...)
	if err != nil {
		return nil, err
	}
	vals, _ := v.([]any)
	if len(vals) == 0 {
		return nil, errorf("%s: empty answer", what)
	}
	if dropped, _ := vals[0].(int64); dropped > 0 {
		s.log.Info("dropped leased records whose parent expired", "what", what, "count", dropped)
	}
	if len(vals) == 1 {
		return nil, store.ErrNoJob
	}
	return vals[1:], nil
}

// UpdateJob stores j if the stored job's Owner is owner (ErrConflict if not,
// ErrNotFound if there is no job for j.OrderID). j.Owner must be owner (to
// keep or extend the lease) or "" (to release the job).
func (s *Store) UpdateJob(ctx context.Context, j *store.Job, owner string) error {
	if owner == "" || (j.Owner != "" && j.Owner != owner) {
		return errorf("update job %q: owner %q cannot hand the job to %q", j.OrderID, owner, j.Owner)
	}
	args := append([]any{owner, queueMember(j)}, jobFields(j)...)
	return s.exec(ctx, updateJobScript, []string{s.key(kindJob, j.OrderID), s.global(keyJobQueue)}, args...)
}

// GetJob returns the job for an order or ErrNotFound.
func (s *Store) GetJob(ctx context.Context, orderID string) (*store.Job, error) {
	vals, err := s.c.HMGet(ctx, s.key(kindJob, orderID), jobFieldNames...).Result()
	if err != nil {
		return nil, wrap("get job", err)
	}
	return jobFromFields("get job", vals)
}

// DeleteJob removes the job for an order; a missing job is not an error.
func (s *Store) DeleteJob(ctx context.Context, orderID string) error {
	return s.exec(ctx, deleteJobScript, []string{s.key(kindJob, orderID), s.global(keyJobQueue)})
}
