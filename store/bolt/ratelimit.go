package bolt

import (
	"context"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/acmebridge/acmebridge/store"
)

// sweepEvery is how many SpendRates calls pass between two sweeps of the
// rates bucket, which drop the buckets that are full again (TAT passed):
// they are equivalent to absent ones, so the file keeps only the buckets in
// debt.
const sweepEvery = 1024

// SpendRates decides a batch of rate-limit spends in one write transaction
// (store.SpendAll), so a batch is all-or-nothing and replicas of one
// process cannot interleave. Buckets live in the file: a restart does not
// reset the limits.
func (s *Store) SpendRates(ctx context.Context, spends []store.RateSpend, now time.Time) ([]store.RateDecision, error) {
	sweep := s.rateSpends.Add(1)%sweepEvery == 0
	var decisions []store.RateDecision
	err := s.write(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRates)
		var updates map[string]time.Time
		decisions, updates = store.SpendAll(spends, now, func(key string) time.Time {
			v := b.Get([]byte(key))
			if len(v) != 8 {
				return time.Time{}
			}
			// The int64 stored below, back from its 8 bytes.
			return time.Unix(0, int64(binary.BigEndian.Uint64(v))) //nolint:gosec // G115: a bit-for-bit round trip
		})
		for key, tat := range updates {
			var err error
			if !tat.After(now) {
				err = b.Delete([]byte(key)) // a full bucket: forget it
			} else {
				err = b.Put([]byte(key), binary.BigEndian.AppendUint64(nil, uint64(tat.UnixNano())))
			}
			if err != nil {
				return err
			}
		}
		if sweep {
			return sweepRates(b, now)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return decisions, nil
}

// sweepRates deletes the buckets whose TAT is not after now.
func sweepRates(b *bolt.Bucket, now time.Time) error {
	var full [][]byte
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(v) != 8 || int64(binary.BigEndian.Uint64(v)) <= now.UnixNano() { //nolint:gosec // G115: as in SpendRates
			full = append(full, append([]byte(nil), k...))
		}
	}
	for _, k := range full {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
