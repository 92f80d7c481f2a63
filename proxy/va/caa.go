package va

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/acmebridge/acmebridge/acmeerr"
)

// CAA (RFC 8659), with the "accounturi" and "validationmethods" parameters
// of RFC 8657. The proxy calls CheckCAA at finalize, for the upstreams that
// acmebridge checks CAA for; see proxy/caa.go.

// caaCritical is the Issuer Critical Flag. RFC 8659 §4.1: "Note that
// according to the conventions set out in [RFC1035], bit 0 is the Most
// Significant Bit and bit 7 is the Least Significant Bit. Thus, according to
// those conventions, the Flags value 1 means that bit 7 is set, while a value
// of 128 means that bit 0 is set." The other bits are reserved: "Applications
// that interpret CAA records MUST ignore the value of all reserved flag
// bits."
const caaCritical = 0x80

// resolvConf is where the system's resolvers are read from for CAA lookups
// when no resolvers are configured (Go's resolver has no CAA lookup).
var resolvConf = "/etc/resolv.conf"

// CheckCAA checks that CAA lets a CA known by identities (its
// issuer-domain-names) issue a certificate for name, requested by the ACME
// account accountURL and validated with method ("http-01", "dns-01",
// "tls-alpn-01"). wildcard is true for a wildcard name (a leading "*." on
// name means the same). It returns nil when issuance is allowed, an
// *acmeerr.Error of kind CAA when CAA forbids it, and one of kind DNS when
// the records could not be looked up (issuance must then not go ahead).
// IP addresses have no CAA and are always allowed.
func (v *Validator) CheckCAA(ctx context.Context, name string, wildcard bool, identities []string, accountURL, method string) error {
	if _, err := netip.ParseAddr(name); err == nil {
		// RFC 8659 defines CAA for domain names only; an IP address has no
		// node in the DNS to publish one at.
		return nil
	}
	n, err := normalizeName(name)
	if err != nil {
		return err
	}
	if strings.HasPrefix(n, "*.") {
		n, wildcard = n[2:], true
	}
	shown := n
	if wildcard {
		shown = "*." + n
	}
	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()

	set, at, lerr := v.relevantCAASet(ctx, n)
	if lerr != nil {
		// RFC 8659 §3: "Before issuing a certificate, a compliant CA MUST
		// check for publication of a Relevant RRset." An answer that did not
		// come (SERVFAIL, timeout) may hide one, so the check has failed;
		// §6.3 (delegation to private nameservers): "A CA processing CAA
		// records for such subdomains will receive SERVFAIL from its
		// recursive resolver. The CA MAY interpret that as preventing
		// issuance." acmebridge does.
		err := acmeerr.Wrap(acmeerr.DNS, lerr, "CAA for %s could not be checked, so no certificate is issued: %s", shown, lerr.Detail)
		v.log.Debug("CAA lookup failed", "name", shown, "err", lerr.Error())
		return err
	}
	if cerr := evalCAA(set, at, shown, wildcard, identities, accountURL, method); cerr != nil {
		v.log.Debug("CAA forbids issuance", "name", shown, "found_at", at, "account", accountURL, "method", method, "detail", cerr.Detail)
		return cerr
	}
	v.log.Debug("CAA allows issuance", "name", shown, "found_at", at, "records", len(set))
	return nil
}

// relevantCAASet returns the Relevant RRset of name (without "*.") and the
// name it was found at; none when the tree holds no CAA record.
//
// RFC 8659 §3: "The search for a CAA RRset climbs the DNS name tree from the
// specified label up to, but not including, the DNS root "." until a CAA
// RRset is found." CAA(X) is a CAA query for X "according to the lookup
// algorithm specified in Section 4.3.2 of [RFC1034] (in particular, chasing
// aliases)" — the recursive resolver follows CNAMEs and answers() collects
// the chain — and Parent(X) is X without its leftmost label: the climb goes
// up from name itself, not from a CNAME's target.
//
//	RelevantCAASet(domain):
//	  while domain is not ".":
//	    if CAA(domain) is not Empty:
//	      return CAA(domain)
//	    domain := Parent(domain)
//	  return Empty
func (v *Validator) relevantCAASet(ctx context.Context, name string) ([]*dns.CAA, string, *acmeerr.Error) {
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		// RFC 6761 §6.3: caching DNS servers "SHOULD, for all such address
		// queries, generate an immediate positive response giving the IP
		// loopback address, and for all other query types, generate an
		// immediate negative response." A localhost name never has CAA.
		return nil, "", nil
	}
	for d := name; d != ""; {
		rrs, cached := v.caa.get(d)
		if !cached {
			var ttl time.Duration
			var err *acmeerr.Error
			if rrs, ttl, err = v.resolver.lookupCAA(ctx, d); err != nil {
				return nil, d, err
			}
			v.caa.put(d, rrs, ttl)
		}
		if len(rrs) > 0 {
			return rrs, d, nil
		}
		_, d, _ = strings.Cut(d, ".")
	}
	return nil, "", nil
}

// evalCAA applies the Relevant RRset set, found at at, to a request for
// shown (a wildcard name when wildcard) by the account accountURL validated
// with method; nil means issuance is allowed.
func evalCAA(set []*dns.CAA, at, shown string, wildcard bool, identities []string, accountURL, method string) *acmeerr.Error {
	var issue, issuewild []string
	for _, rr := range set {
		// RFC 8659 §4.1: "Matching of tags is case insensitive."
		switch tag := strings.ToLower(rr.Tag); tag {
		case "issue":
			issue = append(issue, rr.Value)
		case "issuewild":
			issuewild = append(issuewild, rr.Value)
		case "iodef":
			// Recognised; acmebridge sends no incident reports, which
			// RFC 8659 §4.4 leaves to the CA.
		default:
			// RFC 8659 §4.1: "A CA MUST NOT issue certificates for any FQDN
			// if the Relevant RRset for that FQDN contains a CAA critical
			// Property for an unknown or unsupported Property Tag."
			if rr.Flag&caaCritical != 0 {
				return acmeerr.New(acmeerr.CAA,
					"CAA record at %s marks the property %q, unknown to this CA, as critical, so no certificate is issued for %s",
					at, sanitize(rr.Tag), shown)
			}
		}
	}
	// RFC 8659 §4.3: "issuewild Properties MUST be ignored when processing a
	// request for an FQDN that is not a Wildcard Domain Name." and "If at
	// least one issuewild Property is specified in the Relevant RRset for a
	// Wildcard Domain Name, all issue Properties MUST be ignored when
	// processing a request for that Wildcard Domain Name."
	props, ptag := issue, "issue"
	if wildcard && len(issuewild) > 0 {
		props, ptag = issuewild, "issuewild"
	}
	// RFC 8659 §3: "If the Relevant RRset for an FQDN or Wildcard Domain Name
	// contains no Property Tags that restrict issuance (for instance, if it
	// contains only iodef Property Tags or only Property Tags unrecognized by
	// the CA), CAA does not restrict issuance."
	if len(props) == 0 {
		return nil
	}
	// RFC 8659 §3: "If such an RRset exists, a CA MUST NOT issue a
	// certificate unless the CA determines that ... the certificate request
	// is consistent with the applicable CAA RRset". §4.2: "CAA
	// authorizations are additive": one property that authorizes this CA
	// is enough.
	var paramReason string
	named := false
	for _, value := range props {
		issuer, params, ok := parseIssueValue(value)
		if !ok || issuer == "" {
			// RFC 8659 §4.2: "An issue Property Tag where the issue-value
			// does not match the ABNF grammar MUST be treated the same as
			// one specifying an empty issuer-domain-name", and an empty
			// issuer-domain-name (issue ";") authorizes no CA.
			continue
		}
		if !caaIdentityMatches(issuer, identities) {
			continue
		}
		named = true
		if reason := caaParamsReason(params, accountURL, method); reason != "" {
			if paramReason == "" {
				paramReason = reason
			}
			continue
		}
		return nil
	}
	switch {
	case named:
		return acmeerr.New(acmeerr.CAA, "CAA %s records at %s authorize this CA for %s %s", ptag, at, shown, paramReason)
	case allEmptyIssuer(props):
		return acmeerr.New(acmeerr.CAA, "CAA %s records at %s forbid every CA to issue for %s", ptag, at, shown)
	case len(identities) == 0:
		return acmeerr.New(acmeerr.CAA, "CAA %s records at %s restrict issuance for %s to other CAs (no CAA identity is configured for this CA)", ptag, at, shown)
	default:
		return acmeerr.New(acmeerr.CAA, "CAA %s records at %s do not authorize this CA (%s) to issue for %s",
			ptag, at, strings.Join(identities, ", "), shown)
	}
}

// allEmptyIssuer reports whether no property names an issuer.
func allEmptyIssuer(props []string) bool {
	for _, p := range props {
		if issuer, _, ok := parseIssueValue(p); ok && issuer != "" {
			return false
		}
	}
	return true
}

// caaIdentityMatches compares an issuer-domain-name with this CA's
// identities, as domain names: case-insensitively.
func caaIdentityMatches(issuer string, identities []string) bool {
	for _, id := range identities {
		if strings.EqualFold(issuer, strings.TrimSuffix(id, ".")) {
			return true
		}
	}
	return false
}

// caaParamsReason applies the RFC 8657 parameters of a property that names
// this CA; "" means the property authorizes the request. Other parameters
// are ignored (RFC 8659 §4.2: their semantics "are determined by the issuer
// alone", and acmebridge defines none).
func caaParamsReason(params []caaParam, accountURL, method string) string {
	var accounts, methods []string
	for _, p := range params {
		switch strings.ToLower(p.tag) {
		case "accounturi":
			accounts = append(accounts, p.value)
		case "validationmethods":
			methods = append(methods, p.value)
		}
	}
	// RFC 8657 §3: "A property without an "accounturi" parameter matches any
	// account. A property with an invalid or unrecognized "accounturi"
	// parameter is unsatisfiable. A property with multiple "accounturi"
	// parameters is unsatisfiable." §3.1 (use with ACME): "An ACME [RFC8555]
	// account object MAY be identified by setting the "accounturi" parameter
	// to the URI of the ACME account object. Implementations of this
	// specification that also implement ACME MUST recognize such URIs."
	switch {
	case len(accounts) > 1:
		return "only with a single accounturi, and a property has several (unsatisfiable)"
	case len(accounts) == 1 && (accountURL == "" || accounts[0] != accountURL):
		return "only for another ACME account (accounturi)"
	}
	// RFC 8657 §4: "A CA MUST only consider a property with a
	// "validationmethods" parameter to authorize issuance where the
	// validation method being used is identified by one of the
	// validation-method labels listed in the comma-separated list." ... "A
	// property without a "validationmethods" parameter matches any
	// validation method. A property with an invalid or unrecognized
	// "validationmethods" parameter is unsatisfiable. A property with
	// multiple "validationmethods" parameters is unsatisfiable."
	switch {
	case len(methods) > 1:
		return "only with a single validationmethods, and a property has several (unsatisfiable)"
	case len(methods) == 1:
		labels, ok := parseValidationMethods(methods[0])
		if !ok {
			return fmt.Sprintf("only with validationmethods %q, which is not a list of method labels (unsatisfiable)", sanitize(methods[0]))
		}
		for _, l := range labels {
			if l == method {
				return ""
			}
		}
		used := method
		if used == "" {
			used = "unknown"
		}
		return fmt.Sprintf("only for validation methods %s, and the authorization was validated by %s", sanitize(methods[0]), used)
	}
	return ""
}

// caaParam is one tag=value parameter of an issue or issuewild property.
type caaParam struct{ tag, value string }

// parseIssueValue parses an issue or issuewild property value (RFC 8659
// §4.2); ok is false when it does not match the grammar:
//
//	issue-value = *WSP [issuer-domain-name *WSP]
//	   [";" *WSP [parameters *WSP]]
//	issuer-domain-name = label *("." label)
//	label = (ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT))
//	parameters = (parameter *WSP ";" *WSP parameters) / parameter
//	parameter = tag *WSP "=" *WSP value
//	tag = (ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT))
//	value = *(%x21-3A / %x3C-7E)
func parseIssueValue(s string) (issuer string, params []caaParam, ok bool) {
	i := skipWSP(s, 0)
	j := i
	for j < len(s) && s[j] != ';' && !isWSP(s[j]) {
		j++
	}
	issuer = s[i:j]
	if issuer != "" && !isIssuerDomainName(issuer) {
		return "", nil, false
	}
	i = skipWSP(s, j)
	if i == len(s) {
		return issuer, nil, true
	}
	if s[i] != ';' {
		return "", nil, false
	}
	i = skipWSP(s, i+1)
	if i == len(s) {
		return issuer, nil, true
	}
	for {
		j = i
		for j < len(s) && (isAlnum(s[j]) || s[j] == '-') {
			j++
		}
		tag := s[i:j]
		if !isLDHLabel(tag) {
			return "", nil, false
		}
		i = skipWSP(s, j)
		if i == len(s) || s[i] != '=' {
			return "", nil, false
		}
		i = skipWSP(s, i+1)
		j = i
		for j < len(s) && s[j] >= 0x21 && s[j] <= 0x7e && s[j] != ';' {
			j++
		}
		params = append(params, caaParam{tag: tag, value: s[i:j]})
		i = skipWSP(s, j)
		if i == len(s) {
			return issuer, params, true
		}
		if s[i] != ';' {
			return "", nil, false
		}
		// A ";" must be followed by another parameter.
		i = skipWSP(s, i+1)
		if i == len(s) {
			return "", nil, false
		}
	}
}

// parseValidationMethods parses a validationmethods value (RFC 8657 §4):
//
//	value = [*(label ",") label]
//	label = (ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT))
func parseValidationMethods(s string) ([]string, bool) {
	if s == "" {
		return nil, true
	}
	labels := strings.Split(s, ",")
	for _, l := range labels {
		if !isLDHLabel(l) {
			return nil, false
		}
	}
	return labels, true
}

// isIssuerDomainName matches issuer-domain-name = label *("." label).
func isIssuerDomainName(s string) bool {
	for _, l := range strings.Split(s, ".") {
		if !isLDHLabel(l) {
			return false
		}
	}
	return true
}

// isLDHLabel matches (ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT)).
func isLDHLabel(s string) bool {
	if s == "" || !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && s[i] != '-' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isWSP(c byte) bool { return c == ' ' || c == '\t' }

func skipWSP(s string, i int) int {
	for i < len(s) && isWSP(s[i]) {
		i++
	}
	return i
}

// lookupCAA returns the CAA records of name: NXDOMAIN and NODATA are an
// empty set; SERVFAIL, REFUSED and network errors from every server are an
// error.
func (r *dnsResolver) lookupCAA(ctx context.Context, name string) ([]*dns.CAA, time.Duration, *acmeerr.Error) {
	resp, err := r.exchange(ctx, name, dns.TypeCAA)
	if err != nil {
		return nil, 0, err
	}
	rrs := answers(resp, name, dns.TypeCAA)
	if resp.Rcode == dns.RcodeNameError {
		rrs = nil
	}
	out := make([]*dns.CAA, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, rr.(*dns.CAA))
	}
	return out, answerTTL(resp, rrs), nil
}

// lookupCAA asks the system's resolvers with miekg/dns: Go's resolver cannot
// look up CAA.
func (g goResolver) lookupCAA(ctx context.Context, name string) ([]*dns.CAA, time.Duration, *acmeerr.Error) {
	servers, err := systemResolvers()
	if err != nil {
		return nil, 0, acmeerr.Wrap(acmeerr.DNS, err, "DNS query for CAA %s: no system resolver to ask (%s)", name, resolvConf)
	}
	r := &dnsResolver{
		servers: servers,
		udp:     &dns.Client{Net: "udp", Timeout: DefaultTimeout, UDPSize: ednsSize},
		tcp:     &dns.Client{Net: "tcp", Timeout: DefaultTimeout},
	}
	return r.lookupCAA(ctx, name)
}

// systemResolvers returns the nameservers of resolvConf as host:port. The
// file is read on every lookup, as Go's resolver re-reads it, so a change is
// seen without a restart. Tests replace it.
var systemResolvers = func() ([]string, error) {
	conf, err := dns.ClientConfigFromFile(resolvConf)
	if err != nil {
		return nil, err
	}
	if len(conf.Servers) == 0 {
		return nil, fmt.Errorf("no nameserver in %s", resolvConf)
	}
	var out []string
	for _, s := range conf.Servers {
		out = append(out, net.JoinHostPort(s, conf.Port))
	}
	return out, nil
}
