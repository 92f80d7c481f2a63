package vault

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/upstream/vault/vaulttest"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestLostAnswer: when the answer to a sign request is lost, the retry
// finds what Vault signed instead of signing again; when Vault never got
// the request, the retry waits out the grace period, then signs. Either
// way Vault holds exactly one certificate for the order. All through a
// token with only the minimum policy.
func TestLostAnswer(t *testing.T) {
	e := newEnv(t, vaulttest.PKIOptions{})
	p := vaulttest.StartProxy(t, e.srv.URL)
	clock := &fakeClock{t: time.Now()}
	u := e.upstream(t, func(o *Options) { o.Address, o.Clock = p.URL, clock.Now })
	ctx := ctxT(t)

	t.Run("signed, answer lost", func(t *testing.T) {
		req := newRequest(t, csrOptions{}, "lost.example.test")
		var refs refLog
		p.SetMode(vaulttest.SignThenDrop)
		_, err := u.Issue(ctx, req, refs.set)
		require.Equal(t, acmeerr.Unavailable, acmeerr.KindOf(err), "%v", err)
		require.Contains(t, refs.last(), `"signing":`, "the mark stays: the outcome is unknown")
		require.Equal(t, 1, e.leavesFor(t, req.CSR.RawSubjectPublicKeyInfo), "Vault did sign")

		p.SetMode(vaulttest.Pass)
		req.Ref = refs.last()
		res, err := u.Issue(ctx, req, refs.set)
		require.NoError(t, err)
		require.Equal(t, 1, e.leavesFor(t, req.CSR.RawSubjectPublicKeyInfo), "found, not signed again")
		require.Contains(t, refs.last(), vaultSerial(res.Leaf.SerialNumber))
		require.Len(t, res.Chain, 1)
		require.True(t, res.Chain[0].Equal(e.pki.Intermediate))
	})

	t.Run("never reached Vault", func(t *testing.T) {
		req := newRequest(t, csrOptions{}, "unsent.example.test")
		var refs refLog
		p.SetMode(vaulttest.DropUnsent)
		_, err := u.Issue(ctx, req, refs.set)
		require.Equal(t, acmeerr.Unavailable, acmeerr.KindOf(err))
		require.Contains(t, refs.last(), `"signing":`, "from here the request looked sent")

		p.SetMode(vaulttest.Pass)
		req.Ref = refs.last()
		_, err = u.Issue(ctx, req, refs.set)
		require.Equal(t, acmeerr.Unavailable, acmeerr.KindOf(err), "within the grace period Vault may still be signing")
		require.Contains(t, err.Error(), "waiting")
		require.InDelta(t, DefaultRecoveryGrace.Seconds(), asACME(t, err).RetryAfter.Seconds(), 5, "retry when the grace period ends")
		require.Zero(t, e.leavesFor(t, req.CSR.RawSubjectPublicKeyInfo))

		clock.Advance(DefaultRecoveryGrace + time.Second)
		res, err := u.Issue(ctx, req, refs.set)
		require.NoError(t, err)
		require.Equal(t, 1, e.leavesFor(t, req.CSR.RawSubjectPublicKeyInfo))
		require.Contains(t, refs.last(), vaultSerial(res.Leaf.SerialNumber))
	})

	t.Run("same key, other names: not taken for this order", func(t *testing.T) {
		key := newKey(t)
		_, err := u.Issue(ctx, newRequest(t, csrOptions{key: key}, "reuse1.example.test"), nil)
		require.NoError(t, err)
		second := newRequest(t, csrOptions{key: key}, "reuse2.example.test")
		second.Ref = ref{Upstream: u.name, Signing: clock.Now().Unix()}.String()
		clock.Advance(DefaultRecoveryGrace + time.Second)
		res, err := u.Issue(ctx, second, nil)
		require.NoError(t, err)
		require.Equal(t, []string{"reuse2.example.test"}, res.Leaf.DNSNames)
	})
}

// TestLostAnswerNoStore: with no_store, Vault keeps nothing to search, so
// the order is never signed again after a lost answer.
func TestLostAnswerNoStore(t *testing.T) {
	e := newEnv(t, vaulttest.PKIOptions{NoStore: true})
	u := e.upstream(t, nil)
	req := newRequest(t, csrOptions{}, "nostore.example.test")
	req.Ref = ref{Upstream: u.name, Signing: time.Now().Add(-time.Hour).Unix()}.String()
	_, err := u.Issue(ctxT(t), req, nil)
	require.Equal(t, acmeerr.Internal, acmeerr.KindOf(err))
	require.ErrorContains(t, err, "no_store")
}
