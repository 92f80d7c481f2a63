package ra

import (
	"context"
	"time"

	"github.com/acmebridge/acmebridge/store"
)

// RetentionObserver is an Observer that also counts the records the
// retention sweep removed, by kind ("order", "authorization",
// "certificate"). The RA reports to it when its Observer implements it.
type RetentionObserver interface {
	Retained(kind string, n int)
}

// sweepLimit is how many retention entries one Sweep call looks at; the
// sweep calls again while a batch comes back full.
const sweepLimit = 256

// retentionLoop sweeps the store every retention.sweep_interval (read
// again each time, so a reload changes it) until ctx ends, and marks
// approval requests whose time ran out expired (ExpireApprovals). Every
// replica runs it: removal is idempotent, and a request is marked once.
func (ra *RA) retentionLoop(ctx context.Context) {
	for {
		t := time.NewTimer(ra.conf().Retention.SweepInterval.D())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if _, err := ra.SweepRetention(ctx); err != nil && ctx.Err() == nil {
			ra.log.Warn("retention sweep", "err", err)
		}
		if _, err := ra.ExpireApprovals(ctx); err != nil && ctx.Err() == nil {
			ra.log.Warn("approval expiry sweep", "err", err)
		}
	}
}

// SweepRetention removes what the configured retention says is due at
// the RA's clock, in batches while they come back full, and returns what
// it removed. The sweeper of Run calls it every retention.sweep_interval.
func (ra *RA) SweepRetention(ctx context.Context) (store.Swept, error) {
	c := ra.conf().Retention
	r := store.Retention{Orders: c.Orders.D(), Certificates: c.Certificates.D()}
	var total store.Swept
	if r.Orders <= 0 && r.Certificates <= 0 {
		return total, nil
	}
	var err error
	for ctx.Err() == nil {
		var got store.Swept
		got, err = ra.store.Sweep(ctx, ra.now(), r, sweepLimit)
		total = total.Add(got)
		if err != nil || got.Examined < sweepLimit {
			break
		}
	}
	if obs, ok := ra.metrics.(RetentionObserver); ok {
		obs.Retained("order", total.Orders)
		obs.Retained("authorization", total.Authorizations)
		obs.Retained("certificate", total.Certificates)
	}
	if total.Examined > 0 {
		ra.log.Debug("retention sweep", "orders", total.Orders, "authorizations", total.Authorizations,
			"certificates", total.Certificates, "examined", total.Examined)
	}
	return total, err
}
