package bolt

import (
	"errors"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// compactTxSize is how many bytes bbolt's Compact copies per write
// transaction.
const compactTxSize = 64 << 20

// Compact rewrites the bolt file at path without its free pages: a bbolt
// file never shrinks on its own, however much Sweep removed. It is
// offline: it fails, saying so, if another process (a running server)
// holds the file. The copy is written to a temporary file in the same
// directory, synced, and renamed over path (then the directory is
// synced), so a crash leaves the old file or the new one, never half of
// one. It returns the file's size before and after.
func Compact(path string) (before, after int64, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, errorf("compact: %w", err)
	}
	before = fi.Size()
	src, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return 0, 0, errorf("compact: %s is in use by another process (stop the server first)", path)
	}
	if err != nil {
		return 0, 0, errorf("compact: open %s: %w", path, err)
	}
	defer func() { _ = src.Close() }() // read only here; the copy's errors are reported
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".compact-*")
	if err != nil {
		return 0, 0, errorf("compact: %w", err)
	}
	tmpPath := tmp.Name()
	_ = tmp.Close()
	done := false
	defer func() {
		if !done {
			_ = os.Remove(tmpPath)
		}
	}()
	if err := os.Chmod(tmpPath, fi.Mode().Perm()); err != nil {
		return 0, 0, errorf("compact: %w", err)
	}
	dst, err := bolt.Open(tmpPath, fi.Mode().Perm(), &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		return 0, 0, errorf("compact: open %s: %w", tmpPath, err)
	}
	if err := bolt.Compact(dst, src, compactTxSize); err != nil {
		_ = dst.Close()
		return 0, 0, errorf("compact %s: %w", path, err)
	}
	if err := dst.Sync(); err != nil {
		_ = dst.Close()
		return 0, 0, errorf("compact: sync: %w", err)
	}
	if err := dst.Close(); err != nil {
		return 0, 0, errorf("compact: close: %w", err)
	}
	if err := os.Rename(tmpPath, path); err != nil {
		return 0, 0, errorf("compact: %w", err)
	}
	done = true
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		serr := d.Sync()
		_ = d.Close()
		if serr != nil {
			return 0, 0, errorf("compact: sync directory: %w", serr)
		}
	}
	fi, err = os.Stat(path)
	if err != nil {
		return 0, 0, errorf("compact: %w", err)
	}
	return before, fi.Size(), nil
}
