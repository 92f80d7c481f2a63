// Package atomicfile writes files so that readers see the old contents or
// the new, never a mix, and a crash leaves one or the other: a synced
// temporary file in the same directory, renamed into place, the directory
// synced.
package atomicfile

import (
	"os"
	"path/filepath"
)

// WriteTemp writes b to a new synced file of mode perm in dir, named after
// name (".NAME.tmp-*"), and returns its path. On error nothing is left.
func WriteTemp(dir, name string, b []byte, perm os.FileMode) (string, error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return "", err
	}
	path := f.Name()
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return "", err
	}
	return path, nil
}

// Replace makes path hold b, mode perm: WriteTemp, a rename over path,
// and SyncDir.
func Replace(path string, b []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	t, err := WriteTemp(dir, filepath.Base(path), b, perm)
	if err != nil {
		return err
	}
	if err := os.Rename(t, path); err != nil {
		_ = os.Remove(t)
		return err
	}
	return SyncDir(dir)
}

// SyncDir flushes dir's entries, so renames survive a crash. A file system
// that cannot sync a directory is no reason to fail.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	_ = d.Sync()
	return nil
}
