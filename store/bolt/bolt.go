// Package bolt is the embedded store driver: one bbolt file serving one
// acmebridge process. It is the default driver and the one the quickstart
// uses; several replicas need the Redis driver instead.
//
// Records are stored as JSON, one bucket per kind, with secondary indexes in
// buckets of their own (account key thumbprint, certificate serial, an
// account's orders in creation order, the job queue in due order, every
// record of a kind in creation order, unrevoked certificates by expiry,
// valid authorizations by account, identifier and validation order),
// each written in the transaction that writes its record. Writes
// from concurrent requests are committed in groups with bbolt's Batch, so
// durability costs one disk sync per group rather than per request.
package bolt

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	json "github.com/go-json-experiment/json/v1"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/acmebridge/acmebridge/store"
)

// Bucket names. Values in record buckets are JSON; index buckets map a key to
// a record ID (or to nothing, for the job queue whose key says it all).
var (
	bucketMeta        = []byte("meta")
	bucketAccounts    = []byte("accounts")     // account ID → Account
	bucketAccountKeys = []byte("account_keys") // key thumbprint → account ID
	bucketOrders      = []byte("orders")       // order ID → Order
	bucketOrderIndex  = []byte("order_index")  // account ID, 0, seq (8 bytes BE) → order ID
	bucketOrderPos    = []byte("order_pos")    // order ID → its order_index key
	bucketAuthzs      = []byte("authzs")       // authorization ID → Authorization
	bucketCerts       = []byte("certs")        // certificate ID → Certificate
	bucketCertSerials = []byte("cert_serials") // serial → certificate ID
	bucketEABKeys     = []byte("eab_keys")     // EAB key ID → EABKey
	bucketJobs        = []byte("jobs")         // order ID → Job
	bucketJobQueue    = []byte("job_queue")    // due time (8 bytes BE), order ID → empty
	// The admin listings (see listing.go), added in schema 2.
	bucketAccountList = []byte("account_list") // seq (8 bytes BE) → account ID
	bucketOrderList   = []byte("order_list")   // seq of its order_index key (8 bytes BE) → order ID
	bucketCertList    = []byte("cert_list")    // seq (8 bytes BE) → certificate ID
	bucketEABList     = []byte("eab_list")     // seq (8 bytes BE) → EAB key ID
	bucketCertExpiry  = []byte("cert_expiry")  // NotAfter (12 bytes), certificate ID → empty; unrevoked only
	// Named secrets (see secrets.go); a new bucket needs no schema change,
	// since Open creates every missing bucket.
	bucketSecrets = []byte("secrets") // name → value (sealed by store.Sealed)
	// Valid authorizations for reuse (see authzreuse.go); Open builds them
	// for a file that predates them.
	bucketAuthzValid    = []byte("authz_valid")     // account, identifier, wildcard (authzValidPrefix), seq (8 bytes BE) → Expires (12 bytes), authorization ID
	bucketAuthzValidPos = []byte("authz_valid_pos") // authorization ID → its authz_valid key
	// Rate-limit buckets (see ratelimit.go).
	bucketRates = []byte("rates") // bucket key → TAT (Unix ns, 8 bytes BE)
	// Validation jobs (see validations.go).
	bucketValidations     = []byte("validations")      // authorization ID → Validation
	bucketValidationQueue = []byte("validation_queue") // LeaseUntil (8 bytes BE), authorization ID → empty
	// Challenge tokens of an upstream CA's http-01 (see challengetokens.go).
	bucketChallengeTokens      = []byte("challenge_tokens")       // token → expiry (Unix ns, 8 bytes BE), key authorization
	bucketChallengeTokenExpiry = []byte("challenge_token_expiry") // expiry (8 bytes BE), token → empty
	// Approval requests (see approvals.go).
	bucketApprovals     = []byte("approvals")      // request ID → ApprovalRequest
	bucketApprovalList  = []byte("approval_list")  // seq (8 bytes BE) → request ID
	bucketApprovalIndex = []byte("approval_index") // account ID, 0, seq (8 bytes BE) → request ID
	// The notification outbox (see notifications.go).
	bucketNotifications = []byte("notifications") // ID → Notification
	bucketNotifyQueue   = []byte("notify_queue")  // due time (8 bytes BE), ID → empty
	bucketNotifyAge     = []byte("notify_age")    // CreatedAt (8 bytes BE), ID → empty
	bucketNotifyDone    = []byte("notify_done")   // ID → forget time (8 bytes BE)
	bucketNotifyForget  = []byte("notify_forget") // forget time (8 bytes BE), ID → empty
	// Retention (see retention.go); Open builds them for a file that
	// predates them.
	bucketRetireOrders = []byte("retire_orders") // Expires (12 bytes), order ID → empty
	bucketRetireAuthzs = []byte("retire_authzs") // Expires or later (12 bytes), authorization ID → empty
	bucketRetireCerts  = []byte("retire_certs")  // NotAfter (12 bytes), certificate ID → its cert_list key
	bucketAuthzUntil   = []byte("authz_until")   // authorization ID → latest Expires of its orders (12 bytes)

	allBuckets = [][]byte{
		bucketMeta, bucketAccounts, bucketAccountKeys, bucketOrders,
		bucketOrderIndex, bucketOrderPos, bucketAuthzs, bucketCerts,
		bucketCertSerials, bucketEABKeys, bucketJobs, bucketJobQueue,
		bucketAccountList, bucketOrderList, bucketCertList, bucketEABList,
		bucketCertExpiry, bucketSecrets, bucketAuthzValid, bucketAuthzValidPos,
		bucketRates, bucketValidations, bucketValidationQueue,
		bucketChallengeTokens, bucketChallengeTokenExpiry,
		bucketApprovals, bucketApprovalList, bucketApprovalIndex,
		bucketNotifications, bucketNotifyQueue, bucketNotifyAge, bucketNotifyDone, bucketNotifyForget,
		bucketRetireOrders, bucketRetireAuthzs, bucketRetireCerts, bucketAuthzUntil,
	}

	keySchema = []byte("schema")
)

// schemaVersion is the layout of the buckets above. Open refuses a file
// written with another layout rather than misreading it, except that it
// upgrades a file of schema 1 (without the listing buckets) by building
// them (see migrateListings).
const schemaVersion = "2"

// lockTimeout is how long Open waits for the file lock before concluding
// that another process holds the file.
const lockTimeout = time.Second

// batchDelay is how long bbolt collects concurrent writes into one commit.
const batchDelay = 2 * time.Millisecond

// Options configures Open.
type Options struct {
	// Path is the database file. Its parent directory is created (0700) if
	// missing, and the file itself is created 0600.
	Path string
	// Logger receives the driver's diagnostics. Nil discards them.
	Logger *slog.Logger
	// MaxUsedNonces bounds the in-memory record of used nonces (default
	// DefaultMaxUsedNonces); when it is full the nonces that expire first
	// are refused (see Store.UseNonce).
	MaxUsedNonces int
}

// Store is the bbolt driver of store.Store. It is safe for concurrent use
// within one process; the file lock keeps other processes out.
//
// Used nonces are not written to the file: a bolt file serves exactly one
// process (see Open), so "used once across all replicas" is "used once in
// this process", and an in-memory map gives that without a disk sync per
// request. The nonce key is made at Open and never stored, so nonces do
// not survive a restart; clients answer the resulting badNonce by retrying
// with a fresh one (RFC 8555 §6.5).
type Store struct {
	db     *bolt.DB
	log    *slog.Logger
	nonces *nonceCache
	// nonceKey is this process's nonce key (see NonceKey).
	nonceKey []byte
	// writers counts write transactions in flight, to choose between Update
	// and Batch (see write).
	writers atomic.Int64
	// rateSpends counts SpendRates calls, to sweep full buckets now and then
	// (see ratelimit.go).
	rateSpends atomic.Int64
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database file at opts.Path. If another
// process holds the file, Open fails after one second with an error saying
// so rather than waiting for it.
func Open(opts Options) (*Store, error) {
	if opts.Path == "" {
		return nil, errorf("path is empty")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o700); err != nil {
		return nil, errorf("create directory for %s: %w", opts.Path, err)
	}
	// The free-page list is kept in memory (a map, not a sorted array: its
	// allocations stay cheap as a swept file fills with free pages) and not
	// written at every commit; bbolt rebuilds it by scanning the file when
	// it opens (0.35 s for a 350 MB file here), as etcd runs bbolt. In
	// make soak-http's growing store this kept throughput and p99 from
	// sagging as the file grew (docs/performance.md).
	db, err := bolt.Open(opts.Path, 0o600, &bolt.Options{Timeout: lockTimeout, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, errorf("%s is in use by another process", opts.Path)
	}
	if err != nil {
		return nil, errorf("open %s: %w", opts.Path, err)
	}
	// Concurrent writes are grouped into one transaction and one disk sync
	// (Batch); bbolt's default 10 ms collection window dominated issuance
	// latency under load (an issuance makes several writes in sequence), so
	// a group is committed after 2 ms.
	db.MaxBatchDelay = batchDelay
	err = db.Update(func(tx *bolt.Tx) error {
		backfill := tx.Bucket(bucketMeta) != nil && tx.Bucket(bucketAuthzValid) == nil
		backfillRetire := tx.Bucket(bucketMeta) != nil && tx.Bucket(bucketRetireOrders) == nil
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		if backfill {
			if err := backfillAuthzValid(tx); err != nil {
				return fmt.Errorf("index valid authorizations: %w", err)
			}
		}
		if backfillRetire {
			if err := backfillRetention(tx); err != nil {
				return fmt.Errorf("index records for retention: %w", err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch v := meta.Get(keySchema); {
		case v == nil:
			return meta.Put(keySchema, []byte(schemaVersion))
		case string(v) == "1":
			if err := migrateListings(tx); err != nil {
				return fmt.Errorf("upgrade schema 1 to %s: %w", schemaVersion, err)
			}
			log.Info("bolt store upgraded", "path", opts.Path, "schema", schemaVersion)
			return meta.Put(keySchema, []byte(schemaVersion))
		case string(v) != schemaVersion:
			return fmt.Errorf("schema version %q, this build reads %q", v, schemaVersion)
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, errorf("initialise %s: %w", opts.Path, err)
	}
	log.Debug("bolt store opened", "path", opts.Path)
	nonceKey := make([]byte, 32)
	if _, err := rand.Read(nonceKey); err != nil {
		_ = db.Close()
		return nil, errorf("nonce key: %w", err)
	}
	return &Store{db: db, log: log, nonces: newNonceCache(log, opts.MaxUsedNonces), nonceKey: nonceKey}, nil
}

// Ping reports whether the database is open.
func (s *Store) Ping(ctx context.Context) error {
	return s.read(ctx, func(*bolt.Tx) error { return nil })
}

// Close closes the database file and releases its lock.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return errorf("close: %w", err)
	}
	return nil
}

// errorf formats an error with the driver's prefix.
func errorf(format string, args ...any) error {
	return fmt.Errorf("store/bolt: "+format, args...)
}

// isSentinel reports whether err is (or wraps) one of the store's sentinel
// errors, which finish passes on as they are.
func isSentinel(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNoJob)
}

// finish prefixes err unless it is nil or a sentinel.
func finish(err error) error {
	if err == nil || isSentinel(err) {
		return err
	}
	return errorf("%w", err)
}

// read runs fn in a read-only transaction.
func (s *Store) read(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return finish(err)
	}
	return finish(s.db.View(fn))
}

// write runs fn in a read-write transaction. fn must return store sentinels
// unwrapped and other errors without the driver prefix.
//
// When other writes are in flight, fn joins a bbolt Batch, which commits
// concurrent writes in one transaction and one disk sync. Batch may run fn
// more than once (when another function in the group fails, the group is
// rolled back and re-run, and the failing one re-runs alone), so fn must
// derive everything from the transaction and set nothing outside it that a
// later run would not overwrite; callers apply results to their arguments
// only after write returns nil. A write with nothing else in flight uses
// Update directly: there is nothing to group it with, and Batch would only
// add its collection delay.
func (s *Store) write(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return finish(err)
	}
	defer s.writers.Add(-1)
	if s.writers.Add(1) == 1 {
		return finish(s.db.Update(fn))
	}
	return finish(s.db.Batch(fn))
}

// getJSON decodes the record under key in bucket into v; ErrNotFound if
// there is none.
func getJSON(tx *bolt.Tx, bucket []byte, key string, v any) error {
	data := tx.Bucket(bucket).Get([]byte(key))
	if data == nil {
		return store.ErrNotFound
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %s %q: %w", bucket, key, err)
	}
	return nil
}

// put stores data (already encoded) under key in bucket.
func put(tx *bolt.Tx, bucket []byte, key string, data []byte) error {
	if err := tx.Bucket(bucket).Put([]byte(key), data); err != nil {
		return fmt.Errorf("put %s %q: %w", bucket, key, err)
	}
	return nil
}

// del removes key from bucket; a missing key is not an error.
func del(tx *bolt.Tx, bucket []byte, key []byte) error {
	if err := tx.Bucket(bucket).Delete(key); err != nil {
		return fmt.Errorf("delete %s %q: %w", bucket, key, err)
	}
	return nil
}

// exists reports whether bucket holds key.
func exists(tx *bolt.Tx, bucket []byte, key string) bool {
	return tx.Bucket(bucket).Get([]byte(key)) != nil
}

// versioned decodes only the Version of a stored record.
type versioned struct {
	Version int64 `json:"version"`
}

// checkVersion returns ErrNotFound if bucket has no record under id and
// ErrConflict if its Version is not want.
func checkVersion(tx *bolt.Tx, bucket []byte, id string, want int64) error {
	var cur versioned
	if err := getJSON(tx, bucket, id, &cur); err != nil {
		return err
	}
	if cur.Version != want {
		return store.ErrConflict
	}
	return nil
}

// marshal encodes a record; for use inside a transaction (no prefix).
func marshal(kind string, v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", kind, err)
	}
	return data, nil
}

// encode encodes a record; for use outside a transaction (prefixed error).
func encode(kind string, v any) ([]byte, error) {
	data, err := marshal(kind, v)
	return data, finish(err)
}

// getRecord is the body of every GetX method: decode bucket[id] into v.
func (s *Store) getRecord(ctx context.Context, bucket []byte, id string, v any) error {
	return s.read(ctx, func(tx *bolt.Tx) error {
		return getJSON(tx, bucket, id, v)
	})
}

// casUpdate is the body of the UpdateX methods without indexes: store data
// under id if the stored Version is version.
func (s *Store) casUpdate(ctx context.Context, bucket []byte, id string, version int64, data []byte) error {
	return s.write(ctx, func(tx *bolt.Tx) error {
		if err := checkVersion(tx, bucket, id, version); err != nil {
			return err
		}
		return put(tx, bucket, id, data)
	})
}
