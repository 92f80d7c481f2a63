package ra

import (
	"context"
	"slices"
	"sync"

	"github.com/acmebridge/acmebridge/store"
)

// A finalize hands its issuance job to this replica's workers directly
// when one of them is free: the job is enqueued already claimed (Owner
// this replica, a lease running, store.Store.EnqueueJob), and the order as
// just stored goes with it, so no worker has to claim the job and read the
// order back (two store round trips). The job is held under a lease like
// any claimed one: if this replica dies, another claims it once the lease
// ended. Without a free worker the job is queued unclaimed, as before.

// workerSlots bounds the issuances running at once on this replica
// (orders.workers): a worker polling the store and a finalize handing its
// job over each take a slot while the job runs.
type workerSlots struct {
	mu    sync.Mutex
	slots chan struct{}
	ctx   context.Context
	// running counts the jobs handed over, for Run to wait for.
	running sync.WaitGroup
}

// open makes n slots available to jobs run under ctx (Run's).
func (w *workerSlots) open(ctx context.Context, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.slots, w.ctx = make(chan struct{}, n), ctx
}

// close stops handing jobs over and waits for those handed over.
func (w *workerSlots) close() {
	w.mu.Lock()
	w.slots = nil
	w.mu.Unlock()
	w.running.Wait()
}

// acquire takes a slot, waiting for one; false once ctx ended.
func (w *workerSlots) acquire(ctx context.Context) bool {
	w.mu.Lock()
	slots := w.slots
	w.mu.Unlock()
	if slots == nil {
		return ctx.Err() == nil
	}
	select {
	case slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// release gives back a slot acquire or tryHandOff took.
func (w *workerSlots) release() {
	w.mu.Lock()
	slots := w.slots
	w.mu.Unlock()
	if slots != nil {
		select {
		case <-slots:
		default:
		}
	}
}

// tryHandOff takes a free slot without waiting, for a job to be handed
// over: the workers' context, or nil when no slot is free or the workers
// do not run. The caller runs handOff or release.
func (w *workerSlots) tryHandOff() context.Context {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.slots == nil || w.ctx.Err() != nil {
		return nil
	}
	select {
	case w.slots <- struct{}{}:
		w.running.Add(1)
		return w.ctx
	default:
		return nil
	}
}

// handOff runs the job just enqueued claimed (with o as stored) on the slot
// tryHandOff took, in the background.
func (ra *RA) handOff(ctx context.Context, job *store.Job, o *store.Order) {
	oc := *o
	oc.Identifiers, oc.AuthzIDs, oc.Upstreams, oc.CSR = slices.Clone(o.Identifiers), slices.Clone(o.AuthzIDs),
		slices.Clone(o.Upstreams), slices.Clone(o.CSR)
	go func() {
		defer ra.workers.running.Done()
		defer ra.workers.release()
		var ended *store.Order
		defer func() { ra.notify("order:"+job.OrderID, ended) }()
		ended = ra.processOrder(ctx, job, &oc)
	}()
}

// notHandedOff gives back the slot of a job that could not be enqueued.
func (ra *RA) notHandedOff() {
	ra.workers.running.Done()
	ra.workers.release()
}
