package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

var notificationCases = []testCase{
	{"EnqueueClaimAck", testNotifyEnqueueClaimAck},
	{"EnqueueOnce", testNotifyEnqueueOnce},
	{"RetryBackoffAndLease", testNotifyRetry},
	{"ClaimRace", testNotifyClaimRace},
	{"Stats", testNotifyStats},
}

// newNotification is a notification of event to a webhook, due at now.
func newNotification(event, target string, now time.Time) *store.Notification {
	return &store.Notification{ID: event + "/webhook:" + target, EventID: event, Type: "certificate.issued",
		Channel: "webhook", Target: target, Body: []byte(`{"id":"` + event + `"}`), CreatedAt: now, NotBefore: now}
}

// testNotifyEnqueueClaimAck: a notification is claimed with a lease,
// whole, and gone once acknowledged.
func testNotifyEnqueueClaimAck(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	_, err := s.ClaimNotification(ctx, "w1", now, lease)
	require.ErrorIs(t, err, store.ErrNoJob)
	n := newNotification(newID("ev"), "hook", now)
	require.NoError(t, s.EnqueueNotifications(ctx, []*store.Notification{n}))
	got, err := s.ClaimNotification(ctx, "w1", now, lease)
	require.NoError(t, err)
	require.Equal(t, n.ID, got.ID)
	require.Equal(t, n.EventID, got.EventID)
	require.Equal(t, n.Body, got.Body)
	require.Equal(t, "webhook", got.Channel)
	require.Equal(t, "hook", got.Target)
	require.Equal(t, 1, got.Attempts)
	require.Equal(t, "w1", got.Owner)
	require.True(t, got.LeaseUntil.Equal(now.Add(lease)))
	require.True(t, got.CreatedAt.Equal(now))
	_, err = s.ClaimNotification(ctx, "w2", now, lease)
	require.ErrorIs(t, err, store.ErrNoJob, "leased")
	require.ErrorIs(t, s.AckNotification(ctx, n.ID, "w2"), store.ErrConflict)
	require.NoError(t, s.AckNotification(ctx, n.ID, "w1"))
	require.ErrorIs(t, s.AckNotification(ctx, n.ID, "w1"), store.ErrNotFound)
	_, err = s.ClaimNotification(ctx, "w2", now.Add(2*lease), lease)
	require.ErrorIs(t, err, store.ErrNoJob, "acknowledged")
}

// testNotifyEnqueueOnce: an ID queued or acknowledged is not queued again.
func testNotifyEnqueueOnce(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	n := newNotification(newID("ev"), "hook", now)
	other := newNotification(n.EventID, "other", now)
	require.NoError(t, s.EnqueueNotifications(ctx, []*store.Notification{n}))
	require.NoError(t, s.EnqueueNotifications(ctx, []*store.Notification{n, other}))
	st, err := s.NotificationStats(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, st.Queued)
	for range 2 {
		got, err := s.ClaimNotification(ctx, "w1", now, lease)
		require.NoError(t, err)
		require.NoError(t, s.AckNotification(ctx, got.ID, "w1"))
	}
	require.NoError(t, s.EnqueueNotifications(ctx, []*store.Notification{n}))
	_, err = s.ClaimNotification(ctx, "w1", now.Add(time.Hour), lease)
	require.ErrorIs(t, err, store.ErrNoJob, "an acknowledged ID is remembered")
}

// testNotifyRetry: a retried notification is due at the time given, with
// its error; a lease that ends lets another owner take it over.
func testNotifyRetry(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	n := newNotification(newID("ev"), "hook", now)
	require.NoError(t, s.EnqueueNotifications(ctx, []*store.Notification{n}))
	got, err := s.ClaimNotification(ctx, "w1", now, lease)
	require.NoError(t, err)
	require.ErrorIs(t, s.RetryNotification(ctx, n.ID, "w2", now.Add(time.Minute), "x"), store.ErrConflict)
	require.NoError(t, s.RetryNotification(ctx, got.ID, "w1", now.Add(10*time.Second), "503 Service Unavailable"))
	_, err = s.ClaimNotification(ctx, "w1", now.Add(9*time.Second), lease)
	require.ErrorIs(t, err, store.ErrNoJob, "not due before the backoff")
	got, err = s.ClaimNotification(ctx, "w2", now.Add(10*time.Second), lease)
	require.NoError(t, err)
	require.Equal(t, 2, got.Attempts)
	require.Equal(t, "503 Service Unavailable", got.LastError)
	require.True(t, got.NotBefore.Equal(now.Add(10*time.Second)))
	// w2 dies: its lease ends and w3 takes the notification over.
	later := now.Add(10*time.Second + lease)
	got, err = s.ClaimNotification(ctx, "w3", later, lease)
	require.NoError(t, err)
	require.Equal(t, 3, got.Attempts)
	require.ErrorIs(t, s.AckNotification(ctx, n.ID, "w2"), store.ErrConflict, "a lost lease")
	require.NoError(t, s.AckNotification(ctx, n.ID, "w3"))
}

// testNotifyClaimRace: racing claimers get the notification once.
func testNotifyClaimRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	require.NoError(t, s.EnqueueNotifications(ctx, []*store.Notification{newNotification(newID("ev"), "hook", now)}))
	var mu sync.Mutex
	won := 0
	var wg sync.WaitGroup
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.ClaimNotification(ctx, "w"+string(rune('a'+i)), now, lease); err == nil {
				mu.Lock()
				won++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 1, won)
}

// testNotifyStats: the count and the oldest enqueue time follow the
// outbox.
func testNotifyStats(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	st, err := s.NotificationStats(ctx)
	require.NoError(t, err)
	require.Zero(t, st.Queued)
	require.True(t, st.Oldest.IsZero())
	old := newNotification(newID("ev"), "hook", now.Add(-time.Hour))
	young := newNotification(newID("ev"), "hook", now)
	require.NoError(t, s.EnqueueNotifications(ctx, []*store.Notification{young, old}))
	st, err = s.NotificationStats(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, st.Queued)
	require.WithinDuration(t, now.Add(-time.Hour), st.Oldest, time.Millisecond)
	got, err := s.ClaimNotification(ctx, "w1", now, lease)
	require.NoError(t, err)
	require.Equal(t, old.ID, got.ID, "due soonest first")
	require.NoError(t, s.AckNotification(ctx, got.ID, "w1"))
	st, err = s.NotificationStats(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Queued)
	require.WithinDuration(t, now, st.Oldest, time.Millisecond)
}
