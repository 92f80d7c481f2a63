package admin

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

// TestRetentionSweptOrders: after the retention sweep removed the orders
// of live certificates, the admin API's certificate and order listings,
// a certificate's view and the dashboard (overview, search, upstream
// latencies) answer, none with a 500.
func TestRetentionSweptOrders(t *testing.T) {
	e := newDash(t, t.TempDir())
	seed(t, e.st, e.now, 20)
	got, err := e.st.Sweep(t.Context(), e.now.Add(26*time.Hour), store.Retention{Orders: time.Hour, Certificates: time.Hour}, 100)
	require.NoError(t, err)
	require.Equal(t, 20, got.Orders, "%+v", got)
	require.Equal(t, 1, got.Certificates, "cert-00000 expired three hours in: %+v", got)
	_, err = e.st.GetOrder(t.Context(), "order-00005")
	require.ErrorIs(t, err, store.ErrNotFound)

	for _, path := range []string{
		"/api/v1/certificates", "/api/v1/certificates/cert-00005", "/api/v1/orders",
		"/api/v1/accounts/acct-5", "/api/v1/upstreams",
		"/dashboard", "/dashboard?q=" + host(5), "/dashboard?q=cert-00005", "/dashboard?q=acct-5", "/dashboard?page=2",
	} {
		w := e.get(t, path, nil)
		require.Equal(t, http.StatusOK, w.Code, "%s: %s", path, w.Body.String())
	}
	require.Contains(t, e.get(t, "/api/v1/certificates/cert-00005", nil).Body.String(), "order-00005",
		"the certificate still names its (removed) order")
}
