package expiring

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestGetPutExpiry(t *testing.T) {
	now := time.Now()
	m := New[int](10)
	m.Put("a", 1, now.Add(time.Minute), now)
	v, ok := m.Get("a", now)
	require.True(t, ok)
	require.Equal(t, 1, v)
	_, ok = m.Get("a", now.Add(time.Minute))
	require.False(t, ok, "expired at its until")
	require.Zero(t, m.Len(), "an expired entry read is dropped")
	_, ok = m.Get("missing", now)
	require.False(t, ok)
}

// TestBounded: a full map drops what expired, then everything.
func TestBounded(t *testing.T) {
	now := time.Now()
	m := New[string](4)
	m.Put("old", "x", now.Add(time.Second), now)
	for i := range 3 {
		m.Put(fmt.Sprint(i), "y", now.Add(time.Hour), now)
	}
	later := now.Add(time.Minute)
	m.Put("new", "z", later.Add(time.Hour), later)
	require.Equal(t, 4, m.Len(), "the expired one made room")
	m.Put("newer", "z", later.Add(time.Hour), later)
	require.Equal(t, 1, m.Len(), "nothing had expired: it starts over")
	_, ok := m.Get("newer", later)
	require.True(t, ok)
}
