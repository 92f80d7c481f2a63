package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/core"
)

// A wildcard identifier "*.base" asks for a certificate valid for every name
// exactly one label below base (RFC 6125 §6.4.3: the "*" matches one
// label). As docs/policy.md says, it may not get a decision or route that an exact
// or glob rule would deny or route elsewhere for such a name. Boulder keeps
// the same promise for its exact blocklist (policy/pa.go,
// processHostnamePolicy): "Remove the leftmost label of the exact blocked
// names entry to make an exact wildcard block list entry that will prevent
// issuing a wildcard that would include the exact blocklist entry", so
// that a block on "highvalue.example.com" refuses "*.example.com". Here the
// rules are ordered and decide routes and constraints too, so the check is
// made against the rules themselves.
//
// Which rules can decide for a covered name x.base? The rule R that
// matched "*.base" matches every x.base as well (its pattern is a
// "*.suffix" with base at or below suffix, or it has no domain patterns,
// or it is the default; exact and glob patterns never match a wildcard),
// under the same account and profile conditions. First match wins, so the
// rule of x.base is R or a rule before R: a rule after R never decides for
// a covered name (it is shadowed there, for the plain name as well), and
// the default decides for one only when R is the default. The rules before
// R that can match some x.base without matching "*.base" are those with an
// exact or glob pattern at base's depth plus one ("secret.example.com",
// "printer-*.corp.example.com" for "*.corp.example.com"); a "*.suffix"
// pattern matching some x.base matches "*.base" too. Their eab_keys,
// groups and profiles conditions are evaluated for the same request.

// conflict is a rule that decides otherwise for names a wildcard covers.
type conflict struct {
	rule    string // the conflicting rule's name
	pattern string // its pattern naming the covered names
	detail  string // "rule X denies secret.example.com, which *.example.com would cover"
}

// wildcardConflict returns, for an identifier "*.base" that rule r (at
// index ri of the rules, -1 for the default) allows, the first earlier rule
// whose conditions hold for req and which decides otherwise for a name one
// label below base; nil if there is none or id is not a wildcard.
func (e *Engine) wildcardConflict(id Identifier, req Request, ri int, r configs.Rule) *conflict {
	name := normalize(id.Value)
	base, ok := strings.CutPrefix(name, "*.")
	if id.Type != "dns" || !ok {
		return nil
	}
	earlier := e.rules
	if ri >= 0 {
		earlier = e.rules[:ri]
	}
	for _, o := range earlier {
		if conditions(o.Match, req) != "" {
			continue
		}
		for _, p := range o.Match.Domains {
			if !coversChild(p, base) {
				continue
			}
			if d := stricter(o, r, p); d != "" {
				return &conflict{rule: o.Name, pattern: p, detail: fmt.Sprintf("rule %s %s, which %s would cover", o.Name, d, name)}
			}
		}
	}
	return nil
}

// coversChild reports whether domain pattern p (lower case, A-labels)
// matches some name exactly one label below base.
func coversChild(p, base string) bool {
	if suffix, ok := strings.CutPrefix(p, "*."); ok {
		return suffix == base || strings.HasSuffix(base, "."+suffix)
	}
	_, rest, ok := strings.Cut(p, ".")
	return ok && rest == base
}

// stricter says how rule o, deciding for the names of pattern p, forbids
// what rule r allows a wildcard covering them ("" if it does not): o
// denies them, issues no wildcard for them, routes them to other upstreams
// or another upstream profile, or puts a constraint on them that r's is
// weaker than. A constraint of r as strict as o's or stricter is no
// conflict: what r issues, o would have issued.
func stricter(o, r configs.Rule, p string) string {
	if o.Action == "deny" {
		if o.Reason != "" {
			return fmt.Sprintf("denies %s (%s)", p, o.Reason)
		}
		return "denies " + p
	}
	if o.AllowWildcards != nil && !*o.AllowWildcards {
		return "issues no wildcard certificate for " + p
	}
	od, rd := decision(o), decision(r)
	switch {
	case !slices.Equal(od.Upstreams, rd.Upstreams):
		return fmt.Sprintf("routes %s to %v, not %v as rule %s does", p, od.Upstreams, rd.Upstreams, r.Name)
	case od.UpstreamProfile != rd.UpstreamProfile:
		return fmt.Sprintf("asks upstream profile %q for %s, not %q as rule %s does", od.UpstreamProfile, p, rd.UpstreamProfile, r.Name)
	case rd.Delegated && !od.Delegated:
		// A delegated wildcard is valid without a challenge: it would
		// skip the validation o requires of the names it covers.
		return fmt.Sprintf("requires a challenge for %s, which rule %s's delegated validation would skip", p, r.Name)
	case !rd.Delegated && !slices.Contains(od.Challenges, core.ChallengeDNS01):
		// A wildcard's authorization offers dns-01 only (proxy newAuthz;
		// Boulder's ChallengesFor: "If the identifier is for a DNS wildcard
		// name we only provide a DNS-01 challenge as a matter of CA policy").
		return fmt.Sprintf("validates %s only by %v, and a wildcard only by dns-01", p, od.Challenges)
	case slices.ContainsFunc(rd.KeyTypes, func(k string) bool { return !slices.Contains(od.KeyTypes, k) }):
		return fmt.Sprintf("allows key types %v for %s, not %v as rule %s does", od.KeyTypes, p, rd.KeyTypes, r.Name)
	case rd.MinRSABits < od.MinRSABits:
		return fmt.Sprintf("requires RSA keys of %d bits for %s, not %d as rule %s does", od.MinRSABits, p, rd.MinRSABits, r.Name)
	case od.MaxValidity > 0 && (rd.MaxValidity == 0 || rd.MaxValidity > od.MaxValidity):
		theirs := "the upstream's lifetime"
		if rd.MaxValidity > 0 {
			theirs = rd.MaxValidity.String()
		}
		return fmt.Sprintf("caps certificates for %s at %s, not %s as rule %s does", p, od.MaxValidity, theirs, r.Name)
	}
	return ""
}
