package configs

import (
	"net/url"
	"strings"
)

// Upstream is one certificate authority behind the bridge.
type Upstream struct {
	// Name is how policy rules name the upstream; it is stored on every
	// order routed to it.
	Name string `yaml:"name"`
	// Type is local (the built-in CA), vault (Vault PKI) or acme (an ACME
	// CA relayed through lego); the block of that name configures it.
	Type  string `yaml:"type"`
	Local Local  `yaml:"local"`
	Vault Vault  `yaml:"vault"`
	ACME  ACME   `yaml:"acme"`
	// CAAIdentities are the issuer domain names by which CAA records
	// (RFC 8659) name this upstream; empty means server.caa_identities.
	CAAIdentities []string `yaml:"caa_identities"`
	// CAA says whether acmebridge checks CAA before sending an order here.
	CAA CAA `yaml:"caa"`
}

// CAA configures the CAA check of one upstream.
type CAA struct {
	// Check is whether acmebridge checks CAA (RFC 8659, with the RFC 8657
	// accounturi and validationmethods parameters) at finalize. Unset
	// means true for local and vault upstreams, which check nothing
	// themselves, and false for acme ones, whose CA checks CAA itself.
	Check *bool `yaml:"check"`
}

// SANsFromCSR reports whether the certificates u issues name what the
// client's CSR lists in its subjectAltName rather than what ra decided: an
// acme upstream hands the CSR as it is to another ACME CA (Pebble reads
// the subjectAltName only), and Vault's sign-verbatim signs it as it is
// (a name in the common name alone stays out of the subjectAltName).
func (u Upstream) SANsFromCSR() bool {
	return u.Type == "acme" || u.Type == "vault" && u.Vault.Mode == "sign-verbatim"
}

// ChecksCAA reports whether acmebridge checks CAA for orders routed to u.
func (u Upstream) ChecksCAA() bool {
	if u.CAA.Check != nil {
		return *u.CAA.Check
	}
	return u.Type != "acme"
}

// Vault configures a HashiCorp Vault PKI secrets engine as an upstream: the
// client's CSR goes to MOUNT/sign/ROLE (mode sign, the role's rules apply)
// or MOUNT/sign-verbatim/ROLE. Exactly one way to authenticate is given:
// token_file, token_env, approle or kubernetes.
type Vault struct {
	// Address is Vault's base URL, e.g. https://vault:8200.
	Address string `yaml:"address"`
	// CAFile holds the PEM roots that verify Vault's TLS certificate;
	// empty means the system's roots.
	CAFile string `yaml:"ca_file"`
	// ClientCertFile and ClientKeyFile are a TLS client certificate for
	// Vault listeners that require one.
	ClientCertFile string `yaml:"client_cert_file"`
	ClientKeyFile  string `yaml:"client_key_file"`
	// Namespace is the Vault Enterprise namespace; empty for none.
	Namespace string `yaml:"namespace"`
	// Mount is the PKI secrets engine's path (default pki).
	Mount string `yaml:"mount"`
	// Role is the PKI role that signs.
	Role string `yaml:"role"`
	// IssuerRef names the issuer (id or name) that signs; empty means the
	// mount's default issuer (or the role's issuer_ref).
	IssuerRef string `yaml:"issuer_ref"`
	// Mode is sign (default) or sign-verbatim.
	Mode string `yaml:"mode"`
	// TTL caps the validity asked of Vault; zero leaves it to the role.
	// An order's notAfter shortens it further.
	TTL Duration `yaml:"ttl"`
	// TokenFile holds a Vault token (re-read when Vault refuses the token
	// in memory, so a rotated file is picked up).
	TokenFile string `yaml:"token_file"`
	// TokenEnv names the environment variable holding a Vault token.
	TokenEnv string `yaml:"token_env"`
	// AppRole logs in with a role ID and secret ID read from files.
	AppRole AppRole `yaml:"approle"`
	// Kubernetes logs in with the pod's service account token.
	Kubernetes KubernetesAuth `yaml:"kubernetes"`
}

// KubernetesAuth configures a login with a Kubernetes service account
// token: Vault's Kubernetes auth method, or its JWT auth method set up
// with the cluster's issuer (mount: jwt); both take a role and the token.
type KubernetesAuth struct {
	// Role is the auth method's role.
	Role string `yaml:"role"`
	// TokenFile holds the token, read at every login (default
	// /var/run/secrets/kubernetes.io/serviceaccount/token).
	TokenFile string `yaml:"token_file"`
	// Mount is the auth method's path (default kubernetes).
	Mount string `yaml:"mount"`
}

// Enabled reports whether any Kubernetes login key is set.
func (k KubernetesAuth) Enabled() bool {
	return k.Role != "" || k.TokenFile != "" || k.Mount != ""
}

// AppRole configures Vault's AppRole auth method.
type AppRole struct {
	// RoleIDFile and SecretIDFile hold the AppRole role ID and secret ID,
	// read at every login.
	RoleIDFile   string `yaml:"role_id_file"`
	SecretIDFile string `yaml:"secret_id_file"`
	// Mount is the auth method's path (default approle).
	Mount string `yaml:"mount"`
}

// Enabled reports whether any AppRole key is set.
func (a AppRole) Enabled() bool {
	return a.RoleIDFile != "" || a.SecretIDFile != "" || a.Mount != ""
}

// Local configures the built-in CA.
type Local struct {
	// Dir holds the CA's keys and certificates; default DataDir/ca/NAME.
	Dir string `yaml:"dir"`
	// Validity of issued certificates (default 90 days).
	Validity Duration `yaml:"validity"`
	// Delay is added before each issuance, to stand in for a slow CA in
	// tests.
	Delay Duration `yaml:"delay"`
}

// validateVault checks one vault block; f is its field path.
func validateVault(f string, v Vault, bad func(field, format string, args ...any)) {
	if v.Address == "" {
		bad(f+".address", "must not be empty")
	} else if u, err := url.Parse(v.Address); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		bad(f+".address", "%q must be an absolute http(s) URL with no path, e.g. https://vault:8200", v.Address)
	}
	if (v.ClientCertFile == "") != (v.ClientKeyFile == "") {
		bad(f, "client_cert_file and client_key_file go together")
	}
	if v.Namespace != "" && !vaultPath(strings.Trim(v.Namespace, "/")) {
		bad(f+".namespace", "%q is not a Vault namespace path", v.Namespace)
	}
	if v.Mount != "" && !vaultPath(v.Mount) {
		bad(f+".mount", "%q is not a mount path (e.g. pki or pki/int, no leading or trailing slash)", v.Mount)
	}
	if v.Role == "" {
		bad(f+".role", "must name the PKI role that signs")
	} else if !vaultName(v.Role) {
		bad(f+".role", "%q is not a role name (letters, digits, - _ .)", v.Role)
	}
	if v.IssuerRef != "" && !vaultName(v.IssuerRef) {
		bad(f+".issuer_ref", "%q is not an issuer id or name (letters, digits, - _ .)", v.IssuerRef)
	}
	switch v.Mode {
	case "", "sign", "sign-verbatim":
	default:
		bad(f+".mode", "%q must be sign or sign-verbatim", v.Mode)
	}
	if v.TTL < 0 {
		bad(f+".ttl", "must not be negative")
	}
	auths := 0
	for _, set := range []bool{v.TokenFile != "", v.TokenEnv != "", v.AppRole.Enabled(), v.Kubernetes.Enabled()} {
		if set {
			auths++
		}
	}
	if auths != 1 {
		bad(f, "give exactly one of token_file, token_env, approle and kubernetes")
	}
	if v.Kubernetes.Enabled() {
		if !vaultName(v.Kubernetes.Role) {
			bad(f+".kubernetes.role", "%q is not a role name", v.Kubernetes.Role)
		}
		if v.Kubernetes.Mount != "" && !vaultPath(v.Kubernetes.Mount) {
			bad(f+".kubernetes.mount", "%q is not a mount path (e.g. kubernetes or jwt)", v.Kubernetes.Mount)
		}
	}
	if v.TokenEnv != "" && !envName(v.TokenEnv) {
		bad(f+".token_env", "%q is not an environment variable name", v.TokenEnv)
	}
	if v.AppRole.Enabled() {
		if v.AppRole.RoleIDFile == "" {
			bad(f+".approle.role_id_file", "must not be empty")
		}
		if v.AppRole.SecretIDFile == "" {
			bad(f+".approle.secret_id_file", "must not be empty")
		}
		if v.AppRole.Mount != "" && !vaultPath(v.AppRole.Mount) {
			bad(f+".approle.mount", "%q is not a mount path (e.g. approle)", v.AppRole.Mount)
		}
	}
}

// vaultName accepts what Vault's framework.GenericNameRegex does for role
// and issuer names: letters, digits, '-', '_' and '.', not starting or
// ending with a dot or dash.
func vaultName(s string) bool {
	if s == "" || strings.HasPrefix(s, ".") || strings.HasPrefix(s, "-") || strings.HasSuffix(s, ".") || strings.HasSuffix(s, "-") {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// vaultPath accepts slash-separated vaultName segments.
func vaultPath(s string) bool {
	for _, seg := range strings.Split(s, "/") {
		if !vaultName(seg) {
			return false
		}
	}
	return true
}
