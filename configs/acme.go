package configs

import (
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"slices"
	"strings"

	"github.com/acmebridge/acmebridge/core"
)

// ACME configures an RFC 8555 certificate authority as an upstream (Let's
// Encrypt, ZeroSSL, Google Trust Services, a private ACME CA): acmebridge
// registers its own account there (once, the key sealed in the store and
// shared by every replica), solves the CA's challenges itself and
// forwards the client's CSR.
type ACME struct {
	// Directory is the CA's directory URL (https).
	Directory string `yaml:"directory"`
	// Email is the account's contact; optional.
	Email string `yaml:"email"`
	// CAFile holds extra PEM roots to trust for the CA's TLS certificate
	// (a private ACME CA); the system's roots are trusted too.
	CAFile string `yaml:"ca_file"`
	// EAB is the External Account Binding some CAs require (ZeroSSL,
	// Google Trust Services, Sectigo).
	EAB ACMEEAB `yaml:"eab"`
	// KeyType of the account key: EC256 (default), EC384, RSA2048,
	// RSA3072 or RSA4096.
	KeyType string `yaml:"key_type"`
	// PreferredChain is the Common Name of the root to prefer when the CA
	// offers alternate chains; empty takes the CA's default chain.
	PreferredChain string `yaml:"preferred_chain"`
	// Profile is asked of the CA when the policy rule names none.
	Profile string `yaml:"profile"`
	// ForwardValidity sends an order's notBefore/notAfter to the CA; most
	// public CAs refuse them, so by default the CA picks the validity.
	ForwardValidity bool `yaml:"forward_validity"`
	// Timeout bounds each HTTP request to the CA (default 30s).
	Timeout Duration `yaml:"timeout"`
	// Solver says how acmebridge answers the CA's challenges.
	Solver ACMESolver `yaml:"solver"`
}

// ACMEEAB is an External Account Binding key (RFC 8555 §7.3.4): the key ID
// and the base64url HMAC key, read from a file or an environment variable.
type ACMEEAB struct {
	// KID is the key ID the CA gave.
	KID string `yaml:"kid"`
	// HMACFile or HMACEnv holds the base64url HMAC key (a file, or the
	// name of an environment variable); never the key itself.
	HMACFile string `yaml:"hmac_file"`
	HMACEnv  string `yaml:"hmac_env"`
}

// ACMESolver configures the challenge solver for one ACME upstream.
type ACMESolver struct {
	// Type is dns-01 or http-01. Left out (with the whole solver), the
	// upstream answers no challenge: for a CA that hands back valid
	// authorizations, such as another acmebridge whose policy delegates
	// validation to this one's EAB key; an authorization it asks a
	// challenge for fails the order with unauthorized.
	Type string `yaml:"type"`
	// Provider names the lego DNS provider (dns-01), one of
	// ACMEDNSProviders.
	Provider string `yaml:"provider"`
	// Env is the provider's configuration as lego's environment variables
	// (e.g. RFC2136_NAMESERVER). Secrets go in files named by VAR_FILE
	// variables (e.g. CF_DNS_API_TOKEN_FILE) or in the process
	// environment, not here.
	Env map[string]string `yaml:"env"`
	// Resolvers (host:port) are asked whether a TXT record propagated;
	// empty: the system's resolvers, then the zone's authoritative ones.
	Resolvers []string `yaml:"resolvers"`
	// Propagation tunes the wait for DNS propagation.
	Propagation ACMEPropagation `yaml:"propagation"`
	// Listen is the http-01 responder's address (http-01), which the
	// domains' port 80 must reach (e.g. through the site's load balancer).
	Listen string `yaml:"listen"`
}

// ACMEPropagation tunes lego's DNS propagation check.
type ACMEPropagation struct {
	// Timeout and Interval bound and pace the check; zero keeps the
	// provider's own (usually 60s and 2s).
	Timeout  Duration `yaml:"timeout"`
	Interval Duration `yaml:"interval"`
	// Wait is slept before checking (or instead, with DisableCheck).
	Wait Duration `yaml:"wait"`
	// DisableAuthoritativeCheck does not ask the zone's authoritative
	// servers (useful behind split-horizon DNS).
	DisableAuthoritativeCheck bool `yaml:"disable_authoritative_check"`
	// DisableCheck trusts Wait alone.
	DisableCheck bool `yaml:"disable_check"`
}

// ACMEDNSProviders are the lego DNS providers acmebridge is built with
// (upstream/acme links only these; its tests check the two lists agree).
var ACMEDNSProviders = []string{"cloudflare", "dnsupdate", "exec", "httpreq", "rfc2136", "route53"}

// ACMEKeyTypes are the account key types key_type accepts.
var ACMEKeyTypes = []string{"EC256", "EC384", "RSA2048", "RSA3072", "RSA4096"}

// set reports whether any key of the acme block is given.
func (a ACME) set() bool {
	return a.Directory != "" || a.Email != "" || a.CAFile != "" || a.EAB != (ACMEEAB{}) || a.KeyType != "" ||
		a.PreferredChain != "" || a.Profile != "" || a.ForwardValidity || a.Timeout != 0 || a.Solver.Type != "" ||
		a.Solver.Provider != "" || len(a.Solver.Env) > 0 || len(a.Solver.Resolvers) > 0 ||
		a.Solver.Propagation != (ACMEPropagation{}) || a.Solver.Listen != ""
}

// validateACME checks the acme block of an upstream of type acme; f is the
// upstream's field path.
func validateACME(f string, u Upstream, bad func(field, format string, args ...any)) {
	if u.Local != (Local{}) {
		bad(f+".local", "only an upstream of type local takes a local block")
	}
	if u.Vault != (Vault{}) {
		bad(f+".vault", "only an upstream of type vault takes a vault block")
	}
	a, f := u.ACME, f+".acme"
	if a.Directory == "" {
		bad(f+".directory", "must not be empty")
	} else if d, err := url.Parse(a.Directory); err != nil || d.Scheme != "https" || d.Host == "" || d.User != nil {
		// RFC 8555 §6.1: ACME is spoken over HTTPS only.
		bad(f+".directory", "%q must be an https URL, e.g. https://acme-v02.api.letsencrypt.org/directory", a.Directory)
	}
	if a.Email != "" {
		if m, err := mail.ParseAddress(a.Email); err != nil || m.Address != a.Email {
			bad(f+".email", "%q is not an email address", a.Email)
		}
	}
	if a.EAB != (ACMEEAB{}) {
		if a.EAB.KID == "" {
			bad(f+".eab.kid", "must not be empty when an EAB key is given")
		}
		if (a.EAB.HMACFile == "") == (a.EAB.HMACEnv == "") {
			bad(f+".eab", "give exactly one of hmac_file and hmac_env")
		}
		if a.EAB.HMACEnv != "" && !envName(a.EAB.HMACEnv) {
			bad(f+".eab.hmac_env", "%q is not an environment variable name", a.EAB.HMACEnv)
		}
	}
	if a.KeyType != "" && !slices.Contains(ACMEKeyTypes, strings.ToUpper(a.KeyType)) {
		bad(f+".key_type", "%q must be one of %s", a.KeyType, strings.Join(ACMEKeyTypes, ", "))
	}
	if a.Timeout < 0 {
		bad(f+".timeout", "must not be negative")
	}
	s, sf := a.Solver, f+".solver"
	switch s.Type {
	case core.ChallengeDNS01:
		if s.Provider == "" {
			bad(sf+".provider", "must name a DNS provider (%s)", strings.Join(ACMEDNSProviders, ", "))
		} else if !slices.Contains(ACMEDNSProviders, s.Provider) {
			bad(sf+".provider", "%q is not one acmebridge is built with (%s)", s.Provider, strings.Join(ACMEDNSProviders, ", "))
		}
		for k := range s.Env {
			if !envName(k) {
				bad(sf+".env", "%q is not an environment variable name", k)
			}
		}
		for i, r := range s.Resolvers {
			if _, _, err := net.SplitHostPort(r); err != nil {
				bad(fmt.Sprintf("%s.resolvers[%d]", sf, i), "%q is not host:port", r)
			}
		}
		p := s.Propagation
		if p.Timeout < 0 || p.Interval < 0 || p.Wait < 0 {
			bad(sf+".propagation", "timeout, interval and wait must not be negative")
		}
		if p.DisableCheck && p.Wait == 0 {
			bad(sf+".propagation", "disable_check needs a wait")
		}
		if s.Listen != "" {
			bad(sf+".listen", "only the http-01 solver listens")
		}
	case core.ChallengeHTTP01:
		if _, _, err := net.SplitHostPort(s.Listen); err != nil {
			bad(sf+".listen", "%q is not host:port (the address port 80 of every name reaches, e.g. \":80\")", s.Listen)
		}
		if s.Provider != "" || len(s.Env) > 0 || len(s.Resolvers) > 0 || s.Propagation != (ACMEPropagation{}) {
			bad(sf, "provider, env, resolvers and propagation are for dns-01")
		}
	case "":
		// No solver: the CA hands back valid authorizations (another
		// acmebridge that delegates validation to this one's key).
		if s.Provider != "" || len(s.Env) > 0 || len(s.Resolvers) > 0 || s.Propagation != (ACMEPropagation{}) || s.Listen != "" {
			bad(sf+".type", "must be dns-01 or http-01 (or leave the solver out when the CA never asks for a challenge)")
		}
	default:
		bad(sf+".type", "%q must be dns-01 or http-01", s.Type)
	}
}
