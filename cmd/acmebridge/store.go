package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/store/bolt"
)

// storeKeyEnv overrides store.encryption_key_file.
const storeKeyEnv = "ACMEBRIDGE_STORE_KEY"

// openStore opens the configured driver and wraps it so secrets are sealed
// at rest.
func openStore(cfg *configs.Config, log *slog.Logger) (store.Store, error) {
	key, err := storeKey(cfg)
	if err != nil {
		return nil, err
	}
	var raw store.Store
	switch cfg.Store.Driver {
	case "redis":
		raw, err = openRedis(cfg, log)
	default:
		raw, err = bolt.Open(bolt.Options{Path: cfg.Store.Bolt.Path, Logger: log})
	}
	if err != nil {
		return nil, err
	}
	sealed, err := store.Sealed(raw, key)
	if err != nil {
		_ = raw.Close() // unused: the sealing error is the one to report
		return nil, err
	}
	return sealed, nil
}

// storeKey reads the 32-byte key that seals secrets: from the environment,
// else from the key file. With the embedded store the file is created on
// first start; replicas sharing Redis must share one key, so there it must
// exist.
func storeKey(cfg *configs.Config) ([]byte, error) {
	if v := os.Getenv(storeKeyEnv); v != "" {
		return parseKey(v, storeKeyEnv)
	}
	path := cfg.Store.EncryptionKeyFile
	b, err := os.ReadFile(path)
	if err == nil {
		return parseKey(string(b), path)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("store.encryption_key_file: %w", err)
	}
	if cfg.Store.Driver != "bolt" {
		return nil, fmt.Errorf("store.encryption_key_file: %s does not exist; replicas sharing a store need the same key (32 random bytes, hex: e.g. `openssl rand -hex 32 > %s`)", path, path)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store.encryption_key_file: %w", err)
	}
	_, werr := f.WriteString(hex.EncodeToString(key) + "\n")
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	return key, werr
}

// parseKey accepts 32 bytes written as hex or base64 (standard or URL).
func parseKey(s, where string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := hex.DecodeString(s); err == nil && len(b) == 32 {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == 32 {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%s: the store key must be 32 bytes in hex or base64", where)
}
