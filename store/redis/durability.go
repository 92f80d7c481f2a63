package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Durability: Redis acknowledges a write once the master applied it in
// memory. Its replicas receive it asynchronously and its append-only file
// is synced by appendfsync's rule, so a failover (Sentinel or Cluster
// promoting a replica that lagged) or a crash (appendfsync everysec or no)
// can take back writes already acknowledged: an EAB key's binding, a used
// nonce, an issuance job's claim and in-flight mark, a certificate record.
//
// With Options.WaitReplicas set, every write a promise depends on is sent
// in one pipeline with WAIT on the same connection, and counts as done only
// once that many replicas acknowledged it within Options.WaitTimeout (one
// round trip: the write and WAIT travel together). A write whose WAIT comes
// back short fails with ErrNotReplicated: the request that made it fails
// with 503 and is retried, as after any lost answer; the write itself may
// stand on the master, as it would had the answer been lost on the wire.
// Reads and writes whose loss breaks nothing (rate-limit counters, the
// pruning of listings) do not wait.
//
// WAIT does not make Redis strongly consistent: a replica that received a
// write holds it in memory, and Sentinel and Cluster promote the replica
// that is most up to date. What it gives is that no write acknowledged to a
// client, or relied on by a worker, is lost when the master dies and one of
// WaitReplicas replicas takes over. The master's own disk is the
// operator's: appendfsync always makes every acknowledged write durable on
// a single Redis (WAITAOF, Redis 7.2, is not used: the Redis these tests
// run is 7.0).

// ErrNotReplicated is the error of a write that fewer replicas than
// Options.WaitReplicas acknowledged within Options.WaitTimeout.
var ErrNotReplicated = errors.New("store/redis: write not acknowledged by enough replicas in time")

// errNotReady is Ping's error while the node the store writes to is not a
// master, or has fewer replicas online than Options.WaitReplicas: Redis
// answers, but writes would fail.
var errNotReady = errors.New("store/redis: ping")

// DefaultWaitTimeout is Options.WaitTimeout when it is zero.
const DefaultWaitTimeout = time.Second

// durable sends the command made by cmd and, when the store waits for
// replicas, WAIT after it in one pipeline on one connection to the master
// of the store's slot; it returns the command's own error first, then
// ErrNotReplicated if the WAIT came back short. Without WaitReplicas the
// command is sent as it is.
func (s *Store) durable(ctx context.Context, cmd func(c redis.Cmdable) redis.Cmder) (redis.Cmder, error) {
	if s.waitReplicas == 0 {
		c := cmd(s.c)
		return c, c.Err()
	}
	node, err := s.writeNode(ctx)
	if err != nil {
		return nil, err
	}
	var c redis.Cmder
	var wait *redis.Cmd
	_, err = node.Pipelined(ctx, func(p redis.Pipeliner) error {
		c = cmd(p)
		// Pipeliner has no Wait; the pipeline's read is bounded by the
		// client's read timeout, which Open keeps above WaitTimeout.
		wait = p.Do(ctx, "WAIT", s.waitReplicas, s.waitTimeout.Milliseconds())
		return nil
	})
	if c.Err() != nil {
		return c, c.Err()
	}
	if err != nil && !isNil(err) {
		if cc, ok := s.c.(*redis.ClusterClient); ok {
			// The pipeline went to the node itself, past the Cluster
			// client's own error handling: have it learn the slots
			// again, in case a failover moved the store's.
			cc.ReloadState(ctx)
		}
		return c, err
	}
	n, err := wait.Int64()
	if err != nil {
		return c, err
	}
	if int(n) < s.waitReplicas {
		s.notReplicated.Add(1)
		return c, fmt.Errorf("%w (%d of %d within %s)", ErrNotReplicated, n, s.waitReplicas, s.waitTimeout)
	}
	return c, nil
}

// writeNode is the client of the master that holds the store: the client
// itself for a single server or Sentinel, the master of the store's hash
// slot on a Cluster (WAIT must follow the write on its connection, and a
// Cluster client would send a keyless WAIT to any node).
func (s *Store) writeNode(ctx context.Context) (redis.Cmdable, error) {
	switch c := s.c.(type) {
	case *redis.ClusterClient:
		node, err := c.MasterForKey(ctx, s.base)
		if err != nil {
			return nil, err
		}
		return node, nil
	default:
		return s.c, nil
	}
}

// runDurable runs sc as run does, followed by WAIT (see durable); a Redis
// that lost its script cache (NOSCRIPT) gets the script's text.
func (s *Store) runDurable(ctx context.Context, sc *script, keys []string, args ...any) (any, error) {
	c, err := s.durable(ctx, func(c redis.Cmdable) redis.Cmder { return sc.s.EvalSha(ctx, c, keys, args...) })
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		c, err = s.durable(ctx, func(c redis.Cmdable) redis.Cmder { return sc.s.Eval(ctx, c, keys, args...) })
	}
	if err != nil {
		return nil, err
	}
	return c.(*redis.Cmd).Result()
}

// replicationInfo is what Ping reads from INFO replication of the master.
type replicationInfo struct {
	role   string
	replid string
	// online counts the replicas in state online.
	online int
}

// parseReplication reads INFO replication's answer.
func parseReplication(info string) replicationInfo {
	var r replicationInfo
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch {
		case k == "role":
			r.role = v
		case k == "master_replid":
			r.replid = v
		case strings.HasPrefix(k, "slave") && k != "slave_read_only":
			if _, err := strconv.Atoi(strings.TrimPrefix(k, "slave")); err == nil && strings.Contains(v, "state=online") {
				r.online++
			}
		}
	}
	return r
}

// masterWatch remembers the replication ID of the master last seen by
// Ping, so a failover or restart (a new master, or one that started
// afresh, has a new replication ID) is logged and counted.
type masterWatch struct {
	mu      sync.Mutex
	replid  string
	changes uint64
}

// see records replid and reports whether it differs from the last one
// seen (never on the first).
func (w *masterWatch) see(replid string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	changed := w.replid != "" && replid != "" && replid != w.replid
	if changed {
		w.changes++
	}
	if replid != "" {
		w.replid = replid
	}
	return changed
}

// MasterChanges is how many times Ping found a master with a replication
// ID other than the last one it saw: failovers and restarts of the master,
// as this process noticed them.
func (s *Store) MasterChanges() uint64 {
	s.master.mu.Lock()
	defer s.master.mu.Unlock()
	return s.master.changes
}

// NotReplicated is how many writes failed because fewer replicas than
// Options.WaitReplicas acknowledged them in time.
func (s *Store) NotReplicated() uint64 {
	return s.notReplicated.Load()
}

// checkMaster reads INFO replication of the store's master: it must be a
// master (a node demoted by a failover is refused), it is logged when it
// changed, and with WaitReplicas it must have that many replicas online,
// or every write would fail. A Redis that does not allow INFO (an ACL
// without it) is taken as it answers PING.
func (s *Store) checkMaster(ctx context.Context, node redis.Cmdable) error {
	info, err := node.Info(ctx, "replication").Result()
	if err != nil {
		if redis.HasErrorPrefix(err, "NOPERM") || strings.Contains(err.Error(), "unknown command") {
			if s.waitReplicas > 0 {
				return errorf("ping: INFO is not allowed, so the %d replica(s) durability waits for cannot be checked: %w", s.waitReplicas, err)
			}
			return nil
		}
		return errorf("ping: %w", err)
	}
	r := parseReplication(info)
	if s.master.see(r.replid) {
		s.log.Warn("redis: the master changed (a failover, or a restart of the master)", "replid", r.replid,
			"replicas_online", r.online)
	}
	if r.role != "" && r.role != "master" {
		return fmt.Errorf("%w: the node the store writes to is a %s, not a master (a failover in progress?)", errNotReady, r.role)
	}
	if r.online < s.waitReplicas {
		return fmt.Errorf("%w: %d of the %d replica(s) store.redis.durability waits for are online; writes fail until they are",
			errNotReady, r.online, s.waitReplicas)
	}
	return nil
}

// warnUndurable logs what the Redis serving the store can lose of what it
// acknowledged: a failover on Sentinel or Cluster without WaitReplicas; a
// crash of a single Redis that does not fsync each write (appendfsync
// always) or a restart of one that does not persist at all; and, even with
// WaitReplicas, data nodes without an append-only file, which come back
// empty after a crash and which a second failover can promote (measured:
// docs/operating.md). It returns the warnings, for tests.
func (s *Store) warnUndurable(ctx context.Context, sentinel bool) []string {
	var warn []string
	_, cluster := s.c.(*redis.ClusterClient)
	replicated := cluster || sentinel
	if replicated && s.waitReplicas == 0 {
		warn = append(warn, "replication is asynchronous and store.redis.durability.replicas is 0: a failover can lose writes already acknowledged (used nonces, EAB bindings, issuance marks, certificate records); set it to 1")
	}
	node, err := s.writeNode(ctx)
	if err == nil {
		cfg, err := node.ConfigGet(ctx, "append*").Result()
		// CONFIG is often disabled on managed Redis: then nothing to tell.
		switch {
		case err != nil:
		case cfg["appendonly"] != "yes" && replicated && s.waitReplicas > 0:
			warn = append(warn, "the Redis master runs without appendonly: a node that crashes comes back empty, and a second failover while it resyncs can promote it and empty the store; set appendonly yes on every data node")
		case cfg["appendonly"] != "yes" && !replicated:
			warn = append(warn, "Redis runs without appendonly: a restart of Redis loses the whole store unless its snapshots are recent; set appendonly yes and appendfsync always")
		case cfg["appendonly"] == "yes" && cfg["appendfsync"] != "always" && !replicated:
			warn = append(warn, fmt.Sprintf("Redis syncs its append-only file with appendfsync %s: a crash of its host can lose the writes of the last second, already acknowledged; set appendfsync always", cfg["appendfsync"]))
		}
	}
	for _, w := range warn {
		s.log.Warn("redis: " + w)
	}
	return warn
}
