package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	json "github.com/go-json-experiment/json/v1"

	bolt "go.etcd.io/bbolt"

	"github.com/acmebridge/acmebridge/store"
)

// Authorization reuse (RFC 8555 §7.4.1). Every valid authorization has an
// entry in authz_valid under the prefix of its account, identifier and
// wildcard flag (authzValidPrefix), followed by the bucket's sequence taken
// when it became valid, so the last entry under a prefix is the most
// recently validated. The entry's value is the authorization's Expires
// (expiryTime) followed by its ID, so expired entries are recognised
// without decoding records. authz_valid_pos maps an authorization's ID to
// its entry, so the entry goes when the authorization stops being valid.
// Every write of an authorization (CreateOrder, CreateAuthz, UpdateAuthz)
// updates both in its transaction (indexAuthz), and drops the entries under
// the same prefix that have expired.

// authzValidPrefix is the start of the authz_valid keys of an account's
// authorizations for an identifier and wildcard flag. Each part is length
// prefixed, so no prefix is the start of another.
func authzValidPrefix(accountID string, id store.Identifier, wildcard bool) []byte {
	b := make([]byte, 0, len(accountID)+len(id.Type)+len(id.Value)+4+8)
	for _, part := range []string{accountID, id.Type, id.Value} {
		b = binary.AppendUvarint(b, uint64(len(part)))
		b = append(b, part...)
	}
	if wildcard {
		return append(b, 1)
	}
	return append(b, 0)
}

// indexAuthz brings the index of valid authorizations in step with a, just
// stored: an entry while a is valid (kept where it is while a stays valid
// under the same prefix; new, last, when a becomes valid), none otherwise.
// Entries under a's prefix that expired before now are dropped.
func indexAuthz(tx *bolt.Tx, a *store.Authorization, now time.Time) error {
	index, pos := tx.Bucket(bucketAuthzValid), tx.Bucket(bucketAuthzValidPos)
	old := bytes.Clone(pos.Get([]byte(a.ID)))
	if a.Status != store.StatusValid {
		if old == nil {
			return nil
		}
		if err := index.Delete(old); err != nil {
			return fmt.Errorf("delete %s of %q: %w", bucketAuthzValid, a.ID, err)
		}
		return del(tx, bucketAuthzValidPos, []byte(a.ID))
	}
	prefix := authzValidPrefix(a.AccountID, a.Identifier, a.Wildcard)
	key := old
	if old == nil || len(old) != len(prefix)+8 || !bytes.HasPrefix(old, prefix) {
		if old != nil {
			if err := index.Delete(old); err != nil {
				return fmt.Errorf("delete %s of %q: %w", bucketAuthzValid, a.ID, err)
			}
		}
		seq, err := index.NextSequence()
		if err != nil {
			return fmt.Errorf("%s sequence: %w", bucketAuthzValid, err)
		}
		key = binary.BigEndian.AppendUint64(bytes.Clone(prefix), seq)
		if err := pos.Put([]byte(a.ID), key); err != nil {
			return fmt.Errorf("put %s %q: %w", bucketAuthzValidPos, a.ID, err)
		}
	}
	if err := index.Put(key, append(expiryTime(a.Expires), a.ID...)); err != nil {
		return fmt.Errorf("put %s %q: %w", bucketAuthzValid, a.ID, err)
	}
	return pruneAuthzValid(tx, prefix, now)
}

// pruneAuthzValid drops the entries under prefix whose authorization
// expired at or before now.
func pruneAuthzValid(tx *bolt.Tx, prefix []byte, now time.Time) error {
	index, pos := tx.Bucket(bucketAuthzValid), tx.Bucket(bucketAuthzValidPos)
	limit := expiryTime(now)
	var stale [][]byte
	c := index.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(v) < expiryLen || bytes.Compare(v[:expiryLen], limit) <= 0 {
			stale = append(stale, bytes.Clone(k), bytes.Clone(v[min(len(v), expiryLen):]))
		}
	}
	for i := 0; i < len(stale); i += 2 {
		k, id := stale[i], stale[i+1]
		if err := index.Delete(k); err != nil {
			return fmt.Errorf("delete %s: %w", bucketAuthzValid, err)
		}
		if bytes.Equal(pos.Get(id), k) {
			if err := pos.Delete(id); err != nil {
				return fmt.Errorf("delete %s %q: %w", bucketAuthzValidPos, id, err)
			}
		}
	}
	return nil
}

// CreateAuthz stores a new authorization without an order
// (pre-authorization) and, if it is valid, indexes it for reuse, in one
// transaction. ErrConflict if the ID is taken.
func (s *Store) CreateAuthz(ctx context.Context, a *store.Authorization) error {
	if a.ID == "" || a.AccountID == "" {
		return errorf("authorization needs an ID and an account ID")
	}
	data, err := encode("authorization", a)
	if err != nil {
		return err
	}
	now := time.Now()
	return s.write(ctx, func(tx *bolt.Tx) error {
		if exists(tx, bucketAuthzs, a.ID) {
			return store.ErrConflict
		}
		if err := put(tx, bucketAuthzs, a.ID, data); err != nil {
			return err
		}
		if err := retireAt(tx, bucketRetireAuthzs, a.Expires, a.ID, nil); err != nil {
			return err
		}
		return indexAuthz(tx, a, now)
	})
}

// FindValidAuthz returns the account's most recently validated
// authorization for the identifier and wildcard flag that is valid and
// expires after now, or ErrNotFound: it reads the index backwards from its
// last entry under the prefix, skipping entries that expired by now.
func (s *Store) FindValidAuthz(ctx context.Context, accountID string, id store.Identifier, wildcard bool, now time.Time) (*store.Authorization, error) {
	prefix := authzValidPrefix(accountID, id, wildcard)
	after := expiryTime(now)
	var found *store.Authorization
	err := s.read(ctx, func(tx *bolt.Tx) error {
		found = nil
		c := tx.Bucket(bucketAuthzValid).Cursor()
		hi := binary.BigEndian.AppendUint64(bytes.Clone(prefix), ^uint64(0))
		k, v := c.Seek(hi)
		switch {
		case k == nil:
			k, v = c.Last()
		case !bytes.Equal(k, hi):
			k, v = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
			if len(v) <= expiryLen || bytes.Compare(v[:expiryLen], after) <= 0 {
				continue
			}
			var a store.Authorization
			switch err := getJSON(tx, bucketAuthzs, string(v[expiryLen:]), &a); {
			case errors.Is(err, store.ErrNotFound):
				continue
			case err != nil:
				return err
			}
			if a.Status == store.StatusValid && a.Expires.After(now) && a.AccountID == accountID &&
				a.Identifier == id && a.Wildcard == wildcard {
				found = &a
				return nil
			}
		}
		return store.ErrNotFound
	})
	if err != nil {
		return nil, err
	}
	return found, nil
}

// backfillAuthzValid indexes the valid, unexpired authorizations of a file
// written before the index existed, in the order their challenges were
// validated (ties by ID).
func backfillAuthzValid(tx *bolt.Tx) error {
	type validated struct {
		a  store.Authorization
		at time.Time
	}
	now := time.Now()
	var recs []validated
	err := tx.Bucket(bucketAuthzs).ForEach(func(k, v []byte) error {
		var a store.Authorization
		if err := json.Unmarshal(v, &a); err != nil {
			return fmt.Errorf("decode %s %q: %w", bucketAuthzs, k, err)
		}
		if a.Status != store.StatusValid || !a.Expires.After(now) {
			return nil
		}
		r := validated{a: a}
		for _, ch := range a.Challenges {
			if ch.Validated.After(r.at) {
				r.at = ch.Validated
			}
		}
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(recs, func(x, y validated) int {
		if c := x.at.Compare(y.at); c != 0 {
			return c
		}
		return strings.Compare(x.a.ID, y.a.ID)
	})
	for i := range recs {
		if err := indexAuthz(tx, &recs[i].a, now); err != nil {
			return err
		}
	}
	return nil
}
