package ra

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/policy"
	"github.com/acmebridge/acmebridge/upstream"
)

// setup is what one configuration decides: the configuration, each
// directory's policy, limits and validator, and the upstreams. A reload
// (Reload) builds a new one and swaps it whole; an operation reads it once
// and keeps what it read, so a request never sees half of two
// configurations.
type setup struct {
	cfg *configs.Config
	// gen counts the configurations the core has run with (1 at New).
	gen     int64
	dirs    map[string]*Directory
	issuers map[string]upstream.Issuer
	// refs count the calls using each issuer (reload.go).
	refs map[string]*issuerRef
	// caa is the CAA checker of this setup's validators (nil: ra.caa).
	caa CAAChecker
}

// Directory is one ACME directory (configs.Directory) as the core runs it:
// the configuration with its tenant settings, its policy, its rate limits
// and its validator.
type Directory struct {
	// Name is "" for the top level (/directory).
	Name string
	// Config is the configuration the directory's requests run with
	// (configs.Config.ForDirectory).
	Config *configs.Config
	router Router
	lim    *limiter
	va     Validator
}

type directoryKey struct{}

// WithDirectory returns ctx naming the directory a request came through
// ("" for the top level). Every operation acts for that directory only:
// an account of another directory does not exist for it.
func WithDirectory(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, directoryKey{}, name)
}

// DirectoryOf is the directory ctx names ("" when none).
func DirectoryOf(ctx context.Context) string {
	name, _ := ctx.Value(directoryKey{}).(string)
	return name
}

// build makes the setup of cfg.
func (ra *RA) build(cfg *configs.Config, issuers map[string]upstream.Issuer, gen int64, topRouter Router) (*setup, error) {
	for _, u := range cfg.Upstreams {
		if _, ok := issuers[u.Name]; !ok && len(issuers) > 0 {
			return nil, fmt.Errorf("ra: upstream %s has no issuer", u.Name)
		}
		if u.ChecksCAA() && ra.caa == nil && ra.hasValidator {
			return nil, fmt.Errorf("ra: upstream %s checks CAA, and neither Options.CAA nor the Validator can", u.Name)
		}
	}
	s := &setup{cfg: cfg, gen: gen, dirs: map[string]*Directory{}, issuers: issuers}
	for _, name := range cfg.DirectoryNames() {
		dc := cfg.ForDirectory(name)
		d := &Directory{Name: name, Config: dc, va: ra.newValidator(dc),
			lim: newLimiter(dc.RateLimits, ra.store, func() time.Time { return ra.now() }, name)}
		if name == "" && topRouter != nil {
			d.router = topRouter
		} else {
			d.router = ra.newRouter(dc.Policy)
		}
		s.dirs[name] = d
	}
	return s, nil
}

// defaultRouter is the policy engine of a directory's policy.
func defaultRouter(p configs.Policy) Router { return policy.New(p) }

// current is the setup in force.
func (ra *RA) current() *setup { return ra.cur.Load() }

// conf is the configuration in force (the top level's).
func (ra *RA) conf() *configs.Config { return ra.current().cfg }

// dir is the directory ctx names, as the setup in force runs it; a
// directory a reload removed is not found.
func (ra *RA) dir(ctx context.Context) (*Directory, error) {
	if d, ok := ra.current().dirs[DirectoryOf(ctx)]; ok {
		return d, nil
	}
	return nil, acmeerr.New(acmeerr.NotFound, "directory %q is not served", DirectoryOf(ctx))
}

// dirNamed is the directory called name, for background work on a record
// made in it; the top level's when a reload removed it (only its
// configuration is read: lifetimes, CAA identities, the validator).
func (ra *RA) dirNamed(name string) *Directory {
	s := ra.current()
	if d, ok := s.dirs[name]; ok {
		return d
	}
	return s.dirs[""]
}

// caaChecker is the CAA checker in force.
func (ra *RA) caaChecker() CAAChecker {
	if c := ra.current().caa; c != nil {
		return c
	}
	return ra.caa
}

// Directory is the directory called name, or nil when it is not served.
func (ra *RA) Directory(name string) *Directory { return ra.current().dirs[name] }

// Directories are the names of the directories served, the top level ("")
// first.
func (ra *RA) Directories() []string { return ra.conf().DirectoryNames() }

// Generation counts the configurations the core has run with: 1 at start,
// one more for each reload.
func (ra *RA) Generation() int64 { return ra.current().gen }

// Router is the directory's policy engine (for policy explain).
func (d *Directory) Router() Router { return d.router }

// sortedNames are m's keys, sorted.
func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
