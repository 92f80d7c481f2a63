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

// record writes the chain issued for orderID to the ledger, atomically.
func (ca *CA) record(orderID string, chainPEM []byte) error {
	if !validOrderID(orderID) {
		return nil
	}
	dir := filepath.Join(ca.dir, ledgerDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return acmeerr.Wrap(acmeerr.Internal, err, "local: creating the issuance ledger")
	}
	if err := writeAtomic(dir, orderID+".pem", chainPEM); err != nil {
		return acmeerr.Wrap(acmeerr.Internal, err, "local: writing the issuance ledger")
	}
	return nil
}
