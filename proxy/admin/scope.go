package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/ra"
	"github.com/acmebridge/acmebridge/store"
)

// DirectoryToken is an admin token scoped to one directory (tenant): it
// sees and manages that directory's EAB keys, accounts, orders and
// certificates only, and none of the server-wide endpoints.
type DirectoryToken struct {
	// Directory is the name of a configured directory.
	Directory string
	// Token is the bearer token.
	Token string
}

// Directories are the directories the server serves (implemented by
// ra.RA).
type Directories interface {
	// Directories are their names, "" (the top level) first.
	Directories() []string
	// Directory is the one called name, nil when it is not served.
	Directory(name string) *ra.Directory
}

// minScopedToken is the shortest scoped token accepted (128 bits in hex).
const minScopedToken = 32

// ReadDirectoryTokens reads the scoped tokens of admin.directory_tokens,
// creating a missing file as EnsureToken does. A token shorter than 32
// characters, or equal to the global token or to another entry's token
// of another directory, is refused: a token must name one scope.
func ReadDirectoryTokens(global string, entries []configs.DirectoryToken) ([]DirectoryToken, error) {
	var out []DirectoryToken
	for i, e := range entries {
		tok, err := EnsureToken(e.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("admin.directory_tokens[%d]: %w", i, err)
		}
		if len(tok) < minScopedToken {
			return nil, fmt.Errorf("admin.directory_tokens[%d]: the token in %s is shorter than %d characters", i, e.TokenFile, minScopedToken)
		}
		if tok == global {
			return nil, fmt.Errorf("admin.directory_tokens[%d]: the token in %s is the global admin token", i, e.TokenFile)
		}
		for _, o := range out {
			if o.Token == tok && o.Directory != e.ScopedDirectory() {
				return nil, fmt.Errorf("admin.directory_tokens[%d]: the token in %s is also directory %s's", i, e.TokenFile, o.Directory)
			}
		}
		out = append(out, DirectoryToken{Directory: e.ScopedDirectory(), Token: tok})
	}
	return out, nil
}

// scope is what a request's token may see: every directory (the global
// token) or one.
type scope struct {
	global bool
	// dir is the directory of a scoped token ("" the top level).
	dir string
}

type scopeKey struct{}

// scopeOf is the scope authorize put in r's context.
func scopeOf(r *http.Request) scope {
	s, _ := r.Context().Value(scopeKey{}).(scope)
	return s
}

// tokenHash is what tokens are compared by: equal lengths, so the
// comparison takes the same time whatever the token's length.
func tokenHash(tok string) [sha256.Size]byte { return sha256.Sum256([]byte(tok)) }

// scopedHash is a scoped token's hash and directory.
type scopedHash struct {
	sum [sha256.Size]byte
	dir string
}

// ScopedTokens are the directory-scoped tokens the API accepts. A reload
// replaces them whole (Set) while requests read them: a token removed
// from admin.directory_tokens, or rotated in its file, stops working at
// the reload.
type ScopedTokens struct{ p atomic.Pointer[[]scopedHash] }

// NewScopedTokens holds ts.
func NewScopedTokens(ts []DirectoryToken) *ScopedTokens {
	s := &ScopedTokens{}
	s.Set(ts)
	return s
}

// Set replaces the tokens with ts.
func (s *ScopedTokens) Set(ts []DirectoryToken) {
	hs := make([]scopedHash, 0, len(ts))
	for _, t := range ts {
		hs = append(hs, scopedHash{sum: tokenHash(t.Token), dir: t.Directory})
	}
	s.p.Store(&hs)
}

// Swap replaces the tokens with ts and returns what puts the previous
// ones back. A nil ScopedTokens does nothing.
func (s *ScopedTokens) Swap(ts []DirectoryToken) (restore func()) {
	if s == nil {
		return func() {}
	}
	prev := s.p.Load()
	s.Set(ts)
	return func() { s.p.Store(prev) }
}

// all are the tokens in force.
func (s *ScopedTokens) all() []scopedHash {
	if p := s.p.Load(); p != nil {
		return *p
	}
	return nil
}

// match finds the scope of a presented token: every token is compared, in
// constant time, whichever matches.
func (a *api) match(tok string) (scope, bool) {
	sum := tokenHash(tok)
	found, s := 0, scope{}
	if subtle.ConstantTimeCompare(sum[:], a.globalHash[:]) == 1 {
		found, s = found+1, scope{global: true}
	}
	for _, h := range a.scoped.all() {
		if subtle.ConstantTimeCompare(sum[:], h.sum[:]) == 1 {
			found, s = found+1, scope{dir: h.dir}
		}
	}
	return s, found > 0 && tok != ""
}

// directoryParam reads the directory a request names (the query parameter
// or a body field, v): "" for every directory. A scoped token may name
// only its own (or none, which means its own); the global token any
// configured directory, or audit.TopLevel ("/") for the top level.
func (a *api) directoryParam(r *http.Request, v string) (string, int, error) {
	s := scopeOf(r)
	if !s.global {
		if v != "" && v != audit.DirectoryLabel(s.dir) {
			return "", http.StatusForbidden, fmt.Errorf("this token is scoped to directory %s", audit.DirectoryLabel(s.dir))
		}
		return audit.DirectoryLabel(s.dir), 0, nil
	}
	if v == "" || v == audit.TopLevel {
		return v, 0, nil
	}
	if !slices.Contains(a.directoryNames(), v) {
		return "", http.StatusBadRequest, fmt.Errorf("no directory %s is configured", v)
	}
	return v, 0, nil
}

// directoryNames are the configured directories' names ("" the top level).
func (a *api) directoryNames() []string {
	if a.Directories == nil {
		return []string{""}
	}
	return a.Directories.Directories()
}

// inDirectory reports whether a record of directory dir passes the
// filter f (a label from directoryParam; "" passes every directory).
func inDirectory(dir, f string) bool { return f == "" || audit.DirectoryLabel(dir) == f }

// visible reports whether the request's token may see a record of
// directory dir. A record it may not see does not exist for it: the
// caller answers 404, as for an ID that names nothing.
func visible(r *http.Request, dir string) bool {
	s := scopeOf(r)
	return s.global || s.dir == dir
}

// notVisible is the error of a record the token may not see: the same
// answer as a missing one.
var notVisible = store.ErrNotFound

// fetchVisible reads one record by ID and hides it from a token scoped to
// another directory.
func fetchVisible[T any](r *http.Request, get func(context.Context, string) (T, error), dirOf func(T) string, id string) (T, error) {
	rec, err := get(r.Context(), id)
	if err != nil {
		return rec, err
	}
	if !visible(r, dirOf(rec)) {
		var zero T
		return zero, notVisible
	}
	return rec, nil
}

// actor names the token that acted in the audit log: "admin" for the
// global token, "admin:NAME" for one scoped to a directory.
func actor(r *http.Request) string {
	s := scopeOf(r)
	if s.global {
		return "admin"
	}
	return "admin:" + audit.DirectoryLabel(s.dir)
}

// bearer is the token of an Authorization header.
func bearer(r *http.Request) (string, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return strings.TrimSpace(tok), ok
}
