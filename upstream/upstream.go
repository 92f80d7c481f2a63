// Package upstream declares what the proxy asks of a certificate authority
// behind it. Each back-end lives in its own package (upstream/local,
// upstream/vault, upstream/acme) and returns errors prefixed with its name and
// classified with acmeerr kinds.
package upstream

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"time"
)

// Request is a checked issuance request. Its content — CommonName, DNSNames,
// IPAddresses, KeyUsage, ExtKeyUsage — is what the registration authority
// (ra.DecideContent) decided from the order; an upstream that builds the
// certificate itself takes these and the CSR's public key, nothing else
// from the CSR. The CSR was checked to ask for nothing beyond this content,
// so an upstream that must forward it (Vault's sign-verbatim, an ACME CA)
// may.
type Request struct {
	// OrderID identifies the downstream order, for logs and idempotency.
	OrderID string
	// CSR is the client's parsed CSR, its signature verified by the
	// registration authority at finalize; CSRDER its DER bytes, forwarded
	// as-is to upstreams that sign the client's CSR.
	CSR    *x509.CertificateRequest
	CSRDER []byte
	// CommonName is the subject's common name; "" for an empty subject.
	CommonName string
	// DNSNames and IPAddresses are the order's identifiers.
	DNSNames    []string
	IPAddresses []net.IP
	// KeyUsage and ExtKeyUsage are the certificate's usages; zero values
	// leave them to the upstream.
	KeyUsage    x509.KeyUsage
	ExtKeyUsage []x509.ExtKeyUsage
	// NotBefore and NotAfter are the validity the order asked for; zero
	// means the upstream's default.
	NotBefore, NotAfter time.Time
	// Profile is the profile the route asks the upstream for.
	Profile string
	// At is when the order was finalized: the same on every attempt of
	// the order, so an upstream that derives a certificate from the
	// request alone (the local CA: serial, validity and an RFC 6979
	// signature) makes the same certificate again on a retry. Zero when
	// unknown.
	At time.Time
	// Ref is the upstream reference stored by an earlier attempt of the same
	// order ("" on the first attempt); see Issuer.Issue.
	Ref string
	// Replaces is the certificate this order renews (RFC 9773 §5), set
	// only when this same upstream issued it; nil otherwise.
	Replaces *x509.Certificate
}

// Result is an issued certificate.
type Result struct {
	// Leaf is the certificate; Chain its issuers, leaf's issuer first.
	Leaf  *x509.Certificate
	Chain []*x509.Certificate
	// ChainPEM is the leaf followed by the chain, PEM encoded, as served to
	// the client.
	ChainPEM []byte
	// Alternates are other PEM chains for the same leaf that the CA offers
	// (RFC 8555 §7.4.2), served to clients as Link rel="alternate".
	Alternates [][]byte
}

// Issuer is a certificate authority acmebridge forwards orders to.
type Issuer interface {
	// Name is the upstream's configured name.
	Name() string
	// Issue signs the request. It must be safe to call again for the same
	// order after a crash: an upstream that keeps server-side state reports
	// its reference through setRef before it commits to an issuance, and
	// resumes from req.Ref when it is set.
	Issue(ctx context.Context, req *Request, setRef func(ref string) error) (*Result, error)
	// Revoke revokes a certificate this upstream issued, with an RFC 5280
	// reason code.
	Revoke(ctx context.Context, cert *x509.Certificate, reason int) error
}

// ErrNoRenewalInfo is returned by RenewalInfo when the CA offers no
// renewal information (RFC 9773) for the certificate.
var ErrNoRenewalInfo = errors.New("the CA offers no renewal information")

// RenewalInfoer is an Issuer that can ask its CA for a certificate's
// suggested renewal window (RFC 9773 §4.2), optional: the proxy computes a
// window itself for upstreams without it.
type RenewalInfoer interface {
	// RenewalInfo returns the CA's window for a certificate this upstream
	// issued and the CA's Retry-After (zero when it sent none). It returns
	// ErrNoRenewalInfo when the CA has no ARI.
	RenewalInfo(ctx context.Context, cert *x509.Certificate) (start, end time.Time, retryAfter time.Duration, err error)
}

// ParsePEMCertificates parses every CERTIFICATE block of a PEM text, in
// order (other blocks are skipped).
func ParsePEMCertificates(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return certs, nil
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
}
