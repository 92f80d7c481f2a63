package ra

import (
	"net/netip"
	"strings"

	"golang.org/x/net/idna"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/store"
)

// NormalizeIdentifiers checks the identifiers of a newOrder and returns them
// normalised (lower case, deduplicated, in request order). Every bad one is
// a subproblem (RFC 8555 §6.7.1).
func NormalizeIdentifiers(in []store.Identifier, maxIDs int) ([]store.Identifier, error) {
	if len(in) == 0 {
		return nil, acmeerr.New(acmeerr.Malformed, "an order needs at least one identifier")
	}
	if len(in) > maxIDs {
		return nil, acmeerr.New(acmeerr.RejectedIdentifier, "an order may have at most %d identifiers", maxIDs)
	}
	seen := map[store.Identifier]bool{}
	var out []store.Identifier
	var subs []*acmeerr.Error
	for _, id := range in {
		n, err := normalizeIdentifier(id)
		if err != nil {
			subs = append(subs, err.For(id.Type, truncate(id.Value, 255)))
			continue
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	if len(subs) == 1 {
		return nil, subs[0]
	}
	if len(subs) > 1 {
		return nil, &acmeerr.Error{Kind: subs[0].Kind, Detail: "several identifiers are refused", Sub: subs}
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return strings.ToValidUTF8(s[:n], "")
	}
	return s
}

func normalizeIdentifier(id store.Identifier) (store.Identifier, *acmeerr.Error) {
	switch id.Type {
	case "dns":
		v := strings.ToLower(id.Value)
		if err := checkDNSName(v); err != nil {
			return id, err
		}
		return store.Identifier{Type: "dns", Value: v}, nil
	case "ip":
		// RFC 8738 §3: "The value field MUST contain the textual form of
		// the address as defined in RFC 1123 Section 2.1 for IPv4 and in
		// RFC 5952 Section 4 for IPv6."
		a, err := netip.ParseAddr(id.Value)
		if err != nil || a.Zone() != "" || a.Is4In6() {
			return id, acmeerr.New(acmeerr.Malformed, "%s is not an IP address", acmeerr.Quote(id.Value))
		}
		if a.String() != id.Value {
			return id, acmeerr.New(acmeerr.Malformed, "%s is not in canonical form (%s)", acmeerr.Quote(id.Value), a.String())
		}
		return store.Identifier{Type: "ip", Value: a.String()}, nil
	default:
		return id, acmeerr.New(acmeerr.UnsupportedIdentifier, "identifier type %s is not supported (dns, ip)", acmeerr.Quote(id.Type))
	}
}

// checkDNSName accepts a lower-case LDH name, optionally with one leading
// "*." wildcard label (RFC 8555 §7.1.3: wildcard identifiers are "a domain
// name with a "*." prefix"), no trailing dot, no IP literal.
func checkDNSName(v string) *acmeerr.Error {
	base := strings.TrimPrefix(v, "*.")
	if base == "" || len(v) > 253 {
		return acmeerr.New(acmeerr.RejectedIdentifier, "%s is not a valid DNS name", acmeerr.Quote(v))
	}
	if strings.HasSuffix(base, ".") {
		return acmeerr.New(acmeerr.RejectedIdentifier, "%s ends in a dot", acmeerr.Quote(v))
	}
	if _, err := netip.ParseAddr(base); err == nil {
		return acmeerr.New(acmeerr.RejectedIdentifier, "%s is an IP address; use an ip identifier", acmeerr.Quote(v))
	}
	for _, label := range strings.Split(base, ".") {
		if label == "" || len(label) > 63 {
			return acmeerr.New(acmeerr.RejectedIdentifier, "%s has an empty or over-long label", acmeerr.Quote(v))
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return acmeerr.New(acmeerr.RejectedIdentifier, "%s has a label starting or ending with a hyphen", acmeerr.Quote(v))
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return acmeerr.New(acmeerr.RejectedIdentifier, "%s has characters outside letters, digits and hyphen (use the IDNA A-label form)", acmeerr.Quote(v))
			}
		}
		if len(label) >= 4 && label[2:4] == "--" && !strings.HasPrefix(label, "xn--") {
			return acmeerr.New(acmeerr.RejectedIdentifier, "%s has a reserved label form", acmeerr.Quote(v))
		}
		if strings.HasPrefix(label, "xn--") && !validALabel(label) {
			return acmeerr.New(acmeerr.RejectedIdentifier, "%s has a label that is not a valid IDNA A-label", acmeerr.Quote(v))
		}
	}
	return nil
}

// validALabel reports whether an "xn--" label is a real A-label: its
// Punycode decodes to a U-label valid for registration under IDNA2008, which
// encodes back to the same label (RFC 5890 §2.3.2.1: an A-label is the
// ASCII form of a U-label, and the two convert into each other; a label
// with the "xn--" prefix that does not is a "fake A-label"). "xn--a", which
// decodes to the control character U+0080, is refused.
func validALabel(label string) bool {
	u, err := idna.Registration.ToUnicode(label)
	if err != nil {
		return false
	}
	a, err := idna.Registration.ToASCII(u)
	return err == nil && a == label
}
