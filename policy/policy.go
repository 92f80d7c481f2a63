// Package policy decides, for an order, whether it may be issued and by
// which upstreams, under what constraints: ordered rules, first match wins,
// and a default rule that ends the list. It works offline from the
// configuration, so `policy explain` gives the same answer as the server.
package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/core"
)

// Identifier is an ACME identifier to route: core.Identifier.
type Identifier = core.Identifier

// Request is what a rule matches on.
type Request struct {
	Identifiers []Identifier
	// EABKey and Group are those of the External Account Binding key the
	// account was created with ("" without one).
	EABKey string
	Group  string
	// Profile is the profile the order asked for.
	Profile string
}

// Decision is the route an order takes and the constraints on it.
type Decision struct {
	// Rule is the name of the rule that matched.
	Rule string
	// Upstreams are tried in order.
	Upstreams []string
	// Challenges are the challenge types allowed (never empty).
	Challenges []string
	// KeyTypes are the certificate key types allowed; MinRSABits the
	// smallest RSA key.
	KeyTypes   []string
	MinRSABits int
	// MaxValidity caps the certificate's lifetime; 0 leaves it to the
	// upstream.
	MaxValidity time.Duration
	// UpstreamProfile is the profile to ask the upstream for.
	UpstreamProfile string
	// Delegated says the rule grants delegated validation
	// (configs.Rule.DelegatedValidation): the order's authorizations are
	// valid without a challenge. Only a rule matching the account's EAB
	// key or group and naming every identifier of the order gives it.
	Delegated bool
	// Approval is the rule's approval (configs.Rule.Approval): "",
	// configs.ApprovalRequired or configs.ApprovalNewNames.
	Approval string
}

// Explanation is the reasoning for one name, for `policy explain`.
type Explanation struct {
	Name string `json:"name"`
	// ALabel is the name in IDNA A-label form, the form it is matched in,
	// when that differs from Name ("bücher.example.com").
	ALabel string `json:"a_label,omitempty"`
	Rule   string `json:"rule"`
	// Action is allow, deny, or invalid for a name that is none.
	Action    string   `json:"action"`
	Reason    string   `json:"reason,omitempty"`
	Upstreams []string `json:"upstreams,omitempty"`
	// ConflictingRule refuses a wildcard that Rule would allow: it decides
	// otherwise for ConflictingPattern, names the wildcard would cover.
	ConflictingRule    string `json:"conflicting_rule,omitempty"`
	ConflictingPattern string `json:"conflicting_pattern,omitempty"`
	// Delegated says an allowed name's authorization would be valid
	// without a challenge (the rule's delegated_validation).
	Delegated bool `json:"delegated,omitempty"`
	// Approval says an allowed name needs an administrator's approval
	// (the rule's approval: required or new-names).
	Approval string `json:"approval,omitempty"`
	// Skipped says why each earlier rule did not match.
	Skipped []string `json:"skipped,omitempty"`
}

// Engine evaluates a validated policy.
type Engine struct {
	rules []configs.Rule
	def   configs.Rule
}

// New returns an engine for a validated policy. Its domain patterns are
// compared as A-labels (configs.ALabels; Load has converted them already,
// a policy built in code is converted here).
func New(p configs.Policy) *Engine {
	def := p.Default
	if def.Name == "" {
		def.Name = "default"
	}
	rules := slices.Clone(p.Rules)
	for i := range rules {
		domains := make([]string, len(rules[i].Match.Domains))
		for j, d := range rules[i].Match.Domains {
			a, err := configs.ALabels(d)
			if err != nil {
				// Validation refuses such a pattern; here it matches nothing
				// an identifier can be.
				a = strings.ToLower(d)
			}
			domains[j] = a
		}
		rules[i].Match.Domains = domains
	}
	return &Engine{rules: rules, def: def}
}

// normalize lower-cases a name and drops a trailing dot.
func normalize(v string) string { return strings.ToLower(strings.TrimSuffix(v, ".")) }

// why returns "" when rule r matches the identifier in req's context, or
// the reason it does not.
func why(r configs.Rule, id Identifier, req Request) string {
	m := r.Match
	if reason := conditions(m, req); reason != "" {
		return reason
	}
	if len(m.Domains) == 0 && len(m.IPs) == 0 {
		return ""
	}
	if id.Type == "ip" {
		if matchIP(m.IPs, id.Value) {
			return ""
		}
		if len(m.IPs) == 0 {
			return fmt.Sprintf("%s is an IP address; the rule matches names", id.Value)
		}
		return fmt.Sprintf("%s is in none of %v", id.Value, m.IPs)
	}
	name := normalize(id.Value)
	if len(m.Domains) == 0 {
		return fmt.Sprintf("%s is a name; the rule matches IP addresses", name)
	}
	for _, p := range m.Domains {
		if MatchDomain(p, name) {
			return ""
		}
	}
	return fmt.Sprintf("%s matches none of %v", name, m.Domains)
}

// conditions returns "" when the match's account and order conditions
// (eab_keys, groups, profiles) hold for req, or the first that does not.
func conditions(m configs.Match, req Request) string {
	switch {
	case len(m.EABKeys) > 0 && !slices.Contains(m.EABKeys, req.EABKey):
		return fmt.Sprintf("the account's EAB key %q is not one of %v", req.EABKey, m.EABKeys)
	case len(m.Groups) > 0 && !slices.Contains(m.Groups, req.Group):
		return fmt.Sprintf("the account's group %q is not one of %v", req.Group, m.Groups)
	case len(m.Profiles) > 0 && !slices.Contains(m.Profiles, req.Profile):
		return fmt.Sprintf("profile %q is not one of %v", req.Profile, m.Profiles)
	}
	return ""
}

func matchIP(cidrs []string, v string) bool {
	a, err := netip.ParseAddr(v)
	if err != nil {
		return false
	}
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil && p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// match returns the first rule matching the identifier, its index (-1 for
// the default) and the reasons the earlier ones did not match.
func (e *Engine) match(id Identifier, req Request) (int, configs.Rule, []string) {
	var skipped []string
	for i, r := range e.rules {
		reason := why(r, id, req)
		if reason == "" {
			return i, r, skipped
		}
		skipped = append(skipped, r.Name+": "+reason)
	}
	return -1, e.def, skipped
}

// MatchDomain reports whether name matches pattern: an exact name,
// "*.suffix" (any name strictly below suffix at any depth, wildcard names
// such as "*.a.suffix" included), or a glob in the first label
// ("printer-*.corp.example.com": one label, at that depth).
func MatchDomain(pattern, name string) bool {
	pattern, name = strings.ToLower(pattern), normalize(name)
	if suffix, ok := strings.CutPrefix(pattern, "*."); ok {
		return strings.HasSuffix(name, "."+suffix)
	}
	pf, prest, _ := strings.Cut(pattern, ".")
	if before, after, ok := strings.Cut(pf, "*"); ok {
		nf, nrest, _ := strings.Cut(name, ".")
		return nrest == prest && len(nf) >= len(before)+len(after) &&
			strings.HasPrefix(nf, before) && strings.HasSuffix(nf, after) && nf != "*"
	}
	return name == pattern
}

// Route decides for an order. Its identifiers must all match the same
// rule; a deny rule, a split order, an identifier the rule does not allow
// (wildcard, IP), or a wildcard covering a name another rule decides
// otherwise (wildcardConflict) is a rejectedIdentifier problem with a
// subproblem per identifier (RFC 8555 §6.7.1).
func (e *Engine) Route(req Request) (*Decision, error) {
	if len(req.Identifiers) == 0 {
		return nil, acmeerr.New(acmeerr.Malformed, "order has no identifiers")
	}
	rules := make([]configs.Rule, len(req.Identifiers))
	var subs []*acmeerr.Error
	var refusers []string // the rule behind each subproblem
	split := false
	for i, id := range req.Identifiers {
		ri, r, _ := e.match(id, req)
		rules[i] = r
		if r.Name != rules[0].Name {
			split = true
		}
		if err := allowed(r, id); err != nil {
			subs = append(subs, err.For(id.Type, id.Value))
			refusers = append(refusers, r.Name)
		} else if c := e.wildcardConflict(id, req, ri, r); c != nil {
			subs = append(subs, acmeerr.New(acmeerr.RejectedIdentifier, "%s", c.detail).For(id.Type, id.Value))
			refusers = append(refusers, c.rule)
		}
	}
	if len(subs) > 0 {
		// The first refusal's reason is in the top-level detail too, for
		// clients that show only that.
		detail := "policy forbids " + subs[0].Identifier.Value + " (" + subs[0].Detail + ")"
		if len(subs) > 1 {
			detail += fmt.Sprintf(" and %d more identifiers", len(subs)-1)
		}
		refusal := &Refusal{Err: &acmeerr.Error{Kind: acmeerr.RejectedIdentifier, Detail: detail, Sub: subs}}
		if !split && !slices.ContainsFunc(refusers, func(n string) bool { return n != refusers[0] }) {
			refusal.Rule = refusers[0]
		}
		return nil, refusal
	}
	if split {
		for i, id := range req.Identifiers {
			subs = append(subs, acmeerr.New(acmeerr.RejectedIdentifier, "matches rule %s", rules[i].Name).For(id.Type, id.Value))
		}
		return nil, &acmeerr.Error{Kind: acmeerr.RejectedIdentifier, Detail: "identifiers of this order match different policy rules; order them separately", Sub: subs}
	}
	return decision(rules[0]), nil
}

// Refusal is the policy's refusal of an order: the problem the client
// gets, and for the audit log the rule that refused it ("" when the
// order's identifiers matched different rules). It unwraps to the
// problem, so acmeerr.KindOf and the problem writer see a
// rejectedIdentifier.
type Refusal struct {
	Rule string
	Err  *acmeerr.Error
}

// Error is the problem's text.
func (r *Refusal) Error() string { return r.Err.Error() }

// Unwrap returns the problem.
func (r *Refusal) Unwrap() error { return r.Err }

// RefusingRule is the rule named by a Refusal in err's chain, or "".
func RefusingRule(err error) string {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Rule
	}
	return ""
}

// allowed says whether rule r lets the identifier through.
func allowed(r configs.Rule, id Identifier) *acmeerr.Error {
	if r.Action == "deny" {
		reason := r.Reason
		if reason == "" {
			reason = "policy forbids this identifier"
		}
		return acmeerr.New(acmeerr.RejectedIdentifier, "rule %s: %s", r.Name, reason)
	}
	if id.Type == "ip" && r.AllowIPs != nil && !*r.AllowIPs {
		return acmeerr.New(acmeerr.RejectedIdentifier, "rule %s: IP identifiers are not issued", r.Name)
	}
	if id.Type == "dns" && strings.HasPrefix(id.Value, "*.") && r.AllowWildcards != nil && !*r.AllowWildcards {
		return acmeerr.New(acmeerr.RejectedIdentifier, "rule %s: wildcard names are not issued", r.Name)
	}
	return nil
}

func decision(r configs.Rule) *Decision {
	d := &Decision{Rule: r.Name, Upstreams: slices.Clone(r.Upstreams), Challenges: slices.Clone(r.Challenges),
		KeyTypes: slices.Clone(r.KeyTypes), MinRSABits: r.MinRSABits, MaxValidity: r.MaxValidity.D(),
		UpstreamProfile: r.UpstreamProfile, Delegated: r.DelegatedValidation, Approval: r.Approval}
	if len(d.Challenges) == 0 {
		d.Challenges = slices.Clone(core.ChallengeTypes)
	}
	if len(d.KeyTypes) == 0 {
		d.KeyTypes = []string{"rsa", "ecdsa"}
	}
	if d.MinRSABits == 0 {
		d.MinRSABits = 2048
	}
	return d
}

// Explain says, for one name (or IP address) in req's context, which rule
// matched and why earlier ones did not, and for a wildcard the rule that
// refuses it if another decides otherwise for a name it covers. A Unicode
// name is matched in its A-label form, as its identifier would be.
func (e *Engine) Explain(name string, req Request) Explanation {
	id := Identifier{Type: "dns", Value: name}
	x := Explanation{Name: name}
	if _, err := netip.ParseAddr(name); err == nil {
		id.Type = "ip"
	} else {
		a, err := configs.ALabels(normalize(name))
		if err != nil {
			x.Action, x.Reason = "invalid", err.Error()
			return x
		}
		if a != normalize(name) {
			x.ALabel = a
		}
		id.Value = a
	}
	ri, r, skipped := e.match(id, req)
	x.Rule, x.Action, x.Reason, x.Upstreams, x.Skipped = r.Name, r.Action, r.Reason, r.Upstreams, skipped
	if x.Action == "" {
		x.Action = "allow"
	}
	if x.Action != "allow" {
		return x
	}
	if err := allowed(r, id); err != nil {
		x.Action, x.Reason, x.Upstreams = "deny", err.Detail, nil
	} else if c := e.wildcardConflict(id, req, ri, r); c != nil {
		x.Action, x.Reason, x.Upstreams = "deny", c.detail, nil
		x.ConflictingRule, x.ConflictingPattern = c.rule, c.pattern
	} else {
		x.Delegated, x.Approval = r.DelegatedValidation, r.Approval
	}
	return x
}
