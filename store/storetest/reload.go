package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

var reloadCases = []testCase{
	{"ListJobs", testListJobs},
	{"PublishCounts", testReloadPublish},
	{"PublishRace", testReloadPublishRace},
}

// testListJobs: every job is listed, claimed or not, until it is deleted.
func testListJobs(t *testing.T, s store.Store) {
	ctx := t.Context()
	ids, err := s.ListJobs(ctx)
	require.NoError(t, err)
	require.Empty(t, ids)
	now := wallNow()
	a, _ := processingOrder(t, s, now)
	b, _ := processingOrder(t, s, now.Add(time.Hour))
	_, err = s.ClaimJob(ctx, "w1", now, lease)
	require.NoError(t, err)
	ids, err = s.ListJobs(ctx)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{a.ID, b.ID}, ids)
	require.NoError(t, s.DeleteJob(ctx, a.ID))
	ids, err = s.ListJobs(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{b.ID}, ids)
}

// testReloadPublish: the count starts at 0 and each publication adds one.
func testReloadPublish(t *testing.T, s store.Store) {
	ctx := t.Context()
	n, err := s.ReloadRequested(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	for want := int64(1); want <= 3; want++ {
		got, err := s.PublishReload(ctx)
		require.NoError(t, err)
		require.Equal(t, want, got)
		n, err := s.ReloadRequested(ctx)
		require.NoError(t, err)
		require.Equal(t, want, n)
	}
}

// testReloadPublishRace: concurrent publications each get their own
// number.
func testReloadPublishRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	got := make([]int64, racers)
	var wg sync.WaitGroup
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := s.PublishReload(ctx)
			if err == nil {
				got[i] = n
			}
		}()
	}
	wg.Wait()
	want := make([]int64, racers)
	for i := range want {
		want[i] = int64(i + 1)
	}
	require.ElementsMatch(t, want, got)
	n, err := s.ReloadRequested(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(racers), n)
}
