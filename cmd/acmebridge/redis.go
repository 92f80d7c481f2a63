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
