// Package proxy is the downstream ACME server (RFC 8555): routes, one file per
// resource, JWS verification, nonces and problem documents. It decides what
// to issue and hands checked requests to the upstreams.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/core"
	"github.com/acmebridge/acmebridge/ra"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/upstream"
)

// Options are the server's dependencies.
type Options struct {
	// Config is the validated configuration.
	Config *configs.Config
	Store  store.Store
	// Validator validates challenges.
	Validator ra.Validator
	// CAA checks CAA at finalize for the upstreams that need it
	// (configs.Upstream.ChecksCAA); nil means the Validator, when it can.
	CAA ra.CAAChecker
	// NewValidator makes a directory's validator from its configuration
	// (validation.allow_private_addresses); nil: Validator for all.
	NewValidator func(*configs.Config) ra.Validator
	// Router takes the policy decision at newOrder and finalize.
	Router ra.Router
	// Issuers are the upstreams by name.
	Issuers map[string]upstream.Issuer
	// Clock returns the current time; time.Now when nil.
	Clock func() time.Time
	// Logger receives one line per request; slog.Default when nil.
	Logger *slog.Logger
	// WorkerID names this replica's issuance worker (for job leases).
	WorkerID string
	// Audit receives the audit events; nil records none.
	Audit ra.Auditor
	// Metrics receives the server's measurements; nil measures nothing.
	Metrics *Metrics
}

// Server is the ACME server. Create it with New, serve Handler, and run Run
// for the background issuance worker.
type Server struct {
	store   store.Store
	now     func() time.Time
	log     *slog.Logger
	base    string // external URL without trailing slash
	handler http.Handler
	metrics *Metrics
	// nonces caches the nonce key (nonce.go).
	nonces nonceKeys
	// keys caches accounts' keys (keycache.go).
	keys keyCache
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
		store:   opts.Store,
		now:     opts.Clock,
		log:     opts.Logger,
		base:    strings.TrimSuffix(u.Scheme+"://"+u.Host, "/"),
		metrics: opts.Metrics,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	core, err := ra.New(ra.Options{Config: opts.Config, Store: opts.Store, Validator: opts.Validator, CAA: opts.CAA,
		Router: opts.Router, NewValidator: opts.NewValidator, Issuers: opts.Issuers, AccountURL: s.accountURL, Clock: func() time.Time { return s.now() },
		Logger: s.log, WorkerID: opts.WorkerID, Audit: opts.Audit, Metrics: opts.Metrics})
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	s.ra = core
	s.handler = s.routes()
	return s, nil
}

// RA is the domain core behind the server, for the admin API.
func (s *Server) RA() *ra.RA { return s.ra }

// Handler returns the ACME HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Close stops background work started by the server (validations, the
// issuance worker) and waits for it.
func (s *Server) Close() { s.ra.Close() }

// Run runs the domain core's issuance and validation workers until ctx
// ends or Close is called, and exports the upstreams' health.
func (s *Server) Run(ctx context.Context) {
	s.metrics.watchUpstreams(s)
	s.ra.Run(ctx)
}

// routes serves every resource at the top level and, for each configured
// directory, under /{name}/: one set of handlers, the directory named in
// the request's context (ra.WithDirectory) by wrap. A directory is looked
// up per request, so one a reload adds or removes is served or refused at
// once.
func (s *Server) routes() http.Handler {
	r := mux.NewRouter()
	r.UseEncodedPath()
	s.route(r)
	s.route(r.PathPrefix("/{dir:[a-z0-9-]+}").Subrouter())
	r.NotFoundHandler = s.wrap("other", nil, func(w http.ResponseWriter, r *http.Request) {
		s.writeProblem(w, r, acmeerr.New(acmeerr.NotFound, "no resource at %s", r.URL.Path))
	})
	return r
}

// route registers the ACME resources on r.
func (s *Server) route(r *mux.Router) {
	h := func(path string, methods []string, fn func(http.ResponseWriter, *http.Request)) {
		r.Handle(path, s.wrap(path, methods, fn))
	}
	get := []string{http.MethodGet, http.MethodPost}
	post := []string{http.MethodPost}
	h(pathDirectory, get, s.handleDirectory)
	h(pathNewNonce, []string{http.MethodGet, http.MethodPost}, s.handleNewNonce)
	h(pathNewAccount, post, s.handleNewAccount)
	h(pathNewOrder, post, s.handleNewOrder)
	// Offered while orders.pre_authorization is set (a reload may change
	// it); otherwise the path is not found, as any other.
	r.Handle(pathNewAuthz, s.wrap(pathNewAuthz, post, s.handleNewAuthz)).MatcherFunc(func(*http.Request, *mux.RouteMatch) bool {
		return s.ra.Config().Orders.PreAuthorization
	})
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
		ri := &reqInfo{id: core.RandomID()[:16]}
		r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, ri))
		w := &statusWriter{ResponseWriter: rw}
		// The directory label: set once the path names a served directory.
		label := ""
		defer func() {
			if v := recover(); v != nil {
				s.log.Error("panic", "request_id", ri.id, "panic", fmt.Sprint(v))
				if w.status == 0 {
					s.writeProblem(w, r, fmt.Errorf("panic: %v", v))
				}
			}
			s.metrics.request(label, endpoint, r.Method, w.status)
			s.log.Info("request", "request_id", ri.id, "method", r.Method, "path", r.URL.Path,
				"status", w.status, "problem", ri.problem, "remote", r.RemoteAddr,
				"duration_ms", float64(s.now().Sub(start).Microseconds())/1000)
		}()
		hdr := w.Header()
		hdr.Set("Cache-Control", "no-store")
		dir := mux.Vars(r)["dir"]
		if s.ra.Directory(dir) == nil {
			// Not a directory this server serves (or no longer does).
			s.writeProblem(w, r, acmeerr.New(acmeerr.NotFound, "no resource at %s", r.URL.Path))
			return
		}
		r = r.WithContext(ra.WithDirectory(r.Context(), dir))
		if r.Method == http.MethodPost {
			// Room for the records a signed request reads with its account
			// (jws.go verifyKID).
			r = r.WithContext(ra.WithPrefetch(r.Context()))
		}
		label = dirLabel(dir)
		hdr.Add("Link", link(s.root(dir)+pathDirectory, "index"))
		if r.Method != http.MethodGet && r.Method != http.MethodHead || endpoint == pathNewNonce {
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

// URL builders.
// URL builders: every URL is in the directory of the record it names.

// root is the URL of a directory's resources: the external URL for the top
// level, the external URL and "/{name}" for another.
func (s *Server) root(dir string) string {
	if dir == "" {
		return s.base
	}
	return s.base + "/" + dir
}

func (s *Server) accountURL(dir, id string) string { return s.root(dir) + pathAccount + id }
func (s *Server) orderURL(dir, id string) string   { return s.root(dir) + pathOrder + id }
func (s *Server) authzURL(dir, id string) string   { return s.root(dir) + pathAuthz + id }
func (s *Server) certURL(dir, id string) string    { return s.root(dir) + pathCert + id }
func (s *Server) challURL(dir, authz, id string) string {
	return s.root(dir) + pathChallenge + authz + "/" + id
}
