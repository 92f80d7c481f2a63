package main

import (
	"io"
	"log/slog"
	"reflect"

	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/upstream"
	"github.com/acmebridge/acmebridge/upstream/acme"
	"github.com/acmebridge/acmebridge/upstream/local"
	"github.com/acmebridge/acmebridge/upstream/vault"
)

// upstreamSet makes the upstreams' issuers, at start and at each reload,
// and keeps those in force: a reload reuses the instance of every block
// that did not change, so it does not log in to Vault or register with an
// ACME CA again for nothing. An instance the set no longer keeps is the
// domain core's to drain and close (ra.Reload).
type upstreamSet struct {
	st  store.Store
	log *slog.Logger
	// cur are the instances in force, by name, with the block each was
	// made from.
	cur map[string]builtUpstream
}

// builtUpstream is one issuer and the configuration block it was made
// from.
type builtUpstream struct {
	cfg configs.Upstream
	iss upstream.Issuer
}

// pendingUpstreams are the issuers of a configuration not yet in force.
type pendingUpstreams struct {
	set     *upstreamSet
	next    map[string]builtUpstream
	made    []builtUpstream
	Issuers map[string]upstream.Issuer
}

func newUpstreamSet(st store.Store, log *slog.Logger) *upstreamSet {
	return &upstreamSet{st: st, log: log, cur: map[string]builtUpstream{}}
}

// build makes the issuers of cfg, reusing the instance in force for each
// unchanged block. Nothing is in force until commit; abort closes what
// build made.
func (s *upstreamSet) build(cfg *configs.Config) (*pendingUpstreams, error) {
	p := &pendingUpstreams{set: s, next: map[string]builtUpstream{}, Issuers: map[string]upstream.Issuer{}}
	for _, u := range cfg.Upstreams {
		b, ok := s.cur[u.Name]
		if !ok || !reflect.DeepEqual(b.cfg, u) {
			iss, err := s.make(u)
			if err != nil {
				p.abort()
				return nil, err
			}
			b = builtUpstream{cfg: u, iss: iss}
			p.made = append(p.made, b)
		}
		p.next[u.Name] = b
		p.Issuers[u.Name] = b.iss
	}
	return p, nil
}

// make makes the issuer of one upstream block.
func (s *upstreamSet) make(u configs.Upstream) (upstream.Issuer, error) {
	switch u.Type {
	case "local":
		return local.New(local.Options{Name: u.Name, Dir: u.Local.Dir, Validity: u.Local.Validity.D(), Delay: u.Local.Delay.D(), Logger: s.log})
	case "vault":
		return vault.New(vaultOptions(u, s.log))
	default: // "acme": configs.Validate admits no other type
		useLegoLogger(s.log)
		return acme.New(acmeOptions(u, s.st, s.log))
	}
}

// commit puts p's issuers in force.
func (p *pendingUpstreams) commit() { p.set.cur = p.next }

// abort closes the issuers build made for p.
func (p *pendingUpstreams) abort() {
	for _, b := range p.made {
		if c, ok := b.iss.(io.Closer); ok {
			closeLogged(p.set.log, "upstream "+b.cfg.Name, c)
		}
	}
}

// localCAs are the local CAs in force, in the order of cfg's upstreams.
func (s *upstreamSet) localCAs(cfg *configs.Config) []*local.CA {
	var cas []*local.CA
	for _, u := range cfg.Upstreams {
		if ca, ok := s.cur[u.Name].iss.(*local.CA); ok {
			cas = append(cas, ca)
		}
	}
	return cas
}

// closeAll closes the issuers in force (at shutdown, once the workers
// have stopped).
func (s *upstreamSet) closeAll() {
	for name, b := range s.cur {
		if c, ok := b.iss.(io.Closer); ok {
			closeLogged(s.log, "upstream "+name, c)
		}
	}
}
