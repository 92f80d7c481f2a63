package storetest

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

var rateCases = []testCase{
	{"BurstThenRefill", testRateBurstThenRefill},
	{"BatchAllOrNothing", testRateBatchAllOrNothing},
	{"CheckOnlyAndRefund", testRateCheckOnlyAndRefund},
	{"MatchesModel", testRateMatchesModel},
	{"Race", testRateRace},
}

// spend1 spends cost on one bucket and returns the decision.
func spend1(t *testing.T, s store.Store, key string, cost int64, lim store.Limit, now time.Time) store.RateDecision {
	t.Helper()
	d, err := s.SpendRates(t.Context(), []store.RateSpend{{Key: key, Cost: cost, Limit: lim}}, now)
	require.NoError(t, err)
	require.Len(t, d, 1)
	return d[0]
}

// testRateBurstThenRefill: a fresh bucket allows Burst events at once, then
// refuses with the time until one event has refilled; after that time one
// more is allowed, and a full period later the whole burst again.
func testRateBurstThenRefill(t *testing.T, s store.Store) {
	lim := store.Limit{Count: 10, Period: 10 * time.Minute, Burst: 3} // one per minute
	key, now := newID("rate"), wallNow()
	for i := range 3 {
		d := spend1(t, s, key, 1, lim, now)
		require.True(t, d.Allowed, "spend %d of the burst", i+1)
		require.EqualValues(t, 2-i, d.Remaining)
	}
	d := spend1(t, s, key, 1, lim, now.Add(10*time.Second))
	require.False(t, d.Allowed, "the burst is spent")
	require.Equal(t, 50*time.Second, d.RetryIn, "one event refills a minute after the first spend")
	require.Zero(t, d.Remaining)

	d = spend1(t, s, key, 1, lim, now.Add(time.Minute))
	require.True(t, d.Allowed, "one event refilled")
	d = spend1(t, s, key, 1, lim, now.Add(time.Minute))
	require.False(t, d.Allowed)

	later := now.Add(time.Hour)
	for i := range 3 {
		require.True(t, spend1(t, s, key, 1, lim, later).Allowed, "full again an hour later: spend %d", i+1)
	}
	other := spend1(t, s, newID("rate"), 1, lim, now)
	require.True(t, other.Allowed, "buckets are independent")
}

// testRateBatchAllOrNothing: a batch with one refused spend records none of
// its spends; a batch that is all allowed records every one.
func testRateBatchAllOrNothing(t *testing.T, s store.Store) {
	lim := store.Limit{Count: 2, Period: time.Hour}
	a, b, now := newID("rate"), newID("rate"), wallNow()
	require.True(t, spend1(t, s, b, 2, lim, now).Allowed)

	d, err := s.SpendRates(t.Context(), []store.RateSpend{
		{Key: a, Cost: 1, Limit: lim}, {Key: b, Cost: 1, Limit: lim}}, now)
	require.NoError(t, err)
	require.True(t, d[0].Allowed)
	require.False(t, d[1].Allowed)
	require.Equal(t, 30*time.Minute, d[1].RetryIn)

	require.EqualValues(t, 1, spend1(t, s, a, 1, lim, now).Remaining,
		"the refused batch did not spend a's event")

	c := newID("rate")
	d, err = s.SpendRates(t.Context(), []store.RateSpend{
		{Key: c, Cost: 1, Limit: lim}, {Key: c, Cost: 1, Limit: lim}}, now)
	require.NoError(t, err)
	require.True(t, d[0].Allowed && d[1].Allowed)
	require.EqualValues(t, 0, d[1].Remaining, "a key named twice is decided after the first spend")
	require.False(t, spend1(t, s, c, 1, lim, now).Allowed, "both spends were recorded")
}

// testRateCheckOnlyAndRefund: a check-only spend answers without recording;
// a refund gives events back, never beyond a full bucket.
func testRateCheckOnlyAndRefund(t *testing.T, s store.Store) {
	lim := store.Limit{Count: 2, Period: time.Hour}
	key, now := newID("rate"), wallNow()
	for range 3 {
		d, err := s.SpendRates(t.Context(), []store.RateSpend{{Key: key, Cost: 1, Limit: lim, CheckOnly: true}}, now)
		require.NoError(t, err)
		require.True(t, d[0].Allowed)
		require.EqualValues(t, 2, d[0].Remaining, "a check records nothing")
	}
	require.True(t, spend1(t, s, key, 2, lim, now).Allowed)
	d, err := s.SpendRates(t.Context(), []store.RateSpend{{Key: key, Cost: 1, Limit: lim, CheckOnly: true}}, now)
	require.NoError(t, err)
	require.False(t, d[0].Allowed, "a check sees the spent bucket")

	require.EqualValues(t, 1, spend1(t, s, key, -1, lim, now).Remaining, "refund one")
	require.True(t, spend1(t, s, key, 1, lim, now).Allowed, "the refunded event is spendable")
	require.EqualValues(t, 2, spend1(t, s, key, -5, lim, now).Remaining, "a refund stops at a full bucket")
	require.EqualValues(t, 2, spend1(t, s, newID("rate"), -1, lim, now).Remaining, "refunding an unknown bucket is harmless")
}

// testRateMatchesModel: a random sequence of batches gives exactly the
// decisions of store.SpendAll run over an in-memory map, the reference
// model (for the Redis driver this checks its Lua against the Go).
func testRateMatchesModel(t *testing.T, s store.Store) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := []string{newID("rate"), newID("rate"), newID("rate")}
	limits := []store.Limit{
		{Count: 5, Period: time.Minute},
		{Count: 3, Period: 7 * time.Second, Burst: 2},
		{Count: 1000, Period: 24 * time.Hour, Burst: 4},
	}
	model := map[string]time.Time{}
	now := wallNow()
	for step := range 300 {
		now = now.Add(time.Duration(rng.IntN(4000)) * time.Millisecond)
		var batch []store.RateSpend
		for range 1 + rng.IntN(3) {
			k := rng.IntN(len(keys))
			batch = append(batch, store.RateSpend{Key: keys[k], Limit: limits[k],
				Cost: int64(rng.IntN(4)) - 1, CheckOnly: rng.IntN(5) == 0})
		}
		want, updates := store.SpendAll(batch, now, func(k string) time.Time { return model[k] })
		for k, v := range updates {
			model[k] = v
		}
		got, err := s.SpendRates(t.Context(), batch, now)
		require.NoError(t, err)
		require.Len(t, got, len(want))
		for i := range want {
			require.Equal(t, want[i].Allowed, got[i].Allowed, "step %d spend %d %+v", step, i, batch[i])
			require.Equal(t, want[i].Remaining, got[i].Remaining, "step %d spend %d", step, i)
			require.Equal(t, want[i].RetryIn, got[i].RetryIn, "step %d spend %d", step, i)
			require.True(t, want[i].TAT.Equal(got[i].TAT), "step %d spend %d: TAT %v, want %v", step, i, got[i].TAT, want[i].TAT)
		}
	}
}

// testRateRace: replicas racing for one bucket get exactly Burst events
// between them.
func testRateRace(t *testing.T, s store.Store) {
	lim := store.Limit{Count: 5, Period: time.Hour}
	key, now := newID("rate"), wallNow()
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range racers * 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := s.SpendRates(t.Context(), []store.RateSpend{{Key: key, Cost: 1, Limit: lim}}, now)
			if err == nil && d[0].Allowed {
				allowed.Add(1)
			}
		}()
	}
	wg.Wait()
	require.EqualValues(t, 5, allowed.Load())
}
