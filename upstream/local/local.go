// Package local is acmebridge's built-in certificate authority, for the
// quickstart, development and tests. It keeps a root and an intermediate
// (ECDSA P-256) in a directory, signs leaf certificates with the intermediate,
// records revocations in revoked.json and publishes them as a CRL.
//
// It implements upstream.Issuer. All its errors are prefixed "local: " and
// carry an acmeerr kind.
package local

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"sync"
	"time"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/upstream"
)

// DefaultValidity is the validity of issued certificates when
// Options.Validity is zero.
const DefaultValidity = 90 * 24 * time.Hour

// File names inside Options.Dir.
const (
	rootCertFile  = "root.pem"
	rootKeyFile   = "root.key"
	interCertFile = "intermediate.pem"
	interKeyFile  = "intermediate.key"
	revokedFile   = "revoked.json"
)

// Options configures a local CA.
type Options struct {
	// Name is the upstream's configured name; it also appears in the
	// root's common name. Empty means "local".
	Name string
	// Dir holds the CA's keys, certificates and revocations. It is created
	// (mode 0700) with a new CA on first start; later starts load it.
	Dir string
	// Validity of issued certificates; zero means DefaultValidity.
	Validity time.Duration
	// Delay is waited before each issuance, standing in for a slow CA in
	// tests.
	Delay time.Duration
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Logger receives creation, issuance and revocation events; nil
	// discards them.
	Logger *slog.Logger
}

// CA is a local certificate authority. It is safe for concurrent use.
type CA struct {
	name     string
	dir      string
	validity time.Duration
	delay    time.Duration
	clock    func() time.Time
	log      *slog.Logger

	root      *x509.Certificate
	rootPEM   []byte
	inter     *x509.Certificate
	interKey  crypto.Signer
	interPEM  []byte
	interPool *x509.CertPool
	// serialKey derives the serials of orders (orderSerial); nil when
	// the key does not sign deterministically.
	serialKey []byte

	// mu guards revoked and the revoked.json file.
	mu      sync.Mutex
	revoked map[string]revocation
}

// CA implements upstream.Issuer.
var _ upstream.Issuer = (*CA)(nil)

// New opens the CA in opts.Dir, creating it on first start. A directory
// holding only some of the CA's files is refused rather than overwritten.
func New(opts Options) (*CA, error) {
	if opts.Dir == "" {
		return nil, acmeerr.New(acmeerr.Internal, "local: no directory given for the CA")
	}
	if opts.Validity < 0 || opts.Delay < 0 {
		return nil, acmeerr.New(acmeerr.Internal, "local: validity and delay must not be negative")
	}
	ca := &CA{
		name:     opts.Name,
		dir:      opts.Dir,
		validity: opts.Validity,
		delay:    opts.Delay,
		clock:    opts.Clock,
		log:      opts.Logger,
	}
	if ca.name == "" {
		ca.name = "local"
	}
	if ca.validity == 0 {
		ca.validity = DefaultValidity
	}
	if ca.clock == nil {
		ca.clock = time.Now
	}
	if ca.log == nil {
		ca.log = slog.New(slog.DiscardHandler)
	}
	ca.log = ca.log.With("upstream", ca.name)

	m, err := openOrCreate(ca.dir, ca.name, ca.clock(), ca.log)
	if err != nil {
		return nil, err
	}
	ca.root, ca.inter, ca.interKey = m.root, m.inter, m.interKey
	ca.rootPEM = pemCert(m.root.Raw)
	ca.interPEM = pemCert(m.inter.Raw)
	ca.interPool = x509.NewCertPool()
	ca.interPool.AddCert(m.inter)
	ca.serialKey = serialKeyFor(m.interKey)

	ca.revoked, err = loadRevoked(ca.dir)
	if err != nil {
		return nil, err
	}
	return ca, nil
}

// Name returns the upstream's configured name.
func (ca *CA) Name() string { return ca.name }

// Dir returns the directory holding the CA's files.
func (ca *CA) Dir() string { return ca.dir }

// RootsPEM returns the CA's root certificate, PEM encoded, for clients to
// trust. The caller may modify the returned slice.
func (ca *CA) RootsPEM() []byte {
	return append([]byte(nil), ca.rootPEM...)
}

// Root returns the CA's root certificate.
func (ca *CA) Root() *x509.Certificate { return ca.root }

// Intermediate returns the certificate that signs leaves and CRLs.
func (ca *CA) Intermediate() *x509.Certificate { return ca.inter }

// pemCert encodes a DER certificate as PEM.
func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
