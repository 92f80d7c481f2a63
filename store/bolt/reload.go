package bolt

import (
	"context"
	"encoding/binary"

	bolt "go.etcd.io/bbolt"
)

// keyReload is the number of the latest reload request, in bucketMeta (8
// bytes, big-endian).
var keyReload = []byte("reload")

// ListJobs returns the order IDs of every job.
func (s *Store) ListJobs(ctx context.Context) ([]string, error) {
	ids := []string{}
	err := s.read(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJobs).ForEach(func(k, _ []byte) error {
			ids = append(ids, string(k))
			return nil
		})
	})
	return ids, err
}

// PublishReload counts a reload request.
func (s *Store) PublishReload(ctx context.Context) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		n = reloadNumber(meta.Get(keyReload)) + 1
		return meta.Put(keyReload, binary.BigEndian.AppendUint64(nil, uint64(n))) //nolint:gosec // G115: a count, never negative
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// ReloadRequested reads the latest reload request's number.
func (s *Store) ReloadRequested(ctx context.Context) (int64, error) {
	var n int64
	err := s.read(ctx, func(tx *bolt.Tx) error {
		n = reloadNumber(tx.Bucket(bucketMeta).Get(keyReload))
		return nil
	})
	return n, err
}

// reloadNumber decodes the stored number (0 when there is none).
func reloadNumber(b []byte) int64 {
	if len(b) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b)) //nolint:gosec // G115: written by PublishReload, small
}
