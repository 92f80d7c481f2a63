// Package va validates ACME challenges locally: http-01 (RFC 8555 §8.3),
// dns-01 (RFC 8555 §8.4) and tls-alpn-01 (RFC 8737), for DNS identifiers and,
// where RFC 8738 allows it, IP identifiers.
//
// Every connection is SSRF-safe: a name is resolved once through the
// configured resolvers, each address is checked against the address policy,
// and only checked addresses are dialled (the dialer never resolves names, so
// nothing can rebind between check and dial). Errors are *acmeerr.Error whose
// Detail is written for the ACME client and never echoes what the remote end
// sent; the cause is kept in Err for the logs.
package va

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/core"
)

// Challenge types understood by Validate.
const (
	// TypeHTTP01 is the http-01 challenge (RFC 8555 §8.3).
	TypeHTTP01 = core.ChallengeHTTP01
	// TypeDNS01 is the dns-01 challenge (RFC 8555 §8.4).
	TypeDNS01 = core.ChallengeDNS01
	// TypeTLSALPN01 is the tls-alpn-01 challenge (RFC 8737 §3).
	TypeTLSALPN01 = core.ChallengeTLSALPN01
)

// Identifier types understood by Validate.
const (
	// IdentDNS is a DNS name identifier (RFC 8555 §9.7.7).
	IdentDNS = "dns"
	// IdentIP is an IP address identifier (RFC 8738 §3).
	IdentIP = "ip"
)

// Defaults applied by New to zero fields of Options.
const (
	// DefaultHTTPPort is where http-01 connects (RFC 8555 §8.3: "This
	// request MUST be sent to TCP port 80 on the HTTP server.").
	DefaultHTTPPort = 80
	// DefaultTLSALPNPort is where tls-alpn-01 connects (RFC 8737 §3: "This
	// connection MUST use TCP port 443.").
	DefaultTLSALPNPort = 443
	// DefaultTimeout bounds one whole validation.
	DefaultTimeout = 10 * time.Second
)

// Options configure a Validator. The zero value is usable: ports 80 and 443,
// the system resolver, public addresses only, a 10s budget, no logging.
type Options struct {
	// HTTPPort is the port http-01 connects to (default 80). Redirects may
	// go to 80, 443, HTTPPort or TLSALPNPort.
	HTTPPort int
	// TLSALPNPort is the port tls-alpn-01 connects to (default 443).
	TLSALPNPort int
	// Resolvers are "host:port" DNS servers queried in order. Empty means
	// the system's resolver (net.DefaultResolver: /etc/hosts, then
	// /etc/resolv.conf).
	Resolvers []string
	// AllowPrivate allows loopback, private, link-local and other
	// non-public targets. Only for tests and closed networks.
	AllowPrivate bool
	// Timeout bounds one whole validation, every lookup and connection
	// included (default 10s).
	Timeout time.Duration
	// Logger receives debug records with the causes of failures; nil
	// discards them.
	Logger *slog.Logger
}

// Validator checks challenges. It is safe for concurrent use.
type Validator struct {
	httpPort    int
	tlsALPNPort int
	timeout     time.Duration
	allowAll    bool
	// allowed are exceptions to the address policy; tests set it to reach a
	// loopback server while the policy is otherwise enforced.
	allowed  []netip.Prefix
	resolver resolver
	caa      *caaCache
	log      *slog.Logger
}

// New returns a Validator for opts, after applying defaults and checking the
// ports and resolver addresses.
func New(opts Options) (*Validator, error) {
	v := &Validator{
		httpPort:    opts.HTTPPort,
		tlsALPNPort: opts.TLSALPNPort,
		timeout:     opts.Timeout,
		allowAll:    opts.AllowPrivate,
		caa:         newCAACache(nil),
		log:         opts.Logger,
	}
	if v.httpPort == 0 {
		v.httpPort = DefaultHTTPPort
	}
	if v.tlsALPNPort == 0 {
		v.tlsALPNPort = DefaultTLSALPNPort
	}
	for name, p := range map[string]int{"http port": v.httpPort, "tls-alpn port": v.tlsALPNPort} {
		if p < 1 || p > 65535 {
			return nil, fmt.Errorf("va: %s %d out of range 1-65535", name, p)
		}
	}
	if v.timeout < 0 {
		return nil, fmt.Errorf("va: negative timeout %s", v.timeout)
	}
	if v.timeout == 0 {
		v.timeout = DefaultTimeout
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	r, err := newResolver(opts.Resolvers, v.timeout)
	if err != nil {
		return nil, err
	}
	v.resolver = r
	return v, nil
}

// FromConfig returns the Validator the validation section of a loaded
// configuration describes (configs.Load decides whether private addresses
// are allowed: only the quickstart, or a file that says so).
func FromConfig(c configs.Validation, log *slog.Logger) (*Validator, error) {
	return New(Options{HTTPPort: c.HTTPPort, TLSALPNPort: c.TLSALPNPort, Resolvers: c.DNSResolvers,
		AllowPrivate: c.AllowPrivateAddresses, Timeout: c.Timeout.D(), Logger: log})
}

// Validate checks one challenge. typ is "http-01", "dns-01" or
// "tls-alpn-01"; identType is "dns" or "ip"; keyAuthorization is
// token + "." + base64url(JWK thumbprint), computed by the caller
// (RFC 8555 §8.1). It returns nil on success and an *acmeerr.Error otherwise.
// The whole validation is bounded by ctx and by Options.Timeout.
func (v *Validator) Validate(ctx context.Context, identType, identValue, typ, token, keyAuthorization string) error {
	err := v.validate(ctx, identType, identValue, typ, token, keyAuthorization)
	if err != nil {
		// The cause is logged for operators, without the token (design §5:
		// "Never log secrets, tokens, keys").
		msg := err.Error()
		if token != "" {
			msg = strings.ReplaceAll(msg, token, "<token>")
		}
		v.log.Debug("challenge validation failed", "type", typ,
			"identifier_type", identType, "identifier", identValue,
			"kind", acmeerr.KindOf(err), "err", msg)
		return err
	}
	v.log.Debug("challenge validated", "type", typ,
		"identifier_type", identType, "identifier", identValue)
	return nil
}

func (v *Validator) validate(ctx context.Context, identType, identValue, typ, token, keyAuth string) error {
	// RFC 8555 §8.3 on the token: "It MUST NOT contain any characters
	// outside the base64url alphabet and MUST NOT include base64 padding
	// characters ("=")." The token becomes part of a URL path, so this is
	// checked before anything else.
	if typ != TypeDNS01 || token != "" {
		if err := checkToken(token); err != nil {
			return err
		}
	}
	// RFC 8555 §8.1: "keyAuthorization = token || '.' ||
	// base64url(Thumbprint(accountKey))".
	if token != "" && !strings.HasPrefix(keyAuth, token+".") {
		return acmeerr.New(acmeerr.Internal, "%s: key authorization does not belong to the token", typ)
	}
	if keyAuth == "" {
		return acmeerr.New(acmeerr.Internal, "%s: empty key authorization", typ)
	}

	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()

	switch identType {
	case IdentDNS:
		name, err := normalizeName(identValue)
		if err != nil {
			return err
		}
		switch typ {
		case TypeHTTP01:
			if strings.HasPrefix(name, "*.") {
				// A wildcard names no host to connect to; only dns-01 can
				// prove control of it.
				return acmeerr.New(acmeerr.Malformed, "http-01 cannot validate the wildcard name %s", name)
			}
			return v.validateHTTP01(ctx, identTarget{name: name}, token, keyAuth)
		case TypeDNS01:
			// RFC 8555 §8.4: "The client constructs the validation domain
			// name by prepending the label "_acme-challenge" to the domain
			// name being validated". An authorization for a wildcard name
			// carries the base name and "wildcard": true (RFC 8555 §7.1.4),
			// so a leading "*." from a caller is dropped.
			return v.validateDNS01(ctx, strings.TrimPrefix(name, "*."), keyAuth)
		case TypeTLSALPN01:
			if strings.HasPrefix(name, "*.") {
				return acmeerr.New(acmeerr.Malformed, "tls-alpn-01 cannot validate the wildcard name %s", name)
			}
			return v.validateTLSALPN01(ctx, identTarget{name: name}, keyAuth)
		}
	case IdentIP:
		// RFC 8738 §3: "The value field of the identifier MUST contain the
		// textual form of the address as defined in [RFC1123], Section 2.1
		// for IPv4 and in [RFC5952], Section 4 for IPv6."
		addr, err := netip.ParseAddr(identValue)
		if err != nil || addr.Zone() != "" {
			return acmeerr.New(acmeerr.Malformed, "%q is not an IP address", sanitize(identValue))
		}
		addr = addr.Unmap()
		switch typ {
		case TypeHTTP01:
			return v.validateHTTP01(ctx, identTarget{ip: addr}, token, keyAuth)
		case TypeDNS01:
			// RFC 8738 §7: "The existing "dns-01" challenge MUST NOT be used
			// to validate IP identifiers."
			return acmeerr.New(acmeerr.Malformed, "dns-01 cannot validate IP identifiers")
		case TypeTLSALPN01:
			return v.validateTLSALPN01(ctx, identTarget{ip: addr}, keyAuth)
		}
	default:
		return acmeerr.New(acmeerr.UnsupportedIdentifier, "identifier type %q is not supported", sanitize(identType))
	}
	return acmeerr.New(acmeerr.Malformed, "challenge type %q is not supported", sanitize(typ))
}

// identTarget is what a challenge connects to: a DNS name, or an IP address
// used as-is (RFC 8738 §4: "their initial DNS resolution step MUST be skipped
// and the IP address used for validation MUST be the value of the
// identifier").
type identTarget struct {
	name string
	ip   netip.Addr
}

func (t identTarget) isIP() bool { return t.ip.IsValid() }

// String is the identifier as the client wrote it.
func (t identTarget) String() string {
	if t.isIP() {
		return t.ip.String()
	}
	return t.name
}

// checkToken enforces RFC 8737 §3 (like RFC 8555 §8.3 and §8.4) on the
// token: "It MUST NOT contain any characters outside the base64url alphabet
// as described in Section 5 of [RFC4648]. Trailing '=' padding characters
// MUST be stripped."
func checkToken(token string) error {
	if token == "" || len(token) > 256 {
		return acmeerr.New(acmeerr.Malformed, "challenge token must be 1 to 256 base64url characters")
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return acmeerr.New(acmeerr.Malformed, "challenge token contains characters outside the base64url alphabet")
		}
	}
	return nil
}

// normalizeName lower-cases name, drops one trailing dot and checks that it is
// a plausible host name (LDH labels, underscores tolerated, an optional
// leading "*." label), so that it can be put in a URL and a DNS query.
func normalizeName(name string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(name, "."))
	bad := acmeerr.New(acmeerr.Malformed, "%q is not a valid DNS name", sanitize(name))
	if n == "" || len(n) > 253 {
		return "", bad
	}
	if _, err := netip.ParseAddr(n); err == nil {
		return "", acmeerr.New(acmeerr.Malformed, "%s is an IP address, not a DNS name", n)
	}
	labels := strings.Split(n, ".")
	for i, l := range labels {
		if i == 0 && l == "*" && len(labels) > 1 {
			continue
		}
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", bad
		}
		for j := 0; j < len(l); j++ {
			c := l[j]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", bad
			}
		}
	}
	return n, nil
}

// keyAuthDigest returns SHA-256(keyAuthorization), the value dns-01 and
// tls-alpn-01 publish (RFC 8555 §8.4, RFC 8737 §3).
func keyAuthDigest(keyAuth string) [sha256.Size]byte {
	return sha256.Sum256([]byte(keyAuth))
}

// dns01Value returns base64url(SHA-256(keyAuthorization)) (RFC 8555 §8.4:
// "The record provisioned to the DNS contains the base64url encoding of this
// digest.").
func dns01Value(keyAuth string) string {
	d := keyAuthDigest(keyAuth)
	return base64.RawURLEncoding.EncodeToString(d[:])
}

// sanitize makes remote-controlled text safe to put in a detail: printable
// ASCII only, at most 128 bytes.
func sanitize(s string) string {
	const maxLen = 128
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < maxLen; i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		b.WriteByte(c)
	}
	if len(s) > maxLen {
		b.WriteString("...")
	}
	return b.String()
}

// netError turns a failure to connect, read or write into a Connection error
// whose detail names the phase and a coarse cause, never the remote text.
func netError(ctx context.Context, prefix, target string, err error) *acmeerr.Error {
	var ae *acmeerr.Error
	if errors.As(err, &ae) {
		return ae
	}
	return acmeerr.Wrap(acmeerr.Connection, err, "%s: %s: %s", prefix, sanitize(target), netCause(ctx, err))
}
