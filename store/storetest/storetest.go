// Package storetest is the conformance suite of the store contract. Every
// driver's tests call Run, so the contract written as doc comments on
// store.Store is checked the same way on each of them.
package storetest

import (
	"crypto/rand"
	"encoding/hex"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

// Run runs the suite. open must return an empty, ready store for the test t
// it is given; Run calls it once per subtest and closes the store when the
// subtest ends (open may register further cleanup with t.Cleanup, which runs
// after the close). Subtests run one after another, never in parallel.
//
// Times in the records the suite writes are near the wall clock (drivers
// may derive expiries from them) and carry nanoseconds; drivers must return
// them as the same instants.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	groups := []struct {
		name  string
		cases []testCase
	}{
		{"Nonce", nonceCases},
		{"ReadPOST", postCases},
		{"Account", accountCases},
		{"EAB", eabCases},
		{"Approval", approvalCases},
		{"Order", orderCases},
		{"ListOrders", listCases},
		{"Authz", authzCases},
		{"AuthzReuse", authzReuseCases},
		{"Certificate", certCases},
		{"Job", jobCases},
		{"Validation", validationCases},
		{"List", listingCases},
		{"ListExpiring", expiringCases},
		{"Secret", secretCases},
		{"ChallengeToken", challengeTokenCases},
		{"RateLimit", rateCases},
		{"Reload", reloadCases},
		{"Notification", notificationCases},
		{"Retention", retentionCases},
		{"Misc", miscCases},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.cases {
				t.Run(tc.name, func(t *testing.T) {
					s := open(t)
					require.NotNil(t, s, "open returned a nil store")
					t.Cleanup(func() {
						if err := s.Close(); err != nil {
							t.Errorf("Close: %v", err)
						}
					})
					tc.fn(t, s)
				})
			}
		})
	}
}

// testCase is one subtest of the suite.
type testCase struct {
	name string
	fn   func(t *testing.T, s store.Store)
}

// racers is how many goroutines race for something only one may get.
const racers = 8

var miscCases = []testCase{
	{"Ping", func(t *testing.T, s store.Store) {
		require.NoError(t, s.Ping(t.Context()))
	}},
	{"GettersReturnNotFound", testGettersNotFound},
	{"UpdatesOfMissingReturnNotFound", testUpdatesNotFound},
}

// testGettersNotFound: every getter answers ErrNotFound for a missing key.
func testGettersNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	missing := newID("missing")
	getters := map[string]func() error{
		"GetAccount":             func() error { _, err := s.GetAccount(ctx, missing); return err },
		"GetAccountByKey":        func() error { _, err := s.GetAccountByKey(ctx, missing); return err },
		"GetOrder":               func() error { _, err := s.GetOrder(ctx, missing); return err },
		"GetAuthz":               func() error { _, err := s.GetAuthz(ctx, missing); return err },
		"GetCertificate":         func() error { _, err := s.GetCertificate(ctx, missing); return err },
		"GetCertificateBySerial": func() error { _, err := s.GetCertificateBySerial(ctx, missing); return err },
		"GetEABKey":              func() error { _, err := s.GetEABKey(ctx, missing); return err },
		"GetJob":                 func() error { _, err := s.GetJob(ctx, missing); return err },
		"GetValidation":          func() error { _, err := s.GetValidation(ctx, missing); return err },
		"GetSecret":              func() error { _, err := s.GetSecret(ctx, missing); return err },
		"GetChallengeToken":      func() error { _, err := s.GetChallengeToken(ctx, missing); return err },
	}
	for name, get := range getters {
		require.ErrorIs(t, get(), store.ErrNotFound, name)
	}
}

// testUpdatesNotFound: a compare-and-set on a record that does not exist is
// ErrNotFound, and does not create it.
func testUpdatesNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := wallNow()
	acct := newAccount(now)
	require.ErrorIs(t, s.UpdateAccount(ctx, acct), store.ErrNotFound, "UpdateAccount")
	_, err := s.GetAccount(ctx, acct.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetAccountByKey(ctx, acct.KeyThumbprint)
	require.ErrorIs(t, err, store.ErrNotFound)

	az := newAuthz(acct.ID, "missing.example.com", now)
	o := newOrder(acct.ID, now, az.ID)
	require.ErrorIs(t, s.UpdateOrder(ctx, o), store.ErrNotFound, "UpdateOrder")
	_, err = s.GetOrder(ctx, o.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.ErrorIs(t, s.UpdateAuthz(ctx, az), store.ErrNotFound, "UpdateAuthz")
	_, err = s.GetAuthz(ctx, az.ID)
	require.ErrorIs(t, err, store.ErrNotFound)

	c := newCertificate(acct.ID, o.ID, now)
	require.ErrorIs(t, s.UpdateCertificate(ctx, c), store.ErrNotFound, "UpdateCertificate")
	_, err = s.GetCertificateBySerial(ctx, c.Serial)
	require.ErrorIs(t, err, store.ErrNotFound)

	k := newEABKey(now)
	require.ErrorIs(t, s.UpdateEABKey(ctx, k), store.ErrNotFound, "UpdateEABKey")
	_, err = s.GetEABKey(ctx, k.ID)
	require.ErrorIs(t, err, store.ErrNotFound)

	j := &store.Job{OrderID: o.ID, NotBefore: now, Owner: "worker"}
	require.ErrorIs(t, s.UpdateJob(ctx, j, "worker"), store.ErrNotFound, "UpdateJob")
	_, err = s.GetJob(ctx, o.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
}

// newID returns a fresh ID with a readable prefix, unique across runs so a
// driver sharing a server between tests cannot see stale records.
func newID(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return prefix + "-" + hex.EncodeToString(b)
}

// wallNow is the suite's "now": the wall clock in UTC, without monotonic
// reading, with nanoseconds so a driver that drops precision is caught.
func wallNow() time.Time {
	return time.Now().UTC()
}

// race calls fn from n goroutines released at once and returns their errors.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// requireOneWinner checks that exactly one of errs is nil and every other is
// loser, and returns the winner's index.
func requireOneWinner(t *testing.T, errs []error, loser error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		if err == nil {
			require.Equal(t, -1, winner, "racers %d and %d both won", winner, i)
			winner = i
			continue
		}
		require.ErrorIs(t, err, loser, "racer %d", i)
	}
	require.NotEqual(t, -1, winner, "no racer won")
	return winner
}

// requireSameRecord compares two records, treating time fields as equal
// when they are the same instant (drivers need not keep a time's location).
func requireSameRecord(t *testing.T, want, got any, msgAndArgs ...any) {
	t.Helper()
	require.Equal(t, canonical(want), canonical(got), msgAndArgs...)
}

var timeType = reflect.TypeFor[time.Time]()

// canonical returns a deep copy of the record v (a pointer to a struct)
// with every time in UTC.
func canonical(v any) any {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return v
	}
	cp := reflect.New(rv.Elem().Type())
	cp.Elem().Set(deepCopy(rv.Elem()))
	return cp.Interface()
}

// deepCopy copies v, following pointers and slices and putting times in
// UTC, so canonical never changes the caller's record.
func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		p := reflect.New(v.Elem().Type())
		p.Elem().Set(deepCopy(v.Elem()))
		return p
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		s := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			s.Index(i).Set(deepCopy(v.Index(i)))
		}
		return s
	case reflect.Struct:
		if v.Type() == timeType {
			return reflect.ValueOf(v.Interface().(time.Time).UTC())
		}
		s := reflect.New(v.Type()).Elem()
		for i := range v.NumField() {
			s.Field(i).Set(deepCopy(v.Field(i)))
		}
		return s
	default:
		return v
	}
}
