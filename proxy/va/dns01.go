package va

import (
	"context"
	"crypto/subtle"

	"github.com/acmebridge/acmebridge/acmeerr"
)

// dns01Label is the label prepended to the name being validated.
const dns01Label = "_acme-challenge."

// validateDNS01 performs RFC 8555 §8.4 for name (without "*.").
func (v *Validator) validateDNS01(ctx context.Context, name, keyAuth string) error {
	// RFC 8555 §8.4: "1. Compute the SHA-256 digest [FIPS180-4] of the
	// stored key authorization".
	want := dns01Value(keyAuth)

	// RFC 8555 §8.4: "2. Query for TXT records for the validation domain
	// name". The validation domain name is "_acme-challenge." + name; a
	// CNAME there is followed through the recursive resolver's answer.
	qname := dns01Label + name
	txts, err := v.resolver.lookupTXT(ctx, qname)
	if err != nil {
		return prefixed(TypeDNS01, "", err)
	}
	// RFC 8555 §8.4: "If no DNS record is found, or DNS record and response
	// payload do not pass these checks, then the validation fails."
	if len(txts) == 0 {
		return acmeerr.New(acmeerr.DNS, "dns-01: no TXT record found at %s", qname)
	}
	// RFC 8555 §8.4: "3. Verify that the contents of one of the TXT records
	// match the digest value".
	for _, txt := range txts {
		if subtle.ConstantTimeCompare([]byte(txt), []byte(want)) == 1 {
			return nil
		}
	}
	// The records found are not echoed; the client can read them itself.
	return acmeerr.New(acmeerr.IncorrectResponse,
		"dns-01: none of the %d TXT records at %s matches the expected digest", len(txts), qname)
}
