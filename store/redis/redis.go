// Package redis is the Redis store driver: the one several acmebridge
// replicas share. It is built on go-redis/v9's UniversalClient, so one
// configuration serves a single server, Sentinel (Options.MasterName) and
// Redis Cluster (several Options.Addrs, or Options.Cluster). It needs Redis
// 6.2 or later (GETDEL).
//
// # Layout
//
// Every key is KeyPrefix + "{acmebridge}:" + kind + ":" + id. Records are
// hashes: field "v" holds the Version and "d" the record as JSON, plus the
// fields a script must read or change without decoding JSON (an account's key
// thumbprint, a certificate's serial, an EAB key's binding, an
// authorization's status and expiry). Jobs are hashes
// of plain fields, because claiming one changes several of them. Indexes are
// keys of their own: key thumbprint → account ID, serial → certificate ID, a
// sorted set per account of its order IDs scored by a store-wide sequence
// (the listing order), a sorted set per kind (accounts, orders, certificates,
// EAB keys) of every record's ID scored by the same sequence (the admin
// listing), a sorted set of unrevoked certificates ordered by NotAfter, a
// sorted set of jobs ordered by when each is next due, and a sorted set of
// orders that carry a TTL, so index entries go with the orders, and a sorted
// set per account, identifier and wildcard flag of the valid authorizations
// in the order they became valid, for reuse (see authzreuse.go). The key
// authorizations the relay presents to an upstream CA's http-01 are
// strings with a TTL (challengetokens.go); they do not wait for replicas
// (durability.go): one lost in a failover fails that upstream validation,
// which the issuance job retries.
//
// # Atomicity
//
// Every change the contract calls atomic runs as one Lua script (EVALSHA,
// falling back to EVAL after a script-cache flush): nothing is read into Go
// and written back. Consuming a nonce is one GETDEL. Each operation is one
// round trip. Retries of failed commands are disabled, because a blind retry
// of a write that had in fact run would report a false conflict.
//
// # Redis Cluster: one hash slot
//
// Scripts touch several objects at once (an account, its key index and an
// EAB key; an order and its authorizations; a certificate, its serial, its
// order and the order's job), and the job queue and order listings are
// store-wide. Redis Cluster runs a script only when all its keys are in one
// hash slot, so every key of a store carries the same hash tag,
// "{acmebridge}": the whole store lives in one slot, on one master (and its
// replicas). Cluster then gives high availability and automatic failover,
// not write scaling: the store's load goes to one shard. That is the price
// of cross-object atomicity without distributed transactions, and the load
// of an ACME front end (a few commands per request) is far below what one
// Redis master serves. Scripts receive their keys in KEYS so clients route
// them; the few keys a script can only find while it runs (the job it picks
// from the queue, the old index entry of a moved key, an order found by the
// expiry sweep, the authorizations of an index of valid ones) are built in
// Lua from the same tagged prefix, or read from a field a script wrote
// (the index an authorization was in), so they are in the same slot.
//
// # Expiry
//
// Nonces carry a TTL of their expiry. Orders and authorizations carry a TTL
// of their Expires plus a grace period (7 days, so clients can still read
// what happened), at least an hour, set when stored and refreshed when
// updated. An order becoming valid loses its TTL, and so do its
// authorizations: issued orders, their authorizations and certificates
// leave by Sweep once their retention ended (retention.go, driven by the
// caller's clock); accounts and EAB keys are kept. Listings never grow without bound: creating an order sweeps a few
// expired orders out of their accounts' listings and the listing of all
// orders, and a listing skips and drops entries whose order has expired. A job whose order expired is
// dropped when ClaimJob meets it. An index of valid authorizations carries
// the longest TTL of the authorizations added to it, and drops entries
// whose authorization expired or stopped being valid when it is written
// or read.
//
// # Running Redis for it
//
// The store is the only copy of accounts, certificates and queued jobs, so
// the Redis serving it should persist (appendonly yes; appendfsync always
// makes every acknowledged write durable, and Redis then syncs once per
// event-loop pass for all the writes in it, the grouping bolt gets from
// Batch) and must not evict keys (maxmemory-policy noeviction: an evicting
// policy would drop records, or with volatile-* policies pending orders and
// nonces). With Sentinel or Cluster, replication is asynchronous: a write
// acknowledged just before a failover can be lost.
package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	json "github.com/go-json-experiment/json/v1"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/acmebridge/acmebridge/store"
)

// DefaultKeyPrefix is the key prefix used when Options.KeyPrefix is empty.
const DefaultKeyPrefix = "acmebridge:"

// hashTag follows the prefix in every key; see the package documentation.
const hashTag = "{acmebridge}:"

const (
	// grace is how long an order or authorization is kept past its Expires.
	grace = 7 * 24 * time.Hour
	// minRecordTTL is the least TTL an expiring record is stored with, so a
	// record written after its grace ended is still readable for a while.
	minRecordTTL = time.Hour
	// minNonceTTL is the least TTL of a used nonce's key. Whether a nonce
	// is still good is decided by the expiry it carries; the TTL only
	// removes the record of its use once that has passed.
	minNonceTTL = time.Second
)

// Options configures Open.
type Options struct {
	// Addrs are host:port addresses: one server, the Sentinels (with
	// MasterName), or Cluster nodes (several addresses, or Cluster set).
	Addrs []string
	// MasterName selects Sentinel: the name of the monitored master.
	MasterName string
	// Cluster forces Redis Cluster mode even with one seed address.
	Cluster bool
	// Username and Password authenticate to the data nodes (ACL or
	// requirepass). With Sentinel, the Sentinels are assumed to need none.
	Username, Password string
	// DB is the database number (single server and Sentinel only).
	DB int
	// TLS, when set, is used for every connection.
	TLS *tls.Config
	// KeyPrefix starts every key; empty means DefaultKeyPrefix. It must not
	// contain '{' or '}' (the hash tag that follows it must be the key's).
	KeyPrefix string
	// PoolSize is the number of connections per node; 0 means go-redis's
	// default (10 per CPU).
	PoolSize int
	// DialTimeout, ReadTimeout and WriteTimeout bound network operations;
	// zero means go-redis's defaults (5 s each in v9.23; a failed dial is
	// tried 5 times). Context deadlines are honoured as well, and are what
	// bounds a request when Redis does not answer.
	DialTimeout, ReadTimeout, WriteTimeout time.Duration
	// WaitReplicas, when above zero, makes every write a promise depends
	// on wait (WAIT) until that many replicas acknowledged it, within
	// WaitTimeout (DefaultWaitTimeout when zero), or fail with
	// ErrNotReplicated: see durability.go. WaitTimeout must be shorter than
	// ReadTimeout.
	WaitReplicas int
	WaitTimeout  time.Duration
	// Logger receives the driver's diagnostics. Nil discards them.
	Logger *slog.Logger
}

// Store is the Redis driver of store.Store. It is safe for concurrent use,
// and any number of Stores in any number of processes may share one Redis.
type Store struct {
	c   redis.UniversalClient
	log *slog.Logger
	// base is KeyPrefix + hashTag: every key starts with it.
	base string
	// grace and minTTL are the constants above; fields so tests can shorten
	// them.
	grace, minTTL time.Duration
	// waitReplicas and waitTimeout are Options.WaitReplicas and
	// WaitTimeout (durability.go); notReplicated counts the writes that
	// came back short, master the master last seen by Ping.
	waitReplicas  int
	waitTimeout   time.Duration
	notReplicated atomic.Uint64
	master        masterWatch
}

var _ store.Store = (*Store)(nil)

// Open connects to Redis as opts says and pings it once.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if len(opts.Addrs) == 0 {
		return nil, errorf("no address given")
	}
	if strings.ContainsAny(opts.KeyPrefix, "{}") {
		return nil, errorf("key prefix %q contains '{' or '}'", opts.KeyPrefix)
	}
	if opts.WaitReplicas < 0 || opts.WaitTimeout < 0 {
		return nil, errorf("wait replicas and wait timeout must not be negative")
	}
	if opts.WaitReplicas > 0 && opts.WaitTimeout == 0 {
		opts.WaitTimeout = DefaultWaitTimeout
	}
	if read := opts.ReadTimeout; opts.WaitReplicas > 0 && read > 0 && opts.WaitTimeout >= read {
		return nil, errorf("wait timeout %s must be shorter than the read timeout %s", opts.WaitTimeout, read)
	}
	c := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:                 opts.Addrs,
		MasterName:            opts.MasterName,
		IsClusterMode:         opts.Cluster,
		Username:              opts.Username,
		Password:              opts.Password,
		DB:                    opts.DB,
		TLSConfig:             opts.TLS,
		PoolSize:              opts.PoolSize,
		DialTimeout:           opts.DialTimeout,
		ReadTimeout:           opts.ReadTimeout,
		WriteTimeout:          opts.WriteTimeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
	s := NewFromClient(c, opts.KeyPrefix)
	s.waitReplicas, s.waitTimeout = opts.WaitReplicas, opts.WaitTimeout
	if opts.Logger != nil {
		s.log = opts.Logger
	}
	if err := s.Ping(ctx); err != nil {
		if !errors.Is(err, errNotReady) {
			_ = c.Close()
			return nil, err
		}
		// Not ready (Ping says so at /readyz), but this may pass (a
		// failover, a replica restarting): start, and let writes fail
		// until it has.
		s.log.Warn("redis: "+err.Error(), "wait_replicas", s.waitReplicas)
	}
	s.warnUndurable(ctx, opts.MasterName != "")
	s.log.Debug("redis store opened", "addrs", opts.Addrs, "master", opts.MasterName,
		"mode", clientMode(c), "prefix", s.base, "wait_replicas", s.waitReplicas)
	return s, nil
}

// NewFromClient returns a Store on an existing client, which it owns from
// then on (Close closes it). An empty prefix means DefaultKeyPrefix; '{' and
// '}' are dropped from it (see Options.KeyPrefix). It does not contact
// Redis. Open configures its client with retries disabled and context
// deadlines honoured (MaxRetries -1, ContextTimeoutEnabled); a client given
// here should be configured the same way.
func NewFromClient(c redis.UniversalClient, prefix string) *Store {
	prefix = strings.NewReplacer("{", "", "}", "").Replace(prefix)
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	return &Store{
		c:      c,
		log:    slog.New(slog.DiscardHandler),
		base:   prefix + hashTag,
		grace:  grace,
		minTTL: minRecordTTL,
	}
}

// clientMode names the kind of client NewUniversalClient made, for logs.
func clientMode(c redis.UniversalClient) string {
	switch c.(type) {
	case *redis.ClusterClient:
		return "cluster"
	case *redis.Client:
		return "single or sentinel"
	default:
		return fmt.Sprintf("%T", c)
	}
}

// Ping reports whether the Redis serving the store answers, as a master
// (on a Cluster, the master of the store's hash slot, the only one the
// store uses), with the replicas writes wait for online. It logs a change
// of master (MasterChanges).
func (s *Store) Ping(ctx context.Context) error {
	node, err := s.writeNode(ctx)
	if err != nil {
		return errorf("ping: %w", err)
	}
	if err := node.Ping(ctx).Err(); err != nil {
		return errorf("ping: %w", err)
	}
	return s.checkMaster(ctx, node)
}

// Close closes the client and its connections.
func (s *Store) Close() error {
	if err := s.c.Close(); err != nil {
		return errorf("close: %w", err)
	}
	return nil
}

// Key kinds. A key is base + kind + ":" + id; scripts build the same names
// from base (passed to them as an argument) where noted.
const (
	kindNonce      = "nonce"
	kindAccount    = "acct"    // hash: v, d, tp
	kindAccountKey = "acctkey" // string: account ID (built in Lua)
	kindEAB        = "eab"     // hash: v, d, acct, bound
	kindOrder      = "order"   // hash: v, d (built in Lua)
	kindOrderList  = "orders"  // zset: order ID by sequence (built in Lua)
	kindAuthz      = "authz"   // hash: v, d, st, exp, vi
	kindAuthzValid = "authzok" // zset: valid authorization IDs by sequence
	kindCert       = "cert"    // hash: v, d, serial
	kindSerial     = "serial"  // string: certificate ID (built in Lua)
	kindJob        = "job"     // hash: job fields (built in Lua)
	kindList       = "list"    // zset: a store.Kind's record IDs by sequence
)

// Store-wide keys.
const (
	keyJobQueue   = "jobs"     // zset, all scores 0: due key ":" order ID
	keyOrderSeq   = "orderseq" // counter: the sequence of every listing
	keyExpiring   = "expiring" // zset: orders with a TTL by expiry (ms)
	keyCertExpiry = "certexp"  // zset, all scores 0: expiry key ":" certificate ID
)

// key returns the name of the key of kind for id.
func (s *Store) key(kind, id string) string {
	return s.base + kind + ":" + id
}

// global returns the name of a store-wide key.
func (s *Store) global(name string) string {
	return s.base + name
}

// errorf formats an error with the driver's prefix.
func errorf(format string, args ...any) error {
	return fmt.Errorf("store/redis: "+format, args...)
}

// wrap prefixes err with the driver's name and op, or returns nil.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return errorf("%s: %w", op, err)
}

// encode marshals a record.
func encode(kind string, v any) (string, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return "", errorf("encode %s: %w", kind, err)
	}
	return string(data), nil
}

// version formats a Version for a script.
func version(v int64) string {
	return strconv.FormatInt(v, 10)
}

// formatTime encodes t for a hash field: RFC 3339 with nanoseconds, or ""
// for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339Nano)
}

// parseTime decodes what formatTime made.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// recordTTL is the TTL of an order or authorization that expires at
// expires (zero meaning now): until expires plus the grace period, and at
// least minTTL.
func (s *Store) recordTTL(expires time.Time) time.Duration {
	now := time.Now()
	if expires.IsZero() {
		expires = now
	}
	return max(expires.Sub(now)+s.grace, s.minTTL)
}

// millis formats d in whole milliseconds, at least 1, for PEXPIRE.
func millis(d time.Duration) string {
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10)
}

// getRecord reads the fields of the hash at key (the first must be "d", the
// record's JSON, and the second "v", its Version), decodes "d" into v and
// returns the remaining fields. ErrNotFound if there is no record.
func (s *Store) getRecord(ctx context.Context, op, key string, v any, fields ...string) ([]any, error) {
	vals, err := s.c.HMGet(ctx, key, append([]string{"d", "v"}, fields...)...).Result()
	if err != nil {
		return nil, wrap(op, err)
	}
	return decodeRecord(op, vals, v)
}

// decodeRecord decodes the values of the fields d, v, ... of a record hash
// (as HMGET returns them) into rec, whose Version it sets from v, and returns
// the values after v. ErrNotFound if d is missing.
func decodeRecord(op string, vals []any, rec any) ([]any, error) {
	if len(vals) < 2 || vals[0] == nil {
		return nil, store.ErrNotFound
	}
	d, ok1 := vals[0].(string)
	vs, ok2 := vals[1].(string)
	if !ok1 || !ok2 {
		return nil, errorf("%s: malformed record (%T, %T)", op, vals[0], vals[1])
	}
	if err := json.Unmarshal([]byte(d), rec); err != nil {
		return nil, errorf("%s: decode: %w", op, err)
	}
	ver, err := strconv.ParseInt(vs, 10, 64)
	if err != nil {
		return nil, errorf("%s: malformed version %q", op, vs)
	}
	switch r := rec.(type) {
	case *store.Account:
		r.Version = ver
	case *store.Order:
		r.Version = ver
	case *store.Authorization:
		r.Version = ver
	case *store.Certificate:
		r.Version = ver
	case *store.EABKey:
		r.Version = ver
	case *store.ApprovalRequest:
		r.Version = ver
	default:
		return nil, errorf("%s: no version in %T", op, rec)
	}
	return vals[2:], nil
}

// str returns v as a string; nil (a missing field) is "".
func str(v any) string {
	s, _ := v.(string)
	return s
}

// isNil reports whether err is go-redis's "no value" reply.
func isNil(err error) bool {
	return errors.Is(err, redis.Nil)
}
