package bolt

import (
	"context"

	bolt "go.etcd.io/bbolt"

	"github.com/acmebridge/acmebridge/store"
)

// PutCertificate stores a new certificate, indexes its serial (and, unless
// it is revoked, its expiry) and lists it, stores o (if the stored order's
// Version equals o.Version; o.Version is then incremented) and removes o's
// job, all in one transaction. ErrConflict if
// the certificate ID or serial is taken or the order moved; ErrNotFound if
// the order does not exist.
func (s *Store) PutCertificate(ctx context.Context, c *store.Certificate, o *store.Order) error {
	if c.ID == "" || c.Serial == "" {
		return errorf("certificate needs an ID and a serial")
	}
	certData, err := encode("certificate", c)
	if err != nil {
		return err
	}
	next := *o
	next.Version++
	orderData, err := encode("order", &next)
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *bolt.Tx) error {
		if exists(tx, bucketCerts, c.ID) || exists(tx, bucketCertSerials, c.Serial) {
			return store.ErrConflict
		}
		if err := checkVersion(tx, bucketOrders, o.ID, o.Version); err != nil {
			return err
		}
		if err := removeJob(tx, o.ID); err != nil {
			return err
		}
		if err := put(tx, bucketCerts, c.ID, certData); err != nil {
			return err
		}
		if err := put(tx, bucketCertSerials, c.Serial, []byte(c.ID)); err != nil {
			return err
		}
		seq, err := appendListedSeq(tx, bucketCertList, c.ID)
		if err != nil {
			return err
		}
		if err := retireAt(tx, bucketRetireCerts, c.NotAfter, c.ID, seq); err != nil {
			return err
		}
		if err := setExpiry(tx, nil, c); err != nil {
			return err
		}
		return put(tx, bucketOrders, o.ID, orderData)
	})
	if err != nil {
		return err
	}
	o.Version = next.Version
	return nil
}

// GetCertificate returns the certificate or ErrNotFound.
func (s *Store) GetCertificate(ctx context.Context, id string) (*store.Certificate, error) {
	var c store.Certificate
	if err := s.getRecord(ctx, bucketCerts, id, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// GetCertificateBySerial returns the certificate with that lower-case hex
// serial or ErrNotFound.
func (s *Store) GetCertificateBySerial(ctx context.Context, serial string) (*store.Certificate, error) {
	var c store.Certificate
	err := s.read(ctx, func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketCertSerials).Get([]byte(serial))
		if id == nil {
			return store.ErrNotFound
		}
		return getJSON(tx, bucketCerts, string(id), &c)
	})
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// UpdateCertificate stores c if the stored Version equals c.Version, then
// increments c.Version. ErrNotFound if the certificate does not exist. A
// changed serial moves the serial index (ErrConflict if the new one is
// taken); the expiry index follows NotAfter and RevokedAt (a revoked
// certificate has no entry).
func (s *Store) UpdateCertificate(ctx context.Context, c *store.Certificate) error {
	next := *c
	next.Version++
	data, err := encode("certificate", &next)
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *bolt.Tx) error {
		var cur store.Certificate
		if err := getJSON(tx, bucketCerts, c.ID, &cur); err != nil {
			return err
		}
		if cur.Version != c.Version {
			return store.ErrConflict
		}
		if cur.Serial != c.Serial {
			if c.Serial == "" || exists(tx, bucketCertSerials, c.Serial) {
				return store.ErrConflict
			}
			if err := del(tx, bucketCertSerials, []byte(cur.Serial)); err != nil {
				return err
			}
			if err := put(tx, bucketCertSerials, c.Serial, []byte(c.ID)); err != nil {
				return err
			}
		}
		if err := setExpiry(tx, &cur, c); err != nil {
			return err
		}
		return put(tx, bucketCerts, c.ID, data)
	})
	if err != nil {
		return err
	}
	c.Version = next.Version
	return nil
}
