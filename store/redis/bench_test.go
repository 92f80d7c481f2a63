package redis

import (
	"context"
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
