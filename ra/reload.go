package ra

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/upstream"
)

// ReloadOptions are what a reload replaces.
type ReloadOptions struct {
	// Config is the new configuration, validated (configs.Load).
	Config *configs.Config
	// Issuers are the upstreams of Config by name. An instance already in
	// force under its name is kept as it is; every other one in force is
	// retired: drained, then closed (see Reload).
	Issuers map[string]upstream.Issuer
	// NewValidator makes a directory's validator from its configuration;
	// nil keeps the one in force (validation settings then stay).
	NewValidator func(*configs.Config) Validator
}

// Reload applies a new configuration without a restart: every directory's
// policy, limits and validator, the directories themselves and the
// upstreams are built anew (build) and swapped in whole, one generation
// later, so a request reads either the old setup or the new one, never
// half of each. It refuses, keeping the setup in force, a configuration
// that changes a key only a restart can change (configs.RestartKeys) or
// that the core cannot run (an upstream without an issuer).
//
// Orders keep the route stored on them. An upstream instance the reload
// replaces (its block changed) or removes is retired, not closed: a
// removed upstream stays reachable by name for the issuance jobs whose
// orders name it (new orders cannot route to it: the policy no longer
// names it), and either kind stays open while a call is using it. The
// drain (Run) closes it (io.Closer) once no job names it and no call uses
// it. It returns the new generation.
func (ra *RA) Reload(opts ReloadOptions) (int64, error) {
	if opts.Config == nil {
		return 0, errors.New("ra: reload without a configuration")
	}
	ra.reloadMu.Lock()
	defer ra.reloadMu.Unlock()
	old := ra.current()
	if keys := configs.RestartKeys(old.cfg, opts.Config); len(keys) > 0 {
		return 0, fmt.Errorf("changing %s needs a restart; the running configuration (generation %d) stays",
			strings.Join(keys, ", "), old.gen)
	}
	for _, u := range opts.Config.Upstreams {
		if _, ok := opts.Issuers[u.Name]; !ok {
			return 0, fmt.Errorf("ra: upstream %s has no issuer", u.Name)
		}
	}
	newValidator := ra.newValidator
	if opts.NewValidator != nil {
		newValidator = opts.NewValidator
	}
	s, err := ra.buildWith(opts.Config, opts.Issuers, old.gen+1, newValidator)
	if err != nil {
		return 0, err
	}
	ra.issMu.Lock()
	retired := ra.adopt(s, old)
	ra.newValidator = newValidator
	ra.cur.Store(s)
	ra.retired = append(ra.retired, retired...)
	ra.issMu.Unlock()
	for _, r := range retired {
		_, kept := opts.Issuers[r.name]
		ra.log.Info("upstream retired: draining", "upstream", r.name, "removed", !kept)
	}
	ra.log.Debug("setup swapped", "generation", s.gen, "directories", len(s.dirs), "upstreams", sortedNames(s.issuers))
	return s.gen, nil
}

// buildWith builds the setup of cfg with the validators newValidator
// makes (Reload may bring new validation settings), and the CAA checker
// that goes with them unless Options.CAA named one.
func (ra *RA) buildWith(cfg *configs.Config, issuers map[string]upstream.Issuer, gen int64,
	newValidator func(*configs.Config) Validator) (*setup, error) {
	// build reads ra.newValidator: give it the new one for this build only.
	prev := ra.newValidator
	ra.newValidator = newValidator
	s, err := ra.build(cfg, issuers, gen, nil)
	ra.newValidator = prev
	if err != nil {
		return nil, err
	}
	if !ra.explicitCAA {
		s.caa, _ = s.dirs[""].va.(CAAChecker)
	}
	return s, nil
}

// issuerRef is one upstream instance and its uses: calls in flight
// (acquire) and, counted for good, every acquisition, so the drain can
// tell that none started while it looked at the jobs.
type issuerRef struct {
	name     string
	iss      upstream.Issuer
	uses     int
	acquired int64
}

// adopt gives s the references of its issuers, keeping old's for the
// instances it keeps, and returns old's references to instances s does
// not keep (to retire). Called with issMu held.
func (ra *RA) adopt(s, old *setup) []*issuerRef {
	s.refs = map[string]*issuerRef{}
	for name, iss := range s.issuers {
		if old != nil {
			if r := old.refs[name]; r != nil && sameIssuer(r.iss, iss) {
				s.refs[name] = r
				continue
			}
		}
		s.refs[name] = &issuerRef{name: name, iss: iss}
	}
	if old == nil {
		return nil
	}
	var retired []*issuerRef
	for _, name := range sortedNames(old.refs) {
		if r := old.refs[name]; s.refs[name] != r {
			retired = append(retired, r)
		}
	}
	return retired
}

// sameIssuer reports whether a and b are the same instance (pointers are
// compared by address; values that cannot be compared never are).
func sameIssuer(a, b upstream.Issuer) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if !va.IsValid() || !vb.IsValid() {
		return !va.IsValid() && !vb.IsValid()
	}
	if va.Type() != vb.Type() {
		return false
	}
	if va.Kind() == reflect.Pointer {
		return va.Pointer() == vb.Pointer()
	}
	return va.Comparable() && va.Equal(vb)
}

// issuer is the upstream called name: the one in force, or else a
// removed one still draining (its jobs are issued where they were
// routed).
func (ra *RA) issuer(name string) (upstream.Issuer, bool) {
	if iss, ok := ra.current().issuers[name]; ok {
		return iss, true
	}
	ra.issMu.Lock()
	defer ra.issMu.Unlock()
	if r := ra.retiredNamed(name); r != nil {
		return r.iss, true
	}
	return nil, false
}

// acquire is issuer for a call: the instance stays open until release.
func (ra *RA) acquire(name string) (upstream.Issuer, func(), bool) {
	ra.issMu.Lock()
	defer ra.issMu.Unlock()
	r := ra.current().refs[name]
	if r == nil {
		r = ra.retiredNamed(name)
	}
	if r == nil {
		return nil, nil, false
	}
	r.uses++
	r.acquired++
	return r.iss, func() {
		ra.issMu.Lock()
		r.uses--
		ra.issMu.Unlock()
	}, true
}

// holdUpstreams keeps, of names, the upstreams in force, each held until
// release: finalize holds its route until the job naming it is stored, so
// the drain sees either the hold or the job.
func (ra *RA) holdUpstreams(names []string) ([]string, func()) {
	var kept []string
	var releases []func()
	for _, n := range names {
		if _, ok := ra.current().issuers[n]; !ok {
			continue
		}
		if _, release, ok := ra.acquire(n); ok {
			kept = append(kept, n)
			releases = append(releases, release)
		}
	}
	return kept, func() {
		for _, r := range releases {
			r()
		}
	}
}

// retiredNamed is the latest retired instance of a removed upstream
// called name. Called with issMu held.
func (ra *RA) retiredNamed(name string) *issuerRef {
	for i := len(ra.retired) - 1; i >= 0; i-- {
		if r := ra.retired[i]; r.name == name {
			return r
		}
	}
	return nil
}

// Draining are the names of the upstream instances retired by a reload
// and not yet closed, sorted (a name may be in force again with another
// instance).
func (ra *RA) Draining() []string {
	ra.issMu.Lock()
	defer ra.issMu.Unlock()
	var names []string
	for _, r := range ra.retired {
		if !slices.Contains(names, r.name) {
			names = append(names, r.name)
		}
	}
	slices.Sort(names)
	return names
}

// drainEvery is how often the drain looks for retired upstreams it can
// close.
const drainEvery = 2 * time.Second

// drainLoop closes retired upstreams once drained, until ctx ends; then
// it closes the rest (the workers have stopped).
func (ra *RA) drainLoop(ctx context.Context) {
	t := time.NewTicker(drainEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ra.drain(ctx)
	}
}

// drain closes the retired instances no call uses and, unless their name
// is in force again (jobs then use the new instance), no job's order
// names. A job's order is read after the acquisition counts, so one that
// a finalize stored while the drain looked shows as an acquisition.
func (ra *RA) drain(ctx context.Context) {
	ra.issMu.Lock()
	if len(ra.retired) == 0 {
		ra.issMu.Unlock()
		return
	}
	seen := map[*issuerRef]int64{}
	for _, r := range ra.retired {
		seen[r] = r.acquired
	}
	ra.issMu.Unlock()
	named, err := ra.jobUpstreams(ctx)
	if err != nil {
		if ctx.Err() == nil {
			ra.log.Warn("drain: listing jobs", "err", err)
		}
		return
	}
	ra.issMu.Lock()
	var closing []*issuerRef
	kept := ra.retired[:0]
	for _, r := range ra.retired {
		_, inForce := ra.current().issuers[r.name]
		if r.uses == 0 && r.acquired == seen[r] && (inForce || !named[r.name]) {
			closing = append(closing, r)
			continue
		}
		kept = append(kept, r)
	}
	ra.retired = kept
	ra.issMu.Unlock()
	for _, r := range closing {
		ra.closeIssuer(r)
	}
}

// jobUpstreams are the upstreams the orders of the jobs in the store name.
func (ra *RA) jobUpstreams(ctx context.Context) (map[string]bool, error) {
	ids, err := ra.store.ListJobs(ctx)
	if err != nil {
		return nil, err
	}
	named := map[string]bool{}
	for _, id := range ids {
		o, err := ra.store.GetOrder(ctx, id)
		if err != nil {
			continue // expired or gone: its job goes too
		}
		for _, n := range o.Upstreams {
			named[n] = true
		}
	}
	return named, nil
}

// closeIssuer closes a drained instance.
func (ra *RA) closeIssuer(r *issuerRef) {
	if c, ok := r.iss.(io.Closer); ok {
		if err := c.Close(); err != nil {
			ra.log.Warn("upstream drained: close failed", "upstream", r.name, "err", err)
			return
		}
	}
	ra.log.Info("upstream drained and closed", "upstream", r.name)
}

// closeRetired closes every retired instance (at shutdown, once the
// workers have stopped).
func (ra *RA) closeRetired() {
	ra.issMu.Lock()
	rs := ra.retired
	ra.retired = nil
	ra.issMu.Unlock()
	for _, r := range rs {
		ra.closeIssuer(r)
	}
}
