package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/configs"
)

func TestStoreKey(t *testing.T) {
	cfg := configs.Default()
	cfg.Store.EncryptionKeyFile = filepath.Join(t.TempDir(), "k", "store.key")
	k1, err := storeKey(cfg)
	require.NoError(t, err)
	require.Len(t, k1, 32)
	fi, err := os.Stat(cfg.Store.EncryptionKeyFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	k2, err := storeKey(cfg)
	require.NoError(t, err)
	require.Equal(t, k1, k2, "the key is created once and then read")

	t.Setenv(storeKeyEnv, base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))
	k3, err := storeKey(cfg)
	require.NoError(t, err)
	require.Equal(t, bytes.Repeat([]byte{7}, 32), k3)
	t.Setenv(storeKeyEnv, "too-short")
	_, err = storeKey(cfg)
	require.ErrorContains(t, err, "32 bytes")
	t.Setenv(storeKeyEnv, "")

	// Replicas sharing Redis must be given the key: it is never invented.
	cfg.Store.Driver = "redis"
	cfg.Store.EncryptionKeyFile = filepath.Join(t.TempDir(), "missing.key")
	_, err = storeKey(cfg)
	require.ErrorContains(t, err, "does not exist")

	_, err = parseKey(hex.EncodeToString(bytes.Repeat([]byte{1}, 32))+"\n", "x")
	require.NoError(t, err)
}
