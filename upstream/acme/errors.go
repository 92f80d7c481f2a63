package acme

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
	"unicode"

	legoacme "github.com/go-acme/lego/v5/acme"

	"github.com/acmebridge/acmebridge/acmeerr"
)

// Retry-After hints given with transient errors.
const (
	// unavailableRetry follows a CA failing (5xx) or refusing acmebridge's
	// account.
	unavailableRetry = 30 * time.Second
	// defaultRateLimitRetry is used when the CA's rateLimited carries no
	// Retry-After.
	defaultRateLimitRetry = time.Minute
	// maxDetail bounds how much of the CA's own detail is quoted.
	maxDetail = 300
)

// errNS is the ACME error namespace (RFC 8555 §6.7).
const errNS = "urn:ietf:params:acme:error:"

// errorf is an error of kind k whose detail names the upstream.
func (u *Upstream) errorf(k acmeerr.Kind, cause error, format string, args ...any) *acmeerr.Error {
	return acmeerr.Wrap(k, cause, "acme %s: %s", u.name, fmt.Sprintf(format, args...))
}

// problemKinds are the CA's problem types (RFC 8555 §6.7) that are the
// order's fault, passed through to the client as the same kinds, with the
// text acmebridge puts before the CA's own detail.
var problemKinds = map[string]struct {
	kind acmeerr.Kind
	text string
}{
	"rejectedIdentifier":    {acmeerr.RejectedIdentifier, "the CA will not issue for this identifier"},
	"unsupportedIdentifier": {acmeerr.UnsupportedIdentifier, "the CA does not support this identifier"},
	"caa":                   {acmeerr.CAA, "CAA records forbid the CA to issue"},
	"badCSR":                {acmeerr.BadCSR, "the CA refused the CSR"},
	"badSignatureAlgorithm": {acmeerr.BadCSR, "the CA refused the CSR's signature algorithm"},
	"badPublicKey":          {acmeerr.BadCSR, "the CA refused the CSR's public key"},
	"invalidProfile":        {acmeerr.Malformed, "the CA does not offer the requested profile"},
}

// validationKinds are the problem types of a failed validation of the
// CA's challenges: acmebridge's solver (or its DNS) failed, not the
// client, so they are retried.
var validationKinds = map[string]bool{
	"connection": true, "dns": true, "incorrectResponse": true, "tls": true, "unauthorized": true,
}

// mapError classifies an error from talking to the CA; op names what was
// being done ("placing the order", "finalizing"). An *acmeerr.Error passes
// through unchanged.
func (u *Upstream) mapError(op string, err error) error {
	if err == nil {
		return nil
	}
	var ae *acmeerr.Error
	if errors.As(err, &ae) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return u.errorf(acmeerr.Unavailable, err, "%s abandoned", op)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return u.unavailable(err, "%s: the CA at %s did not answer in time", op, u.host)
	}
	// RFC 8555 §6.6: "When the server rejects a request because its rate
	// limits have been exceeded, it MUST return an HTTP 429 (Too Many
	// Requests) response with an error type of rateLimited" and "... it
	// SHOULD include a Retry-After header field".
	var rl *legoacme.RateLimitedError
	if errors.As(err, &rl) {
		e := u.errorf(acmeerr.RateLimited, err, "the CA at %s rate-limits this request: %s", u.host, quote(rl.Detail))
		e.RetryAfter = rl.RetryAfter
		if e.RetryAfter <= 0 {
			e.RetryAfter = defaultRateLimitRetry
		}
		return e
	}
	var pd *legoacme.ProblemDetails
	if errors.As(err, &pd) {
		return u.problemError(op, pd, err)
	}
	if isNetError(err) {
		return u.errorf(acmeerr.Connection, err, "%s: cannot reach the CA at %s", op, u.host)
	}
	return u.errorf(acmeerr.Internal, err, "%s failed", op)
}

// problemError classifies a problem document the CA answered with.
func (u *Upstream) problemError(op string, pd *legoacme.ProblemDetails, cause error) error {
	typ := strings.TrimPrefix(pd.Type, errNS)
	if typ == "compound" && len(pd.SubProblems) > 0 {
		// RFC 8555 §6.7.1: the subproblems say what went wrong with which
		// identifier; the first whose kind passes through decides.
		for _, sp := range pd.SubProblems {
			if _, ok := problemKinds[strings.TrimPrefix(sp.Type, errNS)]; ok {
				typ = strings.TrimPrefix(sp.Type, errNS)
				break
			}
		}
	}
	if p, ok := problemKinds[typ]; ok {
		e := u.errorf(p.kind, cause, "%s (%s at %s): %s", p.text, typ, u.host, quote(pd.Detail))
		for _, sp := range pd.SubProblems {
			if sp.Identifier.Value == "" {
				continue
			}
			sk, ok := problemKinds[strings.TrimPrefix(sp.Type, errNS)]
			if !ok {
				sk.kind = p.kind
			}
			sub := acmeerr.New(sk.kind, "acme %s: %s", u.name, quote(sp.Detail)).For(sp.Identifier.Type, sp.Identifier.Value)
			e.Sub = append(e.Sub, sub)
		}
		if e.Identifier == nil && len(e.Sub) == 1 {
			e.Identifier = e.Sub[0].Identifier
		}
		return e
	}
	switch {
	case typ == "rateLimited":
		e := u.errorf(acmeerr.RateLimited, cause, "the CA at %s rate-limits this request: %s", u.host, quote(pd.Detail))
		e.RetryAfter = defaultRateLimitRetry
		return e
	case validationKinds[typ] && op == "solving challenges":
		return u.unavailable(cause, "the CA at %s could not validate acmebridge's %s answer (%s): %s",
			u.host, u.solver.Type, typ, quote(pd.Detail))
	case typ == "accountDoesNotExist" || typ == "unauthorized" || typ == "externalAccountRequired" || typ == "userActionRequired":
		// acmebridge's own account is refused: the operator must act (an
		// EAB key, the terms of service); the order waits.
		u.dropSession()
		return u.unavailable(cause, "%s: the CA at %s refused acmebridge's account (%s): %s", op, u.host, typ, quote(pd.Detail))
	case typ == "alreadyRevoked":
		return u.errorf(acmeerr.AlreadyRevoked, cause, "the certificate is already revoked at %s", u.host)
	case typ == "badRevocationReason":
		return u.errorf(acmeerr.BadRevocationReason, cause, "the CA at %s refused the revocation reason: %s", u.host, quote(pd.Detail))
	case typ == "serverInternal" || pd.HTTPStatus >= 500:
		return u.unavailable(cause, "%s: the CA at %s is failing (HTTP %d)", op, u.host, pd.HTTPStatus)
	case typ == "badNonce":
		// lego already retried badNonce for 20 s (RFC 8555 §6.5).
		return u.unavailable(cause, "%s: the CA at %s kept refusing nonces", op, u.host)
	default:
		return u.errorf(acmeerr.Internal, cause, "%s: the CA at %s answered %s (HTTP %d)", op, u.host, typ, pd.HTTPStatus)
	}
}

// unavailable is an Unavailable error with the default Retry-After.
func (u *Upstream) unavailable(cause error, format string, args ...any) *acmeerr.Error {
	e := u.errorf(acmeerr.Unavailable, cause, format, args...)
	e.RetryAfter = unavailableRetry
	return e
}

// isNetError reports whether err is a transport failure: no connection,
// a reset, a TLS failure, a timeout below HTTP.
func isNetError(err error) bool {
	var ne net.Error
	var ue *url.Error
	var oe *net.OpError
	return errors.As(err, &oe) || errors.As(err, &ue) || errors.As(err, &ne) ||
		strings.Contains(err.Error(), "unable to communicate with the API server")
}

// quote makes the CA's detail safe to show: printable, one line, bounded.
func quote(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > maxDetail {
		s = s[:maxDetail] + "…"
	}
	if s == "" {
		return "(no detail)"
	}
	return s
}
