package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	json "github.com/go-json-experiment/json/v1"

	bolt "go.etcd.io/bbolt"

	"github.com/acmebridge/acmebridge/store"
)

// Retention (store.Store.Sweep). Every order, authorization and
// certificate has an entry in a retire bucket of its kind, keyed by the
// time it ends (expiryTime: an order's and an authorization's Expires, a
// certificate's NotAfter) followed by its ID, so the due entries are the
// first ones. A certificate's entry holds its cert_list sequence, so its
// listing entry goes with it. authz_until holds, per authorization, the
// latest Expires of the orders created with it (CreateOrder writes it for
// new and reused authorizations alike): an authorization is due only once
// that has passed too, so it never leaves before an order naming it. A
// sweep that finds a due record not removable moves its entry to when it
// looks again (store.SweepRetry later); one that finds an authorization
// kept by authz_until moves it there. Entries whose record is gone are
// dropped.

// retireKey is the key of id's entry in a retire bucket: t then id.
func retireKey(t time.Time, id string) []byte {
	return append(expiryTime(t), id...)
}

// retireAt puts id's entry in bucket at t, with value v (nil: none).
func retireAt(tx *bolt.Tx, bucket []byte, t time.Time, id string, v []byte) error {
	if v == nil {
		v = []byte{}
	}
	if err := tx.Bucket(bucket).Put(retireKey(t, id), v); err != nil {
		return fmt.Errorf("put %s %q: %w", bucket, id, err)
	}
	return nil
}

// keepAuthzUntil raises the authz_until of authorization id to t.
func keepAuthzUntil(tx *bolt.Tx, id string, t time.Time) error {
	b := tx.Bucket(bucketAuthzUntil)
	enc := expiryTime(t)
	if cur := b.Get([]byte(id)); cur != nil && bytes.Compare(cur, enc) >= 0 {
		return nil
	}
	if err := b.Put([]byte(id), enc); err != nil {
		return fmt.Errorf("put %s %q: %w", bucketAuthzUntil, id, err)
	}
	return nil
}

// retireOrder writes the retention entries of a new order: its own, those
// of its new authorizations, and authz_until of all of them.
func retireOrder(tx *bolt.Tx, o *store.Order, authzs []*store.Authorization) error {
	if err := retireAt(tx, bucketRetireOrders, o.Expires, o.ID, nil); err != nil {
		return err
	}
	for _, a := range authzs {
		if err := retireAt(tx, bucketRetireAuthzs, a.Expires, a.ID, nil); err != nil {
			return err
		}
	}
	for _, id := range o.AuthzIDs {
		if err := keepAuthzUntil(tx, id, o.Expires); err != nil {
			return err
		}
	}
	return nil
}

// Sweep removes the records whose retention ended at now, at most limit
// entries looked at, in transactions of at most store.SweepBatch.
func (s *Store) Sweep(ctx context.Context, now time.Time, r store.Retention, limit int) (store.Swept, error) {
	if limit < 1 {
		return store.Swept{}, errorf("sweep: limit %d is not positive", limit)
	}
	var total store.Swept
	for total.Examined < limit {
		n := min(limit-total.Examined, store.SweepBatch)
		var got store.Swept
		err := s.write(ctx, func(tx *bolt.Tx) error {
			got = store.Swept{}
			return sweepTx(tx, now, r, n, &got)
		})
		if err != nil {
			return total, err
		}
		total = total.Add(got)
		if got.Examined < n {
			break
		}
	}
	return total, nil
}

// sweepTx is one batch of Sweep: orders first (an order deferred there
// keeps its authorizations), then certificates, then authorizations.
func sweepTx(tx *bolt.Tx, now time.Time, r store.Retention, n int, got *store.Swept) error {
	if r.Orders > 0 {
		cutoff := now.Add(-r.Orders)
		retry := cutoff.Add(store.SweepRetry)
		err := sweepBucket(tx, bucketRetireOrders, cutoff, n-got.Examined, got, func(id string, key, _ []byte) error {
			return sweepOrder(tx, id, key, retry, got)
		})
		if err != nil {
			return err
		}
	}
	if r.Certificates > 0 {
		cutoff := now.Add(-r.Certificates)
		err := sweepBucket(tx, bucketRetireCerts, cutoff, n-got.Examined, got, func(id string, key, val []byte) error {
			return sweepCert(tx, id, key, val, cutoff, got)
		})
		if err != nil {
			return err
		}
	}
	if r.Orders > 0 {
		cutoff := now.Add(-r.Orders)
		err := sweepBucket(tx, bucketRetireAuthzs, cutoff, n-got.Examined, got, func(id string, key, _ []byte) error {
			return sweepAuthz(tx, id, key, cutoff, cutoff.Add(store.SweepRetry), got)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// sweepBucket collects up to n entries of a retire bucket due at cutoff
// and hands each to fn, counting it as examined.
func sweepBucket(tx *bolt.Tx, bucket []byte, cutoff time.Time, n int, got *store.Swept, fn func(id string, key, val []byte) error) error {
	if n <= 0 {
		return nil
	}
	limit := expiryTime(cutoff)
	var keys, vals [][]byte
	c := tx.Bucket(bucket).Cursor()
	for k, v := c.First(); k != nil && len(keys) < n; k, v = c.Next() {
		if len(k) < expiryLen || bytes.Compare(k[:expiryLen], limit) > 0 {
			break
		}
		keys, vals = append(keys, bytes.Clone(k)), append(vals, bytes.Clone(v))
	}
	for i, k := range keys {
		got.Examined++
		if err := fn(string(k[expiryLen:]), k, vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// moveEntry moves a retire entry to t, keeping its value.
func moveEntry(tx *bolt.Tx, bucket, key []byte, t time.Time, val []byte) error {
	if err := del(tx, bucket, key); err != nil {
		return err
	}
	return retireAt(tx, bucket, t, string(key[expiryLen:]), val)
}

// sweepOrder removes a due order with its index entries, or defers it (and
// its authorizations) to retry when it is still in processing or has an
// issuance or validation job.
func sweepOrder(tx *bolt.Tx, id string, key []byte, retry time.Time, got *store.Swept) error {
	var o store.Order
	switch err := getJSON(tx, bucketOrders, id, &o); {
	case errors.Is(err, store.ErrNotFound):
		return del(tx, bucketRetireOrders, key)
	case err != nil:
		return err
	}
	live := o.Status == store.StatusProcessing || exists(tx, bucketJobs, id)
	for _, aid := range o.AuthzIDs {
		live = live || exists(tx, bucketValidations, aid)
	}
	if live {
		for _, aid := range o.AuthzIDs {
			if err := keepAuthzUntil(tx, aid, retry); err != nil {
				return err
			}
		}
		return moveEntry(tx, bucketRetireOrders, key, retry, nil)
	}
	if pos := bytes.Clone(tx.Bucket(bucketOrderPos).Get([]byte(id))); pos != nil {
		if err := del(tx, bucketOrderIndex, pos); err != nil {
			return err
		}
		if len(pos) >= 8 {
			list := tx.Bucket(bucketOrderList)
			seq := pos[len(pos)-8:]
			if bytes.Equal(list.Get(seq), []byte(id)) {
				if err := del(tx, bucketOrderList, seq); err != nil {
					return err
				}
			}
		}
		if err := del(tx, bucketOrderPos, []byte(id)); err != nil {
			return err
		}
	}
	if err := del(tx, bucketOrders, []byte(id)); err != nil {
		return err
	}
	got.Orders++
	return del(tx, bucketRetireOrders, key)
}

// sweepCert removes a due certificate with its serial, listing and expiry
// entries (val is its cert_list sequence), or moves the entry to its
// NotAfter if that changed since.
func sweepCert(tx *bolt.Tx, id string, key, val []byte, cutoff time.Time, got *store.Swept) error {
	var c store.Certificate
	switch err := getJSON(tx, bucketCerts, id, &c); {
	case errors.Is(err, store.ErrNotFound):
		return del(tx, bucketRetireCerts, key)
	case err != nil:
		return err
	}
	if c.NotAfter.After(cutoff) {
		return moveEntry(tx, bucketRetireCerts, key, c.NotAfter, val)
	}
	if bytes.Equal(tx.Bucket(bucketCertSerials).Get([]byte(c.Serial)), []byte(id)) {
		if err := del(tx, bucketCertSerials, []byte(c.Serial)); err != nil {
			return err
		}
	}
	if len(val) == 8 && bytes.Equal(tx.Bucket(bucketCertList).Get(val), []byte(id)) {
		if err := del(tx, bucketCertList, val); err != nil {
			return err
		}
	}
	if c.RevokedAt.IsZero() {
		if err := del(tx, bucketCertExpiry, expiryKey(&c)); err != nil {
			return err
		}
	}
	if err := del(tx, bucketCerts, []byte(id)); err != nil {
		return err
	}
	got.Certificates++
	return del(tx, bucketRetireCerts, key)
}

// sweepAuthz removes a due authorization with its entry in the index of
// valid authorizations, moves its entry to its authz_until when an order
// created with it ends later, or defers it to retry while it has a
// validation job.
func sweepAuthz(tx *bolt.Tx, id string, key []byte, cutoff, retry time.Time, got *store.Swept) error {
	if !exists(tx, bucketAuthzs, id) {
		if err := del(tx, bucketAuthzUntil, []byte(id)); err != nil {
			return err
		}
		return del(tx, bucketRetireAuthzs, key)
	}
	if until := tx.Bucket(bucketAuthzUntil).Get([]byte(id)); len(until) == expiryLen &&
		bytes.Compare(until, expiryTime(cutoff)) > 0 {
		if err := del(tx, bucketRetireAuthzs, key); err != nil {
			return err
		}
		k := append(bytes.Clone(until), id...)
		if err := tx.Bucket(bucketRetireAuthzs).Put(k, []byte{}); err != nil {
			return fmt.Errorf("put %s %q: %w", bucketRetireAuthzs, id, err)
		}
		return nil
	}
	if exists(tx, bucketValidations, id) {
		return moveEntry(tx, bucketRetireAuthzs, key, retry, nil)
	}
	if pos := bytes.Clone(tx.Bucket(bucketAuthzValidPos).Get([]byte(id))); pos != nil {
		if err := del(tx, bucketAuthzValid, pos); err != nil {
			return err
		}
		if err := del(tx, bucketAuthzValidPos, []byte(id)); err != nil {
			return err
		}
	}
	for _, b := range [][]byte{bucketAuthzs, bucketAuthzUntil, bucketRetireAuthzs} {
		k := []byte(id)
		if bytes.Equal(b, bucketRetireAuthzs) {
			k = key
		}
		if err := del(tx, b, k); err != nil {
			return err
		}
	}
	got.Authorizations++
	return nil
}

// backfillRetention writes the retention entries of a file written before
// they existed: every order, authorization and certificate.
func backfillRetention(tx *bolt.Tx) error {
	err := tx.Bucket(bucketOrders).ForEach(func(k, v []byte) error {
		var o store.Order
		if err := json.Unmarshal(v, &o); err != nil {
			return fmt.Errorf("decode %s %q: %w", bucketOrders, k, err)
		}
		return retireOrder(tx, &o, nil)
	})
	if err != nil {
		return err
	}
	err = tx.Bucket(bucketAuthzs).ForEach(func(k, v []byte) error {
		var a store.Authorization
		if err := json.Unmarshal(v, &a); err != nil {
			return fmt.Errorf("decode %s %q: %w", bucketAuthzs, k, err)
		}
		return retireAt(tx, bucketRetireAuthzs, a.Expires, a.ID, nil)
	})
	if err != nil {
		return err
	}
	seqs := make(map[string][]byte)
	err = tx.Bucket(bucketCertList).ForEach(func(k, v []byte) error {
		seqs[string(v)] = bytes.Clone(k)
		return nil
	})
	if err != nil {
		return err
	}
	return tx.Bucket(bucketCerts).ForEach(func(k, v []byte) error {
		var c store.Certificate
		if err := json.Unmarshal(v, &c); err != nil {
			return fmt.Errorf("decode %s %q: %w", bucketCerts, k, err)
		}
		return retireAt(tx, bucketRetireCerts, c.NotAfter, c.ID, seqs[c.ID])
	})
}

// appendListedSeq is appendListed that returns the sequence taken, as its
// key.
func appendListedSeq(tx *bolt.Tx, bucket []byte, id string) ([]byte, error) {
	b := tx.Bucket(bucket)
	seq, err := b.NextSequence()
	if err != nil {
		return nil, fmt.Errorf("%s sequence: %w", bucket, err)
	}
	k := seqKey(seq)
	if err := b.Put(k, []byte(id)); err != nil {
		return nil, fmt.Errorf("put %s %q: %w", bucket, id, err)
	}
	return k, nil
}
