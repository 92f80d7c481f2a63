package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

var certCases = []testCase{
	{"PutAndGet", testCertPut},
	{"PutForOrderWithoutJob", testCertPutNoJob},
	{"SerialTaken", testCertSerialTaken},
	{"DuplicateID", testCertDuplicateID},
	{"OrderMoved", testCertOrderMoved},
	{"PutRace", testCertRace},
	{"UpdateCompareAndSet", testCertUpdateCAS},
	{"ReturnsCopies", testCertCopies},
}

// processingOrder returns an order in state processing with its job queued,
// as stored.
func processingOrder(t *testing.T, s store.Store, now time.Time) (*store.Order, *store.Job) {
	t.Helper()
	o := createOrderIn(t, s, store.StatusReady, now)
	o.Status = store.StatusProcessing
	j := &store.Job{OrderID: o.ID, NotBefore: now}
	require.NoError(t, s.EnqueueJob(t.Context(), j, o))
	return o, j
}

// issued returns the certificate for o and o pointing at it, unstored.
func issued(o *store.Order, now time.Time) (*store.Certificate, *store.Order) {
	c := newCertificate(o.AccountID, o.ID, now)
	next := *o
	next.Status = store.StatusValid
	next.Upstream = "dev"
	next.CertificateID = c.ID
	return c, &next
}

// testCertPut: the certificate, its serial, the order pointing at it and the
// removal of the order's job happen together.
func testCertPut(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	o, _ := processingOrder(t, s, now)
	c, next := issued(o, now)
	require.NoError(t, s.PutCertificate(ctx, c, next))
	require.Equal(t, o.Version+1, next.Version)

	requireSameRecord(t, next, mustGetOrder(t, s, o.ID))
	got, err := s.GetCertificate(ctx, c.ID)
	require.NoError(t, err)
	requireSameRecord(t, c, got)
	got, err = s.GetCertificateBySerial(ctx, c.Serial)
	require.NoError(t, err)
	requireSameRecord(t, c, got)

	_, err = s.GetJob(ctx, o.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "job left after its certificate")
	_, err = s.ClaimJob(ctx, "worker", now.Add(time.Hour), time.Minute)
	require.ErrorIs(t, err, store.ErrNoJob, "job still claimable after its certificate")
}

func testCertPutNoJob(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	o := createOrderIn(t, s, store.StatusProcessing, now)
	c, next := issued(o, now)
	require.NoError(t, s.PutCertificate(ctx, c, next))
	requireSameRecord(t, next, mustGetOrder(t, s, o.ID))
}

// testCertSerialTaken: a taken serial refuses the whole step: no
// certificate, the order and its job untouched.
func testCertSerialTaken(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	o1, _ := processingOrder(t, s, now)
	c1, next1 := issued(o1, now)
	require.NoError(t, s.PutCertificate(ctx, c1, next1))

	o2, j2 := processingOrder(t, s, now)
	c2, next2 := issued(o2, now)
	c2.Serial = c1.Serial
	require.ErrorIs(t, s.PutCertificate(ctx, c2, next2), store.ErrConflict)
	require.Equal(t, o2.Version, next2.Version, "a refused PutCertificate changed the order's Version")

	requireSameRecord(t, o2, mustGetOrder(t, s, o2.ID))
	requireSameRecord(t, j2, mustGetJob(t, s, o2.ID))
	_, err := s.GetCertificate(ctx, c2.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	got, err := s.GetCertificateBySerial(ctx, c1.Serial)
	require.NoError(t, err)
	requireSameRecord(t, c1, got)
}

func testCertDuplicateID(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	o1, _ := processingOrder(t, s, now)
	c1, next1 := issued(o1, now)
	require.NoError(t, s.PutCertificate(ctx, c1, next1))

	o2, _ := processingOrder(t, s, now)
	c2, next2 := issued(o2, now)
	c2.ID = c1.ID
	require.ErrorIs(t, s.PutCertificate(ctx, c2, next2), store.ErrConflict)
	requireSameRecord(t, o2, mustGetOrder(t, s, o2.ID))
	_, err := s.GetCertificateBySerial(ctx, c2.Serial)
	require.ErrorIs(t, err, store.ErrNotFound)
	got, err := s.GetCertificate(ctx, c1.ID)
	require.NoError(t, err)
	requireSameRecord(t, c1, got)
}

// testCertOrderMoved: a stale order refuses the whole step.
func testCertOrderMoved(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	o, j := processingOrder(t, s, now)
	c, next := issued(o, now)

	o.Error = &store.Problem{Type: "urn:ietf:params:acme:error:serverInternal", Detail: "moved"}
	require.NoError(t, s.UpdateOrder(ctx, o))
	require.ErrorIs(t, s.PutCertificate(ctx, c, next), store.ErrConflict)

	requireSameRecord(t, o, mustGetOrder(t, s, o.ID))
	requireSameRecord(t, j, mustGetJob(t, s, o.ID))
	_, err := s.GetCertificate(ctx, c.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetCertificateBySerial(ctx, c.Serial)
	require.ErrorIs(t, err, store.ErrNotFound)
}

// testCertRace: of racers storing different certificates for one order,
// one wins: an order gets one certificate.
func testCertRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	o, _ := processingOrder(t, s, now)
	certs := make([]*store.Certificate, racers)
	orders := make([]*store.Order, racers)
	for i := range racers {
		certs[i], orders[i] = issued(o, now)
	}
	errs := race(racers, func(i int) error { return s.PutCertificate(ctx, certs[i], orders[i]) })
	w := requireOneWinner(t, errs, store.ErrConflict)

	requireSameRecord(t, orders[w], mustGetOrder(t, s, o.ID))
	for i, c := range certs {
		_, err := s.GetCertificateBySerial(ctx, c.Serial)
		if i == w {
			require.NoError(t, err)
		} else {
			require.ErrorIs(t, err, store.ErrNotFound, "loser %d stored", i)
		}
	}
}

func testCertUpdateCAS(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	o, _ := processingOrder(t, s, now)
	c, next := issued(o, now)
	require.NoError(t, s.PutCertificate(ctx, c, next))
	stale, err := s.GetCertificate(ctx, c.ID)
	require.NoError(t, err)

	v := c.Version
	c.RevokedAt = now.Add(time.Hour + 123)
	c.RevocationReason = 1
	require.NoError(t, s.UpdateCertificate(ctx, c))
	require.Equal(t, v+1, c.Version)
	got, err := s.GetCertificateBySerial(ctx, c.Serial)
	require.NoError(t, err)
	requireSameRecord(t, c, got)

	stale.RevocationReason = 4
	require.ErrorIs(t, s.UpdateCertificate(ctx, stale), store.ErrConflict)
	require.Equal(t, v, stale.Version)
	got, err = s.GetCertificate(ctx, c.ID)
	require.NoError(t, err)
	requireSameRecord(t, c, got)
}

func testCertCopies(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	o, _ := processingOrder(t, s, now)
	c, next := issued(o, now)
	require.NoError(t, s.PutCertificate(ctx, c, next))
	want := canonical(c)

	c.Names[0] = "mutated.example.com"
	c.ChainPEM[0] = 'X'
	got, err := s.GetCertificate(ctx, c.ID)
	require.NoError(t, err)
	requireSameRecord(t, want, got, "store shares memory with the stored struct")

	got.Names[0] = "mutated.example.com"
	got.ChainPEM[0] = 'X'
	again, err := s.GetCertificateBySerial(ctx, c.Serial)
	require.NoError(t, err)
	requireSameRecord(t, want, again, "store shares memory with a returned struct")
}
