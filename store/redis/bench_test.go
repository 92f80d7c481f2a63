package redis

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acmebridge/acmebridge/store"
)

// BenchmarkUseNonce records nonce uses from many goroutines: one command
// per iteration (minting a nonce writes nothing).
func BenchmarkUseNonce(b *testing.B) {
	s := openSingle(b)
	ctx := context.Background()
	now := time.Now()
	var seq atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := fmt.Sprint("nonce", seq.Add(1))
			if ok, err := s.UseNonce(ctx, n, now.Add(time.Minute)); err != nil || !ok {
				b.Fatal("nonce refused", err)
			}
		}
	})
}

// BenchmarkCreateOrder creates orders with one authorization each from many
// goroutines, as a busy server does: one script per iteration.
func BenchmarkCreateOrder(b *testing.B) {
	s := openSingle(b)
	ctx := context.Background()
	now := time.Now().UTC()
	var seq atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			az := &store.Authorization{
				ID: fmt.Sprint("az", i), AccountID: "acct", Status: store.StatusPending,
				Identifier: store.Identifier{Type: "dns", Value: "www.example.com"},
				Expires:    now.Add(time.Hour),
				Challenges: []store.Challenge{{ID: "c", Type: "http-01", Status: store.StatusPending, Token: "token"}},
			}
			o := &store.Order{
				ID: fmt.Sprint("o", i), AccountID: fmt.Sprint("acct", i%16), Status: store.StatusPending,
				Identifiers: []store.Identifier{az.Identifier}, AuthzIDs: []string{az.ID},
				Expires: now.Add(time.Hour), CreatedAt: now,
			}
			if err := s.CreateOrder(ctx, o, []*store.Authorization{az}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDurability is the cost of store.redis.durability: the same
// writes on a master with one replica, without waiting (wait=0) and
// waiting for the replica (wait=1, WAIT pipelined after each write), from
// 16 goroutines as a busy server sends them. Compare with benchstat.
func BenchmarkDurability(b *testing.B) {
	p := startPair(b)
	ctx := context.Background()
	for _, wait := range []int{0, 1} {
		s := openOpts(b, Options{Addrs: []string{p.master.addr}, WaitReplicas: wait})
		b.Cleanup(func() { _ = s.Close() })
		var seq atomic.Int64
		b.Run(fmt.Sprintf("nonce/wait=%d", wait), func(b *testing.B) {
			now := time.Now()
			b.ReportAllocs()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if ok, err := s.UseNonce(ctx, fmt.Sprint("n", seq.Add(1)), now.Add(time.Minute)); err != nil || !ok {
						b.Fatal("nonce refused", err)
					}
				}
			})
		})
		b.Run(fmt.Sprintf("order/wait=%d", wait), func(b *testing.B) {
			now := time.Now().UTC()
			b.ReportAllocs()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := seq.Add(1)
					az := &store.Authorization{ID: fmt.Sprint("az", i), AccountID: "acct", Status: store.StatusPending,
						Identifier: store.Identifier{Type: "dns", Value: "www.example.com"}, Expires: now.Add(time.Hour),
						Challenges: []store.Challenge{{ID: "c", Type: "http-01", Status: store.StatusPending, Token: "token"}}}
					o := &store.Order{ID: fmt.Sprint("o", i), AccountID: fmt.Sprint("acct", i%16), Status: store.StatusPending,
						Identifiers: []store.Identifier{az.Identifier}, AuthzIDs: []string{az.ID}, Expires: now.Add(time.Hour), CreatedAt: now}
					if err := s.CreateOrder(ctx, o, []*store.Authorization{az}); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// postFixture stores an account and an order with one authorization for
// the signed-POST benchmarks.
func postFixture(b *testing.B, s *Store) (*store.Account, *store.Order) {
	ctx := context.Background()
	now := time.Now().UTC()
	a := &store.Account{ID: "bench-acct", Status: store.StatusValid, KeyThumbprint: fmt.Sprint("tp", now.UnixNano()),
		JWK:       []byte(`{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}`),
		CreatedAt: now}
	if err := s.CreateAccount(ctx, a); err != nil {
		b.Fatal(err)
	}
	az := &store.Authorization{ID: "bench-az", AccountID: a.ID, Status: store.StatusValid,
		Identifier: store.Identifier{Type: "dns", Value: "www.example.com"}, Expires: now.Add(time.Hour),
		Challenges: []store.Challenge{{ID: "c", Type: "http-01", Status: store.StatusValid, Token: "token"}}}
	o := &store.Order{ID: "bench-order", AccountID: a.ID, Status: store.StatusReady,
		Identifiers: []store.Identifier{az.Identifier}, AuthzIDs: []string{az.ID}, Expires: now.Add(time.Hour), CreatedAt: now}
	if err := s.CreateOrder(ctx, o, []*store.Authorization{az}); err != nil {
		b.Fatal(err)
	}
	return a, o
}

// BenchmarkPOSTSeparate is what a signed finalize read from the store
// before ReadPOST: its account, its nonce, its order and the order's
// authorization, one round trip each (4 per iteration).
func BenchmarkPOSTSeparate(b *testing.B) {
	benchPOSTSeparate(b, true)
}

// BenchmarkPOSTAccountNonceSeparate is the part every signed POST paid:
// GetAccount then UseNonce (2 round trips per iteration).
func BenchmarkPOSTAccountNonceSeparate(b *testing.B) {
	benchPOSTSeparate(b, false)
}

// benchPOSTSeparate reads a signed POST's account and uses its nonce, then
// with order reads the order and its authorization too, one round trip
// each.
func benchPOSTSeparate(b *testing.B, order bool) {
	benchPOSTs(b, func(ctx context.Context, s *Store, a *store.Account, o *store.Order, nonce string, until time.Time) error {
		if _, err := s.GetAccount(ctx, a.ID); err != nil {
			return err
		}
		if ok, err := s.UseNonce(ctx, nonce, until); err != nil {
			return err
		} else if !ok {
			return errors.New("nonce refused")
		}
		if !order {
			return nil
		}
		if _, err := s.GetOrder(ctx, o.ID); err != nil {
			return err
		}
		_, err := s.GetAuthz(ctx, o.AuthzIDs[0])
		return err
	})
}

// benchPOSTs runs one signed POST's reads, step, against postFixture's
// account and order, 16 requests in flight, each with a nonce of its own.
func benchPOSTs(b *testing.B, step func(ctx context.Context, s *Store, a *store.Account, o *store.Order, nonce string, until time.Time) error) {
	s := openSingle(b)
	a, o := postFixture(b, s)
	ctx := context.Background()
	until := time.Now().Add(time.Minute)
	var seq atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := step(ctx, s, a, o, fmt.Sprint("n", seq.Add(1)), until); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkReadPOSTAccountNonce is the same in one ReadPOST (1 round
// trip per iteration).
func BenchmarkReadPOSTAccountNonce(b *testing.B) {
	benchReadPOST(b, false)
}

// BenchmarkReadPOST is BenchmarkPOSTSeparate's reads in one ReadPOST: the
// account, the nonce, the order and its authorization (1 round trip per
// iteration).
func BenchmarkReadPOST(b *testing.B) {
	benchReadPOST(b, true)
}

func benchReadPOST(b *testing.B, order bool) {
	benchPOSTs(b, func(ctx context.Context, s *Store, a *store.Account, o *store.Order, nonce string, until time.Time) error {
		q := &store.POSTRead{AccountID: a.ID, Nonce: nonce, NonceUntil: until, KeyThumbprint: a.KeyThumbprint}
		if order {
			q.OrderID, q.OrderAuthzs = o.ID, true
		}
		r, err := s.ReadPOST(ctx, q)
		if err != nil {
			return err
		}
		if !r.NonceFresh || r.Account == nil || (order && len(r.Authzs) != 1) {
			return errors.New("read post: nonce refused or records missing")
		}
		return nil
	})
}
