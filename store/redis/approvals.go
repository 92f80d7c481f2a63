package redis

import (
	"context"

	"github.com/acmebridge/acmebridge/store"
)

// kindApproval is an approval request's hash (v, d); kindApprovalIndex an
// account's sorted set of its approval request IDs by sequence. Approval
// requests are kept for good: they are the record of who decided what.
const (
	kindApproval      = "approval"
	kindApprovalIndex = "approvals"
)

// createApprovalScript stores a new approval request hash, unless the key
// exists, its place last in the listing and in its account's index.
//
// KEYS: record, listing, sequence, account index. ARGV: request ID, then
// field/value pairs.
var createApprovalScript = newScript("create approval request", `
if redis.call('EXISTS', KEYS[1]) == 1 then return 'conflict' end
hset_args(KEYS[1], 2, #ARGV)
local seq = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[2], seq, ARGV[1])
redis.call('ZADD', KEYS[4], seq, ARGV[1])
return 'ok'
`)

// PutApproval stores a new approval request, lists it last and indexes it
// under its account, in one script (waiting for replicas as other promise
// writes do); ErrConflict if the ID exists.
func (s *Store) PutApproval(ctx context.Context, r *store.ApprovalRequest) error {
	if r.ID == "" || r.AccountID == "" {
		return errorf("approval request needs an ID and an account")
	}
	d, err := encode("approval request", r)
	if err != nil {
		return err
	}
	keys := []string{s.key(kindApproval, r.ID), s.listKey(store.KindApproval), s.global(keyOrderSeq), s.key(kindApprovalIndex, r.AccountID)}
	return s.exec(ctx, createApprovalScript, keys, r.ID, "v", version(r.Version), "d", d)
}

// GetApproval returns the request or ErrNotFound.
func (s *Store) GetApproval(ctx context.Context, id string) (*store.ApprovalRequest, error) {
	var r store.ApprovalRequest
	if _, err := s.getRecord(ctx, "get approval request", s.key(kindApproval, id), &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// UpdateApproval stores r if the stored Version equals r.Version, then
// increments r.Version. ErrNotFound if the request does not exist.
func (s *Store) UpdateApproval(ctx context.Context, r *store.ApprovalRequest) error {
	next := *r
	next.Version++
	d, err := encode("approval request", &next)
	if err != nil {
		return err
	}
	if err := s.exec(ctx, casScript, []string{s.key(kindApproval, r.ID)}, version(r.Version), "", "v", version(next.Version), "d", d); err != nil {
		return err
	}
	r.Version = next.Version
	return nil
}

// AccountApprovals returns the account's approval requests, oldest first,
// at most limit.
func (s *Store) AccountApprovals(ctx context.Context, accountID string, limit int) ([]*store.ApprovalRequest, error) {
	if limit < 1 {
		return nil, errorf("account approvals: limit %d is not positive", limit)
	}
	ids, err := s.c.ZRange(ctx, s.key(kindApprovalIndex, accountID), 0, int64(limit-1)).Result()
	if err != nil {
		return nil, wrap("account approvals", err)
	}
	out := make([]*store.ApprovalRequest, 0, len(ids))
	for _, id := range ids {
		r, err := s.GetApproval(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}
