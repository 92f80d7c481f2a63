package bolt

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/acmebridge/acmebridge/store"
)

// Validation jobs (bucket validations, by authorization ID) are queued in
// validation_queue under the time their lease ends, as 8 big-endian bytes
// (dueBytes), followed by the authorization ID: the first key is the job
// whose lease ends soonest, and ClaimValidation looks at that key only.

// validationKey is v's key in the validation queue.
func validationKey(v *store.Validation) []byte {
	return append(dueBytes(v.LeaseUntil), v.AuthzID...)
}

// putValidation stores v and its queue key, replacing the job of its
// authorization and that job's queue key, if there is one.
func putValidation(tx *bolt.Tx, v *store.Validation) error {
	if err := removeValidation(tx, v.AuthzID); err != nil {
		return err
	}
	data, err := marshal("validation", v)
	if err != nil {
		return err
	}
	if err := put(tx, bucketValidations, v.AuthzID, data); err != nil {
		return err
	}
	if err := tx.Bucket(bucketValidationQueue).Put(validationKey(v), []byte{}); err != nil {
		return fmt.Errorf("put validation queue %q: %w", v.AuthzID, err)
	}
	return nil
}

// removeValidation deletes the validation job of authzID and its queue
// key, if there is one.
func removeValidation(tx *bolt.Tx, authzID string) error {
	var v store.Validation
	switch err := getJSON(tx, bucketValidations, authzID, &v); {
	case err == nil:
	case errors.Is(err, store.ErrNotFound):
		return nil
	default:
		return err
	}
	if err := del(tx, bucketValidationQueue, validationKey(&v)); err != nil {
		return err
	}
	return del(tx, bucketValidations, []byte(authzID))
}

// StartValidation stores a if the stored Version equals a.Version (then
// increments a.Version) and, in the same transaction, v as a's validation
// job in place of any other. ErrConflict if a moved, ErrNotFound if it
// does not exist.
func (s *Store) StartValidation(ctx context.Context, a *store.Authorization, v *store.Validation) error {
	if v.AuthzID != a.ID || v.Owner == "" {
		return errorf("validation job for %q (owner %q) does not match authorization %q", v.AuthzID, v.Owner, a.ID)
	}
	return s.updateAuthz(ctx, a, func(tx *bolt.Tx) error { return putValidation(tx, v) })
}

// ClaimValidation takes the validation job whose lease ends soonest if it
// ended at or before now, sets Owner to owner and LeaseUntil to now+lease,
// increments Attempts and returns it. ErrNoJob if no lease has ended.
func (s *Store) ClaimValidation(ctx context.Context, owner string, now time.Time, lease time.Duration) (*store.Validation, error) {
	if owner == "" || lease <= 0 {
		return nil, errorf("claim validation: owner must be set and lease positive")
	}
	limit := dueBytes(now)
	if err := s.anyDue(ctx, bucketValidationQueue, limit); err != nil {
		return nil, err
	}
	var claimed *store.Validation
	err := s.write(ctx, func(tx *bolt.Tx) error {
		claimed = nil
		k := dueKey(tx, bucketValidationQueue, limit)
		if k == nil {
			return store.ErrNoJob
		}
		var v store.Validation
		if err := getJSON(tx, bucketValidations, string(k[8:]), &v); err != nil {
			return err
		}
		v.Owner = owner
		v.LeaseUntil = now.Add(lease)
		v.Attempts++
		if err := putValidation(tx, &v); err != nil {
			return err
		}
		claimed = &v
		return nil
	})
	if err != nil {
		return nil, err
	}
	return claimed, nil
}

// GetValidation returns the validation job of an authorization or
// ErrNotFound.
func (s *Store) GetValidation(ctx context.Context, authzID string) (*store.Validation, error) {
	var v store.Validation
	if err := s.getRecord(ctx, bucketValidations, authzID, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// FinishValidation stores a if the stored Version equals a.Version (then
// increments a.Version) and removes a's validation job in the same
// transaction. ErrConflict if a moved, ErrNotFound if it does not exist.
func (s *Store) FinishValidation(ctx context.Context, a *store.Authorization) error {
	return s.updateAuthz(ctx, a, func(tx *bolt.Tx) error { return removeValidation(tx, a.ID) })
}

// DeleteValidation removes the validation job of an authorization; a
// missing job is not an error.
func (s *Store) DeleteValidation(ctx context.Context, authzID string) error {
	return s.write(ctx, func(tx *bolt.Tx) error {
		return removeValidation(tx, authzID)
	})
}
