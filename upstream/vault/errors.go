package vault

import (
	"context"
	"errors"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/upstream"
)

// Retry-After hints of Unavailable errors (the worker waits at least this
// long before the next attempt): a Vault that is down or failing often
// comes back within seconds (a restart, a leader election); a sealed one
// waits for operators to unseal it.
const (
	unavailableRetry = 5 * time.Second
	sealedRetry      = 30 * time.Second
)

// Vault's messages (builtin/logical/pki/issuing) for names a role refuses:
// "common name %s not allowed by this role", "subject alternate name %s not
// allowed by this role", and "IP Subject Alternative Names are not allowed
// in this role, but was provided ...".
var (
	refusedName = regexp.MustCompile(`(?:common name|subject alternate name) (\S+) not allowed by this role`)
	refusedIPs  = "IP Subject Alternative Names are not allowed"
)

// csrProblems are fragments of Vault's refusals that are the CSR's fault,
// with the detail the client gets instead of Vault's text.
var csrProblems = []struct{ fragment, detail string }{
	{"TTL would result in notAfter", "the requested validity exceeds what the issuing CA allows"},
	{"beyond the expiration of the CA", "the requested validity exceeds what the issuing CA allows"},
	{"role requires keys of type", "the CSR's key type is not allowed by the Vault role"},
	{"bit key, but CSR's key is", "the CSR's key is smaller than the Vault role allows"},
	{"RSA keys < 2048 bits", "the CSR's RSA key is smaller than 2048 bits"},
	{"Unknown key type in CSR", "the CSR's key type is not supported"},
	{"empty PublicKey", "the CSR's key type is not supported"},
	{"could not parse CSR's public key", "the CSR's public key cannot be parsed"},
	{"certificate request could not be parsed", "Vault could not parse the CSR"},
	{"csr contains no data", "Vault could not parse the CSR"},
	{`"csr" is empty`, "Vault could not parse the CSR"},
	{"the common_name field is required", "the Vault role requires a common name and the CSR has none"},
	{"not allowed by this role", "the CSR asks for a subject or extension the Vault role does not allow"},
	{"idna:", "a name in the CSR is not a valid host name"},
}

// signError classifies an error from the sign request. Vault's 4xx
// refusals of the CSR or its names become the client's problem
// (RejectedIdentifier naming the identifier, or BadCSR); everything else
// is the server's (callError). Vault's own text stays in the error's cause,
// for logs only.
func (u *Upstream) signError(err error, req *upstream.Request) error {
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 400 {
		return u.callError("signing", err)
	}
	msg := strings.Join(re.Errors, "; ")
	if m := refusedName.FindStringSubmatch(msg); m != nil {
		if typ, value, ok := identifierFor(m[1], req); ok {
			return rejected(err, typ, value)
		}
	}
	if strings.Contains(msg, refusedIPs) && len(req.IPAddresses) > 0 {
		return rejected(err, "ip", req.IPAddresses[0].String())
	}
	for _, p := range csrProblems {
		if strings.Contains(msg, p.fragment) {
			return acmeerr.Wrap(acmeerr.BadCSR, err, "vault: %s", p.detail)
		}
	}
	return u.callError("signing", err)
}

// rejected is a RejectedIdentifier problem about one identifier, named in
// the detail and, as RFC 8555 §6.7.1 has it, in the "identifier" of a
// subproblem.
func rejected(cause error, typ, value string) error {
	e := acmeerr.Wrap(acmeerr.RejectedIdentifier, cause, "vault: the Vault role does not allow the name %s", value).For(typ, value)
	e.Sub = []*acmeerr.Error{acmeerr.New(acmeerr.RejectedIdentifier, "the Vault role does not allow %s", value).For(typ, value)}
	return e
}

// identifierFor finds the order's identifier Vault named.
func identifierFor(name string, req *upstream.Request) (typ, value string, ok bool) {
	name = strings.TrimRight(name, ".,;")
	for _, n := range req.DNSNames {
		if strings.EqualFold(n, name) {
			return "dns", n, true
		}
	}
	if ip := net.ParseIP(name); ip != nil {
		for _, x := range req.IPAddresses {
			if x.Equal(ip) {
				return "ip", x.String(), true
			}
		}
	}
	return "", "", false
}

// callError classifies an error from any Vault call: Vault down, sealed,
// failing or rate limiting is Unavailable (retried with Retry-After);
// refused credentials are Unavailable too (an operator fixes them, the
// order waits); anything else is Internal. An *acmeerr.Error passes
// through unchanged.
func (u *Upstream) callError(op string, err error) error {
	var ae *acmeerr.Error
	if errors.As(err, &ae) {
		return err
	}
	var re *api.ResponseError
	if !errors.As(err, &re) {
		if errors.Is(err, context.DeadlineExceeded) {
			return unavailable(err, "vault: Vault did not answer in time")
		}
		if errors.Is(err, context.Canceled) {
			return acmeerr.Wrap(acmeerr.Unavailable, err, "vault: %s abandoned", op)
		}
		return unavailable(err, "vault: Vault cannot be reached")
	}
	msg := strings.Join(re.Errors, "; ")
	switch {
	case re.StatusCode == 503 && strings.Contains(msg, "sealed"):
		e := acmeerr.Wrap(acmeerr.Unavailable, err, "vault: Vault is sealed")
		e.RetryAfter = sealedRetry
		return e
	case re.StatusCode >= 500:
		return unavailable(err, "vault: Vault is unavailable")
	case re.StatusCode == 429:
		return unavailable(err, "vault: Vault is rate limiting requests")
	case re.StatusCode == 403:
		return unavailable(err, "vault: Vault refused acmebridge's credentials")
	case re.StatusCode == 404:
		return acmeerr.Wrap(acmeerr.Internal, err, "vault: %s: path not found on Vault (mount %s, role %s)", op, u.mount, u.role)
	default:
		return acmeerr.Wrap(acmeerr.Internal, err, "vault: %s: Vault refused the request (HTTP %d)", op, re.StatusCode)
	}
}

// unavailable is an Unavailable error with the default Retry-After.
func unavailable(cause error, detail string) error {
	e := acmeerr.Wrap(acmeerr.Unavailable, cause, "%s", detail)
	e.RetryAfter = unavailableRetry
	return e
}
