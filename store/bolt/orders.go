package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/acmebridge/acmebridge/store"
)

// orderIndexPrefix is the start of every order_index key of an account. The
// NUL separator cannot occur in an ID, so one account's prefix never matches
// another's.
func orderIndexPrefix(accountID string) []byte {
	p := make([]byte, 0, len(accountID)+1+8)
	p = append(p, accountID...)
	return append(p, 0)
}

// CreateOrder stores a new order, its new authorizations (indexing the
// valid ones for reuse) and its places in the account's listing and the
// listing of all orders in one transaction. Every authorization passed must
// be listed in o.AuthzIDs; the IDs listed but not passed must exist
// (ErrNotFound otherwise). ErrConflict if the order ID or a new
// authorization's ID is taken.
func (s *Store) CreateOrder(ctx context.Context, o *store.Order, authzs []*store.Authorization) error {
	if o.ID == "" || o.AccountID == "" {
		return errorf("order needs an ID and an account ID")
	}
	listed := make(map[string]bool, len(o.AuthzIDs))
	for _, id := range o.AuthzIDs {
		listed[id] = true
	}
	isNew := make(map[string]bool, len(authzs))
	authzData := make([][]byte, len(authzs))
	for i, a := range authzs {
		if !listed[a.ID] || isNew[a.ID] {
			return errorf("order %s: authorization %q is not listed in AuthzIDs or is passed twice", o.ID, a.ID)
		}
		isNew[a.ID] = true
		data, err := encode("authorization", a)
		if err != nil {
			return err
		}
		authzData[i] = data
	}
	data, err := encode("order", o)
	if err != nil {
		return err
	}
	now := time.Now()
	return s.write(ctx, func(tx *bolt.Tx) error {
		if exists(tx, bucketOrders, o.ID) {
			return store.ErrConflict
		}
		for _, id := range o.AuthzIDs {
			switch found := exists(tx, bucketAuthzs, id); {
			case isNew[id] && found:
				return store.ErrConflict
			case !isNew[id] && !found:
				return store.ErrNotFound
			}
		}
		index := tx.Bucket(bucketOrderIndex)
		seq, err := index.NextSequence()
		if err != nil {
			return fmt.Errorf("order sequence: %w", err)
		}
		key := binary.BigEndian.AppendUint64(orderIndexPrefix(o.AccountID), seq)
		if err := index.Put(key, []byte(o.ID)); err != nil {
			return fmt.Errorf("put order index: %w", err)
		}
		if err := tx.Bucket(bucketOrderPos).Put([]byte(o.ID), key); err != nil {
			return fmt.Errorf("put order position: %w", err)
		}
		if err := tx.Bucket(bucketOrderList).Put(seqKey(seq), []byte(o.ID)); err != nil {
			return fmt.Errorf("put order list: %w", err)
		}
		if err := put(tx, bucketOrders, o.ID, data); err != nil {
			return err
		}
		for i, a := range authzs {
			if err := put(tx, bucketAuthzs, a.ID, authzData[i]); err != nil {
				return err
			}
			if err := indexAuthz(tx, a, now); err != nil {
				return err
			}
		}
		return retireOrder(tx, o, authzs)
	})
}

// GetOrder returns the order or ErrNotFound.
func (s *Store) GetOrder(ctx context.Context, id string) (*store.Order, error) {
	var o store.Order
	if err := s.getRecord(ctx, bucketOrders, id, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

// UpdateOrder stores o if the stored Version equals o.Version, then
// increments o.Version. ErrNotFound if the order does not exist. An order's
// AccountID never changes: the listing keeps the order under the account it
// was created for.
func (s *Store) UpdateOrder(ctx context.Context, o *store.Order) error {
	next := *o
	next.Version++
	data, err := encode("order", &next)
	if err != nil {
		return err
	}
	if err := s.casUpdate(ctx, bucketOrders, o.ID, o.Version, data); err != nil {
		return err
	}
	o.Version = next.Version
	return nil
}

// ListOrders lists the IDs of an account's orders, oldest first, at most
// limit (which must be positive) per page. The cursor is "" for the first
// page and Page.Next for the following ones; Next is the last ID of its page
// and is empty on the last page. A cursor that is not an order of the
// account gives ErrNotFound.
func (s *Store) ListOrders(ctx context.Context, accountID, cursor string, limit int) (store.Page, error) {
	if limit < 1 {
		return store.Page{}, errorf("list orders: limit %d is not positive", limit)
	}
	var page store.Page
	err := s.read(ctx, func(tx *bolt.Tx) error {
		page = store.Page{}
		prefix := orderIndexPrefix(accountID)
		c := tx.Bucket(bucketOrderIndex).Cursor()
		var k, v []byte
		if cursor == "" {
			k, v = c.Seek(prefix)
		} else {
			pos := tx.Bucket(bucketOrderPos).Get([]byte(cursor))
			if pos == nil || !bytes.HasPrefix(pos, prefix) {
				return store.ErrNotFound
			}
			if k, v = c.Seek(pos); bytes.Equal(k, pos) {
				k, v = c.Next()
			}
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(page.IDs) == limit {
				page.Next = page.IDs[len(page.IDs)-1]
				break
			}
			page.IDs = append(page.IDs, string(v))
		}
		return nil
	})
	if err != nil {
		return store.Page{}, err
	}
	return page, nil
}

// GetAuthz returns the authorization or ErrNotFound.
func (s *Store) GetAuthz(ctx context.Context, id string) (*store.Authorization, error) {
	var a store.Authorization
	if err := s.getRecord(ctx, bucketAuthzs, id, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// UpdateAuthz stores a if the stored Version equals a.Version, then
// increments a.Version. ErrNotFound if the authorization does not exist.
// The index of valid authorizations follows in the same transaction.
func (s *Store) UpdateAuthz(ctx context.Context, a *store.Authorization) error {
	return s.updateAuthz(ctx, a, nil)
}

// updateAuthz is the compare-and-set of an authorization: a (its Version
// incremented on success) replaces the stored one if the stored Version is
// a's, with the index of valid authorizations, and also (when set) runs
// in the same transaction.
func (s *Store) updateAuthz(ctx context.Context, a *store.Authorization, also func(tx *bolt.Tx) error) error {
	next := *a
	next.Version++
	data, err := encode("authorization", &next)
	if err != nil {
		return err
	}
	now := time.Now()
	err = s.write(ctx, func(tx *bolt.Tx) error {
		if err := checkVersion(tx, bucketAuthzs, a.ID, a.Version); err != nil {
			return err
		}
		if err := put(tx, bucketAuthzs, a.ID, data); err != nil {
			return err
		}
		if err := indexAuthz(tx, &next, now); err != nil || also == nil {
			return err
		}
		return also(tx)
	})
	if err != nil {
		return err
	}
	a.Version = next.Version
	return nil
}
