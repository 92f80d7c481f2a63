package main

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReplaceFileAtomic: a reader of the CA bundle while it is rewritten
// (a reload writes it again) sees one whole version or the other, never
// an empty or partial file; the file is 0644.
func TestReplaceFileAtomic(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ca.pem")
	a, b := bytes.Repeat([]byte("A"), 64<<10), bytes.Repeat([]byte("B"), 64<<10)
	require.NoError(t, replaceFile(p, a))
	var wg sync.WaitGroup
	var werr error
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; werr == nil; i++ {
			select {
			case <-stop:
				return
			default:
			}
			werr = replaceFile(p, [][]byte{a, b}[i%2])
		}
	}()
	for range 2000 {
		got, err := os.ReadFile(p)
		require.NoError(t, err)
		require.True(t, bytes.Equal(got, a) || bytes.Equal(got, b), "read %d bytes, neither version", len(got))
	}
	close(stop)
	wg.Wait()
	require.NoError(t, werr)
	st, err := os.Stat(p)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), st.Mode().Perm())
	left, err := filepath.Glob(filepath.Join(filepath.Dir(p), ".ca.pem.tmp-*"))
	require.NoError(t, err)
	require.Empty(t, left, "no temporary file is left behind")
}
