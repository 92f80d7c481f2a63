package proxy

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// nonceLifetime is how long an issued nonce stays acceptable.
const nonceLifetime = time.Hour

// newNonce mints a nonce of 128 random bits and records it in the store, so
// any replica sharing the store accepts it once (RFC 8555 §6.5: "the server
// MUST generate the values it provides in Replay-Nonce header fields in such a
// way that they are unique to each message, with high probability").
func (s *Server) newNonce(ctx context.Context) (string, error) {
	n := randomID()
	if err := s.store.AddNonce(ctx, n, s.now().Add(nonceLifetime)); err != nil {
		return "", err
	}
	return n, nil
}

// handleNewNonce serves newNonce (RFC 8555 §7.2): "The server MUST include a
// Replay-Nonce header field with a fresh nonce ... respond to HEAD with 200
// (OK) and GET with 204 (No Content)". The wrapper already set the nonce.
func (s *Server) handleNewNonce(w http.ResponseWriter, r *http.Request) {
	if w.Header().Get("Replay-Nonce") == "" {
		// The nonce could not be stored: there is nothing to hand out.
		s.writeProblem(w, r, storeDown(errors.New("nonce not stored")))
		return
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
