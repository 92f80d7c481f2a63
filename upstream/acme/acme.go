// Package acme is an upstream that relays orders to an RFC 8555 certificate
// authority (Let's Encrypt, ZeroSSL, Google Trust Services, a private ACME
// CA), through github.com/go-acme/lego/v5.
//
// acmebridge has its own account at the CA: its key is made once, sealed
// in the store and shared by every replica (the store's create-once
// PutSecret decides which replica's key wins a race, and newAccount with
// that one key is idempotent at the CA, RFC 8555 §7.3.1), with an External
// Account Binding when the CA wants one (§7.3.4). The client's CSR is
// forwarded as-is, so its private key never leaves the client; the CA's
// challenges are solved by acmebridge itself, through a lego DNS provider
// (dns-01) or a built-in http-01 responder, which answers the tokens any
// replica sharing the store presented (Options.Tokens); valid
// authorizations the CA offers again are reused without solving.
//
// Issue is resumable: the upstream order URL is recorded through setRef as
// soon as the CA created the order (before anything is solved or
// finalized), and an Issue called again with that reference fetches the
// order and carries on from its state (pending: solve; ready: finalize;
// processing: poll; valid: download) instead of placing a new one.
//
// It implements upstream.Issuer. Every error is prefixed "acme NAME: " and
// carries an acmeerr kind: the CA's rateLimited (with its Retry-After),
// rejectedIdentifier, caa and badCSR pass through as the same kinds; an
// unreachable CA is Connection; a CA failing or refusing acmebridge's
// account is Unavailable.
package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-acme/lego/v5/certcrypto"
	"github.com/go-acme/lego/v5/challenge"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/core"
	"github.com/acmebridge/acmebridge/upstream"
)

// Defaults for Options fields left zero.
const (
	// DefaultRequestTimeout bounds one HTTP request to the CA.
	DefaultRequestTimeout = 30 * time.Second
	// DefaultKeyType is the type of the account key.
	DefaultKeyType = "EC256"
	// userAgent is sent with every request to the CA (RFC 8555 §6.1:
	// "ACME clients MUST send a User-Agent header field").
	userAgent = "acmebridge"
)

// Challenge types a Solver may name; SolverNone answers none.
const (
	SolverDNS01  = core.ChallengeDNS01
	SolverHTTP01 = core.ChallengeHTTP01
	// SolverNone is an upstream whose CA is expected to hand back every
	// authorization valid already: another acmebridge whose policy
	// delegates validation to this one's EAB key (README, "Tiered
	// bridges"). An authorization it asks a challenge for fails the order
	// with unauthorized, saying so.
	SolverNone = ""
)

// KeyTypes are the account key types Options.KeyType accepts (lego's
// names).
var KeyTypes = []string{"EC256", "EC384", "RSA2048", "RSA3072", "RSA4096"}

// SecretStore keeps the account key: store.Store satisfies it (opened
// through store.Sealed, so the key is encrypted at rest).
type SecretStore interface {
	// PutSecret creates a secret; store.ErrConflict if it exists.
	PutSecret(ctx context.Context, name string, value []byte) error
	// GetSecret reads a secret; store.ErrNotFound if there is none.
	GetSecret(ctx context.Context, name string) ([]byte, error)
}

// Solver configures how acmebridge answers the CA's challenges.
type Solver struct {
	// Type is SolverDNS01, SolverHTTP01 or SolverNone.
	Type string
	// Provider names the lego DNS provider (dns-01); see DNSProviders.
	Provider string
	// Env is the provider's configuration, as the environment variables
	// lego documents for it (e.g. CLOUDFLARE_DNS_API_TOKEN_FILE). They
	// are set only while the provider is built; variables already in the
	// process environment are used too.
	Env map[string]string
	// DNSProvider, when set, is used instead of Provider (programmatic use
	// and tests).
	DNSProvider challenge.Provider
	// Resolvers are the recursive nameservers (host:port) asked whether a
	// TXT record has propagated; empty means lego's default (the system's
	// resolvers, then the zone's authoritative servers).
	Resolvers []string
	// PropagationTimeout and PropagationInterval bound and pace the
	// propagation check; zero keeps the provider's own values.
	PropagationTimeout, PropagationInterval time.Duration
	// PropagationWait is slept before the check (or instead of it, with
	// DisablePropagationCheck).
	PropagationWait time.Duration
	// DisableAuthoritativeCheck skips asking the zone's authoritative
	// servers (lego's default check only).
	DisableAuthoritativeCheck bool
	// DisablePropagationCheck trusts PropagationWait alone.
	DisablePropagationCheck bool
	// Listen is the http-01 responder's address (host:port), which the
	// CA's requests to port 80 of every name must reach.
	Listen string
}

// Options configures an ACME upstream.
type Options struct {
	// Name is the upstream's configured name; empty means "acme".
	Name string
	// Directory is the CA's directory URL (https).
	Directory string
	// Email is the account's contact, if any.
	Email string
	// CAFile holds PEM roots trusted besides the system's, for a private
	// CA's TLS certificate.
	CAFile string
	// EABKeyID and the HMAC key (base64url, in EABHMACFile or the
	// variable EABHMACEnv) bind the account to an account at the CA
	// (RFC 8555 §7.3.4); ZeroSSL, Google Trust Services and Sectigo need
	// one.
	EABKeyID    string
	EABHMACFile string
	EABHMACEnv  string
	// KeyType of the account key: one of KeyTypes; empty means
	// DefaultKeyType.
	KeyType string
	// PreferredChain is the Common Name of the root (or top issuer) of the
	// chain to serve when the CA offers alternates (RFC 8555 §7.4.2).
	PreferredChain string
	// Profile is asked for when the route names none.
	Profile string
	// ForwardValidity sends the order's notBefore/notAfter to the CA
	// (RFC 8555 §7.4); most public CAs refuse them, so by default the CA
	// chooses the validity.
	ForwardValidity bool
	// Solver answers the CA's challenges.
	Solver Solver
	// Secrets keeps the account key; required.
	Secrets SecretStore
	// Tokens keeps the key authorizations of the CA's pending http-01
	// challenges, so the responder of every replica sharing the store
	// answers the CA whichever of them its request reaches (store.Store
	// satisfies it). Nil keeps them in this process only, which serves
	// one replica.
	Tokens TokenStore
	// RequestTimeout bounds each HTTP request; zero means
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
	// Logger receives account, order and revocation events; nil discards
	// them.
	Logger *slog.Logger
}

// Upstream is an ACME CA upstream. It is safe for concurrent use; Close
// stops the http-01 responder.
type Upstream struct {
	name            string
	directory       string
	host            string
	email           string
	eabKeyID        string
	eabHMAC         string
	keyType         certcrypto.KeyType
	preferredChain  string
	profile         string
	forwardValidity bool
	solver          Solver
	secrets         SecretStore
	timeout         time.Duration
	roots           *x509.CertPool
	log             *slog.Logger

	dns       challenge.Provider
	responder *presenter

	// conn is the CA session, made on first use under initMu.
	initMu sync.Mutex
	conn   atomic.Pointer[session]

	closeOnce sync.Once
}

// Upstream implements upstream.Issuer.
var _ upstream.Issuer = (*Upstream)(nil)

// New checks opts, reads the CA bundle and the EAB key, builds the DNS
// provider or starts the http-01 responder. It does not contact the CA:
// an unreachable CA is reported by Issue (as retryable) and by Check.
func New(opts Options) (*Upstream, error) {
	u, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	if u.secrets == nil {
		return nil, u.errorf(acmeerr.Internal, nil, "no store to keep the account key in")
	}
	switch u.solver.Type {
	case SolverDNS01:
		if u.dns = u.solver.DNSProvider; u.dns == nil {
			if u.dns, err = newDNSProvider(u.solver.Provider, u.solver.Env); err != nil {
				return nil, u.errorf(acmeerr.Internal, err, "DNS provider %s", u.solver.Provider)
			}
		}
	case SolverHTTP01:
		if u.responder, err = startResponder(u.solver.Listen, u, opts.Tokens); err != nil {
			return nil, u.errorf(acmeerr.Internal, err, "http-01 responder")
		}
	}
	return u, nil
}

// CheckOptions is `upstream check` for an ACME upstream, offline from any
// running server: it checks opts as New does, without building the DNS
// provider or starting the responder (which a running server may hold),
// and then Check. opts.Secrets may be nil.
func CheckOptions(ctx context.Context, opts Options) (string, error) {
	u, err := prepare(opts)
	if err != nil {
		return "", err
	}
	if u.solver.Type == SolverDNS01 && u.solver.DNSProvider == nil {
		if _, ok := dnsProviders[u.solver.Provider]; !ok {
			return "", u.errorf(acmeerr.Internal, nil, "%q is not a DNS provider acmebridge is built with (%v)", u.solver.Provider, DNSProviders())
		}
	}
	return u.Check(ctx)
}

// prepare checks opts and reads the files they name.
func prepare(opts Options) (*Upstream, error) {
	u := &Upstream{
		name:            opts.Name,
		directory:       opts.Directory,
		email:           opts.Email,
		eabKeyID:        opts.EABKeyID,
		keyType:         certcrypto.KeyType(strings.ToUpper(opts.KeyType)),
		preferredChain:  opts.PreferredChain,
		profile:         opts.Profile,
		forwardValidity: opts.ForwardValidity,
		solver:          opts.Solver,
		secrets:         opts.Secrets,
		timeout:         opts.RequestTimeout,
		log:             opts.Logger,
	}
	if u.name == "" {
		u.name = "acme"
	}
	if u.keyType == "" {
		u.keyType = DefaultKeyType
	}
	if u.timeout == 0 {
		u.timeout = DefaultRequestTimeout
	}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	u.log = u.log.With("upstream", u.name)
	if err := u.checkOptions(opts); err != nil {
		return nil, err
	}
	d, _ := url.Parse(u.directory)
	u.host = d.Host
	roots, err := rootsFor(opts.CAFile)
	if err != nil {
		return nil, u.errorf(acmeerr.Internal, err, "reading ca_file")
	}
	u.roots = roots
	if u.eabKeyID != "" {
		if u.eabHMAC, err = readSecret(opts.EABHMACFile, opts.EABHMACEnv); err != nil {
			return nil, u.errorf(acmeerr.Internal, err, "reading the EAB HMAC key")
		}
	}
	return u, nil
}

// checkOptions rejects options New cannot work with.
func (u *Upstream) checkOptions(opts Options) error {
	d, err := url.Parse(u.directory)
	// RFC 8555 §6.1: "Each ACME function is accomplished by the client
	// sending a sequence of HTTPS requests to the server".
	if u.directory == "" || err != nil || d.Scheme != "https" || d.Host == "" {
		return u.errorf(acmeerr.Internal, nil, "directory %q is not an https URL", u.directory)
	}
	if !validKeyType(string(u.keyType)) {
		return u.errorf(acmeerr.Internal, nil, "key type %q is not one of %s", opts.KeyType, strings.Join(KeyTypes, ", "))
	}
	if u.eabKeyID != "" && (opts.EABHMACFile == "") == (opts.EABHMACEnv == "") {
		return u.errorf(acmeerr.Internal, nil, "an EAB key ID needs exactly one of an HMAC file and an HMAC variable")
	}
	if u.timeout < 0 {
		return u.errorf(acmeerr.Internal, nil, "the request timeout must not be negative")
	}
	s := u.solver
	switch s.Type {
	case SolverDNS01:
		if s.Provider == "" && s.DNSProvider == nil {
			return u.errorf(acmeerr.Internal, nil, "the dns-01 solver needs a DNS provider")
		}
		for _, r := range s.Resolvers {
			if _, _, err := net.SplitHostPort(r); err != nil {
				return u.errorf(acmeerr.Internal, nil, "resolver %q is not host:port", r)
			}
		}
		if s.PropagationTimeout < 0 || s.PropagationInterval < 0 || s.PropagationWait < 0 {
			return u.errorf(acmeerr.Internal, nil, "propagation settings must not be negative")
		}
	case SolverHTTP01:
		if _, _, err := net.SplitHostPort(s.Listen); err != nil {
			return u.errorf(acmeerr.Internal, nil, "the http-01 responder's listen address %q is not host:port", s.Listen)
		}
	case SolverNone:
		if s.Provider != "" || s.DNSProvider != nil || len(s.Env) > 0 || len(s.Resolvers) > 0 || s.Listen != "" {
			return u.errorf(acmeerr.Internal, nil, "a solver without a type has nothing to configure: name %s or %s", SolverDNS01, SolverHTTP01)
		}
	default:
		return u.errorf(acmeerr.Internal, nil, "solver type %q is not %s or %s", s.Type, SolverDNS01, SolverHTTP01)
	}
	return nil
}

func validKeyType(k string) bool {
	for _, t := range KeyTypes {
		if t == k {
			return true
		}
	}
	return false
}

// rootsFor returns the system's roots plus those of caFile, or nil (the
// system's alone) when caFile is empty.
func rootsFor(caFile string) (*x509.CertPool, error) {
	if caFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	return pool, nil
}

// readSecret reads a secret from a file or an environment variable,
// trimmed.
func readSecret(file, env string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		if s := strings.TrimSpace(string(b)); s != "" {
			return s, nil
		}
		return "", fmt.Errorf("%s is empty", file)
	}
	if s := strings.TrimSpace(os.Getenv(env)); s != "" {
		return s, nil
	}
	return "", fmt.Errorf("the environment variable %s is empty", env)
}

// httpClient is a fresh client for one lego Core (lego wraps its
// transport): the configured roots, the environment's proxy settings and
// the request timeout.
func (u *Upstream) httpClient() *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: u.roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   10 * time.Second,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: u.timeout,
	}
	return &http.Client{Transport: tr, Timeout: u.timeout}
}

// Name returns the upstream's configured name.
func (u *Upstream) Name() string { return u.name }

// Close stops the http-01 responder, if any. It is safe to call more than
// once.
func (u *Upstream) Close() error {
	var err error
	u.closeOnce.Do(func() {
		if u.responder != nil {
			err = u.responder.close()
		}
	})
	return err
}

// String describes the upstream for logs and `upstream check`.
func (u *Upstream) String() string {
	s := fmt.Sprintf("%s at %s, %s", u.name, u.directory, cmpOr(u.solver.Type, "no solver"))
	if u.solver.Type == SolverDNS01 && u.solver.Provider != "" {
		s += " via " + u.solver.Provider
	}
	if u.solver.Type == SolverHTTP01 {
		s += " on " + u.solver.Listen
	}
	if u.eabKeyID != "" {
		s += ", EAB " + u.eabKeyID
	}
	return s
}
