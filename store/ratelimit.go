package store

import (
	"time"
)

// Limit is a rate limit in the generic cell rate algorithm (GCRA), as in
// Boulder's ratelimits package: Count events per Period on average, with
// up to Burst events at once (Burst defaults to Count). A bucket refills
// one event every Period/Count.
type Limit struct {
	Count  int64
	Period time.Duration
	Burst  int64
}

// Params returns the limit's emission interval (the time one event takes to
// refill) and burst offset (the debt a full burst makes), in microseconds,
// the unit of the algorithm's arithmetic: whole numbers that Lua's doubles
// hold exactly, so the Redis driver's script computes what GCRA computes.
func (l Limit) Params() (interval, burstOffset int64) {
	interval = max(l.Period.Microseconds()/max(l.Count, 1), 1)
	burst := l.Burst
	if burst <= 0 {
		burst = l.Count
	}
	return interval, interval * burst
}

// RateSpend asks to spend Cost events of the bucket Key under Limit. A
// negative Cost refunds events (never below an empty bucket). CheckOnly
// asks whether the spend would be allowed without recording it.
type RateSpend struct {
	Key       string
	Cost      int64
	Limit     Limit
	CheckOnly bool
}

// RateDecision is the answer to one RateSpend.
type RateDecision struct {
	// Allowed is false when the spend would exceed the limit.
	Allowed bool
	// Remaining is how many events the bucket holds after the decision.
	Remaining int64
	// RetryIn is, when not allowed, how long until the spend would be.
	RetryIn time.Duration
	// TAT is the bucket's theoretical arrival time after the decision: the
	// bucket is full again then (drivers keep the key until that time).
	TAT time.Time
}

// GCRA decides one spend against a bucket whose stored theoretical arrival
// time is tat (zero for a bucket never used or full) at now. It is the one
// implementation of the algorithm in Go: the bolt driver calls it, the
// Redis driver runs the same integer arithmetic in Lua, and the store suite
// checks both. Times are taken to the microsecond. A refused or check-only
// spend leaves the stored time as it was (the returned TAT is then the
// stored one, or now if it had passed).
func GCRA(tat, now time.Time, sp RateSpend) RateDecision {
	interval, burstOffset := sp.Limit.Params()
	n, t := now.UnixMicro(), tat.UnixMicro()
	if tat.IsZero() || t < n {
		t = n
	}
	d := RateDecision{Allowed: true}
	next := t + sp.Cost*interval
	switch {
	case sp.Cost < 0:
		next = max(next, n)
	case next-n > burstOffset:
		// The spend does not fit: after it, the bucket's debt (next-now)
		// would exceed the burst.
		d.Allowed, d.RetryIn = false, time.Duration(next-n-burstOffset)*time.Microsecond
		next = t
	case sp.CheckOnly:
		next = t
	}
	d.Remaining = max((burstOffset-(next-n))/interval, 0)
	d.TAT = time.UnixMicro(next)
	return d
}

// SpendAll applies GCRA to a batch: every spend is decided against the
// stored times (get), a key named twice against the time the earlier spend
// left, and only when every spend is allowed are the new times returned to
// be stored (updates); a refused batch records nothing. It is the batch
// semantics the drivers share (see Store.SpendRates).
func SpendAll(spends []RateSpend, now time.Time, get func(key string) time.Time) (decisions []RateDecision, updates map[string]time.Time) {
	decisions = make([]RateDecision, len(spends))
	cur := map[string]time.Time{}
	allowed := true
	for i, sp := range spends {
		tat, ok := cur[sp.Key]
		if !ok {
			tat = get(sp.Key)
		}
		decisions[i] = GCRA(tat, now, sp)
		allowed = allowed && decisions[i].Allowed
		cur[sp.Key] = decisions[i].TAT
	}
	if !allowed {
		return decisions, nil
	}
	updates = map[string]time.Time{}
	for i, sp := range spends {
		if !sp.CheckOnly {
			updates[sp.Key] = decisions[i].TAT
		}
	}
	return decisions, updates
}
