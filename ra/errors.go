package ra

import (
	"errors"
	"time"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/store"
)

// storeRetryAfter is the Retry-After of a 503 while the store is down.
const storeRetryAfter = 5 * time.Second

// storeDown is the error for a store that failed: 503 with Retry-After;
// the cause is logged, never sent.
func storeDown(err error) error {
	return &acmeerr.Error{Kind: acmeerr.Unavailable, Detail: "the server's store is unavailable; retry later", RetryAfter: storeRetryAfter, Err: err}
}

// storeErr classifies a store error about the record what.
func storeErr(err error, what string) error {
	switch {
	case errors.Is(err, store.ErrConflict):
		return acmeerr.Wrap(acmeerr.Conflict, err, "%s was changed concurrently; retry", what)
	case errors.Is(err, store.ErrNotFound):
		return acmeerr.Wrap(acmeerr.NotFound, err, "%s not found", what)
	default:
		return storeDown(err)
	}
}

// ErrUpstream matches (errors.Is) every UpstreamError.
var ErrUpstream = errors.New("upstream refused")

// UpstreamError is an upstream's refusal or failure. It unwraps to the
// upstream's error, so its acmeerr kind reaches the client, and matches
// ErrUpstream, so the admin API can tell it from the server's own errors.
type UpstreamError struct {
	Upstream string
	Err      error
}

// Error implements error.
func (e *UpstreamError) Error() string { return e.Err.Error() }

// Unwrap returns the upstream's error.
func (e *UpstreamError) Unwrap() error { return e.Err }

// Is matches ErrUpstream.
func (e *UpstreamError) Is(target error) bool { return target == ErrUpstream }
