package bench

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// trackerKey is the context key of an issuance's tracker.
type trackerKey struct{}

// tracker is what the transport learns of one issuance's requests: the
// last Retry-After, which paces the next poll (lego's API client does not
// return it for orders and authorizations).
type tracker struct {
	retryAfter atomic.Int64 // time.Duration
}

// countingTransport counts every request of a run (nonce fetches and
// retries included), reads each response's Retry-After into the request's
// tracker, and counts the problem documents received, including those
// lego retries by itself (badNonce).
type countingTransport struct {
	next http.RoundTripper
	r    *run
}

// maxProblem bounds how much of a problem document is read.
const maxProblem = 64 << 10

// RoundTrip implements http.RoundTripper.
func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.r.requests.Add(1)
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if tr, ok := req.Context().Value(trackerKey{}).(*tracker); ok {
		tr.retryAfter.Store(int64(retryAfter(resp.Header.Get("Retry-After"))))
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode >= 400 && mt == "application/problem+json" {
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxProblem))
		_ = resp.Body.Close() // read to its end or limit: replaced by the copy below
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if rerr != nil {
			// The error response is still the client's (with what was read);
			// only its problem type goes uncounted.
			return resp, nil //nolint:nilerr // see above
		}
		var p struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(body, &p) == nil && p.Type != "" {
			t.r.problems.Inc(strings.TrimPrefix(p.Type, "urn:ietf:params:acme:error:"))
		}
	}
	return resp, nil
}

// retryAfter parses a Retry-After header (seconds or an HTTP date); 0 when
// absent or unparsable.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// randomLabel is a short random DNS label that keeps names unique across
// runs against the same server.
func randomLabel() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
