package bolt

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/acmebridge/acmebridge/store"
)

// CreateAccount stores a new account, indexes its key thumbprint and lists
// it last of the accounts.
// ErrConflict if the ID or the thumbprint is taken. If a.EABKeyID is set, the
// EAB key is bound to the account (AccountID, BoundAt = a.CreatedAt or now,
// Version incremented) in the same transaction: ErrNotFound if the key does
// not exist, ErrConflict if it is already bound.
func (s *Store) CreateAccount(ctx context.Context, a *store.Account) error {
	if a.ID == "" || a.KeyThumbprint == "" {
		return errorf("account needs an ID and a key thumbprint")
	}
	data, err := encode("account", a)
	if err != nil {
		return err
	}
	boundAt := a.CreatedAt
	if boundAt.IsZero() {
		boundAt = time.Now().UTC()
	}
	return s.write(ctx, func(tx *bolt.Tx) error {
		if exists(tx, bucketAccounts, a.ID) || exists(tx, bucketAccountKeys, a.KeyThumbprint) {
			return store.ErrConflict
		}
		var eabData []byte
		if a.EABKeyID != "" {
			var k store.EABKey
			if err := getJSON(tx, bucketEABKeys, a.EABKeyID, &k); err != nil {
				return err
			}
			if k.AccountID != "" {
				return store.ErrConflict
			}
			k.AccountID = a.ID
			k.BoundAt = boundAt
			k.Version++
			var err error
			if eabData, err = marshal("EAB key", &k); err != nil {
				return err
			}
		}
		if err := put(tx, bucketAccounts, a.ID, data); err != nil {
			return err
		}
		if err := put(tx, bucketAccountKeys, a.KeyThumbprint, []byte(a.ID)); err != nil {
			return err
		}
		if err := appendListed(tx, bucketAccountList, a.ID); err != nil {
			return err
		}
		if eabData != nil {
			return put(tx, bucketEABKeys, a.EABKeyID, eabData)
		}
		return nil
	})
}

// GetAccount returns the account with that ID or ErrNotFound.
func (s *Store) GetAccount(ctx context.Context, id string) (*store.Account, error) {
	var a store.Account
	if err := s.getRecord(ctx, bucketAccounts, id, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// GetAccountByKey returns the account whose KeyThumbprint is tp, or
// ErrNotFound.
func (s *Store) GetAccountByKey(ctx context.Context, tp string) (*store.Account, error) {
	var a store.Account
	err := s.read(ctx, func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketAccountKeys).Get([]byte(tp))
		if id == nil {
			return store.ErrNotFound
		}
		return getJSON(tx, bucketAccounts, string(id), &a)
	})
	if err != nil {
		return nil, err
	}
	return &a, nil
}

// UpdateAccount stores a if the stored Version equals a.Version, then
// increments a.Version. A changed KeyThumbprint moves the key index;
// ErrConflict if the new key belongs to another account. ErrNotFound if the
// account does not exist.
func (s *Store) UpdateAccount(ctx context.Context, a *store.Account) error {
	next := *a
	next.Version++
	data, err := encode("account", &next)
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *bolt.Tx) error {
		var cur store.Account
		if err := getJSON(tx, bucketAccounts, a.ID, &cur); err != nil {
			return err
		}
		if cur.Version != a.Version {
			return store.ErrConflict
		}
		if cur.KeyThumbprint != a.KeyThumbprint {
			if a.KeyThumbprint == "" || exists(tx, bucketAccountKeys, a.KeyThumbprint) {
				return store.ErrConflict
			}
			if err := del(tx, bucketAccountKeys, []byte(cur.KeyThumbprint)); err != nil {
				return err
			}
			if err := put(tx, bucketAccountKeys, a.KeyThumbprint, []byte(a.ID)); err != nil {
				return err
			}
		}
		return put(tx, bucketAccounts, a.ID, data)
	})
	if err != nil {
		return err
	}
	a.Version = next.Version
	return nil
}

// PutEABKey stores a new EAB key and lists it last of the EAB keys;
// ErrConflict if the ID exists. The HMAC key
// is stored as given: this driver does not encrypt it.
func (s *Store) PutEABKey(ctx context.Context, k *store.EABKey) error {
	if k.ID == "" {
		return errorf("EAB key needs an ID")
	}
	data, err := encode("EAB key", k)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *bolt.Tx) error {
		if exists(tx, bucketEABKeys, k.ID) {
			return store.ErrConflict
		}
		if err := appendListed(tx, bucketEABList, k.ID); err != nil {
			return err
		}
		return put(tx, bucketEABKeys, k.ID, data)
	})
}

// GetEABKey returns the key or ErrNotFound.
func (s *Store) GetEABKey(ctx context.Context, id string) (*store.EABKey, error) {
	var k store.EABKey
	if err := s.getRecord(ctx, bucketEABKeys, id, &k); err != nil {
		return nil, err
	}
	return &k, nil
}

// UpdateEABKey stores k if the stored Version equals k.Version, then
// increments k.Version. ErrNotFound if the key does not exist.
func (s *Store) UpdateEABKey(ctx context.Context, k *store.EABKey) error {
	next := *k
	next.Version++
	data, err := encode("EAB key", &next)
	if err != nil {
		return err
	}
	if err := s.casUpdate(ctx, bucketEABKeys, k.ID, k.Version, data); err != nil {
		return err
	}
	k.Version = next.Version
	return nil
}
