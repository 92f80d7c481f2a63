package bolt

import (
	"bytes"
	"context"

	bolt "go.etcd.io/bbolt"

	"github.com/acmebridge/acmebridge/store"
)

// PutApproval stores a new approval request, lists it last of the
// approval requests and indexes it under its account, in one transaction;
// ErrConflict if the ID exists.
func (s *Store) PutApproval(ctx context.Context, r *store.ApprovalRequest) error {
	if r.ID == "" || r.AccountID == "" {
		return errorf("approval request needs an ID and an account")
	}
	data, err := encode("approval request", r)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *bolt.Tx) error {
		if exists(tx, bucketApprovals, r.ID) {
			return store.ErrConflict
		}
		if err := appendListed(tx, bucketApprovalList, r.ID); err != nil {
			return err
		}
		idx := tx.Bucket(bucketApprovalIndex)
		seq, err := idx.NextSequence()
		if err != nil {
			return err
		}
		if err := idx.Put(append(orderIndexPrefix(r.AccountID), seqKey(seq)...), []byte(r.ID)); err != nil {
			return err
		}
		return put(tx, bucketApprovals, r.ID, data)
	})
}

// GetApproval returns the request or ErrNotFound.
func (s *Store) GetApproval(ctx context.Context, id string) (*store.ApprovalRequest, error) {
	var r store.ApprovalRequest
	if err := s.getRecord(ctx, bucketApprovals, id, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// UpdateApproval stores r if the stored Version equals r.Version, then
// increments r.Version. ErrNotFound if the request does not exist.
func (s *Store) UpdateApproval(ctx context.Context, r *store.ApprovalRequest) error {
	next := *r
	next.Version++
	data, err := encode("approval request", &next)
	if err != nil {
		return err
	}
	if err := s.casUpdate(ctx, bucketApprovals, r.ID, r.Version, data); err != nil {
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
	var out []*store.ApprovalRequest
	err := s.read(ctx, func(tx *bolt.Tx) error {
		out = nil
		prefix := orderIndexPrefix(accountID)
		c := tx.Bucket(bucketApprovalIndex).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, v = c.Next() {
			var r store.ApprovalRequest
			if err := getJSON(tx, bucketApprovals, string(v), &r); err != nil {
				return err
			}
			out = append(out, &r)
		}
		return nil
	})
	return out, err
}
