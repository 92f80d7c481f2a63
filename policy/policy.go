// Package policy decides, for the identifiers of an order, whether it may be
// issued and by which upstreams: ordered rules, first match wins, and a
// default rule that ends the list.
package policy

import (
	"fmt"
	"strings"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/configs"
)

// Identifier is an ACME identifier to route.
type Identifier struct {
	Type  string
	Value string
}

// Decision is the route an order takes.
type Decision struct {
	// Rule is the name of the rule that matched.
	Rule string
	// Upstreams are tried in order.
	Upstreams []string
}

// Explanation is the reasoning for one name, for `policy explain`.
type Explanation struct {
	Name      string   `json:"name"`
	Rule      string   `json:"rule"`
	Action    string   `json:"action"`
	Reason    string   `json:"reason,omitempty"`
	Upstreams []string `json:"upstreams,omitempty"`
	// Skipped says why each earlier rule did not match.
	Skipped []string `json:"skipped,omitempty"`
}

// Engine evaluates a configured policy.
type Engine struct {
	rules []configs.Rule
	def   configs.Rule
}

// New returns an engine for a validated policy.
func New(p configs.Policy) *Engine {
	def := p.Default
	if def.Name == "" {
		def.Name = "default"
	}
	return &Engine{rules: p.Rules, def: def}
}

// match returns the first rule matching the identifier and the reasons the
// earlier ones did not.
func (e *Engine) match(id Identifier) (configs.Rule, []string) {
	var skipped []string
	name := strings.ToLower(strings.TrimSuffix(id.Value, "."))
	for _, r := range e.rules {
		if id.Type == "dns" {
			for _, p := range r.Match.Domains {
				if MatchDomain(p, name) {
					return r, skipped
				}
			}
		}
		skipped = append(skipped, fmt.Sprintf("%s: %s matches none of %v", r.Name, name, r.Match.Domains))
	}
	return e.def, skipped
}

// MatchDomain reports whether name matches pattern: an exact name, or
// "*.suffix", which matches any name strictly below suffix at any depth
// (including wildcard names such as "*.a.suffix").
func MatchDomain(pattern, name string) bool {
	pattern = strings.ToLower(pattern)
	if suffix, ok := strings.CutPrefix(pattern, "*."); ok {
		return strings.HasSuffix(name, "."+suffix)
	}
	return name == pattern
}

// Route decides for all identifiers of an order. They must all match the
// same rule; a deny rule or a split order is a rejectedIdentifier problem
// with a subproblem per identifier (RFC 8555 §6.7.1).
func (e *Engine) Route(ids []Identifier) (*Decision, error) {
	var first *configs.Rule
	var subs []*acmeerr.Error
	split := false
	for _, id := range ids {
		r, _ := e.match(id)
		if r.Action == "deny" {
			reason := r.Reason
			if reason == "" {
				reason = "policy forbids this identifier"
			}
			subs = append(subs, acmeerr.New(acmeerr.RejectedIdentifier, "rule %s: %s", r.Name, reason).For(id.Type, id.Value))
			continue
		}
		if first == nil {
			rr := r
			first = &rr
		} else if first.Name != r.Name {
			split = true
		}
	}
	if len(subs) > 0 {
		return nil, &acmeerr.Error{Kind: acmeerr.RejectedIdentifier, Detail: "policy forbids some identifiers of this order", Sub: subs}
	}
	if split {
		for _, id := range ids {
			r, _ := e.match(id)
			subs = append(subs, acmeerr.New(acmeerr.RejectedIdentifier, "matches rule %s", r.Name).For(id.Type, id.Value))
		}
		return nil, &acmeerr.Error{Kind: acmeerr.RejectedIdentifier, Detail: "identifiers of this order match different policy rules; order them separately", Sub: subs}
	}
	if first == nil {
		return nil, acmeerr.New(acmeerr.Malformed, "order has no identifiers")
	}
	return &Decision{Rule: first.Name, Upstreams: append([]string(nil), first.Upstreams...)}, nil
}

// Explain says, for one name, which rule matched and why earlier ones did
// not. It works offline, from the configuration alone.
func (e *Engine) Explain(name string) Explanation {
	typ := "dns"
	if isIP(name) {
		typ = "ip"
	}
	r, skipped := e.match(Identifier{Type: typ, Value: name})
	action := r.Action
	if action == "" {
		action = "allow"
	}
	return Explanation{Name: name, Rule: r.Name, Action: action, Reason: r.Reason, Upstreams: r.Upstreams, Skipped: skipped}
}

func isIP(s string) bool {
	return strings.Count(s, ":") >= 2 || strings.Trim(s, "0123456789.") == "" && strings.Count(s, ".") == 3
}
