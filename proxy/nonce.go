package proxy

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"sync"
	"time"
)

// nonceLifetime is how long an issued nonce stays acceptable.
const nonceLifetime = time.Hour

// nonceKeyRefresh is how often the nonce key is read from the store again,
// so replicas follow a store that made a new one (Redis after losing its
// data). Nonces under the key read before stay good until the next read.
const nonceKeyRefresh = time.Minute

// A nonce is base64url(expiry (8 bytes, Unix seconds) || 16 random bytes
// || the first 16 bytes of HMAC-SHA256 over both under the store's nonce
// key): minting one writes nothing, so an unauthenticated newNonce costs no
// store write and no memory, and only a request whose signature verified
// records a use (store.UseNonce).
const (
	nonceRandLen = 16
	nonceMACLen  = 16
	nonceLen     = 8 + nonceRandLen + nonceMACLen
)

// errNoNonceKey: no nonce can be minted before the store gave a key.
var errNoNonceKey = errors.New("nonce key not read")

// nonceKeys caches the store's nonce key, and the one before it.
type nonceKeys struct {
	mu        sync.Mutex
	cur, prev []byte
	readAt    time.Time
}

// keys returns the current and previous nonce keys, reading the store when
// the cached key is older than nonceKeyRefresh. If the store cannot be
// read, a key read before is used (nil if there is none).
func (s *Server) nonceKeys(ctx context.Context) (cur, prev []byte, err error) {
	k := &s.nonces
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cur == nil || s.now().Sub(k.readAt) >= nonceKeyRefresh {
		key, err := s.store.NonceKey(ctx)
		if err != nil {
			return k.cur, k.prev, err
		}
		if !hmac.Equal(key, k.cur) {
			k.prev, k.cur = k.cur, key
		}
		k.readAt = s.now()
	}
	return k.cur, k.prev, nil
}

func nonceMAC(key, payload []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(payload)
	return m.Sum(nil)[:nonceMACLen]
}

// newNonce mints a nonce (RFC 8555 §6.5: "the server MUST generate the
// values it provides in Replay-Nonce header fields in such a way that they
// are unique to each message, with high probability"): 128 random bits,
// its expiry, and a MAC under the store's nonce key, so every replica
// sharing the store accepts it, once.
func (s *Server) newNonce(ctx context.Context) (string, error) {
	key, _, err := s.nonceKeys(ctx)
	if key == nil {
		return "", errors.Join(errNoNonceKey, err)
	}
	b := make([]byte, nonceLen)
	binary.BigEndian.PutUint64(b, uint64(s.now().Add(nonceLifetime).Unix())) //nolint:gosec // a time after 1970: positive
	_, _ = rand.Read(b[8 : 8+nonceRandLen])
	copy(b[8+nonceRandLen:], nonceMAC(key, b[:8+nonceRandLen]))
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// useNonce reports whether nonce is one this server minted, not expired,
// and not used before, and records its use (§6.5.2: "the server MUST
// reject the request with badNonce" otherwise). Its MAC and expiry are
// checked first, so a forged or stale nonce costs no store round trip.
func (s *Server) useNonce(ctx context.Context, nonce string) (bool, error) {
	exp, ok, err := s.checkNonce(ctx, nonce)
	if !ok || err != nil {
		return false, err
	}
	return s.store.UseNonce(ctx, nonce, exp)
}

// checkNonce is what useNonce checks before the store: the nonce's form,
// expiry and MAC. It returns the nonce's expiry and true for a nonce this
// server minted that has not expired; false (badNonce) otherwise; an error
// when the nonce key cannot be read.
func (s *Server) checkNonce(ctx context.Context, nonce string) (time.Time, bool, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(nonce)
	if err != nil || len(b) != nonceLen {
		return time.Time{}, false, nil //nolint:nilerr // a nonce that does not decode is not ours: badNonce, not an error
	}
	exp := time.Unix(int64(binary.BigEndian.Uint64(b)), 0) //nolint:gosec // an unauthenticated value: a wrapped one is a time long past, refused below
	if !s.now().Before(exp) || exp.After(s.now().Add(nonceLifetime+time.Minute)) {
		return time.Time{}, false, nil
	}
	cur, prev, err := s.nonceKeys(ctx)
	if cur == nil {
		return time.Time{}, false, errors.Join(errNoNonceKey, err)
	}
	tag := b[8+nonceRandLen:]
	if !hmac.Equal(tag, nonceMAC(cur, b[:8+nonceRandLen])) && (prev == nil || !hmac.Equal(tag, nonceMAC(prev, b[:8+nonceRandLen]))) {
		return time.Time{}, false, nil
	}
	return exp, true, nil
}

// handleNewNonce serves newNonce (RFC 8555 §7.2): "The server MUST include a
// Replay-Nonce header field with a fresh nonce ... respond to HEAD with 200
// (OK) and GET with 204 (No Content)". The wrapper already set the nonce.
func (s *Server) handleNewNonce(w http.ResponseWriter, r *http.Request) {
	if w.Header().Get("Replay-Nonce") == "" {
		// The nonce key could not be read: there is nothing to hand out.
		s.writeProblem(w, r, storeDown(errNoNonceKey))
		return
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
