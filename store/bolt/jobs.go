package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/acmebridge/acmebridge/store"
)

// The job queue (bucket job_queue) holds one key per job: the time the job
// is next due, as 8 big-endian bytes, followed by the order ID. Keys sort by
// due time, so the first key is the job due soonest, and ClaimJob looks at
// that key only.

// Times outside what UnixNano can represent (the zero time among them) are
// clamped to its range.
var (
	minDue = time.Unix(0, math.MinInt64)
	maxDue = time.Unix(0, math.MaxInt64)
)

// dueBytes encodes t so that byte order is time order.
func dueBytes(t time.Time) []byte {
	var n int64
	switch {
	case t.Before(minDue):
		n = math.MinInt64
	case t.After(maxDue):
		n = math.MaxInt64
	default:
		n = t.UnixNano()
	}
	// The sign bit flipped on the two's complement bits: byte order is then
	// numeric order.
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8+32), uint64(n)^(1<<63)) //nolint:gosec // G115: a bit reinterpretation, on purpose
}

// jobDue is when j may next be claimed: not before NotBefore, and not while
// an owner holds a lease.
func jobDue(j *store.Job) time.Time {
	if j.Owner != "" && j.LeaseUntil.After(j.NotBefore) {
		return j.LeaseUntil
	}
	return j.NotBefore
}

// queueKey is j's key in the job queue.
func queueKey(j *store.Job) []byte {
	return append(dueBytes(jobDue(j)), j.OrderID...)
}

// putJob stores j and its queue key. The caller has removed the previous
// queue key.
func putJob(tx *bolt.Tx, j *store.Job) error {
	data, err := marshal("job", j)
	if err != nil {
		return err
	}
	if err := put(tx, bucketJobs, j.OrderID, data); err != nil {
		return err
	}
	if err := tx.Bucket(bucketJobQueue).Put(queueKey(j), []byte{}); err != nil {
		return fmt.Errorf("put job queue %q: %w", j.OrderID, err)
	}
	return nil
}

// removeJob deletes the job of orderID and its queue key, if there is one.
func removeJob(tx *bolt.Tx, orderID string) error {
	var j store.Job
	switch err := getJSON(tx, bucketJobs, orderID, &j); {
	case err == nil:
	case errors.Is(err, store.ErrNotFound):
		return nil
	default:
		return err
	}
	if err := del(tx, bucketJobQueue, queueKey(&j)); err != nil {
		return err
	}
	return del(tx, bucketJobs, []byte(orderID))
}

// EnqueueJob stores j and, in the same transaction, o (if the stored order's
// Version equals o.Version; o.Version is then incremented). j.OrderID must
// be o.ID. ErrConflict if the order moved or already has a job; ErrNotFound
// if the order does not exist.
func (s *Store) EnqueueJob(ctx context.Context, j *store.Job, o *store.Order, unchanged ...store.Unchanged) error {
	if j.OrderID == "" || j.OrderID != o.ID {
		return errorf("job for order %q does not match order %q", j.OrderID, o.ID)
	}
	next := *o
	next.Version++
	orderData, err := encode("order", &next)
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *bolt.Tx) error {
		if err := checkVersion(tx, bucketOrders, o.ID, o.Version); err != nil {
			return err
		}
		if err := checkUnchanged(tx, unchanged); err != nil {
			return err
		}
		if exists(tx, bucketJobs, j.OrderID) {
			return store.ErrConflict
		}
		if err := putJob(tx, j); err != nil {
			return err
		}
		return put(tx, bucketOrders, o.ID, orderData)
	})
	if err != nil {
		return err
	}
	o.Version = next.Version
	return nil
}

// ClaimJob takes the job due soonest if it is due at now (NotBefore reached
// and no lease running: a lease runs while now is before LeaseUntil), sets
// Owner to owner and LeaseUntil to now+lease, increments Attempts and
// returns it. ErrNoJob if no job is due.
func (s *Store) ClaimJob(ctx context.Context, owner string, now time.Time, lease time.Duration) (*store.Job, error) {
	if owner == "" || lease <= 0 {
		return nil, errorf("claim job: owner must be set and lease positive")
	}
	limit := dueBytes(now)
	if err := s.anyDue(ctx, bucketJobQueue, limit); err != nil {
		return nil, err
	}
	var claimed *store.Job
	err := s.write(ctx, func(tx *bolt.Tx) error {
		claimed = nil
		k := dueKey(tx, bucketJobQueue, limit)
		if k == nil {
			return store.ErrNoJob
		}
		k = bytes.Clone(k)
		var j store.Job
		if err := getJSON(tx, bucketJobs, string(k[8:]), &j); err != nil {
			return err
		}
		if err := del(tx, bucketJobQueue, k); err != nil {
			return err
		}
		j.Owner = owner
		j.LeaseUntil = now.Add(lease)
		j.Attempts++
		if err := putJob(tx, &j); err != nil {
			return err
		}
		claimed = &j
		return nil
	})
	if err != nil {
		return nil, err
	}
	return claimed, nil
}

// dueKey is the key of the entry of queue (keys start with the 8-byte due
// time) due soonest, or nil if none is due at limit.
func dueKey(tx *bolt.Tx, queue, limit []byte) []byte {
	k, _ := tx.Bucket(queue).Cursor().First()
	if len(k) < 8 || bytes.Compare(k[:8], limit) > 0 {
		return nil
	}
	return k
}

// anyDue is ErrNoJob when queue holds no entry due at limit. Idle workers
// poll: it answers from a read transaction rather than queueing for the
// writer.
func (s *Store) anyDue(ctx context.Context, queue, limit []byte) error {
	return s.read(ctx, func(tx *bolt.Tx) error {
		if dueKey(tx, queue, limit) == nil {
			return store.ErrNoJob
		}
		return nil
	})
}

// UpdateJob stores j if the stored job's Owner is owner (ErrConflict if not,
// ErrNotFound if there is no job for j.OrderID). j.Owner must be owner (to
// keep or extend the lease) or "" (to release the job).
func (s *Store) UpdateJob(ctx context.Context, j *store.Job, owner string) error {
	if owner == "" || (j.Owner != "" && j.Owner != owner) {
		return errorf("update job %q: owner %q cannot hand the job to %q", j.OrderID, owner, j.Owner)
	}
	return s.write(ctx, func(tx *bolt.Tx) error {
		var cur store.Job
		if err := getJSON(tx, bucketJobs, j.OrderID, &cur); err != nil {
			return err
		}
		if cur.Owner != owner {
			return store.ErrConflict
		}
		if err := del(tx, bucketJobQueue, queueKey(&cur)); err != nil {
			return err
		}
		return putJob(tx, j)
	})
}

// GetJob returns the job for an order or ErrNotFound.
func (s *Store) GetJob(ctx context.Context, orderID string) (*store.Job, error) {
	var j store.Job
	if err := s.getRecord(ctx, bucketJobs, orderID, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// DeleteJob removes the job for an order; a missing job is not an error.
func (s *Store) DeleteJob(ctx context.Context, orderID string) error {
	return s.write(ctx, func(tx *bolt.Tx) error {
		return removeJob(tx, orderID)
	})
}

// checkUnchanged is store.Unchanged's precondition inside a transaction:
// ErrConflict if a named record moved or is gone.
func checkUnchanged(tx *bolt.Tx, unchanged []store.Unchanged) error {
	for _, u := range unchanged {
		bucket, id := bucketAuthzs, u.Authz
		if u.EABKey != "" {
			bucket, id = bucketEABKeys, u.EABKey
		}
		if id == "" {
			return errorf("precondition names no record")
		}
		if err := checkVersion(tx, bucket, id, u.Version); errors.Is(err, store.ErrNotFound) {
			return store.ErrConflict
		} else if err != nil {
			return err
		}
	}
	return nil
}
