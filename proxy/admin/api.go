package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/policy"
	"github.com/acmebridge/acmebridge/ra"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/upstream"
)

// Explainer answers `policy explain` (implemented by policy.Engine).
type Explainer interface {
	Explain(name string, req policy.Request) policy.Explanation
}

// Auditor records admin actions (implemented by audit.Log).
type Auditor interface {
	Record(e audit.Event) error
}

// APIOptions are the admin API's dependencies.
type APIOptions struct {
	// Token is the global bearer token: it sees every directory and may
	// call every endpoint.
	Token string
	// Scoped are the tokens scoped to one directory each (see
	// ReadDirectoryTokens), which a reload replaces; nil: none.
	Scoped *ScopedTokens
	// Directories are the directories served; nil: the top level alone.
	// Policy explain uses a directory's own policy from it.
	Directories Directories
	Store       store.Store
	// Policy explains with the top level's policy when Directories is
	// nil.
	Policy Explainer
	// Issuers are the upstreams by name (revocation, health); Types their
	// configured types.
	Issuers map[string]upstream.Issuer
	Types   map[string]string
	Audit   Auditor
	Clock   func() time.Time
	// RA is the domain core, which decides every change of state the API
	// asks for (revocation).
	RA Revoker
	// Live, when set, is the configuration in force, read per request so
	// that a reload shows at once: the upstreams and the top-level
	// policy then come from it instead of Policy, Issuers and Types.
	Live Live
	// Reloader, when set, serves POST /api/v1/reload.
	Reloader Reloader
	// Approver, when set, decides approval requests (POST
	// /api/v1/approvals/{id}/approve and deny, the dashboard's buttons).
	Approver Approver
}

// Live is the configuration in force (implemented by ra.RA).
type Live interface {
	Config() *configs.Config
	Directory(name string) *ra.Directory
}

// Reloader re-reads the configuration file of this replica and asks every
// replica sharing the store to do the same; it returns the generation in
// force, or why the file was refused (the running configuration stays).
type Reloader interface {
	Reload(ctx context.Context) (int64, error)
}

// upstreamTypes are the upstreams in force, name → type.
func (a *api) upstreamTypes() map[string]string {
	if a.Live == nil {
		out := map[string]string{}
		for n := range a.Issuers {
			out[n] = a.Types[n]
		}
		return out
	}
	out := map[string]string{}
	for _, u := range a.Live.Config().Upstreams {
		out[u.Name] = u.Type
	}
	return out
}

// Revoker revokes certificates (implemented by ra.RA).
type Revoker interface {
	Revoke(ctx context.Context, req ra.RevokeRequest) (*store.Certificate, error)
}

// api serves /api/v1/.
type api struct {
	APIOptions
	// globalHash is the global token's hash, scoped the scoped tokens
	// (scope.go).
	globalHash [32]byte
	scoped     *ScopedTokens
}

// buildAPI is the API of opts.
func buildAPI(opts APIOptions) *api {
	a := &api{APIOptions: opts, globalHash: tokenHash(opts.Token), scoped: opts.Scoped}
	if a.scoped == nil {
		a.scoped = NewScopedTokens(nil)
	}
	return a
}

// apiError is the API's error body.
type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func fail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, apiError{Error: msg})
}

// storeFail answers a store error: not found, conflict, or unavailable.
func storeFail(w http.ResponseWriter, err error, what string) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		fail(w, http.StatusNotFound, what+" not found")
	case errors.Is(err, store.ErrConflict):
		fail(w, http.StatusConflict, what+" was changed concurrently; retry")
	default:
		fail(w, http.StatusServiceUnavailable, "store unavailable")
	}
}

// authorize checks the bearer token in constant time against the global
// token and every scoped one, and puts the token's scope in the request's
// context. Unless tenant, the endpoint is server-wide: a scoped token gets
// 403.
func (a *api) authorize(tenant bool, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearer(r)
		s, found := a.match(tok)
		if !ok || !found {
			w.Header().Set("WWW-Authenticate", `Bearer realm="acmebridge-admin"`)
			fail(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		if !s.global && !tenant {
			fail(w, http.StatusForbidden, "this endpoint is server-wide: it needs the global admin token")
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), scopeKey{}, s))
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		next(w, r)
	}
}

// routes registers the API. h registers a server-wide endpoint (the
// global token only: the default for a new one); t one a token scoped to
// a directory may call, which acts on its directory only.
func (a *api) routes(mux *http.ServeMux) {
	h := func(pattern string, fn http.HandlerFunc) { mux.HandleFunc(pattern, a.authorize(false, fn)) }
	t := func(pattern string, fn http.HandlerFunc) { mux.HandleFunc(pattern, a.authorize(true, fn)) }
	t("GET /api/v1/eab", a.listEAB)
	t("POST /api/v1/eab", a.createEAB)
	t("POST /api/v1/eab/{kid}/revoke", a.revokeEAB)
	t("GET /api/v1/accounts", a.listAccounts)
	t("GET /api/v1/accounts/{id}", a.showAccount)
	t("POST /api/v1/accounts/{id}/deactivate", a.deactivateAccount)
	t("POST /api/v1/accounts/{id}/notifications", a.accountNotifications)
	t("GET /api/v1/orders", a.listOrders)
	t("GET /api/v1/orders/{id}", a.showOrder)
	t("GET /api/v1/certificates", a.listCertificates)
	t("GET /api/v1/certificates/{id}", a.showCertificate)
	t("POST /api/v1/certificates/{id}/revoke", a.revokeCertificate)
	t("POST /api/v1/certificates/{id}/renew-now", a.renewNow)
	t("GET /api/v1/policy/explain", a.explain)
	t("GET /api/v1/approvals", a.listApprovals)
	t("GET /api/v1/approvals/{id}", a.showApproval)
	t("POST /api/v1/approvals/{id}/approve", a.approveApproval)
	t("POST /api/v1/approvals/{id}/deny", a.denyApproval)
	h("POST /api/v1/upstreams/{name}/renew-now", a.renewUpstreamNow)
	h("GET /api/v1/upstreams", a.listUpstreams)
	h("POST /api/v1/reload", a.reload)
}

func (a *api) now() time.Time {
	if a.Clock != nil {
		return a.Clock()
	}
	return time.Now()
}

// record audits an admin action.
func (a *api) record(r *http.Request, e audit.Event) {
	if a.Audit == nil {
		return
	}
	e.Actor = actor(r)
	e.Remote = r.RemoteAddr
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		e.Remote = host
	}
	_ = a.Audit.Record(e)
}

// pageParams reads ?cursor= and ?limit= (default 100, at most 1000).
func pageParams(r *http.Request) (string, int, error) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return "", 0, errors.New("limit must be 1 to 1000")
		}
		limit = n
	}
	return r.URL.Query().Get("cursor"), limit, nil
}

// listing is one page of records.
type listing[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}

// scan walks a listing from cursor in pages of limit, keeping records that
// pass keep, and stops at the end of the first page where limit records
// are kept (a page may add more) or maxScan were read, so a filter that
// matches little cannot make one request unbounded. It returns the cursor
// to go on from.
func scan[T any](ctx context.Context, list func(cursor string, limit int) (store.Page, error),
	get func(ctx context.Context, id string) (T, error), keep func(T) bool, cursor string, limit int) ([]T, string, error) {
	const maxScan = 5000
	out := []T{}
	scanned := 0
	for {
		page, err := list(cursor, limit)
		if err != nil {
			return nil, "", err
		}
		for _, id := range page.IDs {
			scanned++
			rec, err := get(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, "", err
			}
			if keep(rec) {
				out = append(out, rec)
			}
		}
		if page.Next == "" || len(out) >= limit || scanned >= maxScan {
			return out, page.Next, nil
		}
		cursor = page.Next
	}
}
