package bolt

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	json "github.com/go-json-experiment/json/v1"

	bolt "go.etcd.io/bbolt"

	"github.com/acmebridge/acmebridge/store"
)

// The admin listings. Each kind has a bucket whose keys are a creation
// sequence (8 bytes big-endian) and whose values are record IDs: accounts,
// certificates and EAB keys take the next sequence of their list bucket,
// orders the sequence of their order_index key. Unrevoked certificates are
// also keys of cert_expiry: their NotAfter (8 bytes of Unix seconds, offset
// so that byte order is time order, then 4 bytes of nanoseconds: exact for
// every time.Time) followed by the certificate ID, so ties list by ID.
//
// List's cursor is the sequence of the last record of the page, base 36;
// ListExpiring's is the last cert_expiry key of the page, base64url.
// Records leave only by Sweep (retention.go), which takes their listing
// entries with them.

// listBuckets maps each kind List accepts to its list bucket.
var listBuckets = map[store.Kind][]byte{
	store.KindAccount:     bucketAccountList,
	store.KindOrder:       bucketOrderList,
	store.KindCertificate: bucketCertList,
	store.KindEABKey:      bucketEABList,
	store.KindApproval:    bucketApprovalList,
}

// expiryLen is the length of the time at the start of a cert_expiry key.
const expiryLen = 12

// seqKey encodes a listing sequence.
func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, seq)
}

// appendListed adds id at the end of the list bucket (whose own sequence
// numbers it).
func appendListed(tx *bolt.Tx, bucket []byte, id string) error {
	b := tx.Bucket(bucket)
	seq, err := b.NextSequence()
	if err != nil {
		return fmt.Errorf("%s sequence: %w", bucket, err)
	}
	if err := b.Put(seqKey(seq), []byte(id)); err != nil {
		return fmt.Errorf("put %s %q: %w", bucket, id, err)
	}
	return nil
}

// expiryTime encodes t so that byte order is time order, to the
// nanosecond.
func expiryTime(t time.Time) []byte {
	b := make([]byte, 0, expiryLen+32)
	// The seconds' sign bit flipped on their two's complement bits (byte
	// order is then numeric order), then the nanoseconds (0 to 999999999).
	b = binary.BigEndian.AppendUint64(b, uint64(t.Unix())^(1<<63))  //nolint:gosec // G115: a bit reinterpretation, on purpose
	return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond())) //nolint:gosec // G115: below 1e9, fits
}

// expiryKey is c's key in cert_expiry.
func expiryKey(c *store.Certificate) []byte {
	return append(expiryTime(c.NotAfter), c.ID...)
}

// setExpiry brings cert_expiry from what it held for old (nil for a new
// certificate) to what it holds for c: an entry while not revoked.
func setExpiry(tx *bolt.Tx, old, c *store.Certificate) error {
	if old != nil && old.RevokedAt.IsZero() {
		if err := del(tx, bucketCertExpiry, expiryKey(old)); err != nil {
			return err
		}
	}
	if !c.RevokedAt.IsZero() {
		return nil
	}
	if err := tx.Bucket(bucketCertExpiry).Put(expiryKey(c), []byte{}); err != nil {
		return fmt.Errorf("put certificate expiry %q: %w", c.ID, err)
	}
	return nil
}

// List lists the IDs of every record of kind, oldest first (in the order
// they were created), at most limit (which must be positive) per page. The
// cursor is "" for the first page and Page.Next for the following ones.
// ErrNotFound for an unknown kind or a malformed cursor.
func (s *Store) List(ctx context.Context, kind store.Kind, cursor string, limit int) (store.Page, error) {
	bucket, ok := listBuckets[kind]
	if !ok {
		return store.Page{}, store.ErrNotFound
	}
	if limit < 1 {
		return store.Page{}, errorf("list %s: limit %d is not positive", kind, limit)
	}
	var start []byte
	if cursor != "" {
		seq, err := strconv.ParseUint(cursor, 36, 64)
		if err != nil {
			return store.Page{}, store.ErrNotFound
		}
		start = seqKey(seq)
	}
	var page store.Page
	err := s.read(ctx, func(tx *bolt.Tx) error {
		page = store.Page{}
		var last []byte
		page.IDs, last = scan(tx.Bucket(bucket).Cursor(), start, nil, limit)
		if last != nil {
			page.Next = strconv.FormatUint(binary.BigEndian.Uint64(last), 36)
		}
		return nil
	})
	if err != nil {
		return store.Page{}, err
	}
	return page, nil
}

// ListNewest is List newest first: the listing bucket read backwards. Its
// cursor is the base-36 sequence of the last record of the previous page,
// as List's.
func (s *Store) ListNewest(ctx context.Context, kind store.Kind, cursor string, limit int) (store.Page, error) {
	bucket, ok := listBuckets[kind]
	if !ok {
		return store.Page{}, store.ErrNotFound
	}
	if limit < 1 {
		return store.Page{}, errorf("list newest %s: limit %d is not positive", kind, limit)
	}
	var before []byte
	if cursor != "" {
		seq, err := strconv.ParseUint(cursor, 36, 64)
		if err != nil {
			return store.Page{}, store.ErrNotFound
		}
		before = seqKey(seq)
	}
	var page store.Page
	err := s.read(ctx, func(tx *bolt.Tx) error {
		page = store.Page{}
		c := tx.Bucket(bucket).Cursor()
		var k, v []byte
		if before == nil {
			k, v = c.Last()
		} else {
			// The first key at or after the cursor; the one before it is
			// the newest older than the cursor.
			if k, _ = c.Seek(before); k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		}
		var last []byte
		for ; k != nil; k, v = c.Prev() {
			if len(page.IDs) == limit {
				page.Next = strconv.FormatUint(binary.BigEndian.Uint64(last), 36)
				return nil
			}
			page.IDs = append(page.IDs, string(v))
			last = k
		}
		return nil
	})
	if err != nil {
		return store.Page{}, err
	}
	return page, nil
}

// ListExpiring lists the IDs of the certificates that are not revoked and
// whose NotAfter is before before, soonest expiry first (ties by ID), at
// most limit (which must be positive) per page. The cursor is "" for the
// first page and Page.Next for the following ones; ErrNotFound if it is
// malformed.
func (s *Store) ListExpiring(ctx context.Context, before time.Time, cursor string, limit int) (store.Page, error) {
	if limit < 1 {
		return store.Page{}, errorf("list expiring: limit %d is not positive", limit)
	}
	var start []byte
	if cursor != "" {
		var err error
		start, err = base64.RawURLEncoding.Strict().DecodeString(cursor)
		if err != nil || len(start) <= expiryLen {
			return store.Page{}, store.ErrNotFound
		}
	}
	end := expiryTime(before)
	var page store.Page
	err := s.read(ctx, func(tx *bolt.Tx) error {
		page = store.Page{}
		var last []byte
		page.IDs, last = scan(tx.Bucket(bucketCertExpiry).Cursor(), start, end, limit)
		if last != nil {
			page.Next = base64.RawURLEncoding.EncodeToString(last)
		}
		return nil
	})
	if err != nil {
		return store.Page{}, err
	}
	return page, nil
}

// scan reads up to limit entries of an ordered bucket after the key start
// (from the first if nil) and before the key end (to the last if nil). It
// returns their IDs (the values of list buckets, the key after the time in
// cert_expiry) and, if more entries follow, a copy of the last key read.
func scan(c *bolt.Cursor, start, end []byte, limit int) ([]string, []byte) {
	var k, v []byte
	if start == nil {
		k, v = c.First()
	} else if k, v = c.Seek(start); bytes.Equal(k, start) {
		k, v = c.Next()
	}
	var ids []string
	var last []byte
	for ; k != nil && (end == nil || bytes.Compare(k, end) < 0); k, v = c.Next() {
		if len(ids) == limit {
			return ids, bytes.Clone(last)
		}
		if end == nil {
			ids = append(ids, string(v))
		} else {
			ids = append(ids, string(k[expiryLen:]))
		}
		last = k
	}
	return ids, nil
}

// migrateListings builds the listing buckets of a file written with schema
// 1, which had none: accounts and EAB keys in CreatedAt order and
// certificates in IssuedAt order (ties by ID: schema 1 kept no creation
// order for them), orders in the creation order their order_index keys
// already held, and the expiry index of every unrevoked certificate.
func migrateListings(tx *bolt.Tx) error {
	type dated struct {
		id string
		at time.Time
	}
	byTime := func(bucket, list []byte, at func(data []byte) (time.Time, error)) error {
		var recs []dated
		err := tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			t, err := at(v)
			if err != nil {
				return fmt.Errorf("decode %s %q: %w", bucket, k, err)
			}
			recs = append(recs, dated{string(k), t})
			return nil
		})
		if err != nil {
			return err
		}
		slices.SortFunc(recs, func(a, b dated) int {
			if c := a.at.Compare(b.at); c != 0 {
				return c
			}
			return strings.Compare(a.id, b.id)
		})
		for _, r := range recs {
			if err := appendListed(tx, list, r.id); err != nil {
				return err
			}
		}
		return nil
	}
	created := func(data []byte) (time.Time, error) {
		var r struct {
			CreatedAt time.Time `json:"createdAt"`
		}
		err := json.Unmarshal(data, &r)
		return r.CreatedAt, err
	}
	if err := byTime(bucketAccounts, bucketAccountList, created); err != nil {
		return err
	}
	if err := byTime(bucketEABKeys, bucketEABList, created); err != nil {
		return err
	}
	err := byTime(bucketCerts, bucketCertList, func(data []byte) (time.Time, error) {
		var c store.Certificate
		if err := json.Unmarshal(data, &c); err != nil {
			return time.Time{}, err
		}
		return c.IssuedAt, setExpiry(tx, nil, &c)
	})
	if err != nil {
		return err
	}
	orders := tx.Bucket(bucketOrderList)
	return tx.Bucket(bucketOrderPos).ForEach(func(id, pos []byte) error {
		if len(pos) < 8 {
			return fmt.Errorf("malformed order position of %q", id)
		}
		if err := orders.Put(bytes.Clone(pos[len(pos)-8:]), bytes.Clone(id)); err != nil {
			return fmt.Errorf("put %s %q: %w", bucketOrderList, id, err)
		}
		return nil
	})
}
