package acme

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v5/acme/api"
	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/go-acme/lego/v5/challenge/http01"
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

// responder serves the key authorizations of pending http-01 challenges
// (RFC 8555 §8.3) at /.well-known/acme-challenge/TOKEN. It is a lego
// challenge.Provider that stays up (lego's own server starts and stops per
// challenge, which concurrent orders cannot share).
type responder struct {
	ln  net.Listener
	srv *http.Server
	log *slog.Logger

	mu     sync.Mutex
	tokens map[string]*pendingToken

	// key and users are guarded by responders' lock.
	key   string
	users int

	closeOnce sync.Once
	closeErr  error
	done      chan struct{}
}

// pendingToken is a token presented by one or more concurrent orders.
type pendingToken struct {
	keyAuth string
	refs    int
}

// responders are the running responders by listen address: upstreams
// configured with the same address (Let's Encrypt and ZeroSSL behind one
// load balancer) share one; tokens are random, so they never collide.
var responders = struct {
	sync.Mutex
	m map[string]*responder
}{m: map[string]*responder{}}

// startResponder listens on addr and serves until its last user closes
// it.
func startResponder(addr string, log *slog.Logger) (*responder, error) {
	responders.Lock()
	defer responders.Unlock()
	if r := responders.m[addr]; r != nil {
		r.users++
		return r, nil
	}
	// Called from New, which has no context; binding is local and quick.
	ln, err := net.Listen("tcp", addr) //nolint:noctx // see above
	if err != nil {
		return nil, err
	}
	r := &responder{ln: ln, log: log, tokens: map[string]*pendingToken{}, done: make(chan struct{}), key: addr, users: 1}
	responders.m[addr] = r
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10}
	go func() {
		defer close(r.done)
		if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http-01 responder stopped", "err", err)
		}
	}()
	log.Info("http-01 responder listening", "addr", ln.Addr().String())
	return r, nil
}

// addr is the address the responder listens on.
func (r *responder) addr() string { return r.ln.Addr().String() }

// close releases one user's hold; the last one stops the responder and
// waits for it.
func (r *responder) close() error {
	responders.Lock()
	r.users--
	last := r.users <= 0
	if last && responders.m[r.key] == r {
		delete(responders.m, r.key)
	}
	responders.Unlock()
	if !last {
		return nil
	}
	r.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.closeErr = r.srv.Shutdown(ctx)
		<-r.done
	})
	return r.closeErr
}

// Present makes the token's key authorization available.
func (r *responder) Present(_ context.Context, _, token, keyAuth string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.tokens[token]; p != nil {
		p.refs++
		p.keyAuth = keyAuth
		return nil
	}
	r.tokens[token] = &pendingToken{keyAuth: keyAuth, refs: 1}
	return nil
}

// CleanUp withdraws it once every order that presented it is done.
func (r *responder) CleanUp(_ context.Context, _, token, _ string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.tokens[token]; p != nil {
		if p.refs--; p.refs <= 0 {
			delete(r.tokens, token)
		}
	}
	return nil
}

// ServeHTTP answers the CA's validation requests. RFC 8555 §8.3: the
// resource is "http://{domain}/.well-known/acme-challenge/{token}" and its
// body is the key authorization; anything else is 404.
func (r *responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	token, ok := strings.CutPrefix(req.URL.Path, http01.PathPrefix)
	r.mu.Lock()
	var p *pendingToken
	if ok {
		p = r.tokens[token]
	}
	keyAuth := ""
	if p != nil {
		keyAuth = p.keyAuth
	}
	r.mu.Unlock()
	if p == nil {
		r.log.Debug("http-01 responder: unknown token", "path", req.URL.Path, "host", req.Host)
		http.NotFound(w, req)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write([]byte(keyAuth))
	r.log.Debug("http-01 responder: served a key authorization", "host", req.Host, "remote", req.RemoteAddr)
}
