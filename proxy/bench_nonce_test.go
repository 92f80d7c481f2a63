package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkNewNonce is the nonce path of every response: HEAD newNonce
// through the route wrapper, which mints a nonce and records it in the
// store (bolt keeps nonces in memory; Redis would be one SET).
func BenchmarkNewNonce(b *testing.B) {
	e := newEnv(&testing.T{}, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodHead, testBase+pathNewNonce, nil)
			rec := httptest.NewRecorder()
			e.h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK || rec.Header().Get("Replay-Nonce") == "" {
				b.Fatal("no nonce", rec.Code)
			}
		}
	})
}

// BenchmarkNonceMintConsume is one nonce's life inside the server: minted
// for a response, then consumed by the next request's JWS check.
func BenchmarkNonceMintConsume(b *testing.B) {
	e := newEnv(&testing.T{}, nil)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n, err := e.srv.newNonce(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if ok, err := e.srv.useNonce(ctx, n); err != nil || !ok {
				b.Fatal("nonce refused", err)
			}
		}
	})
}
