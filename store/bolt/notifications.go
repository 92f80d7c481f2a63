package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/acmebridge/acmebridge/store"
)

// The notification outbox: bucket notifications holds the records, the
// queue (notify_queue) orders them by when they are next due as the job
// queue does, notify_age by when they were enqueued (the oldest for the
// metrics), and notify_done remembers acknowledged IDs until their forget
// time (notify_forget orders them by it, so Ack sweeps the forgotten).

// forgetSweep is how many forgotten IDs one Ack removes at most.
const forgetSweep = 16

// notifyDue is when n may next be claimed.
func notifyDue(n *store.Notification) time.Time {
	if n.Owner != "" && n.LeaseUntil.After(n.NotBefore) {
		return n.LeaseUntil
	}
	return n.NotBefore
}

// putNotification stores n and its queue key; the caller removed the old
// queue key.
func putNotification(tx *bolt.Tx, n *store.Notification) error {
	data, err := marshal("notification", n)
	if err != nil {
		return err
	}
	if err := put(tx, bucketNotifications, n.ID, data); err != nil {
		return err
	}
	return tx.Bucket(bucketNotifyQueue).Put(append(dueBytes(notifyDue(n)), n.ID...), []byte{})
}

// EnqueueNotifications stores every notification not queued nor
// remembered, in one transaction.
func (s *Store) EnqueueNotifications(ctx context.Context, ns []*store.Notification) error {
	for _, n := range ns {
		if n.ID == "" {
			return errorf("enqueue notification: empty ID")
		}
	}
	now := time.Now()
	return s.write(ctx, func(tx *bolt.Tx) error {
		for _, n := range ns {
			if exists(tx, bucketNotifications, n.ID) {
				continue
			}
			if v := tx.Bucket(bucketNotifyDone).Get([]byte(n.ID)); len(v) == 8 && bytes.Compare(v, dueBytes(now)) > 0 {
				continue
			}
			c := *n
			c.Owner, c.LeaseUntil = "", time.Time{}
			if err := putNotification(tx, &c); err != nil {
				return err
			}
			if err := tx.Bucket(bucketNotifyAge).Put(append(dueBytes(c.CreatedAt), c.ID...), []byte{}); err != nil {
				return err
			}
		}
		return nil
	})
}

// ClaimNotification takes the notification due soonest, if due at now.
func (s *Store) ClaimNotification(ctx context.Context, owner string, now time.Time, lease time.Duration) (*store.Notification, error) {
	if owner == "" || lease <= 0 {
		return nil, errorf("claim notification: owner must be set and lease positive")
	}
	limit := dueBytes(now)
	if err := s.anyDue(ctx, bucketNotifyQueue, limit); err != nil {
		return nil, err
	}
	var claimed *store.Notification
	err := s.write(ctx, func(tx *bolt.Tx) error {
		claimed = nil
		k := dueKey(tx, bucketNotifyQueue, limit)
		if k == nil {
			return store.ErrNoJob
		}
		k = bytes.Clone(k)
		var n store.Notification
		if err := getJSON(tx, bucketNotifications, string(k[8:]), &n); err != nil {
			return err
		}
		if err := del(tx, bucketNotifyQueue, k); err != nil {
			return err
		}
		n.Owner, n.LeaseUntil = owner, now.Add(lease)
		n.Attempts++
		if err := putNotification(tx, &n); err != nil {
			return err
		}
		claimed = &n
		return nil
	})
	if err != nil {
		return nil, err
	}
	return claimed, nil
}

// held reads the notification id and checks owner holds it; it removes
// its queue key.
func held(tx *bolt.Tx, id, owner string) (*store.Notification, error) {
	var n store.Notification
	if err := getJSON(tx, bucketNotifications, id, &n); err != nil {
		return nil, err
	}
	if n.Owner != owner || owner == "" {
		return nil, store.ErrConflict
	}
	return &n, del(tx, bucketNotifyQueue, append(dueBytes(notifyDue(&n)), n.ID...))
}

// AckNotification removes the notification owner holds and remembers its
// ID for store.NotificationMemory.
func (s *Store) AckNotification(ctx context.Context, id, owner string) error {
	now := time.Now()
	return s.write(ctx, func(tx *bolt.Tx) error {
		n, err := held(tx, id, owner)
		if err != nil {
			return err
		}
		if err := del(tx, bucketNotifyAge, append(dueBytes(n.CreatedAt), n.ID...)); err != nil {
			return err
		}
		if err := del(tx, bucketNotifications, []byte(id)); err != nil {
			return err
		}
		forget := dueBytes(now.Add(store.NotificationMemory))
		if err := tx.Bucket(bucketNotifyDone).Put([]byte(id), forget); err != nil {
			return err
		}
		if err := tx.Bucket(bucketNotifyForget).Put(append(bytes.Clone(forget), id...), []byte{}); err != nil {
			return err
		}
		return sweepForgotten(tx, dueBytes(now))
	})
}

// sweepForgotten removes up to forgetSweep remembered IDs whose forget
// time is at or before limit.
func sweepForgotten(tx *bolt.Tx, limit []byte) error {
	c := tx.Bucket(bucketNotifyForget).Cursor()
	var gone [][]byte
	for k, _ := c.First(); k != nil && len(gone) < forgetSweep; k, _ = c.Next() {
		if len(k) < 8 || bytes.Compare(k[:8], limit) > 0 {
			break
		}
		gone = append(gone, bytes.Clone(k))
	}
	for _, k := range gone {
		if err := del(tx, bucketNotifyForget, k); err != nil {
			return err
		}
		if v := tx.Bucket(bucketNotifyDone).Get(k[8:]); v != nil && bytes.Equal(v, k[:8]) {
			if err := del(tx, bucketNotifyDone, k[8:]); err != nil {
				return err
			}
		}
	}
	return nil
}

// RetryNotification releases the notification owner holds until next.
func (s *Store) RetryNotification(ctx context.Context, id, owner string, next time.Time, lastErr string) error {
	return s.write(ctx, func(tx *bolt.Tx) error {
		n, err := held(tx, id, owner)
		if err != nil {
			return err
		}
		n.Owner, n.LeaseUntil, n.NotBefore, n.LastError = "", time.Time{}, next, lastErr
		return putNotification(tx, n)
	})
}

// NotificationStats counts the outbox and reads its oldest entry.
func (s *Store) NotificationStats(ctx context.Context) (store.NotificationStats, error) {
	var st store.NotificationStats
	err := s.read(ctx, func(tx *bolt.Tx) error {
		st.Queued = tx.Bucket(bucketNotifications).Stats().KeyN
		k, _ := tx.Bucket(bucketNotifyAge).Cursor().First()
		if len(k) >= 8 {
			st.Oldest = time.Unix(0, int64(binary.BigEndian.Uint64(k[:8])^(1<<63))) //nolint:gosec // G115: the inverse of dueBytes
		}
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return st, err
	}
	return st, nil
}
