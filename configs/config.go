// Package configs holds acmebridge's one typed configuration: how it is
// loaded (strict YAML), its defaults (the quickstart) and its validation.
package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration. Sections the file omits keep the
// quickstart's defaults (see Default).
type Config struct {
	// DataDir holds the bolt file, the local CA, the admin token and the
	// server's TLS certificate unless other paths are given.
	DataDir    string     `yaml:"data_dir"`
	Server     Server     `yaml:"server"`
	Admin      Admin      `yaml:"admin"`
	Store      Store      `yaml:"store"`
	Accounts   Accounts   `yaml:"accounts"`
	Orders     Orders     `yaml:"orders"`
	Validation Validation `yaml:"validation"`
	Upstreams  []Upstream `yaml:"upstreams"`
	Policy     Policy     `yaml:"policy"`
	RateLimits RateLimits `yaml:"rate_limits"`
	// Directories are more ACME directories (tenants) beside the top
	// level's, each at /{name}/directory with its own sign-up, policy and
	// limits (see Directory).
	Directories []Directory `yaml:"directories"`
	Audit       Audit       `yaml:"audit"`
	Log         Log         `yaml:"log"`
	// Reload says how a running server takes up a changed file.
	Reload Reload `yaml:"reload"`
	// Notifications are webhooks and e-mail (see Notifications).
	Notifications Notifications `yaml:"notifications"`
	// Retention says how long ended orders, authorizations and
	// certificates are kept (see Retention).
	Retention Retention `yaml:"retention"`
}

// Server is the ACME listener.
type Server struct {
	// Listen is the ACME listener's host:port.
	Listen string `yaml:"listen"`
	// ExternalURL is the base URL clients use; every URL the server emits
	// and every JWS "url" it accepts is built from it (RFC 8555 §6.4).
	ExternalURL string `yaml:"external_url"`
	TLS         TLS    `yaml:"tls"`
	// TrustedProxies are the CIDRs whose X-Forwarded-For is believed.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// TermsOfService is the URL of the terms of service, the directory's
	// meta.termsOfService (RFC 8555 §7.1.1).
	TermsOfService string `yaml:"terms_of_service"`
	// Website is the directory's meta.website.
	Website string `yaml:"website"`
	// CAAIdentities are the directory's meta.caaIdentities, and the CAA
	// identity of an upstream that names none.
	CAAIdentities []string `yaml:"caa_identities"`
}

// TLS configures a listener's certificate. With both files empty the local CA
// issues one for the external URL's host (quickstart). Disabled serves plain
// HTTP, for deployments behind a TLS-terminating proxy.
type TLS struct {
	// CertFile and KeyFile are the listener's PEM certificate chain and
	// key; empty: issued by the (first) local CA for the external host.
	// They are read again when the files change (checked at most once a
	// second, at a handshake): a renewed certificate is served without a
	// restart, and a pair that does not load keeps the previous one.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Disabled serves plain HTTP, behind a TLS-terminating proxy.
	Disabled bool `yaml:"disabled"`
}

// Admin is the admin API listener.
type Admin struct {
	// Listen is the admin listener's host:port: the admin API /api/v1/,
	// the dashboard, /healthz, /readyz and /metrics.
	Listen string `yaml:"listen"`
	// TokenFile holds the admin API's bearer token, created 0600 on first
	// start; default data_dir/admin.token.
	TokenFile string `yaml:"token_file"`
	// TLS serves the admin listener (API, dashboard, metrics) over HTTPS.
	TLS AdminTLS `yaml:"tls"`
	// DirectoryTokens are admin tokens scoped to one directory each: a
	// tenant operator's token sees and manages that directory's EAB keys,
	// accounts, orders and certificates only (another directory's are
	// not found), and none of the server-wide endpoints (upstreams,
	// reload, the dashboard). token_file holds the token (at least 32
	// characters; created 0600 with 256 random bits when missing). A
	// reload reads the list and the files again.
	DirectoryTokens []DirectoryToken `yaml:"directory_tokens"`
}

// DirectoryToken is an admin token scoped to one directory.
type DirectoryToken struct {
	// Directory is a configured directory's name, or "/" for the top
	// level.
	Directory string `yaml:"directory"`
	// TokenFile holds the token; one file per entry, not the global
	// token's.
	TokenFile string `yaml:"token_file"`
}

// AdminTLS is the admin listener's certificate. Without one the listener
// speaks plain HTTP, which suits loopback only (the default address).
type AdminTLS struct {
	// CertFile and KeyFile are the admin listener's certificate and key;
	// renewed files are served without a restart, as for server.tls.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// CAFile is what the CLI (admin commands, report) trusts to reach the
	// listener; the system roots when empty.
	CAFile string `yaml:"ca_file"`
}

// On reports whether the admin listener serves HTTPS.
func (t AdminTLS) On() bool { return t.CertFile != "" }

// Store selects the state driver.
type Store struct {
	// Driver is bolt (the embedded file, one process) or redis (several
	// replicas sharing one store).
	Driver string `yaml:"driver"`
	// EncryptionKeyFile holds the 32-byte key (hex or base64) that seals
	// secrets at rest; default data_dir/store.key, created on first start.
	// Every replica sharing a store needs the same key. The environment
	// variable ACMEBRIDGE_STORE_KEY, when set, takes precedence.
	EncryptionKeyFile string `yaml:"encryption_key_file"`
	Bolt              Bolt   `yaml:"bolt"`
	Redis             Redis  `yaml:"redis"`
}

// Redis configures the Redis store: one address for a single server,
// master_name for Sentinel (addrs are then the sentinels), several addrs
// for a Cluster.
type Redis struct {
	// Addrs are host:port: one Redis, the sentinels (with master_name),
	// or several Cluster nodes.
	Addrs []string `yaml:"addrs"`
	// MasterName is the Sentinel master's name; set, Addrs are sentinels.
	MasterName string `yaml:"master_name"`
	// Username is the ACL user (Redis 6+); empty for the default user.
	Username string `yaml:"username"`
	// PasswordFile or PasswordEnv name where the password is; it is never
	// written in the config itself.
	PasswordFile string `yaml:"password_file"`
	PasswordEnv  string `yaml:"password_env"`
	// DB is the database number (single and Sentinel; a Cluster has only 0).
	DB  int      `yaml:"db"`
	TLS RedisTLS `yaml:"tls"`
	// KeyPrefix starts every key acmebridge writes, so several servers can
	// share one Redis.
	KeyPrefix string `yaml:"key_prefix"`
	// PoolSize is the connection pool's size per node; 0: go-redis's
	// default (10 per CPU).
	PoolSize int `yaml:"pool_size"`
	// DialTimeout, ReadTimeout and WriteTimeout bound each connection
	// attempt and command; past them the request fails with 503.
	DialTimeout  Duration `yaml:"dial_timeout"`
	ReadTimeout  Duration `yaml:"read_timeout"`
	WriteTimeout Duration `yaml:"write_timeout"`
	// Durability makes every write a promise depends on wait for replicas
	// (Redis WAIT): see docs/operating.md, "Several replicas on Redis".
	Durability RedisDurability `yaml:"durability"`
}

// RedisDurability says how many replicas must hold a write before it
// counts. Redis replicates asynchronously: without it, a failover to a
// replica that lagged takes back writes already acknowledged (a used
// nonce, an EAB key's binding, an issuance job's in-flight mark, a
// certificate's record).
type RedisDurability struct {
	// Replicas is how many replicas must acknowledge each write (WAIT)
	// before it counts; 0 waits for none. With Sentinel or Cluster, 1 (or
	// more) keeps every acknowledged write through a failover; a write no
	// replica acknowledges in time fails with 503, and /readyz reports not
	// ready while fewer replicas are online.
	Replicas int `yaml:"replicas"`
	// Timeout is how long a write waits for its replicas; shorter than
	// read_timeout.
	Timeout Duration `yaml:"timeout"`
}

// RedisTLS configures TLS to Redis.
type RedisTLS struct {
	// Enabled speaks TLS to Redis.
	Enabled bool `yaml:"enabled"`
	// CAFile holds the roots that verify Redis; the system's when empty.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate, for Redis servers
	// that require one.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name verified in Redis's certificate; the host of
	// the address when empty.
	ServerName string `yaml:"server_name"`
}

// Bolt configures the embedded store.
type Bolt struct {
	// Path is the bolt file (one process at a time); default
	// data_dir/acmebridge.db.
	Path string `yaml:"path"`
}

// Accounts configures sign-up (RFC 8555 §7.3).
type Accounts struct {
	// EAB is "required", "optional" or "disabled" (RFC 8555 §7.3.4).
	EAB string `yaml:"eab"`
	// RequireContact refuses accounts without a contact.
	RequireContact bool `yaml:"require_contact"`
	// RequireTermsAgreement refuses accounts that did not agree to the
	// terms of service; only meaningful with server.terms_of_service.
	RequireTermsAgreement bool `yaml:"require_terms_agreement"`
}

// Orders configures order and authorization lifetimes.
type Orders struct {
	// OrderLifetime and AuthzLifetime: pending orders and authorizations
	// expire after this.
	OrderLifetime Duration `yaml:"order_lifetime"`
	AuthzLifetime Duration `yaml:"authz_lifetime"`
	// ValidAuthzReuse is how long a valid authorization is reused for new
	// orders of the same account; 0 disables reuse.
	ValidAuthzReuse Duration `yaml:"valid_authz_reuse"`
	// MaxIdentifiers caps the identifiers of one order.
	MaxIdentifiers int `yaml:"max_identifiers"`
	// AllowValidityRequest accepts notBefore/notAfter in newOrder
	// (RFC 8555 §7.4); when false such orders are refused with malformed.
	AllowValidityRequest bool `yaml:"allow_validity_request"`
	// FinalizeWait is how long finalize waits for a fast upstream before
	// answering "processing" with Retry-After.
	FinalizeWait Duration `yaml:"finalize_wait"`
	// ValidationWait is how long a challenge POST waits for the validation
	// before answering "processing".
	ValidationWait Duration `yaml:"validation_wait"`
	// JobLease is how long a replica holds an issuance job before another
	// may take it over (a replica that died loses its jobs after this).
	JobLease Duration `yaml:"job_lease"`
	// Profiles are the certificate profiles offered in the directory's
	// meta.profiles (draft-ietf-acme-profiles), name → description. An
	// order may name one of them; policy rules match on it.
	Profiles map[string]string `yaml:"profiles"`
	// RenewalRetryAfter is the Retry-After of ARI answers (RFC 9773 §4.2).
	RenewalRetryAfter Duration `yaml:"renewal_retry_after"`
	// CAAMaxAge is how old the CAA check made at finalize may be when the
	// worker issues (a retry can run long after finalize); older, CAA is
	// checked again. The CA/Browser Forum Baseline Requirements (§3.2.2.8)
	// allow 8 hours.
	CAAMaxAge Duration `yaml:"caa_max_age"`
	// PreAuthorization offers newAuthz (RFC 8555 §7.4.1); authorizations
	// made that way are used by later orders within valid_authz_reuse.
	PreAuthorization bool `yaml:"pre_authorization"`
	// Workers is the number of issuance workers per replica: how many
	// orders are taken to upstreams at once.
	Workers int `yaml:"workers"`
	// ApprovalTTL is how long an approval request (a policy rule's
	// approval) stays pending without a decision; after it expires the
	// client's next order opens a new one.
	ApprovalTTL Duration `yaml:"approval_ttl"`
}

// Validation configures challenge validation (RFC 8555 §8).
type Validation struct {
	// HTTPPort is where http-01 connects (RFC 8555 §8.3: port 80); another
	// port suits a test bench or an unprivileged client.
	HTTPPort int `yaml:"http_port"`
	// TLSALPNPort is where tls-alpn-01 connects (RFC 8737: port 443).
	TLSALPNPort int `yaml:"tls_alpn_port"`
	// DNSResolvers are host:port resolvers for dns-01, CAA and the
	// addresses of names to validate; the system's when empty.
	DNSResolvers []string `yaml:"dns_resolvers"`
	// AllowPrivateAddresses lets validations reach loopback, private,
	// link-local (cloud metadata) and other non-public addresses, and so
	// the services of the network acmebridge runs in (RFC 8555 §10.4,
	// server-side request forgery). True in the quickstart (no --config),
	// which serves a LAN; a config file denies them unless it sets this
	// key to true itself.
	AllowPrivateAddresses bool `yaml:"allow_private_addresses"`
	// Timeout is the budget of one validation.
	Timeout Duration `yaml:"timeout"`
}

// Audit configures the audit log: one JSON line per security-relevant event.
type Audit struct {
	// File is appended to (created 0600); "-" is standard output;
	// default data_dir/audit.log.
	File string `yaml:"file"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json (one line per request).
	Format string `yaml:"format"`
}

// Duration is a time.Duration written as "90s", "720h" in YAML.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (e.g. 90s, 720h)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Default returns the quickstart configuration: bolt store and a local CA
// under ./acmebridge-data, ACME on https://127.0.0.1:8555, admin on
// 127.0.0.1:8556, open sign-up, everything routed to the local CA.
func Default() *Config {
	return &Config{
		DataDir: "acmebridge-data",
		Server: Server{
			Listen:      "127.0.0.1:8555",
			ExternalURL: "https://127.0.0.1:8555",
		},
		Admin: Admin{Listen: "127.0.0.1:8556"},
		Store: Store{Driver: "bolt", Redis: Redis{
			KeyPrefix:   "acmebridge:",
			DialTimeout: Duration(2 * time.Second), ReadTimeout: Duration(2 * time.Second), WriteTimeout: Duration(2 * time.Second),
			Durability: RedisDurability{Timeout: Duration(time.Second)},
		}},
		Accounts: Accounts{EAB: "disabled"},
		Orders: Orders{
			OrderLifetime:        Duration(24 * time.Hour),
			AuthzLifetime:        Duration(24 * time.Hour),
			ValidAuthzReuse:      Duration(0),
			MaxIdentifiers:       100,
			AllowValidityRequest: true,
			FinalizeWait:         Duration(5 * time.Second),
			ValidationWait:       Duration(5 * time.Second),
			JobLease:             Duration(2 * time.Minute),
			RenewalRetryAfter:    Duration(6 * time.Hour),
			CAAMaxAge:            Duration(8 * time.Hour),
			Workers:              16,
			ApprovalTTL:          Duration(7 * 24 * time.Hour),
		},
		Validation: Validation{
			HTTPPort:              80,
			TLSALPNPort:           443,
			AllowPrivateAddresses: true,
			Timeout:               Duration(10 * time.Second),
		},
		Upstreams:     []Upstream{{Name: "dev", Type: "local"}},
		Policy:        Policy{Default: Rule{Name: "default", Upstreams: []string{"dev"}}},
		RateLimits:    RateLimits{UnknownKeyRequestsPerIP: DefaultUnknownKeyRequestsPerIP},
		Log:           Log{Level: "info", Format: "text"},
		Notifications: defaultNotifications(),
		Retention:     defaultRetention(),
	}
}

// Load reads and validates a config file; an empty path gives Default.
// A file starts from Default too (a file only needs the keys that differ)
// except for fileOverrides, the quickstart settings a file must state.
func Load(path string) (*Config, error) {
	c := Default()
	if path != "" {
		fileOverrides(c)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if err := decode(c, b); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := c.Validate(); err != nil {
		if path != "" {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	c.fill()
	return c, nil
}

// fileOverrides undoes the quickstart defaults that are unsafe for a
// server reachable from other networks, before a config file is decoded
// over them: validation.allow_private_addresses is false unless the file
// sets it (design §5: "true only in the no-flag quickstart").
func fileOverrides(c *Config) {
	c.Validation.AllowPrivateAddresses = false
}

// decode decodes YAML strictly over the defaults in c: unknown keys are an
// error naming the key and its line.
func decode(c *Config, b []byte) error {
	// A file that names a policy replaces the quickstart's whole policy;
	// without a default of its own, what no rule matches is denied.
	var top map[string]yaml.Node
	if yaml.Unmarshal(b, &top) == nil {
		if _, ok := top["policy"]; ok {
			c.Policy = Policy{Default: Rule{Name: "default", Action: "deny"}}
			var p struct {
				Default *yaml.Node `yaml:"default"`
			}
			n := top["policy"]
			if n.Decode(&p) == nil && p.Default != nil {
				c.Policy.Default = Rule{Name: "default"}
			}
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document")
	}
	var policy *yaml.Node
	if n, ok := top["policy"]; ok {
		policy = &n
	}
	if err := c.Policy.toALabels(policy); err != nil {
		return err
	}
	if n, ok := top["directories"]; ok {
		return c.decodeDirectories(&n)
	}
	return nil
}

// fill derives paths left empty from DataDir.
func (c *Config) fill() {
	if c.Store.Bolt.Path == "" {
		c.Store.Bolt.Path = filepath.Join(c.DataDir, "acmebridge.db")
	}
	if c.Store.EncryptionKeyFile == "" {
		c.Store.EncryptionKeyFile = filepath.Join(c.DataDir, "store.key")
	}
	if c.Audit.File == "" {
		c.Audit.File = filepath.Join(c.DataDir, "audit.log")
	}
	if c.Admin.TokenFile == "" {
		c.Admin.TokenFile = filepath.Join(c.DataDir, "admin.token")
	}
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		if u.Type == "local" && u.Local.Dir == "" {
			u.Local.Dir = filepath.Join(c.DataDir, "ca", u.Name)
		}
		if u.Type == "local" && u.Local.Validity == 0 {
			u.Local.Validity = Duration(90 * 24 * time.Hour)
		}
		if u.Type == "vault" {
			v := &u.Vault
			v.Address = strings.TrimRight(v.Address, "/")
			if v.Mount == "" {
				v.Mount = "pki"
			}
			if v.Mode == "" {
				v.Mode = "sign"
			}
			if v.AppRole.Enabled() && v.AppRole.Mount == "" {
				v.AppRole.Mount = "approle"
			}
			if v.Kubernetes.Enabled() {
				if v.Kubernetes.Mount == "" {
					v.Kubernetes.Mount = "kubernetes"
				}
				if v.Kubernetes.TokenFile == "" {
					v.Kubernetes.TokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
				}
			}
		}
	}
}

// Validate checks the whole configuration once; every error names its field.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	if _, _, err := net.SplitHostPort(c.Server.Listen); err != nil {
		bad("server.listen", "%q is not host:port", c.Server.Listen)
	}
	if u, err := url.Parse(c.Server.ExternalURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		bad("server.external_url", "%q must be an absolute http(s) URL with no path", c.Server.ExternalURL)
	}
	if (c.Server.TLS.CertFile == "") != (c.Server.TLS.KeyFile == "") {
		bad("server.tls", "cert_file and key_file go together")
	}
	for i, p := range c.Server.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			bad(fmt.Sprintf("server.trusted_proxies[%d]", i), "%q is not a CIDR", p)
		}
	}
	validateRateLimits(c.RateLimits, bad)
	if _, _, err := net.SplitHostPort(c.Admin.Listen); err != nil {
		bad("admin.listen", "%q is not host:port", c.Admin.Listen)
	}
	if (c.Admin.TLS.CertFile == "") != (c.Admin.TLS.KeyFile == "") {
		bad("admin.tls", "cert_file and key_file go together")
	}
	c.validateDirectoryTokens(bad)
	switch c.Store.Driver {
	case "bolt":
	case "redis":
		r := c.Store.Redis
		if len(r.Addrs) == 0 {
			bad("store.redis.addrs", "name at least one host:port")
		}
		for i, a := range r.Addrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				bad(fmt.Sprintf("store.redis.addrs[%d]", i), "%q is not host:port", a)
			}
		}
		if r.PasswordFile != "" && r.PasswordEnv != "" {
			bad("store.redis", "password_file and password_env exclude each other")
		}
		if (r.TLS.CertFile == "") != (r.TLS.KeyFile == "") {
			bad("store.redis.tls", "cert_file and key_file go together")
		}
		if r.DB < 0 || r.PoolSize < 0 || r.DialTimeout < 0 || r.ReadTimeout < 0 || r.WriteTimeout < 0 {
			bad("store.redis", "db, pool_size and timeouts must not be negative")
		}
		if r.KeyPrefix == "" {
			bad("store.redis.key_prefix", "must not be empty")
		}
		if d := r.Durability; d.Replicas < 0 || d.Replicas > 16 {
			bad("store.redis.durability.replicas", "%d must be between 0 and 16", d.Replicas)
		} else if d.Replicas > 0 && (d.Timeout <= 0 || (r.ReadTimeout > 0 && d.Timeout >= r.ReadTimeout)) {
			bad("store.redis.durability.timeout", "must be positive and shorter than store.redis.read_timeout (%s)", r.ReadTimeout.D())
		}
	default:
		bad("store.driver", "%q is not supported (bolt, redis)", c.Store.Driver)
	}
	switch c.Accounts.EAB {
	case "required", "optional", "disabled":
	default:
		bad("accounts.eab", "%q must be required, optional or disabled", c.Accounts.EAB)
	}
	if c.Orders.OrderLifetime <= 0 || c.Orders.AuthzLifetime <= 0 {
		bad("orders", "order_lifetime and authz_lifetime must be positive")
	}
	if c.Orders.ApprovalTTL <= 0 {
		bad("orders.approval_ttl", "must be positive")
	}
	if c.Orders.MaxIdentifiers < 1 {
		bad("orders.max_identifiers", "must be at least 1")
	}
	for name := range c.Orders.Profiles {
		if !profileName(name) {
			bad("orders.profiles", "%q is not a profile name", name)
		}
	}
	if c.Orders.PreAuthorization && c.Orders.ValidAuthzReuse <= 0 {
		bad("orders.pre_authorization", "needs orders.valid_authz_reuse > 0, or pre-authorizations are never used")
	}
	if c.Orders.Workers < 1 || c.Orders.Workers > 1024 {
		bad("orders.workers", "%d must be 1 to 1024", c.Orders.Workers)
	}
	if c.Orders.ValidAuthzReuse < 0 {
		bad("orders.valid_authz_reuse", "must not be negative")
	}
	if c.Orders.CAAMaxAge <= 0 || c.Orders.CAAMaxAge > Duration(8*time.Hour) {
		bad("orders.caa_max_age", "must be more than 0 and at most 8h (CA/Browser Forum Baseline Requirements §3.2.2.8)")
	}
	if c.Orders.RenewalRetryAfter < Duration(time.Minute) {
		bad("orders.renewal_retry_after", "must be at least 1m")
	}
	if c.Orders.JobLease < Duration(time.Second) {
		bad("orders.job_lease", "must be at least 1s")
	}
	if c.Orders.FinalizeWait < 0 || c.Orders.ValidationWait < 0 {
		bad("orders", "finalize_wait and validation_wait must not be negative")
	}
	if c.Validation.HTTPPort < 1 || c.Validation.HTTPPort > 65535 {
		bad("validation.http_port", "%d is not a port", c.Validation.HTTPPort)
	}
	if c.Validation.TLSALPNPort < 1 || c.Validation.TLSALPNPort > 65535 {
		bad("validation.tls_alpn_port", "%d is not a port", c.Validation.TLSALPNPort)
	}
	for i, r := range c.Validation.DNSResolvers {
		if _, _, err := net.SplitHostPort(r); err != nil {
			bad(fmt.Sprintf("validation.dns_resolvers[%d]", i), "%q is not host:port", r)
		}
	}
	if c.Validation.Timeout <= 0 {
		bad("validation.timeout", "must be positive")
	}
	names := map[string]bool{}
	for i, u := range c.Upstreams {
		f := fmt.Sprintf("upstreams[%d]", i)
		if u.Name == "" {
			bad(f+".name", "must not be empty")
		} else if names[u.Name] {
			bad(f+".name", "%q is used twice", u.Name)
		}
		names[u.Name] = true
		switch u.Type {
		case "local":
			if u.Local.Validity < 0 || u.Local.Delay < 0 {
				bad(f+".local", "validity and delay must not be negative")
			}
			if u.Vault != (Vault{}) {
				bad(f+".vault", "only an upstream of type vault takes a vault block")
			}
		case "vault":
			validateVault(f+".vault", u.Vault, bad)
			if u.Local != (Local{}) {
				bad(f+".local", "only an upstream of type local takes a local block")
			}
		case "acme":
			validateACME(f, u, bad)
		default:
			bad(f+".type", "%q is not supported (local, vault, acme)", u.Type)
		}
		if u.Type != "acme" && u.ACME.set() {
			bad(f+".acme", "only an upstream of type acme takes an acme block")
		}
		for j, id := range u.CAAIdentities {
			if !caaIdentity(id) {
				bad(fmt.Sprintf("%s.caa_identities[%d]", f, j), "%q is not a domain name as CAA records name a CA (e.g. ca.example.com)", id)
			}
		}
		if len(u.CAAIdentities) > 0 && !u.ChecksCAA() {
			bad(f+".caa_identities", "has no effect while caa.check is false (an acme upstream leaves CAA to its CA unless caa: {check: true})")
		}
	}
	for j, id := range c.Server.CAAIdentities {
		if !caaIdentity(id) {
			bad(fmt.Sprintf("server.caa_identities[%d]", j), "%q is not a domain name as CAA records name a CA (e.g. ca.example.com)", id)
		}
	}
	errs = append(errs, c.Policy.validate(names)...)
	errs = append(errs, c.validateDirectories(names, bad)...)
	c.validateReload(bad)
	c.validateNotifications(bad)
	c.validateRetention(bad)
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q must be debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q must be text or json", c.Log.Format)
	}
	return errors.Join(errs...)
}

// profileName accepts a profile's name.
func profileName(name string) bool {
	return name != "" && len(name) <= 64 && !strings.ContainsAny(name, " \t\"")
}

// caaIdentity accepts an issuer-domain-name of RFC 8659 §4.2:
// label *("." label), label = (ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT)).
func caaIdentity(s string) bool {
	for _, l := range strings.Split(s, ".") {
		if l == "" || strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-") {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// envName accepts a POSIX environment variable name.
func envName(s string) bool {
	for i, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}
