package acme

import (
	"context"
	"strings"
	"time"

	"github.com/go-acme/lego/v5/acme/api"
	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/go-acme/lego/v5/challenge/resolver"
	"github.com/miekg/dns"

	"github.com/acmebridge/acmebridge/acmeerr"
)

// newProber makes lego's challenge solver for a session: only the
// configured challenge type is offered, so the CA's other types
// (tls-alpn-01, dns-account-01, ...) are never picked.
func (u *Upstream) newProber(core *api.Core) (*resolver.Prober, error) {
	sm := resolver.NewSolversManager(core)
	var err error
	switch u.solver.Type {
	case SolverDNS01:
		p := withTimeouts(u.dns, u.solver.PropagationTimeout, u.solver.PropagationInterval)
		err = sm.SetDNS01Provider(p, u.dnsOptions()...)
	case SolverHTTP01:
		err = sm.SetHTTP01Provider(u.responder)
	}
	if err != nil {
		return nil, u.errorf(acmeerr.Internal, err, "setting up the %s solver", u.solver.Type)
	}
	return resolver.NewProber(sm), nil
}

// dnsOptions turns the propagation settings into lego's options.
func (u *Upstream) dnsOptions() []dns01.ChallengeOption {
	s := u.solver
	switch {
	case s.DisablePropagationCheck:
		return []dns01.ChallengeOption{dns01.PropagationWait(s.PropagationWait, true)}
	case len(s.Resolvers) > 0:
		// lego's resolvers are process-wide; these are this upstream's.
		return []dns01.ChallengeOption{dns01.WrapPreCheck(
			func(ctx context.Context, _, fqdn, value string, _ dns01.PreCheckFunc) (bool, error) {
				if err := sleepCtx(ctx, s.PropagationWait); err != nil {
					return false, err
				}
				return txtPropagated(ctx, s.Resolvers, fqdn, value)
			})}
	}
	var opts []dns01.ChallengeOption
	if s.PropagationWait > 0 {
		opts = append(opts, dns01.PropagationWait(s.PropagationWait, false))
	}
	if s.DisableAuthoritativeCheck {
		opts = append(opts, dns01.DisableAuthoritativeNssPropagationRequirement())
	}
	return opts
}

// txtPropagated reports whether every resolver answers a TXT record value
// at fqdn (following CNAMEs, as the CA will: RFC 8555 §8.4 has the CA
// "query for TXT records for the validation domain name").
func txtPropagated(ctx context.Context, resolvers []string, fqdn, value string) (bool, error) {
	c := &dns.Client{Timeout: 5 * time.Second}
	for _, r := range resolvers {
		name := dns.Fqdn(fqdn)
		found := false
		for hop := 0; hop < 10 && !found; hop++ {
			m := new(dns.Msg)
			m.SetQuestion(name, dns.TypeTXT)
			m.RecursionDesired = true
			in, _, err := c.ExchangeContext(ctx, m, r)
			if err != nil {
				// Not yet: lego asks again until its propagation timeout,
				// and reports that timeout if the resolver never answers.
				return false, nil //nolint:nilerr // see above
			}
			next := ""
			for _, rr := range in.Answer {
				switch rr := rr.(type) {
				case *dns.TXT:
					if strings.Join(rr.Txt, "") == value {
						found = true
					}
				case *dns.CNAME:
					if strings.EqualFold(rr.Hdr.Name, name) {
						next = rr.Target
					}
				}
			}
			if found || next == "" {
				break
			}
			name = next
		}
		if !found {
			return false, nil
		}
	}
	return true, nil
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
