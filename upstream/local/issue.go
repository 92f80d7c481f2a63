package local

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"strings"
	"time"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/upstream"
)

// Limits on leaf certificates.
const (
	// maxCNLength is the ub-common-name of RFC 5280 Appendix A.
	maxCNLength = 64
	// minRSABits is the smallest RSA key the CA signs.
	minRSABits = 2048
	// serverCertValidity is the validity of ServerCertificate's result.
	serverCertValidity = 90 * 24 * time.Hour
	// backdate is how far before now a default NotBefore lies, to absorb
	// clock skew between the CA and relying parties.
	backdate = time.Minute
)

// Issue signs a certificate with the CSR's public key, after waiting for the
// configured Delay. The certificate holds the request's content — its
// CommonName, DNSNames and IPAddresses, KeyUsage and ExtKeyUsage, as the
// registration authority decided them — and nothing the CSR asks for: its
// subject and extensions are never read. A zero KeyUsage means
// digitalSignature (with keyEncipherment for RSA), no ExtKeyUsage means
// serverAuth and clientAuth. The CA keeps no per-order state, so setRef is
// not called and a retry issues anew.
func (ca *CA) Issue(ctx context.Context, req *upstream.Request, _ func(ref string) error) (*upstream.Result, error) {
	if req == nil {
		return nil, acmeerr.New(acmeerr.Malformed, "local: no request")
	}
	csr := req.CSR
	if csr == nil {
		if len(req.CSRDER) == 0 {
			return nil, acmeerr.New(acmeerr.BadCSR, "local: request has no CSR")
		}
		var err error
		if csr, err = x509.ParseCertificateRequest(req.CSRDER); err != nil {
			return nil, acmeerr.Wrap(acmeerr.BadCSR, err, "local: CSR cannot be parsed")
		}
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, acmeerr.Wrap(acmeerr.BadCSR, err, "local: CSR signature is invalid")
	}
	keyUsage, err := leafKeyUsage(csr.PublicKey)
	if err != nil {
		return nil, err
	}
	if req.KeyUsage != 0 {
		keyUsage = req.KeyUsage
	}
	extKeyUsage := req.ExtKeyUsage
	if len(extKeyUsage) == 0 {
		extKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	if len(req.CommonName) > maxCNLength {
		return nil, acmeerr.New(acmeerr.Malformed, "local: common name longer than %d bytes", maxCNLength)
	}
	if len(req.DNSNames) == 0 && len(req.IPAddresses) == 0 {
		return nil, acmeerr.New(acmeerr.Malformed, "local: request names no identifier")
	}
	notBefore, notAfter, err := ca.validityFor(req.NotBefore, req.NotAfter)
	if err != nil {
		return nil, err
	}

	// An order issued before (a retry after a crash or a lost lease) gets
	// the same certificate again: at most one issuance per order.
	if res, err := ca.issued(req.OrderID); res != nil || err != nil {
		return res, err
	}
	if err := ca.wait(ctx); err != nil {
		return nil, err
	}

	res, err := ca.reserve(req.OrderID)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		res.abort()
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: req.CommonName},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              keyUsage,
		ExtKeyUsage:           extKeyUsage,
		BasicConstraintsValid: true,
		DNSNames:              req.DNSNames,
		IPAddresses:           req.IPAddresses,
		AuthorityKeyId:        ca.inter.SubjectKeyId,
	}
	leaf, err := ca.sign(tmpl, csr.PublicKey)
	if err != nil {
		res.abort()
		return nil, err
	}
	chainPEM := make([]byte, 0, 2*len(ca.interPEM)+len(leaf.Raw))
	chainPEM = append(chainPEM, pemCert(leaf.Raw)...)
	chainPEM = append(chainPEM, ca.interPEM...)
	if err := res.commit(chainPEM); err != nil {
		// Signed but not recorded: never handed out (the retry signs anew).
		ca.log.Error("local certificate discarded: the issuance ledger was not written", "order", req.OrderID,
			"serial", serialKey(leaf.SerialNumber), "err", err)
		return nil, err
	}
	ca.log.Info("local certificate issued", "order", req.OrderID, "serial", serialKey(leaf.SerialNumber),
		"dns_names", req.DNSNames, "ip_addresses", req.IPAddresses, "not_after", leaf.NotAfter)
	return &upstream.Result{
		Leaf:     leaf,
		Chain:    []*x509.Certificate{ca.inter},
		ChainPEM: chainPEM,
	}, nil
}

// wait sleeps for the configured delay, returning early with an error if
// ctx ends first.
func (ca *CA) wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return acmeerr.Wrap(acmeerr.Unavailable, err, "local: issuance abandoned")
	}
	if ca.delay <= 0 {
		return nil
	}
	t := time.NewTimer(ca.delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return acmeerr.Wrap(acmeerr.Unavailable, context.Cause(ctx), "local: issuance abandoned")
	}
}

// validityFor returns the validity of a leaf: the request's, or from a
// minute ago for the configured validity, never longer than the configured
// validity nor past the intermediate's expiry.
func (ca *CA) validityFor(reqNotBefore, reqNotAfter time.Time) (time.Time, time.Time, error) {
	notBefore := reqNotBefore
	if notBefore.IsZero() {
		notBefore = ca.clock().Add(-backdate)
	}
	notBefore = notBefore.UTC().Truncate(time.Second)
	limit := notBefore.Add(ca.validity)
	notAfter := limit
	if !reqNotAfter.IsZero() {
		notAfter = reqNotAfter.UTC().Truncate(time.Second)
		if notAfter.After(limit) {
			notAfter = limit
		}
	}
	if !notAfter.After(notBefore) {
		return time.Time{}, time.Time{}, acmeerr.New(acmeerr.Malformed,
			"local: requested notAfter %s is not after notBefore %s", notAfter.Format(time.RFC3339), notBefore.Format(time.RFC3339))
	}
	if notAfter.After(ca.inter.NotAfter) {
		notAfter = ca.inter.NotAfter
	}
	if notBefore.Before(ca.inter.NotBefore) || !notAfter.After(notBefore) {
		return time.Time{}, time.Time{}, acmeerr.New(acmeerr.Malformed,
			"local: requested validity lies outside the CA's validity (%s to %s)",
			ca.inter.NotBefore.Format(time.RFC3339), ca.inter.NotAfter.Format(time.RFC3339))
	}
	return notBefore, notAfter, nil
}

// leafKeyUsage checks that pub is a key the CA signs and returns the key
// usage for it: DigitalSignature, plus KeyEncipherment for RSA.
func leafKeyUsage(pub crypto.PublicKey) (x509.KeyUsage, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return x509.KeyUsageDigitalSignature, nil
		}
		return 0, acmeerr.New(acmeerr.BadCSR, "local: ECDSA curve %s is not supported", k.Curve.Params().Name)
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return 0, acmeerr.New(acmeerr.BadCSR, "local: RSA key of %d bits is too small (at least %d)", k.N.BitLen(), minRSABits)
		}
		return x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, nil
	case ed25519.PublicKey:
		return x509.KeyUsageDigitalSignature, nil
	default:
		return 0, acmeerr.New(acmeerr.BadCSR, "local: public key of type %T is not supported", pub)
	}
}

// commonName is the first DNS name, or "" if there is none or it is longer
// than a common name may be.
func commonName(dnsNames []string) string {
	if len(dnsNames) == 0 || len(dnsNames[0]) > maxCNLength {
		return ""
	}
	return dnsNames[0]
}

// sign signs tmpl for pub with the intermediate and parses the result.
func (ca *CA) sign(tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.inter, pub, ca.interKey)
	if err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: signing certificate")
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: parsing issued certificate")
	}
	return cert, nil
}

// ServerCertificate issues a TLS serving certificate for acmebridge itself,
// valid 90 days for hosts (DNS names or IP addresses), with a fresh ECDSA
// P-256 key kept in memory. Its chain is the leaf and the intermediate;
// clients trust it through RootsPEM.
func (ca *CA) ServerCertificate(hosts []string) (*tls.Certificate, error) {
	var dnsNames []string
	var ips []net.IP
	for _, h := range hosts {
		h = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(h), "["), "]")
		if h == "" {
			return nil, acmeerr.New(acmeerr.Malformed, "local: empty host for the server certificate")
		}
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dnsNames = append(dnsNames, h)
		}
	}
	if len(dnsNames) == 0 && len(ips) == 0 {
		return nil, acmeerr.New(acmeerr.Malformed, "local: no host for the server certificate")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: generating server key")
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	notBefore := ca.clock().Add(-backdate).UTC().Truncate(time.Second)
	notAfter := notBefore.Add(serverCertValidity)
	if notAfter.After(ca.inter.NotAfter) {
		notAfter = ca.inter.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName(dnsNames)},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dnsNames,
		IPAddresses:           ips,
		AuthorityKeyId:        ca.inter.SubjectKeyId,
	}
	leaf, err := ca.sign(tmpl, &key.PublicKey)
	if err != nil {
		return nil, err
	}
	ca.log.Info("local server certificate issued", "serial", serialKey(leaf.SerialNumber), "hosts", hosts, "not_after", leaf.NotAfter)
	return &tls.Certificate{
		Certificate: [][]byte{leaf.Raw, ca.inter.Raw},
		PrivateKey:  key,
		Leaf:        leaf,
	}, nil
}
