package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

// Authorization reuse and pre-authorization (RFC 8555 §7.4.1):
// FindValidAuthz and CreateAuthz.
var authzReuseCases = []testCase{
	{"FoundByAccountIdentifierWildcard", testReuseKey},
	{"NotOnceExpired", testReuseExpiry},
	{"OnlyValid", testReuseOnlyValid},
	{"DeactivatedLeavesIndex", testReuseDeactivated},
	{"MostRecentlyValidatedWins", testReuseMostRecent},
	{"ReusedByLaterOrder", testReuseLaterOrder},
	{"StoredValid", testReuseStoredValid},
	{"CreateAuthz", testCreateAuthz},
	{"CreateAuthzDuplicate", testCreateAuthzDuplicate},
}

// dnsName is a fresh DNS identifier.
func dnsName() store.Identifier {
	return store.Identifier{Type: "dns", Value: newID("host") + ".example.com"}
}

// pendingAuthz returns a pending authorization of acct for id, unstored.
func pendingAuthz(acct string, id store.Identifier, wildcard bool, now time.Time) *store.Authorization {
	az := newAuthz(acct, id.Value, now)
	az.Identifier = id
	az.Wildcard = wildcard
	return az
}

// orderAuthz stores az with an order of its own and returns the order.
func orderAuthz(t *testing.T, s store.Store, az *store.Authorization, now time.Time) *store.Order {
	t.Helper()
	o := newOrder(az.AccountID, now, az.ID)
	o.Identifiers = []store.Identifier{az.Identifier}
	require.NoError(t, s.CreateOrder(t.Context(), o, []*store.Authorization{az}))
	return o
}

// orderedAuthz stores a pending authorization of acct for id with an order
// and returns it as stored.
func orderedAuthz(t *testing.T, s store.Store, acct string, id store.Identifier, wildcard bool, now time.Time) *store.Authorization {
	t.Helper()
	az := pendingAuthz(acct, id, wildcard, now)
	orderAuthz(t, s, az, now)
	return az
}

// setAuthzStatus stores az with status (a validation when valid).
func setAuthzStatus(t *testing.T, s store.Store, az *store.Authorization, status string) {
	t.Helper()
	az.Status = status
	az.Challenges[0].Status = status
	if status == store.StatusValid {
		az.Challenges[0].Validated = wallNow()
	}
	require.NoError(t, s.UpdateAuthz(t.Context(), az))
}

// requireFound checks that FindValidAuthz answers want.
func requireFound(t *testing.T, s store.Store, want *store.Authorization, acct string, id store.Identifier, wildcard bool, now time.Time, msgAndArgs ...any) {
	t.Helper()
	got, err := s.FindValidAuthz(t.Context(), acct, id, wildcard, now)
	require.NoError(t, err, msgAndArgs...)
	requireSameRecord(t, want, got, msgAndArgs...)
}

// requireNotFound checks that FindValidAuthz answers ErrNotFound.
func requireNotFound(t *testing.T, s store.Store, acct string, id store.Identifier, wildcard bool, now time.Time, msgAndArgs ...any) {
	t.Helper()
	got, err := s.FindValidAuthz(t.Context(), acct, id, wildcard, now)
	require.ErrorIs(t, err, store.ErrNotFound, msgAndArgs...)
	require.Nil(t, got, msgAndArgs...)
}

// testReuseKey: a valid authorization is found by its account, identifier
// (type and value) and wildcard flag, and by nothing else; several for one
// identifier (wildcard or not, one account or another) do not mix.
func testReuseKey(t *testing.T, s store.Store) {
	now := wallNow()
	acct, other := newID("acct"), newID("acct")
	id := dnsName()
	az := orderedAuthz(t, s, acct, id, false, now)
	requireNotFound(t, s, acct, id, false, now, "pending authorization found")

	setAuthzStatus(t, s, az, store.StatusValid)
	requireFound(t, s, az, acct, id, false, now)
	requireNotFound(t, s, other, id, false, now, "another account's authorization found")
	requireNotFound(t, s, acct+"x", id, false, now, "found for an account whose ID extends it")
	requireNotFound(t, s, acct, dnsName(), false, now, "found for another identifier")
	requireNotFound(t, s, acct, store.Identifier{Type: "ip", Value: id.Value}, false, now, "found for another identifier type")
	requireNotFound(t, s, acct, store.Identifier{Type: "dns", Value: "x" + id.Value}, false, now, "found for a longer name")
	requireNotFound(t, s, acct, store.Identifier{Type: "dns", Value: id.Value[1:]}, false, now, "found for a shorter name")
	requireNotFound(t, s, acct, id, true, now, "non-wildcard authorization found for a wildcard")

	wild := orderedAuthz(t, s, acct, id, true, now)
	setAuthzStatus(t, s, wild, store.StatusValid)
	requireFound(t, s, wild, acct, id, true, now)
	requireFound(t, s, az, acct, id, false, now, "a wildcard authorization shadowed the non-wildcard one")

	theirs := orderedAuthz(t, s, other, id, false, now)
	setAuthzStatus(t, s, theirs, store.StatusValid)
	requireFound(t, s, theirs, other, id, false, now)
	requireFound(t, s, az, acct, id, false, now, "another account's authorization shadowed this one")
	requireNotFound(t, s, other, id, true, now)

	// The answer is the store's copy.
	got, err := s.FindValidAuthz(t.Context(), acct, id, false, now)
	require.NoError(t, err)
	got.Status = store.StatusDeactivated
	got.Challenges[0].Token = "mutated"
	requireFound(t, s, az, acct, id, false, now, "store shares memory with a returned struct")
}

// testReuseExpiry: an authorization is found while it expires after now,
// and asking about a later time changes nothing for an earlier one.
func testReuseExpiry(t *testing.T, s store.Store) {
	now := wallNow()
	acct := newID("acct")
	id := dnsName()
	az := pendingAuthz(acct, id, false, now)
	az.Expires = now.Add(time.Hour)
	orderAuthz(t, s, az, now)
	setAuthzStatus(t, s, az, store.StatusValid)

	requireFound(t, s, az, acct, id, false, now)
	requireFound(t, s, az, acct, id, false, az.Expires.Add(-time.Nanosecond))
	requireNotFound(t, s, acct, id, false, az.Expires, "found at the instant it expires")
	requireNotFound(t, s, acct, id, false, az.Expires.Add(time.Nanosecond), "found after it expired")
	requireNotFound(t, s, acct, id, false, now.Add(48*time.Hour), "found after it expired")
	requireFound(t, s, az, acct, id, false, now, "asking about a later time dropped a valid authorization")

	// One that is valid but already expired is never found.
	gone := dnsName()
	old := pendingAuthz(acct, gone, false, now)
	old.Expires = now.Add(-time.Minute)
	orderAuthz(t, s, old, now)
	setAuthzStatus(t, s, old, store.StatusValid)
	requireNotFound(t, s, acct, gone, false, now, "expired authorization found")
	requireNotFound(t, s, acct, gone, false, wallNow(), "expired authorization found")

	// Extending Expires of a valid authorization makes it findable again.
	old.Expires = now.Add(time.Hour)
	require.NoError(t, s.UpdateAuthz(t.Context(), old))
	requireFound(t, s, old, acct, gone, false, now)
}

// testReuseOnlyValid: pending, invalid, deactivated, expired and revoked
// authorizations are not found, and a refused update leaves a valid one
// found.
func testReuseOnlyValid(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	acct := newID("acct")
	for _, status := range []string{store.StatusPending, store.StatusInvalid, store.StatusDeactivated, store.StatusExpired, store.StatusRevoked} {
		id := dnsName()
		az := orderedAuthz(t, s, acct, id, false, now)
		setAuthzStatus(t, s, az, status)
		requireNotFound(t, s, acct, id, false, now, "%s authorization found", status)
	}

	id := dnsName()
	az := orderedAuthz(t, s, acct, id, false, now)
	stale, err := s.GetAuthz(ctx, az.ID)
	require.NoError(t, err)
	setAuthzStatus(t, s, az, store.StatusValid)
	stale.Status = store.StatusInvalid
	require.ErrorIs(t, s.UpdateAuthz(ctx, stale), store.ErrConflict)
	requireFound(t, s, az, acct, id, false, now, "a refused update changed the index")

	// Refused updates to deactivated (stale Version) and of a missing
	// authorization change nothing either.
	stale, err = s.GetAuthz(ctx, az.ID)
	require.NoError(t, err)
	stale.Version--
	stale.Status = store.StatusDeactivated
	require.ErrorIs(t, s.UpdateAuthz(ctx, stale), store.ErrConflict)
	requireFound(t, s, az, acct, id, false, now, "a refused deactivation changed the index")
	missing := pendingAuthz(acct, id, false, now)
	missing.Status = store.StatusValid
	require.ErrorIs(t, s.UpdateAuthz(ctx, missing), store.ErrNotFound)
	requireFound(t, s, az, acct, id, false, now, "an update of a missing authorization changed the index")
}

// testReuseDeactivated: an authorization that was valid and is then
// deactivated (or made invalid) is not found; an older one still valid is.
func testReuseDeactivated(t *testing.T, s store.Store) {
	now := wallNow()
	acct := newID("acct")
	id := dnsName()
	older := orderedAuthz(t, s, acct, id, false, now)
	newer := orderedAuthz(t, s, acct, id, false, now)
	setAuthzStatus(t, s, older, store.StatusValid)
	setAuthzStatus(t, s, newer, store.StatusValid)
	requireFound(t, s, newer, acct, id, false, now)

	setAuthzStatus(t, s, newer, store.StatusDeactivated)
	requireFound(t, s, older, acct, id, false, now, "deactivated authorization found, or the older valid one lost")
	setAuthzStatus(t, s, older, store.StatusDeactivated)
	requireNotFound(t, s, acct, id, false, now, "deactivated authorization found")

	lone := dnsName()
	az := orderedAuthz(t, s, acct, lone, true, now)
	setAuthzStatus(t, s, az, store.StatusValid)
	requireFound(t, s, az, acct, lone, true, now)
	setAuthzStatus(t, s, az, store.StatusInvalid)
	requireNotFound(t, s, acct, lone, true, now, "authorization made invalid found")
}

// testReuseMostRecent: of several valid authorizations the one validated
// last wins (not the one created last), unless it expired by now.
func testReuseMostRecent(t *testing.T, s store.Store) {
	now := wallNow()
	acct := newID("acct")
	id := dnsName()
	a1 := orderedAuthz(t, s, acct, id, false, now)
	a2 := orderedAuthz(t, s, acct, id, false, now)
	a3 := orderedAuthz(t, s, acct, id, false, now)
	setAuthzStatus(t, s, a2, store.StatusValid)
	requireFound(t, s, a2, acct, id, false, now)
	setAuthzStatus(t, s, a1, store.StatusValid)
	requireFound(t, s, a1, acct, id, false, now, "not the most recently validated")
	setAuthzStatus(t, s, a3, store.StatusValid)
	requireFound(t, s, a3, acct, id, false, now, "not the most recently validated")

	// A later validation that expires sooner wins until it expires.
	id = dnsName()
	long := pendingAuthz(acct, id, false, now)
	long.Expires = now.Add(2 * time.Hour)
	orderAuthz(t, s, long, now)
	short := pendingAuthz(acct, id, false, now)
	short.Expires = now.Add(time.Hour)
	orderAuthz(t, s, short, now)
	setAuthzStatus(t, s, long, store.StatusValid)
	setAuthzStatus(t, s, short, store.StatusValid)
	requireFound(t, s, short, acct, id, false, now)
	requireFound(t, s, long, acct, id, false, now.Add(90*time.Minute), "an expired authorization shadowed a valid one")
	requireNotFound(t, s, acct, id, false, now.Add(3*time.Hour))
	requireFound(t, s, short, acct, id, false, now)
}

// testReuseLaterOrder: an authorization reused by later orders (listed in
// AuthzIDs, not passed) is still found, unchanged, also once such an order
// is valid.
func testReuseLaterOrder(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	acct := newID("acct")
	id := dnsName()
	az := orderedAuthz(t, s, acct, id, false, now)
	setAuthzStatus(t, s, az, store.StatusValid)

	o2 := newOrder(acct, now, az.ID)
	o2.Identifiers = []store.Identifier{id}
	require.NoError(t, s.CreateOrder(ctx, o2, nil))
	requireFound(t, s, az, acct, id, false, now, "reuse by a later order dropped the authorization")

	freshID := dnsName()
	fresh := pendingAuthz(acct, freshID, false, now)
	o3 := newOrder(acct, now, az.ID, fresh.ID)
	o3.Identifiers = []store.Identifier{id, freshID}
	require.NoError(t, s.CreateOrder(ctx, o3, []*store.Authorization{fresh}))
	requireFound(t, s, az, acct, id, false, now)
	requireNotFound(t, s, acct, freshID, false, now, "a new pending authorization found")

	o2.Status = store.StatusReady
	require.NoError(t, s.UpdateOrder(ctx, o2))
	o2.Status = store.StatusValid
	require.NoError(t, s.UpdateOrder(ctx, o2))
	requireFound(t, s, az, acct, id, false, now, "a valid order dropped its reused authorization")
	got, err := s.GetAuthz(ctx, az.ID)
	require.NoError(t, err)
	requireSameRecord(t, az, got)

	setAuthzStatus(t, s, fresh, store.StatusValid)
	requireFound(t, s, fresh, acct, freshID, false, now)
}

// testReuseStoredValid: an authorization stored valid by CreateOrder or
// CreateAuthz is found at once; one of a refused CreateOrder or
// CreateAuthz is not.
func testReuseStoredValid(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	acct := newID("acct")

	id := dnsName()
	az := pendingAuthz(acct, id, false, now)
	az.Status = store.StatusValid
	az.Challenges[0].Status = store.StatusValid
	orderAuthz(t, s, az, now)
	requireFound(t, s, az, acct, id, false, now)

	preID := dnsName()
	pre := pendingAuthz(acct, preID, true, now)
	pre.Status = store.StatusValid
	require.NoError(t, s.CreateAuthz(ctx, pre))
	requireFound(t, s, pre, acct, preID, true, now)

	// Refused: the order ID is taken.
	refusedID := dnsName()
	refused := pendingAuthz(acct, refusedID, false, now)
	refused.Status = store.StatusValid
	dup := newOrder(acct, now, refused.ID)
	existing := mustGetOrder(t, s, orderAuthz(t, s, pendingAuthz(acct, dnsName(), false, now), now).ID)
	dup.ID = existing.ID
	require.ErrorIs(t, s.CreateOrder(ctx, dup, []*store.Authorization{refused}), store.ErrConflict)
	requireNotFound(t, s, acct, refusedID, false, now, "valid authorization of a refused order found")

	// Refused: a reused authorization is missing.
	missing := newOrder(acct, now, refused.ID, newID("authz"))
	require.ErrorIs(t, s.CreateOrder(ctx, missing, []*store.Authorization{refused}), store.ErrNotFound)
	requireNotFound(t, s, acct, refusedID, false, now, "valid authorization of a refused order found")

	// Refused: the authorization ID is taken.
	refused.ID = az.ID
	require.ErrorIs(t, s.CreateAuthz(ctx, refused), store.ErrConflict)
	requireNotFound(t, s, acct, refusedID, false, now, "refused authorization found")
	requireFound(t, s, az, acct, id, false, now)
}

// testCreateAuthz: a pre-authorization is stored on its own, pending (not
// found for reuse), is made valid by UpdateAuthz, is then found, and can
// be reused by an order.
func testCreateAuthz(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	acct := newID("acct")
	id := dnsName()
	az := pendingAuthz(acct, id, false, now)
	require.NoError(t, s.CreateAuthz(ctx, az))
	want := canonical(az)
	az.Challenges[0].Token = "mutated"
	got, err := s.GetAuthz(ctx, az.ID)
	require.NoError(t, err)
	requireSameRecord(t, want, got, "store shares memory with the created struct")
	requireNotFound(t, s, acct, id, false, now, "pending pre-authorization found")

	az, err = s.GetAuthz(ctx, az.ID)
	require.NoError(t, err)
	v := az.Version
	az.Challenges[1].Status = store.StatusProcessing
	az.Challenges[1].Started = now
	require.NoError(t, s.UpdateAuthz(ctx, az))
	requireNotFound(t, s, acct, id, false, now)
	setAuthzStatus(t, s, az, store.StatusValid)
	require.Equal(t, v+2, az.Version)
	got, err = s.GetAuthz(ctx, az.ID)
	require.NoError(t, err)
	requireSameRecord(t, az, got)
	requireFound(t, s, az, acct, id, false, now)

	o := newOrder(acct, now, az.ID)
	o.Identifiers = []store.Identifier{id}
	require.NoError(t, s.CreateOrder(ctx, o, nil), "an order cannot reuse a pre-authorization")
	requireSameRecord(t, o, mustGetOrder(t, s, o.ID))
	requireFound(t, s, az, acct, id, false, now)
}

// testCreateAuthzDuplicate: CreateAuthz of a taken ID (taken by CreateAuthz
// or CreateOrder) is ErrConflict and changes nothing; CreateOrder cannot
// take a pre-authorization's ID for a new authorization either.
func testCreateAuthzDuplicate(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	acct := newID("acct")
	az := pendingAuthz(acct, dnsName(), false, now)
	require.NoError(t, s.CreateAuthz(ctx, az))

	dup := pendingAuthz(acct, dnsName(), false, now)
	dup.ID = az.ID
	dup.Status = store.StatusValid
	require.ErrorIs(t, s.CreateAuthz(ctx, dup), store.ErrConflict)
	got, err := s.GetAuthz(ctx, az.ID)
	require.NoError(t, err)
	requireSameRecord(t, az, got, "a refused CreateAuthz changed the authorization")
	requireNotFound(t, s, acct, dup.Identifier, false, now, "a refused CreateAuthz indexed its authorization")

	_, ordered := createOrder(t, s, acct, now)
	dup.ID = ordered.ID
	require.ErrorIs(t, s.CreateAuthz(ctx, dup), store.ErrConflict)
	got, err = s.GetAuthz(ctx, ordered.ID)
	require.NoError(t, err)
	requireSameRecord(t, ordered, got)

	taker := pendingAuthz(acct, dnsName(), false, now)
	taker.ID = az.ID
	o := newOrder(acct, now, taker.ID)
	require.ErrorIs(t, s.CreateOrder(ctx, o, []*store.Authorization{taker}), store.ErrConflict)
	_, err = s.GetOrder(ctx, o.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	got, err = s.GetAuthz(ctx, az.ID)
	require.NoError(t, err)
	requireSameRecord(t, az, got)
}
