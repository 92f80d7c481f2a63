package storetest

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

// The admin listings: List (every record of a kind, oldest first) and
// ListExpiring (certificates not revoked expiring before a time, soonest
// first). Every time the tests write is explicit; none of them waits.

var listingCases = []testCase{
	{"EmptyStore", testListingEmpty},
	{"EveryKindOldestFirst", testListingEveryKind},
	{"Pages", testListingPages},
	{"CursorContinuesAfterNewRecords", testListingCursorStable},
	{"NewestCursorContinuesBelow", testListingNewestCursor},
	{"LimitNotPositive", testListingLimitNotPositive},
	{"UnknownKind", testListingUnknownKind},
	{"MalformedCursor", testListingMalformedCursor},
	{"RefusedWritesNotListed", testListingRefusedWrites},
	{"ConcurrentCreates", testListingConcurrent},
}

var expiringCases = []testCase{
	{"SoonestFirst", testExpiringSoonestFirst},
	{"BeforeIsExclusive", testExpiringBoundary},
	{"Pages", testExpiringPages},
	{"SameExpiry", testExpiringTies},
	{"RevokedLeave", testExpiringRevoked},
	{"UpdateMovesExpiry", testExpiringUpdate},
}

// allKinds are the kinds List accepts.
var allKinds = []store.Kind{store.KindAccount, store.KindOrder, store.KindCertificate, store.KindEABKey}

// pageLimits are the limits the paging tests walk a listing of n records
// with: one, a few, n and n+1 (an exactly full last page, and one with room
// to spare), and the largest int (no overflow computing limit+1).
func pageLimits(n int) []int {
	return []int{1, 2, 3, n, n + 1, 100, math.MaxInt}
}

// lister reads one page of a listing.
type lister func(cursor string, limit int) (store.Page, error)

func listKind(t *testing.T, s store.Store, kind store.Kind) lister {
	return func(cursor string, limit int) (store.Page, error) {
		return s.List(t.Context(), kind, cursor, limit)
	}
}

func listNewest(t *testing.T, s store.Store, kind store.Kind) lister {
	return func(cursor string, limit int) (store.Page, error) {
		return s.ListNewest(t.Context(), kind, cursor, limit)
	}
}

func listExpiring(t *testing.T, s store.Store, before time.Time) lister {
	return func(cursor string, limit int) (store.Page, error) {
		return s.ListExpiring(t.Context(), before, cursor, limit)
	}
}

// walk reads a listing page by page with limit and returns every ID in
// order. Pages are at most limit long and not empty before the end; there
// are no more pages than want has IDs (at least one).
func walk(t *testing.T, list lister, limit, want int, msgAndArgs ...any) []string {
	t.Helper()
	var got []string
	cursor := ""
	for pages := 1; ; pages++ {
		require.LessOrEqual(t, pages, max(want, 1), append([]any{"too many pages with limit %d", limit}, msgAndArgs...)...)
		page, err := list(cursor, limit)
		require.NoError(t, err, msgAndArgs...)
		require.LessOrEqual(t, len(page.IDs), limit, msgAndArgs...)
		if page.Next == "" {
			return append(got, page.IDs...)
		}
		require.NotEmpty(t, page.IDs, append([]any{"empty page before the end with limit %d", limit}, msgAndArgs...)...)
		got = append(got, page.IDs...)
		cursor = page.Next
	}
}

// requireListing checks that a listing holds exactly want, in order, read
// with every limit of pageLimits, and the first pages' exact contents.
func requireListing(t *testing.T, list lister, want []string, name string) {
	t.Helper()
	for _, limit := range pageLimits(len(want)) {
		if limit < 1 {
			continue
		}
		got := walk(t, list, limit, len(want), "%s, limit %d", name, limit)
		if len(want) == 0 {
			require.Empty(t, got, "%s, limit %d", name, limit)
			continue
		}
		require.Equal(t, want, got, "%s, limit %d", name, limit)
	}
	if len(want) == 0 {
		return
	}
	// The first page is the first records; a page holding the last record
	// has no Next, even when it is exactly full.
	page, err := list("", 1)
	require.NoError(t, err, name)
	require.Equal(t, want[:1], page.IDs, name)
	require.Equal(t, len(want) == 1, page.Next == "", "%s: Next %q with limit 1 of %d", name, page.Next, len(want))
	page, err = list("", len(want))
	require.NoError(t, err, name)
	require.Equal(t, want, page.IDs, name)
	require.Empty(t, page.Next, "%s: Next set on a last page that is exactly full", name)
	if len(want) > 2 {
		page, err = list("", 2)
		require.NoError(t, err, name)
		require.Equal(t, want[:2], page.IDs, name)
		require.NotEmpty(t, page.Next, name)
		rest, err := list(page.Next, len(want))
		require.NoError(t, err, name)
		require.Equal(t, want[2:], rest.IDs, name)
		require.Empty(t, rest.Next, name)
	}
}

// requireKinds checks the listing of every kind against want, oldest first
// (List) and newest first (ListNewest).
func requireKinds(t *testing.T, s store.Store, want map[store.Kind][]string) {
	t.Helper()
	for _, kind := range allKinds {
		requireListing(t, listKind(t, s, kind), want[kind], "List "+string(kind))
		newest := slices.Clone(want[kind])
		slices.Reverse(newest)
		requireListing(t, listNewest(t, s, kind), newest, "ListNewest "+string(kind))
	}
}

// descendingID returns IDs that sort in the reverse of the order they are
// made in, so a listing in ID order is caught.
func descendingID(prefix string) func() string {
	n := 1000
	return func() string {
		n--
		return fmt.Sprintf("%s-%04d", prefix, n)
	}
}

// listedCert stores a certificate with that ID (fresh if "") and NotAfter
// for a new order of its own, both created at at, and returns the
// certificate and the order as stored.
func listedCert(t *testing.T, s store.Store, id string, at, notAfter time.Time) (*store.Certificate, *store.Order) {
	t.Helper()
	o, _ := createOrder(t, s, newID("acct"), at)
	c, next := issued(o, at)
	if id != "" {
		c.ID = id
	}
	c.NotBefore = at
	c.NotAfter = notAfter
	require.NoError(t, s.PutCertificate(t.Context(), c, next))
	return c, next
}

// testListingEmpty: an empty store lists nothing, with no Next.
func testListingEmpty(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, kind := range allKinds {
		for _, limit := range []int{1, 10, math.MaxInt} {
			page, err := s.List(ctx, kind, "", limit)
			require.NoError(t, err, "%s, limit %d", kind, limit)
			require.Empty(t, page.IDs, "%s, limit %d", kind, limit)
			require.Empty(t, page.Next, "%s, limit %d", kind, limit)
		}
	}
	for _, before := range []time.Time{{}, wallNow(), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)} {
		page, err := s.ListExpiring(ctx, before, "", 10)
		require.NoError(t, err, "before %v", before)
		require.Empty(t, page.IDs)
		require.Empty(t, page.Next)
	}
}

// testListingEveryKind: each kind lists exactly its records, in the order
// they were created (here the reverse of ID order, and interleaved between
// kinds and accounts), and updates, bindings and revocations move nothing.
func testListingEveryKind(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := wallNow()
	want := map[store.Kind][]string{}
	acctID, orderID, certID, eabID := descendingID(newID("acct")), descendingID(newID("order")),
		descendingID(newID("cert")), descendingID(newID("kid"))
	var accounts []*store.Account
	var keys []*store.EABKey
	var orders []*store.Order
	var certs []*store.Certificate
	for i := range 5 {
		at := base.Add(time.Duration(i) * time.Minute)

		k := newEABKey(at)
		k.ID = eabID()
		require.NoError(t, s.PutEABKey(ctx, k))
		keys = append(keys, k)
		want[store.KindEABKey] = append(want[store.KindEABKey], k.ID)

		a := newAccount(at)
		a.ID = acctID()
		if i == 1 {
			a.EABKeyID = keys[0].ID // binds the oldest key
		}
		require.NoError(t, s.CreateAccount(ctx, a))
		accounts = append(accounts, a)
		want[store.KindAccount] = append(want[store.KindAccount], a.ID)

		// Orders of several accounts, the first account's among them.
		o, az := createOrderFixture(accounts[i%2].ID, at)
		o.ID = orderID()
		require.NoError(t, s.CreateOrder(ctx, o, []*store.Authorization{az}))
		orders = append(orders, o)
		want[store.KindOrder] = append(want[store.KindOrder], o.ID)

		if i%2 == 0 {
			c, certOrder := listedCert(t, s, certID(), at, at.Add(90*24*time.Hour))
			certs = append(certs, c)
			want[store.KindCertificate] = append(want[store.KindCertificate], c.ID)
			want[store.KindOrder] = append(want[store.KindOrder], certOrder.ID)
		}
	}
	requireKinds(t, s, want)

	// Updating the oldest record of each kind leaves it first.
	accounts[0].Contact = []string{"mailto:new@example.com"}
	require.NoError(t, s.UpdateAccount(ctx, accounts[0]))
	accounts[0].KeyThumbprint = newID("tp")
	require.NoError(t, s.UpdateAccount(ctx, accounts[0]))
	orders[0].Status = store.StatusReady
	require.NoError(t, s.UpdateOrder(ctx, orders[0]))
	orders[0].Status = store.StatusProcessing
	require.NoError(t, s.EnqueueJob(ctx, &store.Job{OrderID: orders[0].ID, NotBefore: base}, orders[0]))
	oldestKey, err := s.GetEABKey(ctx, keys[0].ID)
	require.NoError(t, err)
	oldestKey.Note = "updated"
	require.NoError(t, s.UpdateEABKey(ctx, oldestKey))
	certs[0].RevokedAt = base.Add(time.Hour)
	certs[0].RevocationReason = 4
	require.NoError(t, s.UpdateCertificate(ctx, certs[0]))
	requireKinds(t, s, want)

	// Records created later list after the others.
	late := newAccount(base.Add(time.Hour))
	require.NoError(t, s.CreateAccount(ctx, late))
	want[store.KindAccount] = append(want[store.KindAccount], late.ID)
	requireKinds(t, s, want)
}

// testListingPages: a larger listing read with many limits.
func testListingPages(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := wallNow()
	next := descendingID(newID("kid"))
	var want []string
	for i := range 11 {
		k := newEABKey(base.Add(time.Duration(i) * time.Second))
		k.ID = next()
		require.NoError(t, s.PutEABKey(ctx, k))
		want = append(want, k.ID)
	}
	requireListing(t, listKind(t, s, store.KindEABKey), want, "List eab")
	for _, limit := range []int{4, 5, 6, 10, 11, 12} {
		require.Equal(t, want, walk(t, listKind(t, s, store.KindEABKey), limit, len(want)), "limit %d", limit)
	}
	// The other kinds are still empty.
	requireKinds(t, s, map[store.Kind][]string{store.KindEABKey: want})
}

// testListingNewestCursor: a newest-first page's Next continues with the
// records older than that page; records created in between are not in
// the following pages (they are on a new first page).
func testListingNewestCursor(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := wallNow()
	var ids []string
	create := func(i int) {
		o, _ := createOrder(t, s, newID("acct"), base.Add(time.Duration(i)*time.Second))
		ids = append(ids, o.ID)
	}
	for i := range 5 {
		create(i)
	}
	page, err := s.ListNewest(ctx, store.KindOrder, "", 2)
	require.NoError(t, err)
	require.Equal(t, []string{ids[4], ids[3]}, page.IDs)
	create(5)
	rest, err := s.ListNewest(ctx, store.KindOrder, page.Next, 10)
	require.NoError(t, err)
	require.Equal(t, []string{ids[2], ids[1], ids[0]}, rest.IDs)
	require.Empty(t, rest.Next)
	first, err := s.ListNewest(ctx, store.KindOrder, "", 1)
	require.NoError(t, err)
	require.Equal(t, []string{ids[5]}, first.IDs, "the new record heads a new first page")
}

// testListingCursorStable: a page's Next continues after that page when
// records were created in between, which list after it.
func testListingCursorStable(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := wallNow()
	var want []string
	create := func(i int) {
		a := newAccount(base.Add(time.Duration(i) * time.Second))
		require.NoError(t, s.CreateAccount(ctx, a))
		want = append(want, a.ID)
	}
	for i := range 3 {
		create(i)
	}
	page, err := s.List(ctx, store.KindAccount, "", 2)
	require.NoError(t, err)
	require.Equal(t, want[:2], page.IDs)
	require.NotEmpty(t, page.Next)
	create(3)
	create(4)
	rest, err := s.List(ctx, store.KindAccount, page.Next, 10)
	require.NoError(t, err)
	require.Equal(t, want[2:], rest.IDs)
	require.Empty(t, rest.Next)

	// The same cursor read again gives the same page: reading moves nothing.
	again, err := s.List(ctx, store.KindAccount, page.Next, 10)
	require.NoError(t, err)
	require.Equal(t, rest, again)

	// A cursor at the very end gives an empty last page; records created
	// after it appear there.
	end, err := s.List(ctx, store.KindAccount, page.Next, 3)
	require.NoError(t, err)
	require.Equal(t, want[2:], end.IDs)
	require.Empty(t, end.Next)
	mid, err := s.List(ctx, store.KindAccount, page.Next, 2)
	require.NoError(t, err)
	require.Equal(t, want[2:4], mid.IDs)
	require.NotEmpty(t, mid.Next)
	create(5)
	last, err := s.List(ctx, store.KindAccount, mid.Next, 2)
	require.NoError(t, err)
	require.Equal(t, want[4:], last.IDs)
	require.Empty(t, last.Next)
}

// testListingLimitNotPositive: a limit below one is refused (a page of at
// most zero records could never advance).
func testListingLimitNotPositive(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	require.NoError(t, s.CreateAccount(ctx, newAccount(now)))
	listedCert(t, s, "", now, now.Add(time.Hour))
	for _, limit := range []int{0, -1, math.MinInt} {
		for _, kind := range allKinds {
			page, err := s.List(ctx, kind, "", limit)
			require.Error(t, err, "%s, limit %d", kind, limit)
			require.Empty(t, page.IDs)
		}
		page, err := s.ListExpiring(ctx, now.Add(2*time.Hour), "", limit)
		require.Error(t, err, "ListExpiring, limit %d", limit)
		require.Empty(t, page.IDs)
	}
}

// testListingUnknownKind: a kind that is not one of the Kind constants is
// ErrNotFound, on an empty store and on one with records.
func testListingUnknownKind(t *testing.T, s store.Store) {
	ctx := t.Context()
	unknown := []store.Kind{"", "authz", "authorization", "job", "nonce", "Account", "accounts", "orders", "cert", "eabkey", "account "}
	check := func() {
		for _, kind := range unknown {
			_, err := s.List(ctx, kind, "", 10)
			require.ErrorIs(t, err, store.ErrNotFound, "kind %q", kind)
			_, err = s.ListNewest(ctx, kind, "", 10)
			require.ErrorIs(t, err, store.ErrNotFound, "ListNewest, kind %q", kind)
		}
	}
	check()
	now := wallNow()
	createOrder(t, s, newID("acct"), now)
	require.NoError(t, s.CreateAccount(ctx, newAccount(now)))
	check()
}

// testListingMalformedCursor: a cursor no driver could have made is
// ErrNotFound, for every kind and for ListExpiring, whatever the store
// holds.
func testListingMalformedCursor(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	malformed := []string{"not a cursor!", "%%", "\x00", "{}", "a b"}
	check := func() {
		for _, cursor := range malformed {
			for _, kind := range allKinds {
				_, err := s.List(ctx, kind, cursor, 10)
				require.ErrorIs(t, err, store.ErrNotFound, "List %s, cursor %q", kind, cursor)
				_, err = s.ListNewest(ctx, kind, cursor, 10)
				require.ErrorIs(t, err, store.ErrNotFound, "ListNewest %s, cursor %q", kind, cursor)
			}
			_, err := s.ListExpiring(ctx, now.Add(365*24*time.Hour), cursor, 10)
			require.ErrorIs(t, err, store.ErrNotFound, "ListExpiring, cursor %q", cursor)
		}
	}
	check()
	require.NoError(t, s.PutEABKey(ctx, newEABKey(now)))
	require.NoError(t, s.CreateAccount(ctx, newAccount(now)))
	listedCert(t, s, "", now, now.Add(time.Hour))
	check()
}

// testListingRefusedWrites: a write that is refused adds nothing to any
// listing, and a refused update takes nothing out.
func testListingRefusedWrites(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	want := map[store.Kind][]string{}

	k := newEABKey(now)
	require.NoError(t, s.PutEABKey(ctx, k))
	want[store.KindEABKey] = []string{k.ID}
	dupKey := newEABKey(now)
	dupKey.ID = k.ID
	require.ErrorIs(t, s.PutEABKey(ctx, dupKey), store.ErrConflict)

	a := newAccount(now)
	require.NoError(t, s.CreateAccount(ctx, a))
	want[store.KindAccount] = []string{a.ID}
	sameKey := newAccount(now)
	sameKey.KeyThumbprint = a.KeyThumbprint
	require.ErrorIs(t, s.CreateAccount(ctx, sameKey), store.ErrConflict)
	sameID := newAccount(now)
	sameID.ID = a.ID
	require.ErrorIs(t, s.CreateAccount(ctx, sameID), store.ErrConflict)
	unknownEAB := newAccount(now)
	unknownEAB.EABKeyID = newID("kid")
	require.ErrorIs(t, s.CreateAccount(ctx, unknownEAB), store.ErrNotFound)
	bound := newAccount(now)
	bound.EABKeyID = k.ID
	require.NoError(t, s.CreateAccount(ctx, bound))
	want[store.KindAccount] = append(want[store.KindAccount], bound.ID)
	boundAgain := newAccount(now)
	boundAgain.EABKeyID = k.ID
	require.ErrorIs(t, s.CreateAccount(ctx, boundAgain), store.ErrConflict)

	o, az := createOrder(t, s, a.ID, now)
	want[store.KindOrder] = []string{o.ID}
	dupOrder, dupAz := createOrderFixture(a.ID, now)
	dupOrder.ID = o.ID
	require.ErrorIs(t, s.CreateOrder(ctx, dupOrder, []*store.Authorization{dupAz}), store.ErrConflict)
	takenAz := newAuthz(a.ID, "taken.example.com", now)
	takenAz.ID = az.ID
	require.ErrorIs(t, s.CreateOrder(ctx, newOrder(a.ID, now, takenAz.ID), []*store.Authorization{takenAz}), store.ErrConflict)
	require.ErrorIs(t, s.CreateOrder(ctx, newOrder(a.ID, now, newID("authz")), nil), store.ErrNotFound)

	c, _ := listedCert(t, s, "", now, now.Add(24*time.Hour))
	want[store.KindOrder] = append(want[store.KindOrder], c.OrderID)
	want[store.KindCertificate] = []string{c.ID}
	// A taken serial, a taken ID, a moved order, a missing order.
	o2, _ := createOrder(t, s, a.ID, now)
	want[store.KindOrder] = append(want[store.KindOrder], o2.ID)
	sameSerial, next2 := issued(o2, now)
	sameSerial.Serial = c.Serial
	sameSerial.NotAfter = now.Add(time.Hour)
	require.ErrorIs(t, s.PutCertificate(ctx, sameSerial, next2), store.ErrConflict)
	sameCertID, next2 := issued(o2, now)
	sameCertID.ID = c.ID
	sameCertID.NotAfter = now.Add(time.Hour)
	require.ErrorIs(t, s.PutCertificate(ctx, sameCertID, next2), store.ErrConflict)
	moved, next2 := issued(o2, now)
	moved.NotAfter = now.Add(time.Hour)
	next2.Version++
	require.ErrorIs(t, s.PutCertificate(ctx, moved, next2), store.ErrConflict)
	orphan, _ := issued(newOrder(a.ID, now), now)
	orphan.NotAfter = now.Add(time.Hour)
	require.ErrorIs(t, s.PutCertificate(ctx, orphan, newOrder(a.ID, now)), store.ErrNotFound)
	// Updates of a certificate that does not exist.
	missing := newCertificate(a.ID, o2.ID, now)
	missing.NotAfter = now.Add(time.Hour)
	require.ErrorIs(t, s.UpdateCertificate(ctx, missing), store.ErrNotFound)

	// A stale revocation is refused and leaves the certificate listed.
	stale, err := s.GetCertificate(ctx, c.ID)
	require.NoError(t, err)
	c.Names = []string{"renamed.example.com"}
	require.NoError(t, s.UpdateCertificate(ctx, c))
	stale.RevokedAt = now
	require.ErrorIs(t, s.UpdateCertificate(ctx, stale), store.ErrConflict)
	// A serial change refused because the new serial is taken.
	other, _ := listedCert(t, s, "", now, now.Add(48*time.Hour))
	want[store.KindOrder] = append(want[store.KindOrder], other.OrderID)
	want[store.KindCertificate] = append(want[store.KindCertificate], other.ID)
	clash := *c
	clash.Serial = other.Serial
	clash.RevokedAt = now
	require.ErrorIs(t, s.UpdateCertificate(ctx, &clash), store.ErrConflict)

	requireKinds(t, s, want)
	requireListing(t, listExpiring(t, s, now.Add(365*24*time.Hour)), []string{c.ID, other.ID}, "ListExpiring")
}

// testListingConcurrent: records created at once are each listed once, and
// of racers creating one EAB key ID, the winner is listed once.
func testListingConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	accounts := make([]*store.Account, racers)
	orders := make([]*store.Order, racers)
	authzs := make([]*store.Authorization, racers)
	keys := make([]*store.EABKey, racers)
	for i := range racers {
		accounts[i] = newAccount(now)
		orders[i], authzs[i] = createOrderFixture(newID("acct"), now)
		keys[i] = newEABKey(now)
	}
	errs := race(racers, func(i int) error {
		if err := s.CreateAccount(ctx, accounts[i]); err != nil {
			return err
		}
		if err := s.CreateOrder(ctx, orders[i], []*store.Authorization{authzs[i]}); err != nil {
			return err
		}
		return s.PutEABKey(ctx, keys[i])
	})
	for i, err := range errs {
		require.NoError(t, err, "racer %d", i)
	}
	same := make([]*store.EABKey, racers)
	sameID := newID("kid")
	for i := range same {
		same[i] = newEABKey(now)
		same[i].ID = sameID
	}
	requireOneWinner(t, race(racers, func(i int) error { return s.PutEABKey(ctx, same[i]) }), store.ErrConflict)

	certOrders := make([]*store.Order, racers)
	certs := make([]*store.Certificate, racers)
	for i := range racers {
		o, _ := createOrder(t, s, newID("acct"), now)
		certs[i], certOrders[i] = issued(o, now)
		certs[i].NotAfter = now.Add(time.Duration(i+1) * time.Hour)
	}
	for i, err := range race(racers, func(i int) error { return s.PutCertificate(ctx, certs[i], certOrders[i]) }) {
		require.NoError(t, err, "racer %d", i)
	}

	ids := func(n int, id func(i int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = id(i)
		}
		return out
	}
	wantAccounts := ids(racers, func(i int) string { return accounts[i].ID })
	wantOrders := append(ids(racers, func(i int) string { return orders[i].ID }), ids(racers, func(i int) string { return certOrders[i].ID })...)
	wantKeys := append(ids(racers, func(i int) string { return keys[i].ID }), sameID)
	wantCerts := ids(racers, func(i int) string { return certs[i].ID })
	for kind, want := range map[store.Kind][]string{
		store.KindAccount: wantAccounts, store.KindOrder: wantOrders,
		store.KindEABKey: wantKeys, store.KindCertificate: wantCerts,
	} {
		got := walk(t, listKind(t, s, kind), 3, len(want), "List %s", kind)
		require.ElementsMatch(t, want, got, "List %s", kind)
	}
	// The racing orders list in creation order: oldest first, the
	// certificates' orders (created after every racer finished) last.
	got := walk(t, listKind(t, s, store.KindOrder), 100, 2*racers)
	require.Equal(t, wantOrders[racers:], got[racers:])
	// Expiring soonest first, whatever order they were stored in.
	require.Equal(t, wantCerts, walk(t, listExpiring(t, s, now.Add(365*24*time.Hour)), 3, racers))
}

// testExpiringSoonestFirst: certificates are listed by NotAfter, soonest
// first, whatever order they were stored in; those expiring at or after
// before are not; expired ones are (they expire before any later time).
func testExpiringSoonestFirst(t *testing.T, s store.Store) {
	base := wallNow()
	day := 24 * time.Hour
	forever := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC) // RFC 5280 §4.1.2.5
	notAfter := map[string]time.Time{}
	var ids []string
	for _, at := range []time.Time{
		base.Add(30 * day), base.Add(10 * day), forever, base.Add(20 * day),
		base.Add(-day), base.Add(90 * day), time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC),
		// Beyond what int64 nanoseconds since 1970 reach (2262): still exact.
		time.Date(2226, 3, 4, 5, 6, 7, 8, time.UTC), time.Date(2300, 3, 4, 5, 6, 7, 8, time.UTC),
		time.Date(2300, 3, 4, 5, 6, 7, 9, time.UTC),
	} {
		c, _ := listedCert(t, s, "", base, at)
		notAfter[c.ID] = at
		ids = append(ids, c.ID)
	}
	sorted := slices.Clone(ids)
	slices.SortFunc(sorted, func(a, b string) int { return notAfter[a].Compare(notAfter[b]) })
	expiringBefore := func(before time.Time) []string {
		var out []string
		for _, id := range sorted {
			if notAfter[id].Before(before) {
				out = append(out, id)
			}
		}
		return out
	}
	for _, before := range []time.Time{
		{}, time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC), base, base.Add(25 * day), base.Add(30 * day),
		base.Add(31 * day), time.Date(2250, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2300, 3, 4, 5, 6, 7, 9, time.UTC),
		time.Date(2300, 3, 4, 5, 6, 7, 10, time.UTC), forever, forever.Add(time.Second),
	} {
		requireListing(t, listExpiring(t, s, before), expiringBefore(before), fmt.Sprintf("ListExpiring(%v)", before))
	}
	require.Len(t, expiringBefore(base.Add(25*day)), 4)
	require.Len(t, expiringBefore(forever.Add(time.Second)), len(ids))

	// List still has every certificate, in the order they were stored.
	requireListing(t, listKind(t, s, store.KindCertificate), ids, "List certificate")
}

// testExpiringBoundary: "before" is exclusive, to the nanosecond, and
// compares instants whatever their location.
func testExpiringBoundary(t *testing.T, s store.Store) {
	base := wallNow()
	notAfter := base.Add(48*time.Hour + 123)
	c, _ := listedCert(t, s, "", base, notAfter)
	earlier, _ := listedCert(t, s, "", base, notAfter.Add(-1))
	later, _ := listedCert(t, s, "", base, notAfter.Add(1))
	zone := time.FixedZone("UTC-7", -7*60*60)
	cases := []struct {
		before time.Time
		want   []string
	}{
		{notAfter.Add(-1), nil},
		{notAfter, []string{earlier.ID}},
		{notAfter.In(zone), []string{earlier.ID}},
		{notAfter.Add(1), []string{earlier.ID, c.ID}},
		{notAfter.Add(1).In(zone), []string{earlier.ID, c.ID}},
		{notAfter.Add(2), []string{earlier.ID, c.ID, later.ID}},
	}
	for _, tc := range cases {
		requireListing(t, listExpiring(t, s, tc.before), tc.want, fmt.Sprintf("before NotAfter%+dns", tc.before.Sub(notAfter)))
	}
}

// testExpiringPages: a longer listing read with many limits; a page's Next
// continues after it when certificates were revoked, or the one the cursor
// came from was, in between.
func testExpiringPages(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := wallNow()
	before := base.Add(1000 * time.Hour)
	var want []string
	certs := map[string]*store.Certificate{}
	// Stored latest expiry first, with IDs in the reverse order too.
	next := descendingID(newID("cert"))
	for i := range 9 {
		c, _ := listedCert(t, s, next(), base, base.Add(time.Duration(9-i)*time.Hour+time.Duration(i)))
		want = append([]string{c.ID}, want...)
		certs[c.ID] = c
	}
	listedCert(t, s, "", base, before) // not before before
	requireListing(t, listExpiring(t, s, before), want, "ListExpiring")

	page, err := s.ListExpiring(ctx, before, "", 3)
	require.NoError(t, err)
	require.Equal(t, want[:3], page.IDs)
	require.NotEmpty(t, page.Next)
	for _, id := range []string{want[2], want[3], want[5]} {
		c := certs[id]
		c.RevokedAt = base
		require.NoError(t, s.UpdateCertificate(ctx, c))
	}
	rest := walk(t, func(cursor string, limit int) (store.Page, error) {
		if cursor == "" {
			cursor = page.Next
		}
		return s.ListExpiring(ctx, before, cursor, limit)
	}, 2, len(want))
	require.Equal(t, []string{want[4], want[6], want[7], want[8]}, rest)
}

// testExpiringTies: certificates with the same NotAfter (X.509 times have
// whole seconds, so many share one) are each listed once across pages,
// between those expiring sooner and later.
func testExpiringTies(t *testing.T, s store.Store) {
	base := wallNow().Truncate(time.Second)
	at := base.Add(10 * 24 * time.Hour)
	first, _ := listedCert(t, s, "", base, at.Add(-time.Second))
	var tied []string
	for range 5 {
		c, _ := listedCert(t, s, "", base, at)
		tied = append(tied, c.ID)
	}
	last, _ := listedCert(t, s, "", base, at.Add(time.Second))
	before := at.Add(time.Minute)
	for _, limit := range []int{1, 2, 3, 7} {
		got := walk(t, listExpiring(t, s, before), limit, 7, "limit %d", limit)
		require.Len(t, got, 7, "limit %d", limit)
		require.Equal(t, first.ID, got[0], "limit %d", limit)
		require.Equal(t, last.ID, got[6], "limit %d", limit)
		require.ElementsMatch(t, tied, got[1:6], "limit %d", limit)
		// Each read gives the same order.
		require.Equal(t, walk(t, listExpiring(t, s, before), 100, 7), got, "limit %d", limit)
	}
	requireListing(t, listExpiring(t, s, at), []string{first.ID}, "before the tie")
}

// testExpiringRevoked: revoking a certificate (UpdateCertificate with
// RevokedAt set) takes it out of the listing and leaves it in List;
// other updates keep it listed once; clearing RevokedAt brings it back; a
// certificate stored revoked is never listed.
func testExpiringRevoked(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := wallNow()
	before := base.Add(30 * 24 * time.Hour)
	c1, _ := listedCert(t, s, "", base, base.Add(24*time.Hour))
	c2, _ := listedCert(t, s, "", base, base.Add(48*time.Hour))
	c3, _ := listedCert(t, s, "", base, base.Add(72*time.Hour))
	requireListing(t, listExpiring(t, s, before), []string{c1.ID, c2.ID, c3.ID}, "before revocation")

	c2.RevokedAt = base.Add(time.Hour)
	c2.RevocationReason = 1
	require.NoError(t, s.UpdateCertificate(ctx, c2))
	requireListing(t, listExpiring(t, s, before), []string{c1.ID, c3.ID}, "after revocation")
	// Updating a revoked certificate keeps it out.
	c2.RevocationReason = 4
	require.NoError(t, s.UpdateCertificate(ctx, c2))
	requireListing(t, listExpiring(t, s, before), []string{c1.ID, c3.ID}, "revoked, updated")

	// Other updates keep a certificate listed, once.
	c3.Names = append(c3.Names, "c.example.com")
	require.NoError(t, s.UpdateCertificate(ctx, c3))
	require.NoError(t, s.UpdateCertificate(ctx, c3))
	c1.Serial = newID("0c0d")
	require.NoError(t, s.UpdateCertificate(ctx, c1))
	requireListing(t, listExpiring(t, s, before), []string{c1.ID, c3.ID}, "after other updates")

	// Revocation undone (RevokedAt cleared): listed again.
	c2.RevokedAt, c2.RevocationReason = time.Time{}, 0
	require.NoError(t, s.UpdateCertificate(ctx, c2))
	requireListing(t, listExpiring(t, s, before), []string{c1.ID, c2.ID, c3.ID}, "revocation undone")

	// Stored revoked: listed by List, never by ListExpiring.
	o, _ := createOrder(t, s, newID("acct"), base)
	revoked, next := issued(o, base)
	revoked.NotAfter = base.Add(time.Hour)
	revoked.RevokedAt = base
	revoked.RevocationReason = 5
	require.NoError(t, s.PutCertificate(ctx, revoked, next))
	requireListing(t, listExpiring(t, s, before), []string{c1.ID, c2.ID, c3.ID}, "stored revoked")

	// Every one of them is still a certificate.
	requireListing(t, listKind(t, s, store.KindCertificate), []string{c1.ID, c2.ID, c3.ID, revoked.ID}, "List certificate")
}

// testExpiringUpdate: an update that changes NotAfter moves the
// certificate in the listing, and out of it when it now expires later.
func testExpiringUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := wallNow()
	before := base.Add(30 * 24 * time.Hour)
	c1, _ := listedCert(t, s, "", base, base.Add(24*time.Hour))
	c2, _ := listedCert(t, s, "", base, base.Add(48*time.Hour))
	c3, _ := listedCert(t, s, "", base, base.Add(72*time.Hour))

	c3.NotAfter = base.Add(time.Hour)
	require.NoError(t, s.UpdateCertificate(ctx, c3))
	requireListing(t, listExpiring(t, s, before), []string{c3.ID, c1.ID, c2.ID}, "moved sooner")

	c1.NotAfter = before.Add(time.Second)
	require.NoError(t, s.UpdateCertificate(ctx, c1))
	requireListing(t, listExpiring(t, s, before), []string{c3.ID, c2.ID}, "moved past before")
	requireListing(t, listExpiring(t, s, before.Add(time.Hour)), []string{c3.ID, c2.ID, c1.ID}, "moved past before, later bound")

	// Revoked and moved at once: out; the old place is left too.
	c2.NotAfter = base.Add(time.Minute)
	c2.RevokedAt = base
	require.NoError(t, s.UpdateCertificate(ctx, c2))
	requireListing(t, listExpiring(t, s, before.Add(time.Hour)), []string{c3.ID, c1.ID}, "revoked and moved")
	requireListing(t, listKind(t, s, store.KindCertificate), []string{c1.ID, c2.ID, c3.ID}, "List certificate")
}
