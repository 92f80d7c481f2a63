package redis

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

// commandLog is a go-redis hook that records the name of every command
// sent, pipelined or not.
type commandLog struct {
	mu    sync.Mutex
	names []string
}

func (l *commandLog) add(cmds ...redis.Cmder) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range cmds {
		l.names = append(l.names, c.Name())
	}
}

// take returns the commands recorded since the last take.
func (l *commandLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	names := l.names
	l.names = nil
	return names
}

func (l *commandLog) DialHook(next redis.DialHook) redis.DialHook { return next }

func (l *commandLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		l.add(cmd)
		return next(ctx, cmd)
	}
}

func (l *commandLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		l.add(cmds...)
		return next(ctx, cmds)
	}
}

// opCount is the commands one store operation sent.
type opCount struct {
	op   string
	cmds []string
}

var flowSeq atomic.Int64

// countIssuance runs one issuance, operation by operation, and returns the
// commands each sent.
func countIssuance(t *testing.T, s *Store, log *commandLog) []opCount {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	id := fmt.Sprint(flowSeq.Add(1))
	var counts []opCount
	step := func(op string, err error) {
		t.Helper()
		require.NoError(t, err, op)
		counts = append(counts, opCount{op, log.take()})
	}
	log.take()

	ok, err := s.UseNonce(ctx, "n"+id, now.Add(time.Hour))
	require.True(t, ok)
	step("UseNonce", err)
	k := &store.EABKey{ID: "kid" + id, HMACKey: []byte("k"), CreatedAt: now}
	step("PutEABKey", s.PutEABKey(ctx, k))
	a := &store.Account{ID: "acct" + id, Status: store.StatusValid, KeyThumbprint: "tp" + id, EABKeyID: k.ID, CreatedAt: now}
	step("CreateAccount (binding EAB)", s.CreateAccount(ctx, a))
	_, err = s.GetAccountByKey(ctx, a.KeyThumbprint)
	step("GetAccountByKey", err)
	o, az := newPending(now, now.Add(7*24*time.Hour))
	o.AccountID, az.AccountID = a.ID, a.ID
	step("CreateOrder (1 authz)", s.CreateOrder(ctx, o, []*store.Authorization{az}))
	_, err = s.GetAuthz(ctx, az.ID)
	step("GetAuthz", err)
	r, err := s.ReadPOST(ctx, &store.POSTRead{AccountID: a.ID, Nonce: "p" + id, NonceUntil: now.Add(time.Hour),
		KeyThumbprint: a.KeyThumbprint, AuthzID: az.ID})
	require.True(t, err == nil && r.NonceFresh && r.Authz != nil)
	step("ReadPOST (nonce, authz)", err)
	az.Challenges[0].Status = store.StatusProcessing
	step("StartValidation", s.StartValidation(ctx, az, &store.Validation{AuthzID: az.ID, ChallengeID: "c",
		KeyAuthorization: "t.tp", Attempts: 1, Owner: "worker", LeaseUntil: now}))
	_, err = s.ClaimValidation(ctx, "other", now, time.Minute)
	step("ClaimValidation", err)
	_, err = s.GetValidation(ctx, az.ID)
	step("GetValidation", err)
	az.Status, az.Challenges[0].Status = store.StatusValid, store.StatusValid
	step("FinishValidation", s.FinishValidation(ctx, az))
	step("DeleteValidation", s.DeleteValidation(ctx, az.ID))
	_, err = s.FindValidAuthz(ctx, a.ID, az.Identifier, false, now)
	step("FindValidAuthz", err)
	pre := &store.Authorization{ID: "pre" + id, AccountID: a.ID, Status: store.StatusPending,
		Identifier: store.Identifier{Type: "dns", Value: "pre.example.com"}, Expires: now.Add(time.Hour)}
	step("CreateAuthz", s.CreateAuthz(ctx, pre))
	pre.Status = store.StatusValid
	step("UpdateAuthz (pre-authz valid)", s.UpdateAuthz(ctx, pre))
	reuse := &store.Order{ID: "reuse" + id, AccountID: a.ID, Status: store.StatusReady,
		Identifiers: []store.Identifier{pre.Identifier}, AuthzIDs: []string{pre.ID}, Expires: now.Add(time.Hour), CreatedAt: now}
	step("CreateOrder (reusing 1)", s.CreateOrder(ctx, reuse, nil))
	o.Status = store.StatusReady
	step("UpdateOrder", s.UpdateOrder(ctx, o))
	_, err = s.GetOrder(ctx, o.ID)
	step("GetOrder", err)
	r, err = s.ReadPOST(ctx, &store.POSTRead{AccountID: a.ID, Nonce: "q" + id, NonceUntil: now.Add(time.Hour),
		KeyThumbprint: a.KeyThumbprint, OrderID: o.ID, OrderAuthzs: true})
	require.True(t, err == nil && r.NonceFresh && len(r.Authzs) == 1)
	step("ReadPOST (nonce, order+authzs)", err)
	o.Status = store.StatusProcessing
	step("EnqueueJob", s.EnqueueJob(ctx, &store.Job{OrderID: o.ID, NotBefore: now}, o))
	j, err := s.ClaimJob(ctx, "worker", now, time.Minute)
	step("ClaimJob", err)
	j.UpstreamRef = "ref"
	step("UpdateJob", s.UpdateJob(ctx, j, "worker"))
	c := &store.Certificate{ID: "cert" + id, AccountID: a.ID, OrderID: o.ID, Serial: "0c" + id, IssuedAt: now,
		NotAfter: now.Add(time.Minute)}
	o.Status, o.CertificateID = store.StatusValid, c.ID
	step("PutCertificate", s.PutCertificate(ctx, c, o))
	_, err = s.ListOrders(ctx, a.ID, "", 10)
	step("ListOrders", err)
	c.RevokedAt = now
	step("UpdateCertificate (revoke)", s.UpdateCertificate(ctx, c))
	_, err = s.List(ctx, store.KindOrder, "", 10)
	step("List", err)
	_, err = s.ListExpiring(ctx, now.Add(time.Hour), "", 10)
	step("ListExpiring", err)
	return counts
}

// TestCommandsPerOperation counts the Redis commands each operation sends
// with a go-redis hook: one each once Redis has the scripts cached; the
// first use of a script after a cache flush (or a Redis restart) costs one
// more (EVALSHA answered NOSCRIPT, then EVAL).
func TestCommandsPerOperation(t *testing.T) {
	addr := requireRedis(t)
	c := redis.NewClient(&redis.Options{Addr: addr})
	log := &commandLog{}
	c.AddHook(log)
	s := NewFromClient(c, freshPrefix())
	defer s.Close()
	require.NoError(t, s.c.ScriptFlush(context.Background()).Err())

	cold := countIssuance(t, s, log)
	warm := countIssuance(t, s, log)
	var b strings.Builder
	fmt.Fprintf(&b, "%-30s %5s %5s  %s\n", "operation", "cold", "warm", "commands (warm)")
	total := 0
	for i, w := range warm {
		fmt.Fprintf(&b, "%-30s %5d %5d  %s\n", w.op, len(cold[i].cmds), len(w.cmds), strings.Join(w.cmds, " "))
		total += len(w.cmds)
		require.LessOrEqual(t, len(w.cmds), 1, "%s: %v", w.op, w.cmds)
		require.LessOrEqual(t, len(cold[i].cmds), 2, "%s: %v", w.op, cold[i].cmds)
	}
	fmt.Fprintf(&b, "%-30s %5s %5d", "total", "", total)
	t.Logf("Redis commands per store operation:\n%s", b.String())
}
