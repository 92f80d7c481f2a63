// Package proxy is the downstream ACME server (RFC 8555): routes, one file per
// resource, JWS verification, nonces and problem documents. It decides what
// to issue and hands checked requests to the upstreams.
package proxy

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/policy"
	"github.com/acmebridge/acmebridge/ra"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/upstream"
)

// Validator checks one challenge (implemented by proxy/va).
type Validator interface {
	Validate(ctx context.Context, identType, identValue, typ, token, keyAuthorization string) error
}

// Router is the policy decision for an order (implemented by policy).
type Router interface {
	Route(req policy.Request) (*policy.Decision, error)
}

// Auditor records audit events (implemented by audit.Log).
type Auditor interface {
	Record(e audit.Event) error
}

// Options are the server's dependencies.
type Options struct {
	// Config is the validated configuration.
	Config *configs.Config
	Store  store.Store
	// Validator validates challenges.
	Validator Validator
	// CAA checks CAA at finalize for the upstreams that need it
	// (configs.Upstream.ChecksCAA); nil means the Validator, when it can.
	CAA CAAChecker
	// Router takes the policy decision at newOrder and finalize.
	Router Router
	// Issuers are the upstreams by name.
	Issuers map[string]upstream.Issuer
	// Clock returns the current time; time.Now when nil.
	Clock func() time.Time
	// Logger receives one line per request; slog.Default when nil.
	Logger *slog.Logger
	// WorkerID names this replica's issuance worker (for job leases).
	WorkerID string
	// Audit receives the audit events; nil records none.
	Audit Auditor
	// Metrics receives the server's measurements; nil measures nothing.
	Metrics *Metrics
}

// Server is the ACME server. Create it with New, serve Handler, and run Run
// for the background issuance worker.
type Server struct {
	cfg       *configs.Config
	store     store.Store
	va        Validator
	caa       CAAChecker
	router    Router
	issuers   map[string]upstream.Issuer
	now       func() time.Time
	log       *slog.Logger
	base      string // external URL without trailing slash
	workerID  string
	baseCtx   context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	kick      chan struct{}
	waitersMu sync.Mutex
	waiters   map[string][]*waiter
	handler   http.Handler
	auditLog  Auditor
	metrics   *Metrics
	// ari caches the upstream CAs' renewal windows (renewal.go).
	ari ariCache
	// limits applies the rate limits (ratelimit.go).
	limits *limiter
	// nonces caches the nonce key (nonce.go).
	nonces nonceKeys
	// ra is the domain core the handlers call.
	ra *ra.RA
}

// Paths of the ACME resources, relative to the external URL.
const (
	pathDirectory  = "/directory"
	pathNewNonce   = "/acme/new-nonce"
	pathNewAccount = "/acme/new-account"
	pathNewOrder   = "/acme/new-order"
	pathNewAuthz   = "/acme/new-authz"
	pathRevoke     = "/acme/revoke-cert"
	pathKeyChange  = "/acme/key-change"
	pathAccount    = "/acme/account/"
	pathOrder      = "/acme/order/"
	pathAuthz      = "/acme/authz/"
	pathChallenge  = "/acme/chall/"
	pathCert       = "/acme/cert/"
)

// New builds a server from its options.
func New(opts Options) (*Server, error) {
	if opts.Config == nil || opts.Store == nil || opts.Validator == nil || opts.Router == nil {
		return nil, errors.New("proxy: Config, Store, Validator and Router are required")
	}
	u, err := url.Parse(opts.Config.Server.ExternalURL)
	if err != nil {
		return nil, fmt.Errorf("proxy: external_url: %w", err)
	}
	s := &Server{
		cfg:      opts.Config,
		store:    opts.Store,
		va:       opts.Validator,
		router:   opts.Router,
		issuers:  opts.Issuers,
		now:      opts.Clock,
		log:      opts.Logger,
		base:     strings.TrimSuffix(u.Scheme+"://"+u.Host, "/"),
		workerID: opts.WorkerID,
		kick:     make(chan struct{}, max(1, opts.Config.Orders.Workers)),
		waiters:  map[string][]*waiter{},
		auditLog: opts.Audit,
		metrics:  opts.Metrics,
	}
	if s.ra, err = ra.New(ra.Options{Store: opts.Store, Issuers: opts.Issuers, Clock: func() time.Time { return s.now() },
		Logger: opts.Logger, Audit: opts.Audit}); err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	s.limits = newLimiter(opts.Config.RateLimits, opts.Store, func() time.Time { return s.now() })
	if s.caa = opts.CAA; s.caa == nil {
		s.caa, _ = opts.Validator.(CAAChecker)
	}
	for _, u := range opts.Config.Upstreams {
		if u.ChecksCAA() && s.caa == nil {
			return nil, fmt.Errorf("proxy: upstream %s checks CAA, and neither Options.CAA nor the Validator can", u.Name)
		}
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.workerID == "" {
		s.workerID = randomID()
	}
	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	s.handler = s.routes()
	return s, nil
}

// RA is the domain core behind the server, for the admin API.
func (s *Server) RA() *ra.RA { return s.ra }

// Handler returns the ACME HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Close stops background work started by the server (validations, the
// issuance worker) and waits for it.
func (s *Server) Close() {
	s.cancel()
	s.wg.Wait()
}

func (s *Server) routes() http.Handler {
	r := mux.NewRouter()
	r.UseEncodedPath()
	h := func(path string, methods []string, fn func(http.ResponseWriter, *http.Request)) {
		r.Handle(path, s.wrap(path, methods, fn))
	}
	get := []string{http.MethodGet, http.MethodPost}
	post := []string{http.MethodPost}
	h(pathDirectory, get, s.handleDirectory)
	h(pathNewNonce, []string{http.MethodGet, http.MethodPost}, s.handleNewNonce)
	h(pathNewAccount, post, s.handleNewAccount)
	h(pathNewOrder, post, s.handleNewOrder)
	if s.cfg.Orders.PreAuthorization {
		h(pathNewAuthz, post, s.handleNewAuthz)
	}
	h(pathRevoke, post, s.handleRevoke)
	h(pathKeyChange, post, s.handleKeyChange)
	h(pathAccount+"{id}", post, s.handleAccount)
	h(pathAccount+"{id}/orders", post, s.handleAccountOrders)
	h(pathOrder+"{id}", post, s.handleOrder)
	h(pathOrder+"{id}/finalize", post, s.handleFinalize)
	// RFC 8555 §6.3 requires POST-as-GET; unauthenticated GET is also
	// accepted for authorizations and challenges, whose URLs carry 128
	// random bits, as Boulder does.
	h(pathAuthz+"{id}", get, s.handleAuthz)
	h(pathChallenge+"{authz}/{id}", get, s.handleChallenge)
	h(pathCert+"{id}", post, s.handleCertificate)
	h(pathCert+"{id}/{alt:[0-9]+}", post, s.handleCertificate)
	// RFC 9773 §4.2: renewal information is fetched with an
	// unauthenticated GET.
	h(pathRenewalInfo+"/{id}", []string{http.MethodGet}, s.handleRenewalInfo)
	r.NotFoundHandler = s.wrap("other", nil, func(w http.ResponseWriter, r *http.Request) {
		s.writeProblem(w, r, acmeerr.New(acmeerr.NotFound, "no resource at %s", r.URL.Path))
	})
	return r
}

// reqInfo is request-scoped bookkeeping for the access log.
type reqInfo struct {
	id      string
	problem string
}

type reqInfoKey struct{}

func requestID(r *http.Request) string {
	if ri, ok := r.Context().Value(reqInfoKey{}).(*reqInfo); ok {
		return ri.id
	}
	return ""
}

func setProblemType(r *http.Request, t string) {
	if ri, ok := r.Context().Value(reqInfoKey{}).(*reqInfo); ok {
		ri.problem = t
	}
}

// statusWriter records the status for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// wrap is the one wrapper around every route (after Pebble's HandleFunc):
// request ID, access log, panic guard, method check, HEAD for GET, and the
// headers every ACME response carries: Replay-Nonce (RFC 8555 §6.5: "The
// server MUST include a Replay-Nonce header field in every successful response
// to a POST request and SHOULD provide it in error responses as well"), Link
// rel="index" (§7.1: "the server MUST include a Link ... to the directory")
// and Cache-Control: no-store.
func (s *Server) wrap(endpoint string, methods []string, fn func(http.ResponseWriter, *http.Request)) http.Handler {
	allowed := map[string]bool{}
	for _, m := range methods {
		allowed[m] = true
	}
	if allowed[http.MethodGet] {
		allowed[http.MethodHead] = true
	}
	allow := strings.Join(append(append([]string{}, methods...), headIf(allowed)...), ", ")
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := s.now()
		ri := &reqInfo{id: randomID()[:16]}
		r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, ri))
		w := &statusWriter{ResponseWriter: rw}
		defer func() {
			if v := recover(); v != nil {
				s.log.Error("panic", "request_id", ri.id, "panic", fmt.Sprint(v))
				if w.status == 0 {
					s.writeProblem(w, r, fmt.Errorf("panic: %v", v))
				}
			}
			s.metrics.request(endpoint, r.Method, w.status)
			s.log.Info("request", "request_id", ri.id, "method", r.Method, "path", r.URL.Path,
				"status", w.status, "problem", ri.problem, "remote", r.RemoteAddr,
				"duration_ms", float64(s.now().Sub(start).Microseconds())/1000)
		}()
		hdr := w.Header()
		hdr.Set("Cache-Control", "no-store")
		hdr.Add("Link", link(s.base+pathDirectory, "index"))
		if r.Method != http.MethodGet && r.Method != http.MethodHead || r.URL.Path == pathNewNonce {
			if n, err := s.newNonce(r.Context()); err == nil {
				hdr.Set("Replay-Nonce", n)
			} else {
				s.log.Error("nonce", "request_id", ri.id, "err", err)
			}
		}
		if methods != nil && !allowed[r.Method] {
			hdr.Set("Allow", allow)
			s.writeProblem(w, r, acmeerr.New(acmeerr.MethodNotAllowed, "method %s is not allowed here", r.Method))
			return
		}
		if r.Method == http.MethodHead {
			fn(headWriter{w}, r)
			return
		}
		fn(w, r)
	})
}

func headIf(allowed map[string]bool) []string {
	if allowed[http.MethodGet] {
		return []string{http.MethodHead}
	}
	return nil
}

// headWriter drops the body of a HEAD response.
type headWriter struct{ http.ResponseWriter }

func (headWriter) Write(b []byte) (int, error) { return len(b), nil }

func link(u, rel string) string { return "<" + u + `>;rel="` + rel + `"` }

// randomID returns 128 random bits, base64url without padding. It never
// starts with '-' or '_', so an ID is never mistaken for a command-line flag.
func randomID() string {
	b := make([]byte, 16)
	for {
		_, _ = rand.Read(b)
		if id := base64.RawURLEncoding.EncodeToString(b); id[0] != '-' && id[0] != '_' {
			return id
		}
	}
}

// URL builders.
func (s *Server) accountURL(id string) string { return s.base + pathAccount + id }
func (s *Server) orderURL(id string) string   { return s.base + pathOrder + id }
func (s *Server) authzURL(id string) string   { return s.base + pathAuthz + id }
func (s *Server) certURL(id string) string    { return s.base + pathCert + id }
func (s *Server) challURL(authz, id string) string {
	return s.base + pathChallenge + authz + "/" + id
}
