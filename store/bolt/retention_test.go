package bolt

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"github.com/acmebridge/acmebridge/store"
)

// TestRetentionBackfill: a file written before the retention buckets
// existed gets them at Open, so its old orders, authorizations and
// certificates are swept like new ones, and an authorization two orders
// share stays until the later one goes.
func TestRetentionBackfill(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "acmebridge.db")
	now := time.Now().UTC()
	s, err := Open(Options{Path: path})
	require.NoError(t, err)
	az := &store.Authorization{ID: "az", AccountID: "acct", Status: store.StatusValid, Expires: now.Add(time.Hour)}
	o1 := &store.Order{ID: "o1", AccountID: "acct", Status: store.StatusInvalid, AuthzIDs: []string{"az"}, Expires: now.Add(time.Hour)}
	require.NoError(t, s.CreateOrder(ctx, o1, []*store.Authorization{az}))
	o2 := &store.Order{ID: "o2", AccountID: "acct", Status: store.StatusReady, AuthzIDs: []string{"az"}, Expires: now.Add(48 * time.Hour)}
	require.NoError(t, s.CreateOrder(ctx, o2, nil))
	o2.Status = store.StatusProcessing
	require.NoError(t, s.EnqueueJob(ctx, &store.Job{OrderID: "o2", NotBefore: now}, o2))
	c := &store.Certificate{ID: "c", OrderID: "o2", Serial: "0a", IssuedAt: now, NotAfter: now.Add(time.Hour)}
	o2.Status, o2.CertificateID = store.StatusValid, "c"
	require.NoError(t, s.PutCertificate(ctx, c, o2))
	require.NoError(t, s.db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketRetireOrders, bucketRetireAuthzs, bucketRetireCerts, bucketAuthzUntil} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, s.Close())

	s, err = Open(Options{Path: path})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	r := store.Retention{Orders: time.Hour, Certificates: time.Hour}
	got, err := s.Sweep(ctx, now.Add(3*time.Hour), r, 100)
	require.NoError(t, err)
	require.Equal(t, store.Swept{Orders: 1, Certificates: 1, Examined: 3}, got, "o1 and c go; az stays for o2")
	got, err = s.Sweep(ctx, now.Add(50*time.Hour), r, 100)
	require.NoError(t, err)
	require.Equal(t, store.Swept{Orders: 1, Authorizations: 1, Examined: 2}, got)
}
