package configs

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/acmebridge/acmebridge/core"
	"go.yaml.in/yaml/v3"
	"golang.org/x/net/idna"
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
	// DelegatedValidation makes the authorizations of this rule's orders
	// valid without a challenge, as a CA does for the pre-validated domains
	// of an EAB account: the names were validated elsewhere (an on-prem
	// acmebridge that validated its clients on the LAN and relays here
	// with an EAB key). Only on a rule whose match names groups or
	// eab_keys (an open sign-up account has neither) and the domains or
	// ips it grants; never on the default rule. Each such authorization is
	// audited as authorization.delegated; allow_wildcards, allow_ips and
	// CAA still apply.
	DelegatedValidation bool `yaml:"delegated_validation"`
	// Approval makes an administrator approve the names of an order before
	// it is accepted: "required" (every name, once per account; an
	// approval covers the account's later orders, renewals included) or
	// "new-names" (only names the account holds no certificate for).
	// Without a decision newOrder is refused with rejectedIdentifier naming
	// the approval request; the client's next run after the approval
	// issues. "" (the default) asks nobody. Not on a deny rule.
	Approval string `yaml:"approval"`
}

// The values of Rule.Approval.
const (
	ApprovalRequired = "required"
	ApprovalNewNames = "new-names"
)

// Match selects what a rule applies to. Within a field any entry matches;
// every field that is set must match. Domains and IPs match the order's
// identifiers; the other fields match the account and the order.
type Match struct {
	// Domains are exact names, "*.suffix" (any name below suffix, at any
	// depth) or a leading-label glob such as "printer-*.corp.example.com"
	// (one label, at that depth). Internationalized names may be written
	// in Unicode: Load converts them to A-labels (see ALabels).
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
var challengeTypes = map[string]bool{core.ChallengeHTTP01: true, core.ChallengeDNS01: true, core.ChallengeTLSALPN01: true}

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
		if r.DelegatedValidation {
			errs = append(errs, checkDelegation(f, r, isDefault)...)
		}
		switch r.Approval {
		case "", ApprovalRequired, ApprovalNewNames:
			if r.Approval != "" && r.Action == "deny" {
				bad(f+".approval", "a deny rule issues nothing to approve")
			}
		default:
			bad(f+".approval", "%q must be required or new-names", r.Approval)
		}
		for j, d := range r.Match.Domains {
			if err := checkPattern(d); err != nil {
				bad(fmt.Sprintf("%s.match.domains[%d]", f, j), "%v", err)
			} else if _, err := ALabels(d); err != nil {
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

// checkDelegation keeps delegated validation narrow and explicit: a rule
// that grants it must only match accounts bound with an EAB key (by key ID
// or group, never an empty one, which an open sign-up account has) and
// name the identifiers it grants.
func checkDelegation(f string, r Rule, isDefault bool) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.delegated_validation: %s", f, fmt.Sprintf(format, args...)))
	}
	m := r.Match
	switch {
	case isDefault:
		bad("the default rule matches every account, open sign-up ones included: delegate only on a rule that names groups or eab_keys")
		return errs
	case r.Action == "deny":
		bad("a deny rule issues nothing to delegate")
	}
	if len(m.Groups)+len(m.EABKeys) == 0 {
		bad("the rule must match groups or eab_keys: without them it would match open sign-up accounts, which nobody vouched for")
	}
	if slices.Contains(m.Groups, "") || slices.Contains(m.EABKeys, "") {
		bad("an empty group or EAB key ID matches accounts without one (open sign-up)")
	}
	if len(m.Domains)+len(m.IPs) == 0 {
		bad("the rule must name the domains or ips it grants")
	}
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

// ALabels returns a domain pattern (or a name) lower-cased with every label
// in IDNA A-label form, the form identifiers arrive in (ra/identifier.go
// accepts only LDH names whose "xn--" labels are real A-labels): so
// "bücher.example.com" becomes "xn--bcher-kva.example.com" and
// "*.bücher.example.com" becomes "*.xn--bcher-kva.example.com", as
// docs/policy.md says: patterns are compared as A-labels.
//
// A Unicode label is converted with the IDNA2008 registration profile,
// the one identifiers are checked with (RFC 5891 §4); a label it refuses,
// an "xn--" label that is not a real A-label (RFC 5890 §2.3.2.1: a "fake
// A-label" such as "xn--a" that no identifier can carry), and a Unicode
// glob label (Punycode keeps no prefix or suffix of a label, so "bü*"
// would match no A-label) are errors. ASCII labels are otherwise left as
// they are: checkPattern judges their syntax.
func ALabels(p string) (string, error) {
	labels := strings.Split(strings.ToLower(p), ".")
	for i, l := range labels {
		switch {
		case strings.Contains(l, "*"):
			if !isASCII(l) {
				return "", fmt.Errorf("%q: a glob label must be ASCII (the A-label of a Unicode label keeps no prefix or suffix of it)", p)
			}
		case isASCII(l) && !strings.HasPrefix(l, "xn--"):
		default:
			a, err := idna.Registration.ToASCII(l)
			if err != nil {
				return "", fmt.Errorf("%q is not a valid internationalized name: label %q: %w", p, l, err)
			}
			labels[i] = a
		}
	}
	return strings.Join(labels, "."), nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// toALabels converts the policy's domain patterns to A-labels (ALabels) as
// the file is loaded. n is the file's policy node (nil if it has none); a
// pattern that does not convert is an error naming its key and line.
func (p *Policy) toALabels(n *yaml.Node) error {
	var errs []error
	rules := child(n, "rules")
	for i := range p.Rules {
		domains := child(child(item(rules, i), "match"), "domains")
		for j, d := range p.Rules[i].Match.Domains {
			a, err := ALabels(d)
			if err != nil {
				key := fmt.Sprintf("policy.rules[%d].match.domains[%d]", i, j)
				if v := item(domains, j); v != nil {
					key = fmt.Sprintf("line %d: %s", v.Line, key)
				}
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
				continue
			}
			p.Rules[i].Match.Domains[j] = a
		}
	}
	return errors.Join(errs...)
}

// child is the value of key in mapping node n, or nil.
func child(n *yaml.Node, key string) *yaml.Node {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for k := 0; k+1 < len(n.Content); k += 2 {
		if n.Content[k].Value == key {
			return deref(n.Content[k+1])
		}
	}
	return nil
}

// item is element i of sequence node n, or nil.
func item(n *yaml.Node, i int) *yaml.Node {
	n = deref(n)
	if n == nil || n.Kind != yaml.SequenceNode || i >= len(n.Content) {
		return nil
	}
	return deref(n.Content[i])
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}
