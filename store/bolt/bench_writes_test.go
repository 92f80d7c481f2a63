package bolt

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/acmebridge/acmebridge/store"
)

// issuanceWrites makes the seven writes of one issuance on the hot path,
// in order (proxy TestStoreOpsPerIssuance counts them): CreateOrder,
// StartValidation (processing, with the validation job), FinishValidation
// (valid, removing it), UpdateOrder (ready), EnqueueJob (while the
// authorization is unchanged), ClaimJob, PutCertificate (the order valid).
func issuanceWrites(ctx context.Context, s *Store, i int64, now time.Time) error {
	az := &store.Authorization{
		ID: fmt.Sprint("az", i), AccountID: "acct", Status: store.StatusPending,
		Identifier: store.Identifier{Type: "dns", Value: fmt.Sprintf("w%d.example.com", i)},
		Expires:    now.Add(time.Hour),
		Challenges: []store.Challenge{{ID: "c", Type: "http-01", Status: store.StatusPending, Token: "token"}},
	}
	o := &store.Order{
		ID: fmt.Sprint("o", i), AccountID: "acct", Status: store.StatusPending,
		Identifiers: []store.Identifier{az.Identifier}, AuthzIDs: []string{az.ID},
		Expires: now.Add(time.Hour), CreatedAt: now,
	}
	if err := s.CreateOrder(ctx, o, []*store.Authorization{az}); err != nil {
		return fmt.Errorf("CreateOrder: %w", err)
	}
	az.Challenges[0].Status = store.StatusProcessing
	v := &store.Validation{AuthzID: az.ID, ChallengeID: "c", KeyAuthorization: "token.tp", Attempts: 1,
		Owner: "worker", LeaseUntil: now.Add(time.Minute)}
	if err := s.StartValidation(ctx, az, v); err != nil {
		return fmt.Errorf("StartValidation: %w", err)
	}
	az.Status, az.Challenges[0].Status = store.StatusValid, store.StatusValid
	if err := s.FinishValidation(ctx, az); err != nil {
		return fmt.Errorf("FinishValidation: %w", err)
	}
	o.Status = store.StatusReady
	if err := s.UpdateOrder(ctx, o); err != nil {
		return fmt.Errorf("UpdateOrder: %w", err)
	}
	o.Status, o.CSR = store.StatusProcessing, []byte("csr")
	// As ra.Finalize: the job only while the authorization is as read.
	if err := s.EnqueueJob(ctx, &store.Job{OrderID: o.ID, NotBefore: now}, o, store.AuthzUnchanged(az)); err != nil {
		return fmt.Errorf("EnqueueJob: %w", err)
	}
	// With several issuances in flight another one may have claimed this
	// job and left none: that claim was this write's twin.
	if _, err := s.ClaimJob(ctx, "worker", now, time.Minute); err != nil && !errors.Is(err, store.ErrNoJob) {
		return fmt.Errorf("ClaimJob: %w", err)
	}
	c := &store.Certificate{ID: fmt.Sprint("cert", i), AccountID: "acct", OrderID: o.ID,
		Serial: fmt.Sprintf("%x", i), IssuedAt: now, NotAfter: now.Add(time.Hour)}
	o.Status, o.CertificateID = store.StatusValid, c.ID
	if err := s.PutCertificate(ctx, c, o); err != nil {
		return fmt.Errorf("PutCertificate: %w", err)
	}
	return nil
}

// BenchmarkIssuanceWrites is the store's share of an issuance's latency on
// bolt: the seven writes of one issuance (one op), each a transaction
// commit with its disk syncs. "serial" has one writer, so each write
// commits alone (Update); "parallel16" has 16 issuances in flight, as
// under 16 clients, so writes join bbolt batches (one commit and sync per
// batch, after up to MaxBatchDelay of collecting).
func BenchmarkIssuanceWrites(b *testing.B) {
	for _, par := range []int{0, 16} {
		name := "serial"
		if par > 0 {
			name = fmt.Sprint("parallel", par)
		}
		b.Run(name, func(b *testing.B) {
			s := openTemp(b)
			defer s.Close()
			ctx := context.Background()
			now := time.Now().UTC()
			var seq atomic.Int64
			b.ReportAllocs()
			cpu0 := processCPU()
			if par == 0 {
				for b.Loop() {
					if err := issuanceWrites(ctx, s, seq.Add(1), now); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism(max(1, par/2)) // GOMAXPROCS is 2 here
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := issuanceWrites(ctx, s, seq.Add(1), now); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			b.ReportMetric(7*float64(b.N)/b.Elapsed().Seconds(), "writes/s")
			// CPU, not wall time: what the writes cost the machine
			// (commits, page writes and their disk syncs included).
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCheckUnchanged is what a finalize's precondition adds to
// EnqueueJob's transaction on bolt: reading the version of one
// authorization (ra.Finalize names each of the order's and the EAB key).
func BenchmarkCheckUnchanged(b *testing.B) {
	s := openTemp(b)
	defer s.Close()
	ctx := context.Background()
	now := time.Now().UTC()
	if err := issuanceWrites(ctx, s, 1, now); err != nil {
		b.Fatal(err)
	}
	az, err := s.GetAuthz(ctx, "az1")
	if err != nil {
		b.Fatal(err)
	}
	unchanged := []store.Unchanged{store.AuthzUnchanged(az)}
	b.ReportAllocs()
	err = s.db.View(func(tx *bolt.Tx) error {
		for b.Loop() {
			if err := checkUnchanged(tx, unchanged); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkReadOrder is the store's part of reading an order with its
// authorization (what a finalize's or an order poll's request reads):
// two records decoded from their JSON.
func BenchmarkReadOrder(b *testing.B) {
	s := openTemp(b)
	defer s.Close()
	ctx := context.Background()
	if err := issuanceWrites(ctx, s, 1, time.Now().UTC()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.GetOrder(ctx, "o1"); err != nil {
			b.Fatal(err)
		}
		if _, err := s.GetAuthz(ctx, "az1"); err != nil {
			b.Fatal(err)
		}
	}
}
