package bolt

import (
	"context"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/acmebridge/acmebridge/store"
)

// ReadPOST reads the account and the record q names in one read-only
// transaction and, inside it, uses the nonce (the in-memory record of
// UseNonce) if the account's key thumbprint is q.KeyThumbprint: the use is
// decided on the same snapshot the account is read from.
func (s *Store) ReadPOST(ctx context.Context, q *store.POSTRead) (*store.POSTRecords, error) {
	var out *store.POSTRecords
	err := s.read(ctx, func(tx *bolt.Tx) error {
		out = &store.POSTRecords{}
		var a store.Account
		switch err := getJSON(tx, bucketAccounts, q.AccountID, &a); {
		case err == nil:
			out.Account = &a
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		if out.Account != nil && q.Nonce != "" && q.KeyThumbprint != "" && a.KeyThumbprint == q.KeyThumbprint {
			out.NonceChecked = true
			out.NonceFresh = s.nonces.use(q.Nonce, q.NonceUntil, time.Now())
		}
		if q.OrderID != "" {
			var o store.Order
			if err := getOptional(tx, bucketOrders, q.OrderID, &o); err != nil {
				return err
			} else if o.ID != "" {
				out.Order = &o
			}
			for _, id := range orderAuthzIDs(q, out.Order) {
				var az store.Authorization
				if err := getOptional(tx, bucketAuthzs, id, &az); err != nil {
					return err
				} else if az.ID != "" {
					out.Authzs = append(out.Authzs, &az)
				}
			}
		}
		if q.AuthzID != "" {
			var az store.Authorization
			if err := getOptional(tx, bucketAuthzs, q.AuthzID, &az); err != nil {
				return err
			} else if az.ID != "" {
				out.Authz = &az
			}
		}
		if q.CertificateID != "" {
			var c store.Certificate
			if err := getOptional(tx, bucketCerts, q.CertificateID, &c); err != nil {
				return err
			} else if c.ID != "" {
				out.Certificate = &c
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// getOptional is getJSON with a missing record left as the zero value
// (ID "") rather than an error.
func getOptional(tx *bolt.Tx, bucket []byte, key string, v any) error {
	if err := getJSON(tx, bucket, key, v); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// orderAuthzIDs are the authorizations ReadPOST reads with the order o:
// its own when q asks for them.
func orderAuthzIDs(q *store.POSTRead, o *store.Order) []string {
	if !q.OrderAuthzs || o == nil {
		return nil
	}
	return o.AuthzIDs
}
