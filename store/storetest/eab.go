package storetest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

var eabCases = []testCase{
	{"PutAndGet", testEABPutGet},
	{"UpdateCompareAndSet", testEABUpdateCAS},
	{"ReturnsCopies", testEABCopies},
	{"BindOnCreateAccount", testEABBind},
	{"BindUnknownKey", testEABBindUnknown},
	{"BindTakenKey", testEABBindTaken},
	{"BindIsAtomicWithAccount", testEABBindAtomic},
	{"BindRace", testEABBindRace},
}

func testEABPutGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	k := newEABKey(now)
	require.NoError(t, s.PutEABKey(ctx, k))
	got, err := s.GetEABKey(ctx, k.ID)
	require.NoError(t, err)
	requireSameRecord(t, k, got)

	dup := newEABKey(now)
	dup.ID = k.ID
	require.ErrorIs(t, s.PutEABKey(ctx, dup), store.ErrConflict)
	got, err = s.GetEABKey(ctx, k.ID)
	require.NoError(t, err)
	requireSameRecord(t, k, got, "a refused PutEABKey overwrote the key")
}

func testEABUpdateCAS(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	k := newEABKey(now)
	require.NoError(t, s.PutEABKey(ctx, k))
	stale := *k

	v := k.Version
	k.RevokedAt = now.Add(1)
	require.NoError(t, s.UpdateEABKey(ctx, k))
	require.Equal(t, v+1, k.Version)
	got, err := s.GetEABKey(ctx, k.ID)
	require.NoError(t, err)
	requireSameRecord(t, k, got)

	stale.Note = "stale"
	require.ErrorIs(t, s.UpdateEABKey(ctx, &stale), store.ErrConflict)
	require.Equal(t, v, stale.Version)
	got, err = s.GetEABKey(ctx, k.ID)
	require.NoError(t, err)
	requireSameRecord(t, k, got)
}

func testEABCopies(t *testing.T, s store.Store) {
	ctx := t.Context()
	k := newEABKey(wallNow())
	require.NoError(t, s.PutEABKey(ctx, k))
	want := canonical(k)

	k.HMACKey[0] ^= 0xff
	k.Allow[0] = "*"
	got, err := s.GetEABKey(ctx, k.ID)
	require.NoError(t, err)
	requireSameRecord(t, want, got, "store shares memory with the stored struct")

	got.HMACKey[0] ^= 0xff
	got.Allow[0] = "*"
	got.AccountID = "someone"
	again, err := s.GetEABKey(ctx, k.ID)
	require.NoError(t, err)
	requireSameRecord(t, want, again, "store shares memory with a returned struct")
}

// testEABBind: CreateAccount with EABKeyID binds the key to the account:
// AccountID and BoundAt are set, and the key's Version moves so an update
// prepared before the binding cannot undo it.
func testEABBind(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	k := newEABKey(now)
	require.NoError(t, s.PutEABKey(ctx, k))

	a := newAccount(now)
	a.EABKeyID = k.ID
	require.NoError(t, s.CreateAccount(ctx, a))
	got, err := s.GetAccount(ctx, a.ID)
	require.NoError(t, err)
	requireSameRecord(t, a, got)

	bound, err := s.GetEABKey(ctx, k.ID)
	require.NoError(t, err)
	require.Equal(t, a.ID, bound.AccountID)
	require.False(t, bound.BoundAt.IsZero(), "BoundAt not set")
	require.NotEqual(t, k.Version, bound.Version, "binding did not move the key's Version")
	unbound := *bound
	unbound.AccountID, unbound.BoundAt, unbound.Version = "", k.BoundAt, k.Version
	requireSameRecord(t, k, &unbound, "binding changed more than AccountID, BoundAt and Version")

	k.Note = "prepared before the binding"
	require.ErrorIs(t, s.UpdateEABKey(ctx, k), store.ErrConflict)

	bound.Note = "after the binding"
	require.NoError(t, s.UpdateEABKey(ctx, bound))
	got2, err := s.GetEABKey(ctx, k.ID)
	require.NoError(t, err)
	requireSameRecord(t, bound, got2)
}

// testEABBindUnknown: binding a key that does not exist is ErrNotFound and
// stores no account.
func testEABBindUnknown(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newAccount(wallNow())
	a.EABKeyID = newID("kid")
	require.ErrorIs(t, s.CreateAccount(ctx, a), store.ErrNotFound)
	_, err := s.GetAccount(ctx, a.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetAccountByKey(ctx, a.KeyThumbprint)
	require.ErrorIs(t, err, store.ErrNotFound)
}

// testEABBindTaken: a key binds once; the second account is refused whole.
func testEABBindTaken(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	k := newEABKey(now)
	require.NoError(t, s.PutEABKey(ctx, k))
	first := newAccount(now)
	first.EABKeyID = k.ID
	require.NoError(t, s.CreateAccount(ctx, first))

	second := newAccount(now)
	second.EABKeyID = k.ID
	require.ErrorIs(t, s.CreateAccount(ctx, second), store.ErrConflict)
	_, err := s.GetAccount(ctx, second.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetAccountByKey(ctx, second.KeyThumbprint)
	require.ErrorIs(t, err, store.ErrNotFound)

	got, err := s.GetEABKey(ctx, k.ID)
	require.NoError(t, err)
	require.Equal(t, first.ID, got.AccountID)
}

// testEABBindAtomic: an account refused for its key thumbprint does not
// bind the EAB key.
func testEABBindAtomic(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	holder := newAccount(now)
	require.NoError(t, s.CreateAccount(ctx, holder))
	k := newEABKey(now)
	require.NoError(t, s.PutEABKey(ctx, k))

	a := newAccount(now)
	a.KeyThumbprint = holder.KeyThumbprint
	a.EABKeyID = k.ID
	require.ErrorIs(t, s.CreateAccount(ctx, a), store.ErrConflict)

	got, err := s.GetEABKey(ctx, k.ID)
	require.NoError(t, err)
	requireSameRecord(t, k, got, "a refused account bound the key")
	_, err = s.GetAccount(ctx, a.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
}

// testEABBindRace: of racers creating different accounts with one EAB key,
// exactly one is created and holds the key.
func testEABBindRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	k := newEABKey(now)
	require.NoError(t, s.PutEABKey(ctx, k))
	accts := make([]*store.Account, racers)
	for i := range accts {
		accts[i] = newAccount(now)
		accts[i].EABKeyID = k.ID
	}
	errs := race(racers, func(i int) error { return s.CreateAccount(ctx, accts[i]) })
	w := requireOneWinner(t, errs, store.ErrConflict)

	got, err := s.GetEABKey(ctx, k.ID)
	require.NoError(t, err)
	require.Equal(t, accts[w].ID, got.AccountID)
	for i, a := range accts {
		_, err := s.GetAccountByKey(ctx, a.KeyThumbprint)
		if i == w {
			require.NoError(t, err)
		} else {
			require.ErrorIs(t, err, store.ErrNotFound, "loser %d stored", i)
		}
	}
}
