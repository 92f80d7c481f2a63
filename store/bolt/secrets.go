package bolt

import (
	"bytes"
	"context"

	bolt "go.etcd.io/bbolt"

	"github.com/acmebridge/acmebridge/store"
)

// PutSecret stores a new named secret; ErrConflict if the name is taken.
// The value is stored as given: store.Sealed encrypts it first.
func (s *Store) PutSecret(ctx context.Context, name string, value []byte) error {
	if name == "" {
		return errorf("secret needs a name")
	}
	data := bytes.Clone(value)
	return s.write(ctx, func(tx *bolt.Tx) error {
		if exists(tx, bucketSecrets, name) {
			return store.ErrConflict
		}
		return put(tx, bucketSecrets, name, data)
	})
}

// GetSecret returns the secret stored under name or ErrNotFound.
func (s *Store) GetSecret(ctx context.Context, name string) ([]byte, error) {
	var out []byte
	err := s.read(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSecrets).Get([]byte(name))
		if v == nil {
			return store.ErrNotFound
		}
		// bbolt's slices are valid only inside the transaction.
		out = bytes.Clone(v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
