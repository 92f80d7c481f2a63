// Package admin serves acmebridge's operator endpoints on their own
// listener: health (/healthz), readiness (/readyz) and Prometheus metrics
// (/metrics). The bearer token that guards the admin API is created here on
// first start.
package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Pinger reports whether a dependency is reachable.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Options are the admin server's dependencies.
type Options struct {
	// Store is checked by /readyz.
	Store Pinger
	// Registry is served on /metrics; prometheus.DefaultGatherer when nil.
	Registry prometheus.Gatherer
	Logger   *slog.Logger
	// API, when set, serves the admin API under /api/v1/ with its bearer
	// token.
	API *APIOptions
	// Dashboard, when set with API, serves the operator dashboard at
	// /dashboard behind the API's token.
	Dashboard *DashboardOptions
	// Generation, when set, is the configuration generation this replica
	// runs, which /readyz reports.
	Generation func() int64
}

// Server is the admin HTTP handler.
type Server struct {
	opts Options
	mux  *http.ServeMux
}

// New returns the admin handler.
func New(opts Options) *Server {
	if opts.Registry == nil {
		opts.Registry = prometheus.DefaultGatherer
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{opts: opts, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", s.ready)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{}))
	if opts.API != nil {
		a := buildAPI(*opts.API)
		a.routes(s.mux)
		if opts.Dashboard != nil {
			newDashboard(a, *opts.Dashboard, opts.Registry, opts.Logger).routes(s.mux)
		}
	}
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain")
	if err := s.opts.Store.Ping(ctx); err != nil {
		s.opts.Logger.Warn("readyz: store unreachable", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("store unreachable\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
	if s.opts.Generation != nil {
		_, _ = fmt.Fprintf(w, "config generation %d\n", s.opts.Generation())
	}
}

// EnsureToken reads the admin bearer token from path, creating it (256
// random bits, hex, mode 0600) when it does not exist.
func EnsureToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("admin: token file %s is empty", path)
		}
		return tok, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("admin: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("admin: %w", err)
	}
	tok := hex.EncodeToString(raw)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("admin: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		// Another replica sharing the data directory created it first.
		time.Sleep(50 * time.Millisecond)
		return EnsureToken(path)
	}
	if err != nil {
		return "", fmt.Errorf("admin: creating token file: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		_ = f.Close() // the write error is the one to report
		return "", fmt.Errorf("admin: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("admin: %w", err)
	}
	return tok, nil
}
