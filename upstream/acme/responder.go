package acme

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v5/challenge/http01"

	"github.com/acmebridge/acmebridge/store"
)

// TokenStore keeps the key authorizations of the CA's pending http-01
// challenges where every replica finds them: store.Store satisfies it.
type TokenStore interface {
	// PutChallengeToken stores keyAuth under token until ttl from now.
	PutChallengeToken(ctx context.Context, token, keyAuth string, ttl time.Duration) error
	// GetChallengeToken reads it; store.ErrNotFound if there is none or
	// its ttl passed.
	GetChallengeToken(ctx context.Context, token string) (string, error)
	// DeleteChallengeToken removes it; missing is not an error.
	DeleteChallengeToken(ctx context.Context, token string) error
}

const (
	// tokenTTL is how long a presented token stays in the TokenStore if
	// nothing cleans it up (the replica presenting it died). It outlasts
	// lego's wait for the CA's validation (100 times the challenge's
	// Retry-After, 5 s when the CA sends none: about 8 minutes).
	tokenTTL = 30 * time.Minute
	// storeTimeout bounds one TokenStore call of the responder.
	storeTimeout = 5 * time.Second
	// maxTokenLen bounds the tokens the responder looks up. RFC 8555 §8.3
	// sets no maximum; CAs' tokens are 43 characters (256 bits, §11.3
	// asks for at least 128).
	maxTokenLen = 256
)

// validToken reports whether token may be an ACME token. RFC 8555 §8.3:
// "token (required, string): A random value that uniquely identifies the
// challenge. This value MUST have at least 128 bits of entropy. It MUST
// NOT contain any characters outside the base64url alphabet and MUST NOT
// include base64 padding characters ("=")."
func validToken(token string) bool {
	if token == "" || len(token) > maxTokenLen {
		return false
	}
	for _, c := range []byte(token) {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// responder serves the key authorizations of pending http-01 challenges
// (RFC 8555 §8.3) at /.well-known/acme-challenge/TOKEN. It stays up
// (lego's own server starts and stops per challenge, which concurrent
// orders cannot share). Tokens presented in this process are answered
// from memory; any other is looked up in the token stores of the
// responder's users, where every replica sharing the store presented it.
type responder struct {
	ln  net.Listener
	srv *http.Server
	log *slog.Logger

	mu     sync.Mutex
	tokens map[string]*pendingToken
	// users are the presenters of the upstreams sharing the responder.
	users map[*presenter]struct{}

	// key is guarded by responders' lock.
	key string

	closeOnce sync.Once
	closeErr  error
	done      chan struct{}
}

// pendingToken is a token presented by one or more concurrent orders.
type pendingToken struct {
	keyAuth string
	refs    int
}

// presenter is one upstream's lego challenge.Provider for http-01: it
// presents tokens in the shared responder and in the upstream's
// TokenStore.
type presenter struct {
	r *responder
	u *Upstream
	// tokens is the upstream's TokenStore; nil keeps tokens in this
	// process only.
	tokens TokenStore

	closeOnce sync.Once
	closeErr  error
}

// responders are the running responders by listen address: upstreams
// configured with the same address (Let's Encrypt and ZeroSSL behind one
// load balancer) share one; tokens are random, so they never collide.
var responders = struct {
	sync.Mutex
	m map[string]*responder
}{m: map[string]*responder{}}

// startResponder returns u's presenter on the responder listening on
// addr, starting that responder if none is running; it serves until its
// last presenter is closed.
func startResponder(addr string, u *Upstream, tokens TokenStore) (*presenter, error) {
	responders.Lock()
	defer responders.Unlock()
	r := responders.m[addr]
	if r == nil {
		// Called from New, which has no context; binding is local and quick.
		ln, err := net.Listen("tcp", addr) //nolint:noctx // see above
		if err != nil {
			return nil, err
		}
		r = &responder{ln: ln, log: u.log, tokens: map[string]*pendingToken{}, users: map[*presenter]struct{}{},
			done: make(chan struct{}), key: addr}
		responders.m[addr] = r
		r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10}
		go func() {
			defer close(r.done)
			if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				r.log.Error("http-01 responder stopped", "err", err)
			}
		}()
		r.log.Info("http-01 responder listening", "addr", ln.Addr().String(), "shared_tokens", tokens != nil)
	}
	p := &presenter{r: r, u: u, tokens: tokens}
	r.mu.Lock()
	r.users[p] = struct{}{}
	r.mu.Unlock()
	return p, nil
}

// addr is the address the responder listens on.
func (r *responder) addr() string { return r.ln.Addr().String() }

// close releases the presenter's hold on its responder; the last one stops
// the responder and waits for it. It is safe to call more than once.
func (p *presenter) close() error {
	p.closeOnce.Do(func() { p.closeErr = p.r.release(p) })
	return p.closeErr
}

// release removes p from r's users and stops r if p was the last.
func (r *responder) release(p *presenter) error {
	responders.Lock()
	r.mu.Lock()
	delete(r.users, p)
	last := len(r.users) == 0
	r.mu.Unlock()
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

// Present makes the token's key authorization available here and, through
// the TokenStore, at every replica. The token is the CA's: one that is
// not base64url is refused (RFC 8555 §8.3).
func (p *presenter) Present(ctx context.Context, _, token, keyAuth string) error {
	if !validToken(token) {
		return p.u.unavailable(nil, "the CA at %s sent an http-01 token that is not base64url (RFC 8555 §8.3)", p.u.host)
	}
	p.r.add(token, keyAuth)
	if p.tokens == nil {
		return nil
	}
	if err := p.tokens.PutChallengeToken(ctx, token, keyAuth, tokenTTL); err != nil {
		p.r.remove(token)
		return p.u.unavailable(err, "storing the http-01 token for the other replicas")
	}
	return nil
}

// CleanUp withdraws the token once every order of this process that
// presented it is done, here and in the TokenStore. It runs even when
// the issuance was cancelled; a token it cannot remove expires with its
// ttl.
func (p *presenter) CleanUp(ctx context.Context, _, token, _ string) error {
	if !p.r.remove(token) || p.tokens == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err := p.tokens.DeleteChallengeToken(ctx, token); err != nil {
		return fmt.Errorf("acme %s: removing the http-01 token from the store: %w", p.u.name, err)
	}
	return nil
}

// add presents token in this process.
func (r *responder) add(token, keyAuth string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := r.tokens[token]; t != nil {
		t.refs++
		t.keyAuth = keyAuth
		return
	}
	r.tokens[token] = &pendingToken{keyAuth: keyAuth, refs: 1}
}

// remove drops one order's hold on token and reports whether that was the
// last (the token is gone from this process).
func (r *responder) remove(token string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.tokens[token]
	if t == nil {
		return false
	}
	if t.refs--; t.refs > 0 {
		return false
	}
	delete(r.tokens, token)
	return true
}

// errNoToken: no replica presented the token.
var errNoToken = errors.New("no such token")

// lookup returns the key authorization of token: from this process, else
// from the users' token stores. errNoToken if none has it.
func (r *responder) lookup(ctx context.Context, token string) (string, error) {
	r.mu.Lock()
	if t := r.tokens[token]; t != nil {
		keyAuth := t.keyAuth
		r.mu.Unlock()
		return keyAuth, nil
	}
	var stores []TokenStore
	for p := range r.users {
		if p.tokens != nil {
			stores = append(stores, p.tokens)
		}
	}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	var failed error
	for _, s := range stores {
		keyAuth, err := s.GetChallengeToken(ctx, token)
		switch {
		case err == nil:
			return keyAuth, nil
		case !errors.Is(err, store.ErrNotFound):
			failed = err
		}
	}
	if failed != nil {
		return "", failed
	}
	return "", errNoToken
}

// ServeHTTP answers the CA's validation requests. RFC 8555 §8.3: the
// resource is "http://{domain}/.well-known/acme-challenge/{token}" and its
// body is the key authorization; anything else is 404. The path is the
// requester's: only a well-formed token is looked up, and nothing of the
// request is echoed or logged but its host and address.
func (r *responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	token, ok := strings.CutPrefix(req.URL.Path, http01.PathPrefix)
	if !ok || !validToken(token) {
		r.log.Debug("http-01 responder: not a challenge path", "host", req.Host, "remote", req.RemoteAddr)
		http.NotFound(w, req)
		return
	}
	keyAuth, err := r.lookup(req.Context(), token)
	switch {
	case errors.Is(err, errNoToken):
		r.log.Debug("http-01 responder: unknown token", "host", req.Host, "remote", req.RemoteAddr)
		http.NotFound(w, req)
		return
	case err != nil:
		r.log.Warn("http-01 responder: cannot read the token store", "host", req.Host, "err", err)
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// The body is the key authorization lego made for a token the CA sent
	// (token "." thumbprint, RFC 8555 §8.1), found by a well-formed token:
	// nothing of the request is reflected.
	_, _ = w.Write([]byte(keyAuth)) //nolint:gosec // G705: not reflected input (see above)
	r.log.Debug("http-01 responder: served a key authorization", "host", req.Host, "remote", req.RemoteAddr)
}
