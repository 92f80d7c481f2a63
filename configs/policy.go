package configs

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Policy routes orders to upstreams: ordered rules, first match wins; the
// default rule ends the list.
type Policy struct {
	Rules   []Rule `yaml:"rules"`
	Default Rule   `yaml:"default"`
}

// Rule is one policy rule: what it matches and what it decides.
type Rule struct {
	// Name identifies the rule in refusals, the audit log and policy
	// explain.
	Name  string `yaml:"name"`
	Match Match  `yaml:"match"`
	// Action is allow (the default) or deny; Reason is told to the client
	// of a refused order.
	Action string `yaml:"action"`
	Reason string `yaml:"reason"`
	// Upstreams are tried in order.
	Upstreams []string `yaml:"upstreams"`
	// Challenges limits the challenge types offered (default: all that fit
	// the identifier).
	Challenges []string `yaml:"challenges"`
	// AllowWildcards and AllowIPs: nil means allowed.
	AllowWildcards *bool `yaml:"allow_wildcards"`
	AllowIPs       *bool `yaml:"allow_ips"`
	// KeyTypes limits the certificate key types: rsa, ecdsa, ed25519
	// (default rsa and ecdsa). MinRSABits defaults to 2048.
	KeyTypes   []string `yaml:"key_types"`
	MinRSABits int      `yaml:"min_rsa_bits"`
	// MaxValidity caps the certificate's lifetime (0: the upstream's).
	MaxValidity Duration `yaml:"max_validity"`
	// UpstreamProfile is the profile asked of the upstream.
	UpstreamProfile string `yaml:"upstream_profile"`
}

// Match selects what a rule applies to. Within a field any entry matches;
// every field that is set must match. Domains and IPs match the order's
// identifiers; the other fields match the account and the order.
type Match struct {
	// Domains are exact names, "*.suffix" (any name below suffix, at any
	// depth) or a leading-label glob such as "printer-*.corp.example.com"
	// (one label, at that depth).
	Domains []string `yaml:"domains"`
	// IPs are CIDR ranges for ip identifiers.
	IPs []string `yaml:"ips"`
	// EABKeys are key IDs of External Account Binding keys; Groups are EAB
	// key groups. They match the account that places the order.
	EABKeys []string `yaml:"eab_keys"`
	Groups  []string `yaml:"groups"`
	// Profiles are the profile names the order asked for.
	Profiles []string `yaml:"profiles"`
}

// IsZero reports whether the match sets nothing.
func (m Match) IsZero() bool {
	return len(m.Domains)+len(m.IPs)+len(m.EABKeys)+len(m.Groups)+len(m.Profiles) == 0
}

// challengeTypes are the challenge types a rule may allow.
var challengeTypes = map[string]bool{"http-01": true, "dns-01": true, "tls-alpn-01": true}

// keyTypes are the certificate key types a rule may allow.
var keyTypes = map[string]bool{"rsa": true, "ecdsa": true, "ed25519": true}

// validate checks the policy against the configured upstream names.
func (p Policy) validate(upstreams map[string]bool) []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	check := func(f string, r Rule, isDefault bool) {
		switch r.Action {
		case "", "allow":
			if len(r.Upstreams) == 0 {
				bad(f+".upstreams", "an allow rule names at least one upstream")
			}
		case "deny":
			if len(r.Upstreams) != 0 {
				bad(f+".upstreams", "a deny rule names no upstream")
			}
		default:
			bad(f+".action", "%q must be allow or deny", r.Action)
		}
		for _, n := range r.Upstreams {
			if !upstreams[n] {
				bad(f+".upstreams", "unknown upstream %q", n)
			}
		}
		if isDefault && !r.Match.IsZero() {
			bad(f+".match", "the default rule matches everything; it takes no match")
		}
		if !isDefault && r.Match.IsZero() {
			bad(f+".match", "must set at least one of domains, ips, eab_keys, groups, profiles")
		}
		for j, d := range r.Match.Domains {
			if err := checkPattern(d); err != nil {
				bad(fmt.Sprintf("%s.match.domains[%d]", f, j), "%v", err)
			}
		}
		for j, c := range r.Match.IPs {
			if _, err := netip.ParsePrefix(c); err != nil {
				bad(fmt.Sprintf("%s.match.ips[%d]", f, j), "%q is not a CIDR", c)
			}
		}
		for j, c := range r.Challenges {
			if !challengeTypes[c] {
				bad(fmt.Sprintf("%s.challenges[%d]", f, j), "%q is not http-01, dns-01 or tls-alpn-01", c)
			}
		}
		for j, k := range r.KeyTypes {
			if !keyTypes[k] {
				bad(fmt.Sprintf("%s.key_types[%d]", f, j), "%q is not rsa, ecdsa or ed25519", k)
			}
		}
		if r.MinRSABits != 0 && (r.MinRSABits < 2048 || r.MinRSABits > 8192) {
			bad(f+".min_rsa_bits", "%d must be 2048 to 8192", r.MinRSABits)
		}
		// A lifetime shorter than this cannot be issued reliably: the
		// upstream sees the cap only after the order's round trips.
		if r.MaxValidity < 0 || (r.MaxValidity > 0 && r.MaxValidity < Duration(90*time.Second)) {
			bad(f+".max_validity", "must be 0 (the upstream's default) or at least 90s")
		}
	}
	seen := map[string]bool{}
	for i, r := range p.Rules {
		f := fmt.Sprintf("policy.rules[%d]", i)
		if r.Name == "" {
			bad(f+".name", "must not be empty")
		} else if seen[r.Name] || r.Name == "default" {
			bad(f+".name", "%q is used twice (or is the default's name)", r.Name)
		}
		seen[r.Name] = true
		check(f, r, false)
	}
	check("policy.default", p.Default, true)
	return errs
}

// checkPattern accepts "name", "*.suffix" (any depth below suffix) and a
// leading-label glob ("printer-*.corp.example.com").
func checkPattern(p string) error {
	s := strings.TrimPrefix(p, "*.")
	first, rest, _ := strings.Cut(s, ".")
	ok := s != "" && !strings.Contains(rest, "*") && !strings.HasSuffix(s, ".") && !strings.Contains(s, "..") &&
		strings.Count(first, "*") <= 1 && !(s != p && strings.Contains(first, "*")) && (!strings.Contains(first, "*") || rest != "")
	if !ok {
		return fmt.Errorf("%q is not a domain pattern (name, *.suffix or a glob in the first label)", p)
	}
	return nil
}
