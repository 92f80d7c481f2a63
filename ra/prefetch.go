package ra

import (
	"context"
	"sync"

	"github.com/acmebridge/acmebridge/store"
)

// A signed request's transport reads the records its URL names in the same
// store operation as its account and nonce (store.ReadPOST), and hands them
// here once the request verified: the operation then starts from them
// instead of reading them again. Each record handed over is used once, by
// the first read of it; a later read of the same record in the request (a
// retry after a lost compare-and-set, a read after waiting) goes to the
// store. The authorizations an order's state was computed from are also
// remembered for the CAA check of the same finalize (validationMethods),
// which would otherwise read them a second time.

type prefetchKey struct{}

// prefetch is one request's records read ahead.
type prefetch struct {
	mu sync.Mutex
	// orders, authzs and certs map an ID asked for to its record, nil
	// when it did not exist.
	orders map[string]*store.Order
	authzs map[string]*store.Authorization
	certs  map[string]*store.Certificate
	// seen are the authorizations read for an order's state.
	seen map[string]*store.Authorization
}

// WithPrefetch returns ctx with room for the records a signed request's
// store operation reads ahead (Prefetched).
func WithPrefetch(ctx context.Context) context.Context {
	return context.WithValue(ctx, prefetchKey{}, &prefetch{})
}

// Prefetched hands the records r read for a request that verified to the
// operation ctx (made by WithPrefetch) is passed to; q is what was asked,
// so a record asked for and missing reads as not found without a store
// round trip. Without WithPrefetch it does nothing.
func Prefetched(ctx context.Context, q *store.POSTRead, r *store.POSTRecords) {
	p, _ := ctx.Value(prefetchKey{}).(*prefetch)
	if p == nil || r == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if q.OrderID != "" {
		p.orders = map[string]*store.Order{q.OrderID: r.Order}
		if q.OrderAuthzs && r.Order != nil {
			p.authzs = map[string]*store.Authorization{}
			for _, id := range r.Order.AuthzIDs {
				p.authzs[id] = nil
			}
			for _, a := range r.Authzs {
				p.authzs[a.ID] = a
			}
		}
	}
	if q.AuthzID != "" {
		p.authzs = map[string]*store.Authorization{q.AuthzID: r.Authz}
	}
	if q.CertificateID != "" {
		p.certs = map[string]*store.Certificate{q.CertificateID: r.Certificate}
	}
}

func prefetchOf(ctx context.Context) *prefetch {
	p, _ := ctx.Value(prefetchKey{}).(*prefetch)
	return p
}

// take removes id from m and returns its record and whether it was there.
func take[T any](p *prefetch, m map[string]*T, id string) (*T, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := m[id]
	if ok {
		delete(m, id)
	}
	return v, ok
}

// readOrder is GetOrder, from the request's prefetched records first.
func (ra *RA) readOrder(ctx context.Context, id string) (*store.Order, error) {
	if p := prefetchOf(ctx); p != nil {
		if o, ok := take(p, p.orders, id); ok {
			return found(o)
		}
	}
	return ra.store.GetOrder(ctx, id)
}

// readAuthz is GetAuthz, from the request's prefetched records first.
func (ra *RA) readAuthz(ctx context.Context, id string) (*store.Authorization, error) {
	if p := prefetchOf(ctx); p != nil {
		if a, ok := take(p, p.authzs, id); ok {
			return found(a)
		}
	}
	return ra.store.GetAuthz(ctx, id)
}

// readCertificate is GetCertificate, from the request's prefetched records
// first.
func (ra *RA) readCertificate(ctx context.Context, id string) (*store.Certificate, error) {
	if p := prefetchOf(ctx); p != nil {
		if c, ok := take(p, p.certs, id); ok {
			return found(c)
		}
	}
	return ra.store.GetCertificate(ctx, id)
}

// found is a prefetched record as a Get method returns it.
func found[T any](v *T) (*T, error) {
	if v == nil {
		return nil, store.ErrNotFound
	}
	return v, nil
}

// noteStateAuthz remembers an authorization an order's state was computed
// from in this request.
func noteStateAuthz(ctx context.Context, a *store.Authorization) {
	p := prefetchOf(ctx)
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen == nil {
		p.seen = map[string]*store.Authorization{}
	}
	p.seen[a.ID] = a
}

// stateAuthz is an authorization this request computed its order's state
// from, else GetAuthz.
func (ra *RA) stateAuthz(ctx context.Context, id string) (*store.Authorization, error) {
	if p := prefetchOf(ctx); p != nil {
		p.mu.Lock()
		a := p.seen[id]
		p.mu.Unlock()
		if a != nil {
			return a, nil
		}
	}
	return ra.store.GetAuthz(ctx, id)
}
