package acme

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/upstream"
	"github.com/acmebridge/acmebridge/upstream/acme/acmetest"
)

// interrupt runs Issue until hook reports that the issuance reached the
// point where the test crashes it, then cancels its context (as a dying
// worker's lease would) and returns Issue's error. set installs the hook
// (OnPresent or OnCleanup).
func interrupt(t *testing.T, u *Upstream, req *upstream.Request, refs *refLog, set func(func(string))) error {
	t.Helper()
	reached := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	set(func(string) {
		once.Do(func() { close(reached) })
		<-release
	})
	defer set(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	errc := make(chan error, 1)
	go func() {
		_, err := u.Issue(ctx, req, refs.set)
		errc <- err
	}()
	select {
	case <-reached:
	case err := <-errc:
		cancel()
		t.Fatalf("Issue ended before the crash point: %v", err)
	}
	cancel()
	close(release)
	return <-errc
}

// TestResumeAfterCrash: an issuance interrupted while the challenge is
// being solved fails with a transient error, having recorded the order;
// Issue again with that reference resumes the same upstream order (Pebble
// holds one order), and once more with the reference of the valid order
// serves the same certificate without a new order.
func TestResumeAfterCrash(t *testing.T) {
	p := acmetest.Start(t, acmetest.Options{AuthzReuse: -1})
	o := dnsOptions(t, p, newStore(t))
	log, logs := testLogger(t)
	o.Logger = log
	u := newUpstream(t, o)
	req := newRequest(t, "resume.pebble.test")
	refs := &refLog{}

	err := interrupt(t, u, req, refs, p.ChallSrv.OnPresent)
	require.Error(t, err)
	require.True(t, acmeerr.Is(err, acmeerr.Unavailable), "an interrupted issuance is transient: %v", err)
	require.Len(t, refs.all(), 1, "the order was recorded before the challenge was solved")
	require.Equal(t, 1, p.Orders())

	req.Ref = refs.last()
	res := issue(t, u, req, refs)
	verifyResult(t, p, res, req)
	require.Equal(t, 1, p.Orders(), "the same upstream order was resumed, not a new one placed")
	require.Len(t, refs.all(), 1, "no new reference")
	require.Contains(t, logs.String(), `msg="acme order resumed"`)

	again := issue(t, u, req, refs)
	require.True(t, again.Leaf.Equal(res.Leaf), "a valid order is downloaded again")
	require.Equal(t, 1, p.Orders())
}

// TestResumeReadyOrder: interrupted after the authorization was validated
// (while the record is being removed), the order is ready at the CA; the
// resumed issuance finalizes it without solving anything again.
func TestResumeReadyOrder(t *testing.T) {
	p := acmetest.Start(t, acmetest.Options{AuthzReuse: -1})
	u := newUpstream(t, dnsOptions(t, p, newStore(t)))
	req := newRequest(t, "ready.pebble.test")
	refs := &refLog{}
	err := interrupt(t, u, req, refs, p.ChallSrv.OnCleanup)
	require.Error(t, err)
	require.False(t, acmeerr.Is(err, acmeerr.RejectedIdentifier))
	presents := p.ChallSrv.Presents()

	req.Ref = refs.last()
	res := issue(t, u, req, refs)
	verifyResult(t, p, res, req)
	require.Equal(t, 1, p.Orders())
	require.Equal(t, presents, p.ChallSrv.Presents(), "nothing solved again")
}

// wrongTXT is a dns-01 provider that publishes a wrong value, so the CA's
// validation fails.
type wrongTXT struct{ c *acmetest.ChallSrv }

func (w wrongTXT) Present(ctx context.Context, domain, _, _ string) error {
	return w.c.SetTXT(dns01.GetChallengeInfo(ctx, domain, "x").FQDN, "wrong")
}

func (w wrongTXT) CleanUp(ctx context.Context, domain, _, _ string) error {
	return w.c.ClearTXT(dns01.GetChallengeInfo(ctx, domain, "x").FQDN)
}

// TestResumeInvalidOrder: when the CA could not validate acmebridge's
// answer, the error is transient (acmebridge's solver failed, not the
// client) and the order is invalid; the next attempt places a new order
// and records it.
func TestResumeInvalidOrder(t *testing.T) {
	p := acmetest.Start(t, acmetest.Options{AuthzReuse: -1})
	st := newStore(t)
	bad := dnsOptions(t, p, st)
	bad.Solver.Provider, bad.Solver.DNSProvider = "", wrongTXT{p.ChallSrv}
	bad.Solver.DisablePropagationCheck = true
	ub := newUpstream(t, bad)
	req := newRequest(t, "invalid.pebble.test")
	refs := &refLog{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := ub.Issue(ctx, req, refs.set)
	require.Error(t, err)
	require.Equal(t, acmeerr.Unavailable, acmeerr.KindOf(err), "%v", err)
	require.Contains(t, err.Error(), "could not validate acmebridge's dns-01 answer")
	first := refs.last()

	u := newUpstream(t, dnsOptions(t, p, st))
	req.Ref = first
	res := issue(t, u, req, refs)
	verifyResult(t, p, res, req)
	require.Equal(t, 2, p.Orders(), "the invalid order was replaced")
	require.Len(t, refs.all(), 2)
	require.NotEqual(t, first, refs.last())
}

// TestRefOfOtherUpstream: a reference left by another upstream of the
// same order (failover) is ignored.
func TestRefOfOtherUpstream(t *testing.T) {
	u := &Upstream{name: "le"}
	_, ok := u.parseRef(`{"upstream":"vault","signing":5}`)
	require.False(t, ok)
	_, ok = u.parseRef(ref{Upstream: "other", Order: "https://ca/order/1"}.String())
	require.False(t, ok)
	_, ok = u.parseRef("")
	require.False(t, ok)
	r, ok := u.parseRef(ref{Upstream: "le", Order: "https://ca/order/1"}.String())
	require.True(t, ok)
	require.Equal(t, "https://ca/order/1", r.Order)
	require.True(t, strings.HasPrefix(r.String(), `{"upstream":"le"`))
}
