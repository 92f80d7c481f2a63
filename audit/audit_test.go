package audit

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRecordAndRead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a", "audit.log")
	l, err := Open(p)
	require.NoError(t, err)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	require.NoError(t, l.Record(Event{Time: t0, Event: AccountCreated, Account: "a1"}))
	require.NoError(t, l.Record(Event{Time: t0.Add(time.Hour), Event: CertIssued, Account: "a1", Names: []string{"WWW.example.com"}, Serial: "ab"}))
	require.NoError(t, l.Record(Event{Time: t0.Add(2 * time.Hour), Event: OrderRefused, Account: "a2", Names: []string{"x.test"}, Reason: "rejectedIdentifier"}))
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Go(func() { _ = l.Record(Event{Event: AdminAction, Reason: strings.Repeat("x", 2000)}) })
	}
	wg.Wait()
	require.NoError(t, l.Close())
	fi, err := os.Stat(p)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	read := func(f Filter) []Event {
		file, err := os.Open(p)
		require.NoError(t, err)
		defer file.Close()
		var out []Event
		bad, err := Read(file, f, func(e Event) { out = append(out, e) })
		require.NoError(t, err)
		require.Zero(t, bad, "concurrent lines never interleave")
		return out
	}
	require.Len(t, read(Filter{}), 53)
	require.Len(t, read(Filter{Account: "a1"}), 2)
	got := read(Filter{Name: "www.example.com"})
	require.Len(t, got, 1)
	require.Equal(t, "ab", got[0].Serial)
	require.Len(t, read(Filter{Since: t0.Add(30 * time.Minute), Until: t0.Add(90 * time.Minute)}), 1)
	require.Len(t, read(Filter{Events: []string{OrderRefused}}), 1)
}

func TestReadToleratesTornLine(t *testing.T) {
	in := `{"time":"2026-01-01T00:00:00Z","event":"account.created"}` + "\n" + `{"time":"2026-01-01T00:00:0`
	var n int
	bad, err := Read(bytes.NewBufferString(in), Filter{}, func(Event) { n++ })
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, 1, bad)
}
