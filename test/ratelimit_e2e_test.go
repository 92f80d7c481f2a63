package test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/stretchr/testify/require"
)

// TestRateLimitsAcrossReplicas: two replicas on one Redis share the rate
// limits. A lego client's certificates for one registered domain are
// counted whichever replica served them, the next order for that domain is
// refused with 429 rateLimited and a Retry-After lego reads, another
// registered domain still works, and the account's order limit (which the
// refused order did not spend) then stops it.
func TestRateLimitsAcrossReplicas(t *testing.T) {
	rd := startRedis(t, false)
	rs := startReplicas(t, replicaOptions{N: 2, Redis: rd, Extra: `rate_limits:
  new_orders_per_account: {count: 4, period: 1h}
  certificates_per_domain: {count: 3, period: 168h}
`})
	useTestDNSForLego(t, rs.DNS)
	u := rs.register(t, "rl@example.com")
	c := rs.legoClient(t, u, 60*time.Second)
	rs.useDNS01(t, c, nil)

	for i := range 3 {
		names := []string{fmt.Sprintf("h%d.rl.e2e.test", i)}
		_, err := legoObtainErr(c, names...)
		require.NoError(t, err, "certificate %d of 3 for e2e.test", i+1)
	}
	counts := rs.Proxy.Counts()
	for _, r := range rs.Replicas {
		require.Positive(t, counts[r.BaseURL], "replica %d served part of the run", r.Index)
	}

	_, err := legoObtainErr(c, "h4.rl.e2e.test")
	pd := requireProblem(t, err, "rateLimited")
	require.Equal(t, 429, pd.HTTPStatus)
	require.Contains(t, pd.Detail, "too many certificates for e2e.test (3 per 168h0m0s)")
	var rl *acme.RateLimitedError
	require.True(t, errors.As(err, &rl), "lego sees a RateLimitedError: %v", err)
	require.Greater(t, rl.RetryAfter, time.Hour, "Retry-After: a third of a week until one certificate refills")
	require.LessOrEqual(t, rl.RetryAfter, 168*time.Hour)

	other := rs.register(t, "rl2@example.com")
	oc := rs.legoClient(t, other, 60*time.Second)
	rs.useDNS01(t, oc, nil)
	_, err = legoObtainErr(oc, "www.rl.e2e.test")
	requireProblem(t, err, "rateLimited")

	_, err = legoObtainErr(c, "www.other.test")
	require.NoError(t, err, "another registered domain; the refused order spent none of the account's four")
	_, err = legoObtainErr(c, "www.third.test")
	pd = requireProblem(t, err, "rateLimited")
	require.Contains(t, pd.Detail, "too many new orders for this account (4 per 1h0m0s)")
	require.Equal(t, 4, countLines(rs.AllLogs(), "local certificate issued"), "four certificates issued, none past a limit")
}
