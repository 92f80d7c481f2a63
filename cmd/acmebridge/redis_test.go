package main

import (
	"bytes"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/store/bolt"
)

// countingStore is a store with the Redis driver's counters.
type countingStore struct {
	store.Store
	changes, unreplicated uint64
}

func (c *countingStore) MasterChanges() uint64 { return c.changes }
func (c *countingStore) NotReplicated() uint64 { return c.unreplicated }

// TestRegisterRedisMetrics: the driver's counters are found under the
// sealing wrapper serve opens every store through, and a store without
// them (bolt) exports them as 0.
func TestRegisterRedisMetrics(t *testing.T) {
	b, err := bolt.Open(bolt.Options{Path: t.TempDir() + "/s.db"})
	require.NoError(t, err)
	defer b.Close()
	inner := &countingStore{Store: b, changes: 2, unreplicated: 5}
	sealed, err := store.Sealed(inner, bytes.Repeat([]byte{1}, 32))
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	registerRedisMetrics(reg, sealed)
	n, err := testutil.GatherAndCount(reg, "acmebridge_store_master_changes_total", "acmebridge_store_writes_not_replicated_total")
	require.NoError(t, err)
	require.Equal(t, 2, n)
	fams, err := reg.Gather()
	require.NoError(t, err)
	require.Equal(t, 2.0, fams[0].GetMetric()[0].GetCounter().GetValue())
	require.Equal(t, 5.0, fams[1].GetMetric()[0].GetCounter().GetValue())

	plain, err := store.Sealed(b, bytes.Repeat([]byte{1}, 32))
	require.NoError(t, err)
	reg = prometheus.NewRegistry()
	registerRedisMetrics(reg, plain)
	fams, err = reg.Gather()
	require.NoError(t, err)
	require.Len(t, fams, 2)
	for _, f := range fams {
		require.Zero(t, f.GetMetric()[0].GetCounter().GetValue(), f.GetName())
	}
}
