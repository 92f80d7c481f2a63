package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

// TestDelegatedShown: an order whose authorizations were granted by
// delegated validation is marked delegated in the admin API's order list
// and order view (which lists each authorization with the rule that
// delegated it, or the challenge that validated it) and in the dashboard's
// latest orders.
func TestDelegatedShown(t *testing.T) {
	ctx := context.Background()
	e := newAPI(t)
	_, c := e.seed("v.corp.example.com", 24*time.Hour) // validated by a challenge
	a := &store.Account{ID: "acct-site-a", Status: store.StatusValid, JWK: []byte("{}"), KeyThumbprint: "tp-site-a", CreatedAt: time.Now()}
	require.NoError(t, e.st.CreateAccount(ctx, a))
	az := &store.Authorization{ID: "authz-d", AccountID: a.ID, Status: store.StatusValid, Identifier: store.Identifier{Type: "dns", Value: "p.site-a.example.com"},
		Expires: time.Now().Add(time.Hour), Challenges: []store.Challenge{}, Delegated: true, DelegatedRule: "site-a"}
	o := &store.Order{ID: "order-d", AccountID: a.ID, Status: store.StatusPending, Identifiers: []store.Identifier{az.Identifier}, AuthzIDs: []string{az.ID},
		Rule: "site-a", Upstreams: []string{"dev"}, Expires: time.Now().Add(time.Hour), CreatedAt: time.Now(), Delegated: true}
	require.NoError(t, e.st.CreateOrder(ctx, o, []*store.Authorization{az}))

	w := e.do(http.MethodGet, "/api/v1/orders/order-d", nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	var v orderView
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &v))
	require.True(t, v.Delegated)
	require.Equal(t, []authzView{{ID: "authz-d", Identifier: az.Identifier, Status: "valid", Expires: v.Authorizations[0].Expires,
		Delegated: true, DelegatedRule: "site-a"}}, v.Authorizations)

	w = e.do(http.MethodGet, "/api/v1/orders/"+c.OrderID, nil)
	var plain orderView
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &plain))
	require.False(t, plain.Delegated)
	require.NotContains(t, w.Body.String(), "delegated")

	var list listing[orderView]
	require.NoError(t, json.Unmarshal(e.do(http.MethodGet, "/api/v1/orders?identifier=p.site-a.example.com", nil).Body.Bytes(), &list))
	require.Len(t, list.Items, 1)
	require.True(t, list.Items[0].Delegated)

	d := newDash(t, t.TempDir())
	require.NoError(t, d.st.CreateAccount(ctx, a))
	require.NoError(t, d.st.CreateOrder(ctx, o, []*store.Authorization{az}))
	body := d.get(t, "/dashboard", nil).Body.String()
	row := regexp.MustCompile(`(?s)<tr class="order" data-order="order-d">.*?</tr>`).FindString(body)
	require.Contains(t, row, `<span class="badge st-delegated"`)
}
