package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

var orderCases = []testCase{
	{"CreateWithNewAuthzs", testOrderCreate},
	{"CreateReusingAuthz", testOrderReuseAuthz},
	{"CreateDuplicate", testOrderDuplicate},
	{"UpdateCompareAndSet", testOrderUpdateCAS},
	{"ReadyToProcessingRace", testOrderRace},
	{"ReturnsCopies", testOrderCopies},
}

var listCases = []testCase{
	{"Pages", testListPages},
	{"UnknownAccount", testListUnknownAccount},
}

var authzCases = []testCase{
	{"UpdateCompareAndSet", testAuthzUpdateCAS},
	{"ValidateRace", testAuthzRace},
	{"ReturnsCopies", testAuthzCopies},
}

func testOrderCreate(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	acct := newID("acct")
	az1 := newAuthz(acct, "a.example.com", now)
	az2 := newAuthz(acct, "b.example.com", now)
	az2.Wildcard = true
	o := newOrder(acct, now, az1.ID, az2.ID)
	require.NoError(t, s.CreateOrder(ctx, o, []*store.Authorization{az1, az2}))

	got, err := s.GetOrder(ctx, o.ID)
	require.NoError(t, err)
	requireSameRecord(t, o, got)
	for _, az := range []*store.Authorization{az1, az2} {
		got, err := s.GetAuthz(ctx, az.ID)
		require.NoError(t, err)
		requireSameRecord(t, az, got)
	}
}

// testOrderReuseAuthz: IDs in AuthzIDs that are not passed are existing
// authorizations, used as they are.
func testOrderReuseAuthz(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	acct := newID("acct")
	first, reused := createOrder(t, s, acct, now)
	reused.Status = store.StatusValid
	require.NoError(t, s.UpdateAuthz(ctx, reused))

	fresh := newAuthz(acct, "fresh.example.com", now)
	o := newOrder(acct, now, reused.ID, fresh.ID)
	require.NoError(t, s.CreateOrder(ctx, o, []*store.Authorization{fresh}))

	got, err := s.GetOrder(ctx, o.ID)
	require.NoError(t, err)
	requireSameRecord(t, o, got)
	require.Equal(t, []string{reused.ID, fresh.ID}, got.AuthzIDs)
	gotReused, err := s.GetAuthz(ctx, reused.ID)
	require.NoError(t, err)
	requireSameRecord(t, reused, gotReused, "a reused authorization changed")
	gotFresh, err := s.GetAuthz(ctx, fresh.ID)
	require.NoError(t, err)
	requireSameRecord(t, fresh, gotFresh)
	requireSameRecord(t, first, mustGetOrder(t, s, first.ID))
}

// testOrderDuplicate: an order ID, or a new authorization's ID, that is
// taken is ErrConflict, and nothing of the refused order is stored.
func testOrderDuplicate(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	acct := newID("acct")
	o, az := createOrder(t, s, acct, now)

	dupOrder, dupOrderAz := createOrderFixture(acct, now)
	dupOrder.ID = o.ID
	require.ErrorIs(t, s.CreateOrder(ctx, dupOrder, []*store.Authorization{dupOrderAz}), store.ErrConflict)
	requireSameRecord(t, o, mustGetOrder(t, s, o.ID))
	_, err := s.GetAuthz(ctx, dupOrderAz.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "authorization of a refused order stored")

	dupAz := newAuthz(acct, "other.example.com", now)
	dupAz.ID = az.ID
	o2 := newOrder(acct, now, dupAz.ID)
	require.ErrorIs(t, s.CreateOrder(ctx, o2, []*store.Authorization{dupAz}), store.ErrConflict)
	_, err = s.GetOrder(ctx, o2.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "order with a taken authorization ID stored")
	gotAz, err := s.GetAuthz(ctx, az.ID)
	require.NoError(t, err)
	requireSameRecord(t, az, gotAz, "refused order overwrote an authorization")

	page, err := s.ListOrders(ctx, acct, "", 10)
	require.NoError(t, err)
	require.Equal(t, []string{o.ID}, page.IDs, "refused orders listed")
}

func testOrderUpdateCAS(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	o, _ := createOrder(t, s, newID("acct"), now)
	stale := mustGetOrder(t, s, o.ID)

	v := o.Version
	o.Status = store.StatusInvalid
	o.Upstream = "dev"
	o.CSR = []byte{0x30, 0x82, 0x01}
	o.Error = &store.Problem{
		Type:   "urn:ietf:params:acme:error:rejectedIdentifier",
		Detail: "policy denies it",
		Status: 403,
		Subproblems: []store.Problem{{
			Type:       "urn:ietf:params:acme:error:rejectedIdentifier",
			Detail:     "no rule matches",
			Identifier: &store.Identifier{Type: "dns", Value: "x.example.com"},
		}},
	}
	require.NoError(t, s.UpdateOrder(ctx, o))
	require.Equal(t, v+1, o.Version)
	requireSameRecord(t, o, mustGetOrder(t, s, o.ID))

	stale.Status = store.StatusReady
	require.ErrorIs(t, s.UpdateOrder(ctx, stale), store.ErrConflict)
	require.Equal(t, v, stale.Version)
	requireSameRecord(t, o, mustGetOrder(t, s, o.ID))
}

// testOrderRace: of racers moving one order from ready to processing, one
// wins; the order moved once.
func testOrderRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	o := createOrderIn(t, s, store.StatusReady, wallNow())
	copies := make([]*store.Order, racers)
	for i := range copies {
		copies[i] = mustGetOrder(t, s, o.ID)
		copies[i].Status = store.StatusProcessing
		copies[i].Upstream = fmt.Sprintf("upstream-%d", i)
	}
	errs := race(racers, func(i int) error { return s.UpdateOrder(ctx, copies[i]) })
	w := requireOneWinner(t, errs, store.ErrConflict)

	got := mustGetOrder(t, s, o.ID)
	requireSameRecord(t, copies[w], got)
	require.Equal(t, o.Version+1, got.Version)
	for i, c := range copies {
		if i != w {
			require.Equal(t, o.Version, c.Version, "loser %d's Version changed", i)
		}
	}
}

func testOrderCopies(t *testing.T, s store.Store) {
	o, _ := createOrder(t, s, newID("acct"), wallNow())
	want := canonical(o)

	o.Identifiers[0].Value = "mutated.example.com"
	o.AuthzIDs[0] = "mutated"
	o.Upstreams[0] = "mutated"
	requireSameRecord(t, want, mustGetOrder(t, s, o.ID), "store shares memory with the created struct")

	got := mustGetOrder(t, s, o.ID)
	got.Identifiers[0].Value = "mutated.example.com"
	got.AuthzIDs[0] = "mutated"
	got.Upstreams[0] = "mutated"
	got.Status = store.StatusInvalid
	requireSameRecord(t, want, mustGetOrder(t, s, o.ID), "store shares memory with a returned struct")
}

// testListPages: an account's orders come oldest first (creation order,
// which here is the reverse of ID order), in pages of at most limit, the
// cursor of each page leading to the next, Next empty on the last page, and
// other accounts' orders never appear.
func testListPages(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	acct, other := newID("acct"), newID("acct")
	prefix := newID("order")
	var want, wantOther []string
	for i := range 5 {
		o, az := createOrderFixture(acct, now.Add(time.Duration(i)*time.Second))
		o.ID = fmt.Sprintf("%s-%c", prefix, 'z'-i)
		require.NoError(t, s.CreateOrder(ctx, o, []*store.Authorization{az}))
		want = append(want, o.ID)
		if i%2 == 0 {
			o, _ := createOrder(t, s, other, now)
			wantOther = append(wantOther, o.ID)
		}
	}

	for _, limit := range []int{1, 2, 3, 5, 6, 100} {
		var got []string
		cursor := ""
		for pages := 1; ; pages++ {
			require.LessOrEqual(t, pages, len(want), "limit %d: too many pages", limit)
			page, err := s.ListOrders(ctx, acct, cursor, limit)
			require.NoError(t, err, "limit %d", limit)
			require.LessOrEqual(t, len(page.IDs), limit, "limit %d: page too long", limit)
			require.NotEmpty(t, page.IDs, "limit %d: empty page before the end", limit)
			got = append(got, page.IDs...)
			if page.Next == "" {
				break
			}
			cursor = page.Next
		}
		require.Equal(t, want, got, "limit %d", limit)
	}

	page, err := s.ListOrders(ctx, acct, "", 2)
	require.NoError(t, err)
	require.Equal(t, want[:2], page.IDs)
	require.NotEmpty(t, page.Next)
	page, err = s.ListOrders(ctx, acct, "", 5)
	require.NoError(t, err)
	require.Equal(t, want, page.IDs)
	require.Empty(t, page.Next, "Next set on a last page that is exactly full")

	page, err = s.ListOrders(ctx, other, "", 10)
	require.NoError(t, err)
	require.Equal(t, wantOther, page.IDs)
	require.Empty(t, page.Next)
}

func testListUnknownAccount(t *testing.T, s store.Store) {
	page, err := s.ListOrders(t.Context(), newID("acct"), "", 10)
	require.NoError(t, err)
	require.Empty(t, page.IDs)
	require.Empty(t, page.Next)
}

// testAuthzUpdateCAS: challenges change with their authorization.
func testAuthzUpdateCAS(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	_, az := createOrder(t, s, newID("acct"), now)
	stale, err := s.GetAuthz(ctx, az.ID)
	require.NoError(t, err)

	v := az.Version
	az.Status = store.StatusValid
	az.Challenges[0].Status = store.StatusValid
	az.Challenges[0].Validated = now.Add(1500 * time.Millisecond)
	az.Challenges[1].Status = store.StatusInvalid
	az.Challenges[1].Error = &store.Problem{Type: "urn:ietf:params:acme:error:dns", Detail: "NXDOMAIN"}
	require.NoError(t, s.UpdateAuthz(ctx, az))
	require.Equal(t, v+1, az.Version)
	got, err := s.GetAuthz(ctx, az.ID)
	require.NoError(t, err)
	requireSameRecord(t, az, got)

	stale.Status = store.StatusInvalid
	require.ErrorIs(t, s.UpdateAuthz(ctx, stale), store.ErrConflict)
	require.Equal(t, v, stale.Version)
	got, err = s.GetAuthz(ctx, az.ID)
	require.NoError(t, err)
	requireSameRecord(t, az, got)
}

// testAuthzRace: of racers validating one authorization, one wins.
func testAuthzRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, az := createOrder(t, s, newID("acct"), wallNow())
	copies := make([]*store.Authorization, racers)
	for i := range copies {
		c, err := s.GetAuthz(ctx, az.ID)
		require.NoError(t, err)
		c.Status = store.StatusValid
		c.Challenges[i%len(c.Challenges)].Status = store.StatusValid
		copies[i] = c
	}
	errs := race(racers, func(i int) error { return s.UpdateAuthz(ctx, copies[i]) })
	w := requireOneWinner(t, errs, store.ErrConflict)
	got, err := s.GetAuthz(ctx, az.ID)
	require.NoError(t, err)
	requireSameRecord(t, copies[w], got)
}

func testAuthzCopies(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, az := createOrder(t, s, newID("acct"), wallNow())
	want := canonical(az)

	az.Challenges[0].Status = store.StatusValid
	got, err := s.GetAuthz(ctx, az.ID)
	require.NoError(t, err)
	requireSameRecord(t, want, got, "store shares memory with the created struct")

	got.Challenges[0].Status = store.StatusValid
	got.Identifier.Value = "mutated.example.com"
	again, err := s.GetAuthz(ctx, az.ID)
	require.NoError(t, err)
	requireSameRecord(t, want, again, "store shares memory with a returned struct")
}
