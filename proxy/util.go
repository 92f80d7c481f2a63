package proxy

import (
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/acmebridge/acmebridge/acmeerr"
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// decodeB64 decodes unpadded base64url (RFC 8555 §6.1: "binary fields ...
// are encoded using base64url ... with trailing '=' characters stripped").
func decodeB64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "=+/") {
		return nil, base64.CorruptInputError(0)
	}
	return base64.RawURLEncoding.DecodeString(s)
}

// writeJSON writes v with a status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// clientAddr returns the client's IP: the peer's, or, when the peer is in
// trusted (CIDRs), the last X-Forwarded-For hop not itself trusted.
func clientAddr(r *http.Request, trusted []string) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	isTrusted := func(h string) bool {
		ip, err := netip.ParseAddr(h)
		if err != nil {
			return false
		}
		for _, t := range trusted {
			if p, err := netip.ParsePrefix(t); err == nil && p.Contains(ip.Unmap()) {
				return true
			}
		}
		return false
	}
	if !isTrusted(host) {
		return host
	}
	hops := strings.Split(r.Header.Get("X-Forwarded-For"), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h := strings.TrimSpace(hops[i])
		if h == "" {
			continue
		}
		if !isTrusted(h) {
			return h
		}
		host = h
	}
	return host
}

// storeRetryAfter is what a client is told to wait when the store is down.
const storeRetryAfter = 5 * time.Second

// storeDown classifies a failure of the store: the request could not be
// served now, and may be retried (503 serverInternal with Retry-After).
func storeDown(err error) error {
	return &acmeerr.Error{Kind: acmeerr.Unavailable, Detail: "the server's store is unavailable; retry later", RetryAfter: storeRetryAfter, Err: err}
}
