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
