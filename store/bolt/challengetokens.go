package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/acmebridge/acmebridge/store"
)

// Challenge tokens live in the file like every other record (a restarted
// process answers a validation the CA had already started), each with its
// expiry in front of its key authorization and an entry in an index by
// expiry. Every PutChallengeToken sweeps the expired ones off the front of
// that index, so the buckets hold at most the tokens presented within one
// ttl, and a read treats a token whose expiry has passed as absent.

// PutChallengeToken stores keyAuth under token until ttl from now.
func (s *Store) PutChallengeToken(ctx context.Context, token, keyAuth string, ttl time.Duration) error {
	if token == "" {
		return errorf("challenge token is empty")
	}
	if ttl <= 0 {
		return errorf("challenge token ttl %s is not positive", ttl)
	}
	now := time.Now()
	exp := expiryBytes(now.Add(ttl))
	value := append(bytes.Clone(exp), keyAuth...)
	return s.write(ctx, func(tx *bolt.Tx) error {
		if err := sweepChallengeTokens(tx, now); err != nil {
			return err
		}
		if err := dropChallengeToken(tx, []byte(token)); err != nil {
			return err
		}
		if err := put(tx, bucketChallengeTokens, token, value); err != nil {
			return err
		}
		return put(tx, bucketChallengeTokenExpiry, string(exp)+token, []byte{})
	})
}

// GetChallengeToken returns the key authorization of token, or ErrNotFound
// if there is none or its expiry has passed.
func (s *Store) GetChallengeToken(ctx context.Context, token string) (string, error) {
	now := time.Now()
	var keyAuth string
	err := s.read(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketChallengeTokens).Get([]byte(token))
		if len(v) < 8 || !expiryOf(v).After(now) {
			return store.ErrNotFound
		}
		keyAuth = string(v[8:]) // a copy: bbolt's slice is valid only in the transaction
		return nil
	})
	if err != nil {
		return "", err
	}
	return keyAuth, nil
}

// DeleteChallengeToken removes token; missing is not an error.
func (s *Store) DeleteChallengeToken(ctx context.Context, token string) error {
	return s.write(ctx, func(tx *bolt.Tx) error {
		return dropChallengeToken(tx, []byte(token))
	})
}

// dropChallengeToken removes token and its index entry, if it is stored.
func dropChallengeToken(tx *bolt.Tx, token []byte) error {
	v := tx.Bucket(bucketChallengeTokens).Get(token)
	if v == nil {
		return nil
	}
	if len(v) >= 8 {
		if err := del(tx, bucketChallengeTokenExpiry, append(bytes.Clone(v[:8]), token...)); err != nil {
			return err
		}
	}
	return del(tx, bucketChallengeTokens, token)
}

// sweepChallengeTokens removes the tokens whose expiry is not after now:
// the index is in expiry order, so it walks only those.
func sweepChallengeTokens(tx *bolt.Tx, now time.Time) error {
	var expired [][]byte
	c := tx.Bucket(bucketChallengeTokenExpiry).Cursor()
	for k, _ := c.First(); len(k) >= 8 && !expiryOf(k).After(now); k, _ = c.Next() {
		expired = append(expired, bytes.Clone(k))
	}
	tokens := tx.Bucket(bucketChallengeTokens)
	for _, k := range expired {
		if err := del(tx, bucketChallengeTokenExpiry, k); err != nil {
			return err
		}
		// The token goes only if this entry is its current expiry.
		if v := tokens.Get(k[8:]); len(v) >= 8 && bytes.Equal(v[:8], k[:8]) {
			if err := del(tx, bucketChallengeTokens, k[8:]); err != nil {
				return err
			}
		}
	}
	return nil
}

// expiryBytes is t as 8 bytes big-endian Unix nanoseconds, which sort as
// the times do (every expiry is after 1970).
func expiryBytes(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano()))
}

// expiryOf reads the expiry in the first 8 bytes of b.
func expiryOf(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b[:8]))) //nolint:gosec // G115: a bit-for-bit round trip
}
