package admin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

type pinger struct{ err error }

func (p *pinger) Ping(context.Context) error { return p.err }

func TestHealthReadyMetrics(t *testing.T) {
	p := &pinger{}
	s := New(Options{Store: p})
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	require.Equal(t, http.StatusOK, get("/healthz").Code)
	require.Equal(t, http.StatusOK, get("/readyz").Code)
	p.err = errors.New("down")
	require.Equal(t, http.StatusServiceUnavailable, get("/readyz").Code)
	require.Equal(t, http.StatusOK, get("/healthz").Code, "liveness does not depend on the store")
	m := get("/metrics")
	require.Equal(t, http.StatusOK, m.Code)
	require.Contains(t, m.Body.String(), "go_goroutines")
}

func TestEnsureToken(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "admin.token")
	tok, err := EnsureToken(p)
	require.NoError(t, err)
	require.Len(t, tok, 64)
	fi, err := os.Stat(p)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	again, err := EnsureToken(p)
	require.NoError(t, err)
	require.Equal(t, tok, again, "an existing token is kept")
	require.NoError(t, os.WriteFile(p, []byte("\n"), 0o600))
	_, err = EnsureToken(p)
	require.ErrorContains(t, err, "empty")
}
