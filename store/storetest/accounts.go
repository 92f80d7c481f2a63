package storetest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

var accountCases = []testCase{
	{"CreateAndGet", testAccountCreateAndGet},
	{"DuplicateIDOrKey", testAccountDuplicate},
	{"KeyRace", testAccountKeyRace},
	{"UpdateCompareAndSet", testAccountUpdateCAS},
	{"KeyChangeMovesIndex", testAccountKeyChange},
	{"KeyChangeToAnotherAccountsKey", testAccountKeyChangeConflict},
	{"ReturnsCopies", testAccountCopies},
}

func testAccountCreateAndGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newAccount(wallNow())
	require.NoError(t, s.CreateAccount(ctx, a))

	got, err := s.GetAccount(ctx, a.ID)
	require.NoError(t, err)
	requireSameRecord(t, a, got)
	got, err = s.GetAccountByKey(ctx, a.KeyThumbprint)
	require.NoError(t, err)
	requireSameRecord(t, a, got)
}

// testAccountDuplicate: the ID and the key thumbprint are unique, and a
// refused account leaves nothing behind.
func testAccountDuplicate(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	a := newAccount(now)
	require.NoError(t, s.CreateAccount(ctx, a))

	sameKey := newAccount(now)
	sameKey.KeyThumbprint = a.KeyThumbprint
	require.ErrorIs(t, s.CreateAccount(ctx, sameKey), store.ErrConflict)
	_, err := s.GetAccount(ctx, sameKey.ID)
	require.ErrorIs(t, err, store.ErrNotFound)

	sameID := newAccount(now)
	sameID.ID = a.ID
	require.ErrorIs(t, s.CreateAccount(ctx, sameID), store.ErrConflict)
	_, err = s.GetAccountByKey(ctx, sameID.KeyThumbprint)
	require.ErrorIs(t, err, store.ErrNotFound)

	got, err := s.GetAccountByKey(ctx, a.KeyThumbprint)
	require.NoError(t, err)
	requireSameRecord(t, a, got)
}

// testAccountKeyRace: of racers creating accounts with one key, one wins.
func testAccountKeyRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	tp := newID("tp")
	accts := make([]*store.Account, racers)
	for i := range accts {
		accts[i] = newAccount(now)
		accts[i].KeyThumbprint = tp
	}
	errs := race(racers, func(i int) error { return s.CreateAccount(ctx, accts[i]) })
	w := requireOneWinner(t, errs, store.ErrConflict)

	got, err := s.GetAccountByKey(ctx, tp)
	require.NoError(t, err)
	requireSameRecord(t, accts[w], got)
	for i, a := range accts {
		if i != w {
			_, err := s.GetAccount(ctx, a.ID)
			require.ErrorIs(t, err, store.ErrNotFound, "loser %d stored", i)
		}
	}
}

// testAccountUpdateCAS: an update with the stored Version succeeds and
// increments it; one with a stale Version is ErrConflict and changes
// nothing, not even the caller's Version.
func testAccountUpdateCAS(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newAccount(wallNow())
	require.NoError(t, s.CreateAccount(ctx, a))
	stale, err := s.GetAccount(ctx, a.ID)
	require.NoError(t, err)

	v := a.Version
	a.Contact = []string{"mailto:new@example.com"}
	require.NoError(t, s.UpdateAccount(ctx, a))
	require.Equal(t, v+1, a.Version)
	got, err := s.GetAccount(ctx, a.ID)
	require.NoError(t, err)
	requireSameRecord(t, a, got)

	stale.Status = store.StatusDeactivated
	require.ErrorIs(t, s.UpdateAccount(ctx, stale), store.ErrConflict)
	require.Equal(t, v, stale.Version, "a failed update changed the caller's Version")
	got, err = s.GetAccount(ctx, a.ID)
	require.NoError(t, err)
	requireSameRecord(t, a, got)

	a.Status = store.StatusDeactivated
	require.NoError(t, s.UpdateAccount(ctx, a))
	require.Equal(t, v+2, a.Version)
	got, err = s.GetAccountByKey(ctx, a.KeyThumbprint)
	require.NoError(t, err)
	requireSameRecord(t, a, got)
}

// testAccountKeyChange: a key change (RFC 8555 §7.3.5) moves the index: the
// new key finds the account, the old one finds nothing and is free again.
func testAccountKeyChange(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	a := newAccount(now)
	require.NoError(t, s.CreateAccount(ctx, a))
	oldTP := a.KeyThumbprint

	a.KeyThumbprint = newID("tp")
	a.JWK = []byte(`{"kty":"OKP","crv":"Ed25519","x":"new"}`)
	require.NoError(t, s.UpdateAccount(ctx, a))

	got, err := s.GetAccountByKey(ctx, a.KeyThumbprint)
	require.NoError(t, err)
	requireSameRecord(t, a, got)
	_, err = s.GetAccountByKey(ctx, oldTP)
	require.ErrorIs(t, err, store.ErrNotFound, "old key still finds the account")

	b := newAccount(now)
	b.KeyThumbprint = oldTP
	require.NoError(t, s.CreateAccount(ctx, b), "old key not freed")
	got, err = s.GetAccountByKey(ctx, oldTP)
	require.NoError(t, err)
	require.Equal(t, b.ID, got.ID)
}

// testAccountKeyChangeConflict: changing to a key another account holds is
// ErrConflict and leaves both accounts and both index entries alone.
func testAccountKeyChangeConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	a, b := newAccount(now), newAccount(now)
	require.NoError(t, s.CreateAccount(ctx, a))
	require.NoError(t, s.CreateAccount(ctx, b))

	change := *a
	change.KeyThumbprint = b.KeyThumbprint
	require.ErrorIs(t, s.UpdateAccount(ctx, &change), store.ErrConflict)
	require.Equal(t, a.Version, change.Version)

	for _, want := range []*store.Account{a, b} {
		got, err := s.GetAccountByKey(ctx, want.KeyThumbprint)
		require.NoError(t, err)
		requireSameRecord(t, want, got)
		got, err = s.GetAccount(ctx, want.ID)
		require.NoError(t, err)
		requireSameRecord(t, want, got)
	}
}

// testAccountCopies: the store keeps neither the caller's struct nor the one
// it returned.
func testAccountCopies(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newAccount(wallNow())
	require.NoError(t, s.CreateAccount(ctx, a))
	want := canonical(a)

	a.Status = store.StatusRevoked
	a.Contact[0] = "mailto:mutated@example.com"
	a.JWK[0] = 'X'
	got, err := s.GetAccount(ctx, a.ID)
	require.NoError(t, err)
	requireSameRecord(t, want, got, "store shares memory with the created struct")

	got.Status = store.StatusRevoked
	got.Contact[0] = "mailto:mutated@example.com"
	got.JWK[0] = 'X'
	again, err := s.GetAccountByKey(ctx, got.KeyThumbprint)
	require.NoError(t, err)
	requireSameRecord(t, want, again, "store shares memory with a returned struct")
}
