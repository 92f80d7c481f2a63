package local

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
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
// serverAuth and clientAuth. A request naming its order and when it was
// finalized (OrderID, At) gets the same certificate on every call, without
// any per-order record (orderSerial); setRef is not called.
func (ca *CA) Issue(ctx context.Context, req *upstream.Request, _ func(ref string) error) (*upstream.Result, error) {
	if req == nil {
		return nil, acmeerr.New(acmeerr.Malformed, "local: no request")
	}
	// A parsed CSR (req.CSR) is the one the registration authority decided
	// the content from, its signature verified at finalize (ra.CheckCSR):
	// verifying it again cost a P-256 verification per certificate. DER
	// bytes alone come from elsewhere and are verified here.
	csr := req.CSR
	if csr == nil {
		if len(req.CSRDER) == 0 {
			return nil, acmeerr.New(acmeerr.BadCSR, "local: request has no CSR")
		}
		var err error
		if csr, err = x509.ParseCertificateRequest(req.CSRDER); err != nil {
			return nil, acmeerr.Wrap(acmeerr.BadCSR, err, "local: CSR cannot be parsed")
		}
		if err := csr.CheckSignature(); err != nil {
			return nil, acmeerr.Wrap(acmeerr.BadCSR, err, "local: CSR signature is invalid")
		}
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
	notBefore, notAfter, err := ca.validityFor(req.NotBefore, req.NotAfter, req.At)
	if err != nil {
		return nil, err
	}

	// An order an earlier version signed and recorded in its ledger gets
	// that certificate again.
	if res, err := ca.issued(req.OrderID); res != nil || err != nil {
		return res, err
	}
	if err := ca.wait(ctx); err != nil {
		return nil, err
	}

	// At most one certificate per order, with no record of our own: an
	// order's serial, validity and signature (RFC 6979) are functions of
	// the request, so a retry (after a crash, a lost lease or a store that
	// could not record the first result) signs the same certificate, byte
	// for byte, instead of a second one.
	serial, deterministic := ca.orderSerial(req)
	if !deterministic {
		var err error
		if serial, err = randomSerial(); err != nil {
			return nil, err
		}
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
	leaf, err := ca.sign(tmpl, csr.PublicKey, deterministic)
	if err != nil {
		return nil, err
	}
	chainPEM := make([]byte, 0, 2*len(ca.interPEM)+len(leaf.Raw))
	chainPEM = append(chainPEM, pemCert(leaf.Raw)...)
	chainPEM = append(chainPEM, ca.interPEM...)
	ca.log.Info("local certificate issued", "order", req.OrderID, "serial", serialKey(leaf.SerialNumber),
		"dns_names", req.DNSNames, "ip_addresses", req.IPAddresses, "not_after", leaf.NotAfter)
	return &upstream.Result{
		Leaf:     leaf,
		Chain:    []*x509.Certificate{ca.inter},
		ChainPEM: chainPEM,
	}, nil
}

// orderSerial returns the serial of the order's certificate, and whether
// its issuance is deterministic: a request naming its order (an ID
// acmebridge makes) and its finalization time, to a CA whose key signs
// deterministically, gets HMAC-SHA-256(key derived from the CA's private
// key, order ID) as its serial, 127 bits, unpredictable to anyone without
// the key (CA/Browser Forum BR 7.1: at least 64 bits from a CSPRNG; an HMAC
// under a secret key is a PRF). Replicas sharing the CA's files derive the
// same serial. Any other request gets a random serial.
func (ca *CA) orderSerial(req *upstream.Request) (*big.Int, bool) {
	if ca.serialKey == nil || req.At.IsZero() || !validOrderID(req.OrderID) {
		return nil, false
	}
	m := hmac.New(sha256.New, ca.serialKey)
	m.Write([]byte(req.OrderID))
	sum := m.Sum(nil)
	sum[0] &= 0x7f // positive, and 16 bytes in DER
	n := new(big.Int).SetBytes(sum[:16])
	if n.Sign() == 0 {
		n.SetInt64(1)
	}
	return n, true
}

// serialKeyFor derives the key of orderSerial from the CA's signing key,
// or returns nil when the key's signatures are not deterministic (or it
// cannot be exported), which makes every serial random.
func serialKeyFor(k crypto.Signer) []byte {
	switch k.(type) {
	case *ecdsa.PrivateKey, ed25519.PrivateKey, *rsa.PrivateKey:
	default:
		return nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil
	}
	m := hmac.New(sha256.New, []byte("acmebridge local CA order serials v1"))
	m.Write(der)
	return m.Sum(nil)
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
// minute before at (the order's finalization; zero: now) for the
// configured validity, never longer than the configured
// validity nor past the intermediate's expiry.
func (ca *CA) validityFor(reqNotBefore, reqNotAfter, at time.Time) (time.Time, time.Time, error) {
	notBefore := reqNotBefore
	if notBefore.IsZero() {
		if at.IsZero() {
			at = ca.clock()
		}
		notBefore = at.Add(-backdate)
		if notBefore.Before(ca.inter.NotBefore) {
			// A default validity never starts before the CA's.
			notBefore = ca.inter.NotBefore
		}
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
func (ca *CA) sign(tmpl *x509.Certificate, pub crypto.PublicKey, deterministic bool) (*x509.Certificate, error) {
	random := rand.Reader
	if deterministic {
		// ECDSA signs per RFC 6979 without a random source; Ed25519 and
		// RSA PKCS #1 v1.5 signatures are deterministic anyway.
		random = nil
	}
	der, err := x509.CreateCertificate(random, tmpl, ca.inter, pub, ca.interKey)
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
	leaf, err := ca.sign(tmpl, &key.PublicKey, false)
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
