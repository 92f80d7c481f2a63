// Package acmeerr holds the error kinds shared by the server, the store and the
// upstreams. Errors carry a Kind; the proxy turns them into RFC 7807 problem
// documents in one place (proxy/problem.go), so no other package writes HTTP.
package acmeerr

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/acmebridge/acmebridge/core"
)

// Kind classifies an error. Each kind maps to one ACME problem type
// (RFC 8555 §6.7) and one HTTP status.
type Kind int

// The kinds. Internal is the zero value so that an unclassified error is never
// reported as the client's fault.
const (
	Internal Kind = iota
	Malformed
	Unauthorized
	NotFound
	BadNonce
	BadSignatureAlgorithm
	BadPublicKey
	BadCSR
	BadRevocationReason
	AlreadyRevoked
	AccountDoesNotExist
	ExternalAccountRequired
	InvalidContact
	UnsupportedContact
	UserActionRequired
	RejectedIdentifier
	UnsupportedIdentifier
	OrderNotReady
	RateLimited
	Conflict
	Connection
	DNS
	TLS
	IncorrectResponse
	CAA
	Unavailable
	MethodNotAllowed
	UnsupportedMediaType
	PayloadTooLarge
	// AlreadyReplaced: newOrder's "replaces" names a certificate already
	// replaced (RFC 9773 §7.4).
	AlreadyReplaced
	// InvalidProfile: newOrder names a profile the server does not offer
	// (draft-ietf-acme-profiles).
	InvalidProfile
	// AccountNotValid: the request is signed by an account that is
	// deactivated or revoked. It is an "unauthorized" problem with status
	// 401 (RFC 8555 §7.3.6: "If a server receives a POST or POST-as-GET
	// from a deactivated account, it MUST return an error response with
	// status code 401 (Unauthorized) and type
	// "urn:ietf:params:acme:error:unauthorized"").
	AccountNotValid
)

// Identifier names the identifier a subproblem is about (RFC 8555 §6.7.1).
// It is core.Identifier.
type Identifier = core.Identifier

// Error is an error with a Kind, a detail meant for the client, optional
// subproblems and an optional Retry-After.
type Error struct {
	Kind       Kind
	Detail     string
	Identifier *Identifier
	Sub        []*Error
	RetryAfter time.Duration
	// Algorithms lists the accepted JWS algorithms for BadSignatureAlgorithm
	// (RFC 8555 §6.2: "The server MUST include ... an "algorithms" field").
	Algorithms []string
	// Err is the underlying cause; it is logged, never sent to the client.
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Detail, e.Err)
	}
	return e.Detail
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// New returns an Error of kind k with a formatted detail.
func New(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Detail: fmt.Sprintf(format, args...)}
}

// Wrap returns an Error of kind k whose cause is err.
func Wrap(k Kind, err error, format string, args ...any) *Error {
	return &Error{Kind: k, Detail: fmt.Sprintf(format, args...), Err: err}
}

// For returns e with its identifier set, for use as a subproblem.
func (e *Error) For(typ, value string) *Error {
	e.Identifier = &Identifier{Type: typ, Value: value}
	return e
}

// KindOf returns the Kind of the first *Error in err's chain, or Internal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Is reports whether err carries kind k.
func Is(err error, k Kind) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == k
}

// Quote writes a client-supplied value into a problem's detail: quoted,
// cut to 32 bytes and made valid UTF-8, so a detail never carries a
// client's megabyte or broken text back.
func Quote(s string) string {
	if len(s) > 32 {
		s = s[:32] + "…"
	}
	return `"` + strings.ToValidUTF8(s, "?") + `"`
}
