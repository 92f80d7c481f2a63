package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/store/redis"
)

// openRedis opens the Redis driver from store.redis: the password from a
// file or the environment, TLS from files.
func openRedis(cfg *configs.Config, log *slog.Logger) (store.Store, error) {
	r := cfg.Store.Redis
	opts := redis.Options{
		Addrs: r.Addrs, MasterName: r.MasterName, Username: r.Username, DB: r.DB,
		KeyPrefix: r.KeyPrefix, PoolSize: r.PoolSize, DialTimeout: r.DialTimeout.D(),
		ReadTimeout: r.ReadTimeout.D(), WriteTimeout: r.WriteTimeout.D(), Logger: log,
		WaitReplicas: r.Durability.Replicas, WaitTimeout: r.Durability.Timeout.D(),
	}
	switch {
	case r.PasswordFile != "":
		b, err := os.ReadFile(r.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("store.redis.password_file: %w", err)
		}
		opts.Password = strings.TrimRight(string(b), "\r\n")
	case r.PasswordEnv != "":
		opts.Password = os.Getenv(r.PasswordEnv)
		if opts.Password == "" {
			return nil, fmt.Errorf("store.redis.password_env: %s is empty", r.PasswordEnv)
		}
	}
	if r.TLS.Enabled {
		t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: r.TLS.ServerName}
		if r.TLS.CAFile != "" {
			pem, err := os.ReadFile(r.TLS.CAFile)
			if err != nil {
				return nil, fmt.Errorf("store.redis.tls.ca_file: %w", err)
			}
			t.RootCAs = x509.NewCertPool()
			if !t.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("store.redis.tls.ca_file: %s holds no certificate", r.TLS.CAFile)
			}
		}
		if r.TLS.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(r.TLS.CertFile, r.TLS.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("store.redis.tls: %w", err)
			}
			t.Certificates = []tls.Certificate{cert}
		}
		opts.TLS = t
	}
	goredis.SetLogger(slogPrintf{log.With("component", "go-redis")})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return redis.Open(ctx, opts)
}

// slogPrintf routes go-redis's own messages to the server's log.
type slogPrintf struct{ log *slog.Logger }

func (l slogPrintf) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(format, v...))
}

// redisHealth is what the Redis driver counts about failovers and
// replication (store/redis: MasterChanges, NotReplicated).
type redisHealth interface {
	MasterChanges() uint64
	NotReplicated() uint64
}

// registerRedisMetrics registers the Redis driver's failover and
// durability counters, read from st when it is (a wrapper of) that driver;
// with another store they stay 0 (bolt has no failover), so the alerting
// rules find their series on every server.
func registerRedisMetrics(reg prometheus.Registerer, st store.Store) {
	var h redisHealth = noRedis{}
	for st != nil {
		if rh, ok := st.(redisHealth); ok {
			h = rh
			break
		}
		u, ok := st.(interface{ Unwrap() store.Store })
		if !ok {
			break
		}
		st = u.Unwrap()
	}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "acmebridge_store_master_changes_total",
			Help: "Times this replica found the Redis master changed (a failover, or a restart of the master), by its replication ID, at a readiness check or scrape; 0 with bolt."},
			func() float64 { return float64(h.MasterChanges()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "acmebridge_store_writes_not_replicated_total",
			Help: "Writes that failed because fewer replicas than store.redis.durability.replicas acknowledged them in time; 0 with bolt."},
			func() float64 { return float64(h.NotReplicated()) }))
}

// noRedis is the counters of a store that is not Redis: always 0.
type noRedis struct{}

func (noRedis) MasterChanges() uint64 { return 0 }
func (noRedis) NotReplicated() uint64 { return 0 }
