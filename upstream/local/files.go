package local

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/internal/atomicfile"
)

// Validity of the CA's own certificates.
const (
	rootValidity  = 10 * 365 * 24 * time.Hour
	interValidity = 5 * 365 * 24 * time.Hour
)

// material is the CA's signing material.
type material struct {
	root     *x509.Certificate
	inter    *x509.Certificate
	interKey crypto.Signer
}

// caFiles are the files that make up a CA, in the order they are published.
var caFiles = []string{rootKeyFile, rootCertFile, interKeyFile, interCertFile}

// openOrCreate loads the CA in dir, or creates one if dir holds none of its
// files. A dir holding some but not all of them is an error.
func openOrCreate(dir, name string, now time.Time, log *slog.Logger) (*material, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: creating CA directory %s", dir)
	}
	var have, missing []string
	for _, f := range caFiles {
		_, err := os.Lstat(filepath.Join(dir, f))
		switch {
		case err == nil:
			have = append(have, f)
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, f)
		default:
			return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: reading CA directory %s", dir)
		}
	}
	switch {
	case len(missing) == 0:
		m, err := load(dir)
		if err != nil {
			return nil, err
		}
		log.Debug("local CA loaded", "dir", dir, "root", m.root.Subject.CommonName)
		return m, nil
	case len(have) == 0:
		m, err := create(dir, name, now)
		if err != nil {
			return nil, err
		}
		log.Info("local CA created", "dir", dir, "root", m.root.Subject.CommonName)
		return m, nil
	default:
		return nil, acmeerr.New(acmeerr.Internal,
			"local: CA directory %s is incomplete (has %s; missing %s): restore the missing files, or move the directory away to create a new CA",
			dir, strings.Join(have, ", "), strings.Join(missing, ", "))
	}
}

// create makes a new root and intermediate and publishes them in dir
// without overwriting anything already there.
func create(dir, name string, now time.Time) (*material, error) {
	id := make([]byte, 4)
	if _, err := rand.Read(id); err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: reading random bytes")
	}
	suffix := name + " " + hex.EncodeToString(id)
	notBefore := now.Add(-time.Minute).UTC().Truncate(time.Second)

	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: generating root key")
	}
	rootSerial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	rootTmpl := &x509.Certificate{
		SerialNumber:          rootSerial,
		Subject:               pkix.Name{CommonName: "acmebridge local root " + suffix, Organization: []string{"acmebridge"}},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(rootValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: signing root certificate")
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: parsing new root certificate")
	}

	interKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: generating intermediate key")
	}
	interSerial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	interTmpl := &x509.Certificate{
		SerialNumber:          interSerial,
		Subject:               pkix.Name{CommonName: "acmebridge local intermediate " + suffix, Organization: []string{"acmebridge"}},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(interValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	interDER, err := x509.CreateCertificate(rand.Reader, interTmpl, root, &interKey.PublicKey, rootKey)
	if err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: signing intermediate certificate")
	}
	inter, err := x509.ParseCertificate(interDER)
	if err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: parsing new intermediate certificate")
	}

	rootKeyPEM, err := pemKey(rootKey)
	if err != nil {
		return nil, err
	}
	interKeyPEM, err := pemKey(interKey)
	if err != nil {
		return nil, err
	}
	contents := map[string][]byte{
		rootKeyFile:   rootKeyPEM,
		rootCertFile:  pemCert(rootDER),
		interKeyFile:  interKeyPEM,
		interCertFile: pemCert(interDER),
	}
	if err := publish(dir, contents); err != nil {
		return nil, err
	}
	return &material{root: root, inter: inter, interKey: interKey}, nil
}

// publish writes every file to a synced temporary file first, then links
// them into place in caFiles order, never replacing an existing file. A
// crash leaves either nothing, or a partial set that openOrCreate refuses.
func publish(dir string, contents map[string][]byte) error {
	tmps := make(map[string]string, len(contents))
	defer func() {
		for _, t := range tmps {
			_ = os.Remove(t)
		}
	}()
	for _, f := range caFiles {
		t, err := writeTemp(dir, f, contents[f])
		if err != nil {
			return err
		}
		tmps[f] = t
	}
	for _, f := range caFiles {
		dst := filepath.Join(dir, f)
		if err := linkNoClobber(tmps[f], dst); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return acmeerr.Wrap(acmeerr.Internal, err, "local: %s appeared while creating the CA in %s (another process creating it?)", f, dir)
			}
			return acmeerr.Wrap(acmeerr.Internal, err, "local: publishing %s in %s", f, dir)
		}
	}
	return syncDir(dir)
}

// linkNoClobber puts src at dst, failing with fs.ErrExist if dst exists.
// It hard-links where the file system allows, else checks and renames.
func linkNoClobber(src, dst string) error {
	err := os.Link(src, dst)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return err
	}
	if _, serr := os.Lstat(dst); serr == nil {
		return fs.ErrExist
	}
	return os.Rename(src, dst)
}

// writeTemp writes b to a new synced 0600 file in dir and returns its path.
func writeTemp(dir, name string, b []byte) (string, error) {
	path, err := atomicfile.WriteTemp(dir, name, b, 0o600)
	if err != nil {
		return "", acmeerr.Wrap(acmeerr.Internal, err, "local: writing %s in %s", name, dir)
	}
	return path, nil
}

// writeAtomic replaces dir/name with b (mode 0600) through a temporary file
// and a rename, so readers see the old or the new content, never a mix.
func writeAtomic(dir, name string, b []byte) error {
	if err := atomicfile.Replace(filepath.Join(dir, name), b, 0o600); err != nil {
		return acmeerr.Wrap(acmeerr.Internal, err, "local: replacing %s in %s", name, dir)
	}
	return nil
}

// syncDir flushes dir's entries, so renames survive a crash.
func syncDir(dir string) error {
	if err := atomicfile.SyncDir(dir); err != nil {
		return acmeerr.Wrap(acmeerr.Internal, err, "local: syncing %s", dir)
	}
	return nil
}

// load reads and checks the CA's files in dir.
func load(dir string) (*material, error) {
	root, err := readCert(dir, rootCertFile)
	if err != nil {
		return nil, err
	}
	rootKey, err := readKey(dir, rootKeyFile)
	if err != nil {
		return nil, err
	}
	inter, err := readCert(dir, interCertFile)
	if err != nil {
		return nil, err
	}
	interKey, err := readKey(dir, interKeyFile)
	if err != nil {
		return nil, err
	}
	if !keyMatches(root, rootKey) {
		return nil, acmeerr.New(acmeerr.Internal, "local: %s does not match %s in %s", rootKeyFile, rootCertFile, dir)
	}
	if !keyMatches(inter, interKey) {
		return nil, acmeerr.New(acmeerr.Internal, "local: %s does not match %s in %s", interKeyFile, interCertFile, dir)
	}
	if !inter.IsCA {
		return nil, acmeerr.New(acmeerr.Internal, "local: %s in %s is not a CA certificate", interCertFile, dir)
	}
	if err := inter.CheckSignatureFrom(root); err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: %s is not signed by %s in %s", interCertFile, rootCertFile, dir)
	}
	return &material{root: root, inter: inter, interKey: interKey}, nil
}

// keyMatches reports whether key is the private key of cert.
func keyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

// readCert reads the first certificate of a PEM file.
func readCert(dir, name string) (*x509.Certificate, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: reading %s in %s", name, dir)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, acmeerr.New(acmeerr.Internal, "local: %s in %s holds no PEM certificate", name, dir)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: parsing %s in %s", name, dir)
	}
	return c, nil
}

// readKey reads a PKCS#8 PEM private key that can sign.
func readKey(dir, name string) (crypto.Signer, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: reading %s in %s", name, dir)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, acmeerr.New(acmeerr.Internal, "local: %s in %s holds no PKCS#8 PEM private key", name, dir)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: parsing %s in %s", name, dir)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, acmeerr.New(acmeerr.Internal, "local: %s in %s is a %T, which cannot sign", name, dir, k)
	}
	return s, nil
}

// pemKey encodes a private key as PKCS#8 PEM.
func pemKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: encoding private key")
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// randomSerial returns a positive serial number of 128 random bits.
func randomSerial() (*big.Int, error) {
	var b [16]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: reading random bytes")
		}
		if n := new(big.Int).SetBytes(b[:]); n.Sign() > 0 {
			return n, nil
		}
	}
}

// serialKey is the form of a serial number used in revoked.json.
func serialKey(n *big.Int) string {
	return fmt.Sprintf("%x", n)
}
