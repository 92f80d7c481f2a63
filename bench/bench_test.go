package bench

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/stretchr/testify/require"
)

// TestConfigDefaults: what a run needs is checked before anything starts.
func TestConfigDefaults(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "directory URL is required"},
		{Config{Directory: "https://x/dir"}, "needs the address of the responder"},
		{Config{Directory: "https://x/dir", Challenge: DNS01}, "needs the DNS server's address"},
		{Config{Directory: "https://x/dir", Challenge: "tls-alpn-01"}, `challenge "tls-alpn-01"`},
		{Config{Directory: "https://x/dir", HTTPAddr: "127.0.0.1:0", EABKID: "k"}, "go together"},
	} {
		_, err := Run(context.Background(), tc.cfg)
		require.ErrorContains(t, err, tc.want)
	}
	c := Config{Directory: "https://x/dir", HTTPAddr: "127.0.0.1:0"}
	require.NoError(t, c.defaults())
	require.Equal(t, Config{Label: "https://x/dir", Directory: "https://x/dir", HTTPAddr: "127.0.0.1:0", Clients: 1, Orders: 1,
		Challenge: HTTP01, Domain: "bench.test", PollInterval: 50 * time.Millisecond, MaxRetryAfter: time.Second,
		Timeout: time.Minute}, c)
}

// TestProblemType names failures by ACME problem type, or by a client-side
// kind.
func TestProblemType(t *testing.T) {
	pd := &acme.ProblemDetails{Type: "urn:ietf:params:acme:error:rejectedIdentifier", HTTPStatus: 400}
	require.Equal(t, "rejectedIdentifier", problemType(pd))
	require.Equal(t, "badNonce", problemType(&acme.NonceError{ProblemDetails: &acme.ProblemDetails{Type: acme.BadNonceErrorType}}))
	require.Equal(t, "client: timeout", problemType(context.DeadlineExceeded))
	require.Equal(t, "client: connection", problemType(errors.New("dial tcp: connection refused")))
	require.Equal(t, "client: bad certificate", problemType(errors.New("download: no certificate")))
	require.Equal(t, "client: other", problemType(errors.New("boom")))
}

// TestRetryAfter reads seconds and HTTP dates.
func TestRetryAfter(t *testing.T) {
	require.Zero(t, retryAfter(""))
	require.Zero(t, retryAfter("soon"))
	require.Equal(t, 3*time.Second, retryAfter("3"))
	d := retryAfter(time.Now().Add(10 * time.Second).UTC().Format(http.TimeFormat))
	require.InDelta(t, 10*time.Second, d, float64(2*time.Second))
	require.Zero(t, retryAfter(time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)))
}
