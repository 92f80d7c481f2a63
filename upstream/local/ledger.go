package local

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/upstream"
)

// ledgerDir is the CA's record of what it issued for which order, under
// Dir: one PEM chain per order ID. It makes Issue idempotent per order and
// is an audit trail of every issuance.
const ledgerDir = "issued"

// validOrderID accepts the IDs acmebridge makes (base64url), so an ID can
// never name a path outside the ledger.
func validOrderID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// issued returns the chain issued before for orderID, or nil.
func (ca *CA) issued(orderID string) (*upstream.Result, error) {
	if !validOrderID(orderID) {
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(ca.dir, ledgerDir, orderID+".pem"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: reading the issuance ledger")
	}
	res := &upstream.Result{ChainPEM: b}
	for rest := b; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: ledger entry for order %s is corrupt", orderID)
		}
		if res.Leaf == nil {
			res.Leaf = c
		} else {
			res.Chain = append(res.Chain, c)
		}
	}
	if res.Leaf == nil {
		return nil, acmeerr.New(acmeerr.Internal, "local: ledger entry for order %s is empty", orderID)
	}
	ca.log.Info("local certificate served again from the ledger", "order", orderID, "serial", serialKey(res.Leaf.SerialNumber))
	return res, nil
}

// reservation is a ledger entry's temporary file, written to its full size
// before the certificate is signed: a full disk refuses the issuance
// before anything is signed, instead of after (when the signed certificate
// could only be thrown away, and a retry would sign another).
type reservation struct {
	f         *os.File
	dir, name string
}

// reserveSlack is room for the leaf beyond the intermediate's size: a leaf
// with the most names and an RSA-4096 key is well under it.
const reserveSlack = 16 << 10

// reserve creates orderID's ledger file, as a temporary file of the size
// the entry will take, synced. A nil reservation (and no error) means the
// order ID takes no ledger entry.
func (ca *CA) reserve(orderID string) (*reservation, error) {
	if !validOrderID(orderID) {
		return nil, nil
	}
	dir := filepath.Join(ca.dir, ledgerDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: creating the issuance ledger")
	}
	name := orderID + ".pem"
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: reserving %s in the issuance ledger", name)
	}
	r := &reservation{f: f, dir: dir, name: name}
	if _, err := f.Write(make([]byte, len(ca.interPEM)+reserveSlack)); err != nil {
		r.abort()
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: reserving %s in the issuance ledger", name)
	}
	if err := f.Sync(); err != nil {
		r.abort()
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "local: reserving %s in the issuance ledger", name)
	}
	return r, nil
}

// commit writes the chain over the reserved space and moves the file to
// its name, atomically.
func (r *reservation) commit(chainPEM []byte) error {
	if r == nil {
		return nil
	}
	fail := func(err error) error {
		r.abort()
		return acmeerr.Wrap(acmeerr.Internal, err, "local: writing the issuance ledger")
	}
	if _, err := r.f.WriteAt(chainPEM, 0); err != nil {
		return fail(err)
	}
	if err := r.f.Truncate(int64(len(chainPEM))); err != nil {
		return fail(err)
	}
	if err := r.f.Sync(); err != nil {
		return fail(err)
	}
	if err := r.f.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(r.f.Name(), filepath.Join(r.dir, r.name)); err != nil {
		_ = os.Remove(r.f.Name())
		return acmeerr.Wrap(acmeerr.Internal, err, "local: writing the issuance ledger")
	}
	return syncDir(r.dir)
}

// abort removes the reservation.
func (r *reservation) abort() {
	if r == nil {
		return
	}
	_ = r.f.Close()
	_ = os.Remove(r.f.Name())
}
