// Package vault is an upstream backed by HashiCorp Vault's PKI secrets
// engine, through github.com/hashicorp/vault/api. The client's CSR, checked
// to ask for nothing beyond the content the registration authority decided,
// is sent as-is to MOUNT/sign/ROLE (the role's rules apply) or
// MOUNT/sign-verbatim/ROLE, with that content as the request's parameters
// (see contentParams); the returned certificate and ca_chain are served as
// one PEM chain, leaf first; revocation goes to MOUNT/revoke.
//
// Authentication is a token (from a file or an environment variable), an
// AppRole login or a Kubernetes service account login (Vault's Kubernetes
// or JWT auth method); a background renewer keeps the token alive while it is
// renewable, and a request Vault refuses with 403 is retried once with a
// fresh token.
//
// A Vault sign is not idempotent, and Vault keeps no per-order state, so
// Issue is careful never to sign twice for one order: it records through
// setRef that a signing request is about to be sent, and only a request that
// certainly never reached Vault, or that Vault answered with an error, is
// reported as retryable without that mark. When the answer was lost (a
// timeout after the request was written), the next attempt first looks in
// Vault for a certificate it signed for the CSR's key (see recover.go).
//
// It implements upstream.Issuer. All its errors are prefixed "vault: " and
// carry an acmeerr kind; Vault's own messages go to logs (the errors' cause),
// never into the detail clients see.
package vault

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/upstream"
)

// Defaults for Options fields left zero.
const (
	// DefaultRequestTimeout bounds one HTTP request to Vault.
	DefaultRequestTimeout = 30 * time.Second
	// DefaultRecoveryGrace is how long after a signing request whose answer
	// was lost a search that finds no certificate is trusted to mean Vault
	// did not sign. It exceeds Vault's default max_request_duration (90s),
	// after which Vault abandons a request it is still working on.
	DefaultRecoveryGrace = 2 * time.Minute
	// DefaultMount is the PKI secrets engine's usual path.
	DefaultMount = "pki"
)

// Mode selects the signing endpoint.
type Mode string

// The signing modes.
const (
	// ModeSign uses MOUNT/sign/ROLE: the role decides the names, key types,
	// TTL and extensions it allows.
	ModeSign Mode = "sign"
	// ModeSignVerbatim uses MOUNT/sign-verbatim/ROLE: the CSR's subject and
	// extensions are kept as they are (ra allowed nothing but the decided
	// content in them), the key usages are the decided ones; the role still
	// bounds the TTL.
	ModeSignVerbatim Mode = "sign-verbatim"
)

// Options configures a Vault upstream. Exactly one of TokenFile, TokenEnv,
// AppRole and Kubernetes is set.
type Options struct {
	// Name is the upstream's configured name; empty means "vault".
	Name string
	// Address is Vault's base URL, e.g. https://vault:8200.
	Address string
	// CAFile holds PEM roots for Vault's TLS certificate; empty means the
	// system's roots.
	CAFile string
	// ClientCertFile and ClientKeyFile are an optional TLS client
	// certificate.
	ClientCertFile, ClientKeyFile string
	// Namespace is the Vault Enterprise namespace, if any.
	Namespace string
	// Mount is the PKI mount path; empty means DefaultMount.
	Mount string
	// Role is the PKI role that signs.
	Role string
	// IssuerRef selects the issuer (MOUNT/issuer/REF/sign/ROLE); empty
	// means the role's or the mount's default issuer.
	IssuerRef string
	// Mode is ModeSign (the default) or ModeSignVerbatim.
	Mode Mode
	// TTL caps the validity asked for; zero leaves it to the role. A
	// request's NotAfter shortens it further.
	TTL time.Duration
	// TokenFile holds a token; it is read at start and again whenever
	// Vault refuses the token in memory.
	TokenFile string
	// TokenEnv names the environment variable holding a token.
	TokenEnv string
	// AppRole logs in with AppRole when set.
	AppRole *AppRole
	// Kubernetes logs in with the pod's service account token when set.
	Kubernetes *Kubernetes
	// RequestTimeout bounds each request; zero means
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
	// RecoveryGrace: see DefaultRecoveryGrace; zero means that.
	RecoveryGrace time.Duration
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Logger receives authentication, issuance and revocation events; nil
	// discards them.
	Logger *slog.Logger
}

// Upstream is a Vault PKI upstream. It is safe for concurrent use. Close
// stops its token renewer.
type Upstream struct {
	name      string
	address   string
	mount     string
	role      string
	issuerRef string
	mode      Mode
	ttl       time.Duration
	timeout   time.Duration
	grace     time.Duration
	clock     func() time.Time
	log       *slog.Logger

	// client carries the token; login has none and is used only to log
	// in (so a stale token never rides along with a login).
	client *api.Client
	login  *api.Client
	auth   *authenticator

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// Upstream implements upstream.Issuer.
var _ upstream.Issuer = (*Upstream)(nil)

// New checks opts, builds the Vault client and starts the token renewer.
// It reads the TLS and credential files but does not contact Vault: an
// unreachable Vault is reported by Issue (as retryable) and by Check.
func New(opts Options) (*Upstream, error) {
	u := &Upstream{
		name:      opts.Name,
		address:   strings.TrimRight(opts.Address, "/"),
		mount:     strings.Trim(opts.Mount, "/"),
		role:      opts.Role,
		issuerRef: opts.IssuerRef,
		mode:      opts.Mode,
		ttl:       opts.TTL,
		timeout:   opts.RequestTimeout,
		grace:     opts.RecoveryGrace,
		clock:     opts.Clock,
		log:       opts.Logger,
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	if u.name == "" {
		u.name = "vault"
	}
	if u.mount == "" {
		u.mount = DefaultMount
	}
	if u.mode == "" {
		u.mode = ModeSign
	}
	if u.timeout == 0 {
		u.timeout = DefaultRequestTimeout
	}
	if u.grace == 0 {
		u.grace = DefaultRecoveryGrace
	}
	if u.clock == nil {
		u.clock = time.Now
	}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	u.log = u.log.With("upstream", u.name)
	if err := u.checkOptions(opts); err != nil {
		return nil, err
	}

	httpClient, err := httpClientFor(opts)
	if err != nil {
		return nil, err
	}
	if u.client, err = newClient(u.address, opts.Namespace, httpClient, u.timeout); err != nil {
		return nil, err
	}
	if u.login, err = newClient(u.address, opts.Namespace, httpClient, u.timeout); err != nil {
		return nil, err
	}
	u.auth = &authenticator{u: u, tokenFile: opts.TokenFile, tokenEnv: opts.TokenEnv, wake: make(chan struct{}, 1)}
	switch {
	case opts.AppRole != nil:
		u.auth.method = appRoleLogin(u.name, *opts.AppRole)
	case opts.Kubernetes != nil:
		u.auth.method = kubernetesLogin(u.name, *opts.Kubernetes)
	}
	if u.auth.method == nil {
		// A token is read now, so a missing file or variable fails at start.
		if err := u.auth.readToken(); err != nil {
			return nil, err
		}
	}
	go u.auth.run(u.stop, u.done)
	return u, nil
}

// checkOptions rejects options New cannot work with.
func (u *Upstream) checkOptions(opts Options) error {
	a, err := url.Parse(u.address)
	if u.address == "" || err != nil || (a.Scheme != "http" && a.Scheme != "https") || a.Host == "" {
		return acmeerr.New(acmeerr.Internal, "vault %s: address %q is not an http(s) URL", u.name, opts.Address)
	}
	if u.role == "" || strings.Contains(u.role, "/") {
		return acmeerr.New(acmeerr.Internal, "vault %s: role %q is not a role name", u.name, u.role)
	}
	if strings.Contains(u.issuerRef, "/") {
		return acmeerr.New(acmeerr.Internal, "vault %s: issuer_ref %q is not an issuer name", u.name, u.issuerRef)
	}
	if u.mode != ModeSign && u.mode != ModeSignVerbatim {
		return acmeerr.New(acmeerr.Internal, "vault %s: mode %q is not sign or sign-verbatim", u.name, u.mode)
	}
	if u.ttl < 0 || u.timeout < 0 || u.grace < 0 {
		return acmeerr.New(acmeerr.Internal, "vault %s: ttl, timeout and grace must not be negative", u.name)
	}
	n := 0
	for _, set := range []bool{opts.TokenFile != "", opts.TokenEnv != "", opts.AppRole != nil, opts.Kubernetes != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return acmeerr.New(acmeerr.Internal, "vault %s: give exactly one of a token file, a token variable, AppRole and Kubernetes", u.name)
	}
	if opts.Kubernetes != nil && (opts.Kubernetes.Role == "" || strings.Contains(opts.Kubernetes.Role, "/")) {
		return acmeerr.New(acmeerr.Internal, "vault %s: Kubernetes login needs a role name", u.name)
	}
	if opts.AppRole != nil && (opts.AppRole.RoleIDFile == "" || opts.AppRole.SecretIDFile == "") {
		return acmeerr.New(acmeerr.Internal, "vault %s: AppRole needs a role ID file and a secret ID file", u.name)
	}
	return nil
}

// httpClientFor builds the HTTP client: Vault's CA, an optional client
// certificate, the environment's proxy settings and sane timeouts.
func httpClientFor(opts Options) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.CAFile != "" {
		b, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, acmeerr.Wrap(acmeerr.Internal, err, "vault: reading ca_file")
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, acmeerr.New(acmeerr.Internal, "vault: ca_file %s holds no PEM certificate", opts.CAFile)
		}
		tc.RootCAs = pool
	}
	if (opts.ClientCertFile == "") != (opts.ClientKeyFile == "") {
		return nil, acmeerr.New(acmeerr.Internal, "vault: client certificate and key files go together")
	}
	if opts.ClientCertFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.ClientCertFile, opts.ClientKeyFile)
		if err != nil {
			return nil, acmeerr.Wrap(acmeerr.Internal, err, "vault: loading the client certificate")
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   10 * time.Second,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Transport: tr}, nil
}

// newClient makes a vault/api client from our settings only: the VAULT_*
// variables api.NewClient reads (token, namespace, headers) are cleared, so
// the configuration file is the one source of truth. Its own retries are
// off: a sign must never be resent by a library that cannot know whether
// Vault already signed.
func newClient(address, namespace string, hc *http.Client, timeout time.Duration) (*api.Client, error) {
	c, err := api.NewClient(&api.Config{Address: address, HttpClient: hc, MaxRetries: 0, Timeout: timeout})
	if err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "vault: creating the client")
	}
	c.SetHeaders(http.Header{api.RequestHeaderName: []string{"true"}})
	c.ClearToken()
	c.ClearNamespace()
	if ns := strings.Trim(namespace, "/"); ns != "" {
		c.SetNamespace(ns)
	}
	c.SetMaxRetries(0)
	return c, nil
}

// Name returns the upstream's configured name.
func (u *Upstream) Name() string { return u.name }

// Close stops the token renewer and waits for it. It is safe to call more
// than once.
func (u *Upstream) Close() error {
	u.closeOnce.Do(func() { close(u.stop) })
	<-u.done
	return nil
}

// path joins the mount and a path under it.
func (u *Upstream) path(p string) string { return u.mount + "/" + p }

// signPath is the endpoint Issue posts the CSR to.
func (u *Upstream) signPath() string {
	op := string(u.mode)
	if u.issuerRef != "" {
		return u.path("issuer/" + url.PathEscape(u.issuerRef) + "/" + op + "/" + url.PathEscape(u.role))
	}
	return u.path(op + "/" + url.PathEscape(u.role))
}
