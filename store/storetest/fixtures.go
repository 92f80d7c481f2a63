package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

// The fixtures fill every field (so each one must round-trip) with fresh IDs.

func newAccount(now time.Time) *store.Account {
	return &store.Account{
		Directory:            "tenant", // every record carries its directory (configs.Directory)
		ID:                   newID("acct"),
		Status:               store.StatusValid,
		Contact:              []string{"mailto:ops@example.com", "mailto:sec@example.com"},
		JWK:                  []byte(`{"kty":"EC","crv":"P-256","x":"x","y":"y"}`),
		KeyThumbprint:        newID("tp"),
		TermsOfServiceAgreed: true,
		CreatedAt:            now,
		CreatedFrom:          "192.0.2.7",
	}
}

func newAuthz(accountID, name string, now time.Time) *store.Authorization {
	return &store.Authorization{
		Directory:  "tenant", // every record carries its directory (configs.Directory)
		ID:         newID("authz"),
		AccountID:  accountID,
		Status:     store.StatusPending,
		Identifier: store.Identifier{Type: "dns", Value: name},
		Expires:    now.Add(7 * 24 * time.Hour),
		Challenges: []store.Challenge{
			{ID: newID("chall"), Type: "http-01", Status: store.StatusPending, Token: newID("token")},
			{ID: newID("chall"), Type: "dns-01", Status: store.StatusPending, Token: newID("token")},
		},
	}
}

// newOrder returns a pending order for the authorizations, one identifier
// per authorization.
func newOrder(accountID string, now time.Time, authzIDs ...string) *store.Order {
	o := &store.Order{
		Directory: "tenant", // every record carries its directory (configs.Directory)
		ID:        newID("order"),
		AccountID: accountID,
		Status:    store.StatusPending,
		AuthzIDs:  authzIDs,
		NotBefore: now.Add(time.Minute),
		NotAfter:  now.Add(90 * 24 * time.Hour),
		Expires:   now.Add(7 * 24 * time.Hour),
		Profile:   "tlsserver",
		Rule:      "public",
		Upstreams: []string{"letsencrypt", "dev"},
		CreatedAt: now,
	}
	for range authzIDs {
		o.Identifiers = append(o.Identifiers, store.Identifier{Type: "dns", Value: newID("host") + ".example.com"})
	}
	return o
}

func newCertificate(accountID, orderID string, now time.Time) *store.Certificate {
	return &store.Certificate{
		Directory:     "tenant", // every record carries its directory (configs.Directory)
		ID:            newID("cert"),
		AccountID:     accountID,
		OrderID:       orderID,
		Serial:        newID("0a1b"),
		Names:         []string{"a.example.com", "b.example.com"},
		NotBefore:     now,
		NotAfter:      now.Add(90 * 24 * time.Hour),
		Upstream:      "dev",
		ChainPEM:      []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
		KeyThumbprint: newID("spki"),
		IssuedAt:      now,
	}
}

func newEABKey(now time.Time) *store.EABKey {
	return &store.EABKey{
		Directory: "tenant", // every record carries its directory (configs.Directory)
		ID:        newID("kid"),
		HMACKey:   []byte("0123456789abcdef0123456789abcdef"),
		Group:     "team-a",
		Allow:     []string{"*.corp.example.com"},
		Note:      "for the build farm",
		CreatedAt: now,
		ExpiresAt: now.Add(30 * 24 * time.Hour),
	}
}

// createOrderFixture returns an order with one new authorization, unstored.
func createOrderFixture(accountID string, now time.Time) (*store.Order, *store.Authorization) {
	az := newAuthz(accountID, newID("host")+".example.com", now)
	o := newOrder(accountID, now, az.ID)
	o.Identifiers = []store.Identifier{az.Identifier}
	return o, az
}

// createOrder stores a new order with one new authorization and returns
// both as stored.
func createOrder(t *testing.T, s store.Store, accountID string, now time.Time) (*store.Order, *store.Authorization) {
	t.Helper()
	o, az := createOrderFixture(accountID, now)
	require.NoError(t, s.CreateOrder(t.Context(), o, []*store.Authorization{az}))
	return o, az
}

// createOrderIn stores a new order and moves it to status, returning it as
// stored.
func createOrderIn(t *testing.T, s store.Store, status string, now time.Time) *store.Order {
	t.Helper()
	o, _ := createOrder(t, s, newID("acct"), now)
	if status != o.Status {
		o.Status = status
		require.NoError(t, s.UpdateOrder(t.Context(), o))
	}
	return o
}

// mustGetOrder reads an order that must exist.
func mustGetOrder(t *testing.T, s store.Store, id string) *store.Order {
	t.Helper()
	o, err := s.GetOrder(t.Context(), id)
	require.NoError(t, err)
	return o
}

// mustGetJob reads a job that must exist.
func mustGetJob(t *testing.T, s store.Store, orderID string) *store.Job {
	t.Helper()
	j, err := s.GetJob(t.Context(), orderID)
	require.NoError(t, err)
	return j
}
